//! AutomationRule: a workspace's rule "when this happens and these hold, do that". The rule lives in
//! the log (created, enabled, disabled, deleted; a change is a new rule); the `automation`
//! projector matches events against enabled rules and enqueues a run per (rule, event), and the
//! automation worker performs its actions as commands whose idempotency keys derive from rule and
//! event, so a redelivered event never acts twice.
//!
//! Matching is pure and lives here: [`RuleSpec::matches`] over the [`Facts`] of one event.

use crate::aggregate::Aggregate;
use crate::conversation::ConversationStatus;
use crate::error::DomainError;
use crate::ids::{AgentId, ChannelId, TeamId, TemplateId};
use crate::values::{bounded_text, storable};
use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const CATEGORY: &str = "automation_rule";
/// Most conditions, actions and keywords of one rule.
pub const MAX_PARTS: usize = 20;
/// The longest regular expression (its compiled size is bounded too: see [`compile`]).
pub const MAX_PATTERN_CHARS: usize = 500;
/// The compiled size a pattern may reach (the `regex` crate matches in linear time; this bounds memory).
const MAX_COMPILED_BYTES: usize = 256 * 1024;

/// What starts a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every inbound message.
    InboundMessage,
    /// The first inbound message of a contact on a channel (its conversation starts with it).
    FirstInbound,
    /// A conversation starts, or is reopened.
    ConversationOpened,
    /// An outbound message failed for good.
    MessageFailed,
    /// An inbound message in a conversation that got a campaign's message in the 24 hours before.
    CampaignReply,
}

/// A condition on the event and on its conversation and contact; all of a rule's must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The inbound text contains one of these words (case-insensitive, whole words).
    Keyword { any: Vec<String> },
    /// The inbound text matches this regular expression (`regex` crate syntax).
    Regex { pattern: String },
    /// The conversation is on this channel.
    Channel { channel_id: ChannelId },
    /// The conversation carries this label.
    Label { label: String },
    /// The event's time, in the workspace's time zone, is (`inside: true`) or is not within
    /// `from`–`to` (`HH:MM:SS`; `to` before `from` spans midnight) on one of `days` (`mon`…`sun`).
    BusinessHours {
        inside: bool,
        #[schema(value_type = Vec<String>, example = json!(["mon", "tue", "wed", "thu", "fri"]))]
        days: Vec<Weekday>,
        #[schema(value_type = String, example = "09:00:00")]
        from: NaiveTime,
        #[schema(value_type = String, example = "17:00:00")]
        to: NaiveTime,
    },
    /// The contact's attribute `key` equals `equals`.
    Attribute {
        key: String,
        #[schema(value_type = Object)]
        equals: serde_json::Value,
    },
}

/// What a rule does, in order; each action is one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// A text reply (inside the 24-hour window only, like any free-form message).
    ReplyText {
        text: String,
    },
    /// An approved template, with its variables.
    ReplyTemplate {
        template_id: TemplateId,
        #[serde(default)]
        variables: BTreeMap<String, String>,
    },
    /// To an agent and/or a team.
    Assign {
        #[serde(default)]
        agent_id: Option<AgentId>,
        #[serde(default)]
        team_id: Option<TeamId>,
    },
    AddLabel {
        label: String,
    },
    SetStatus {
        status: ConversationStatus,
    },
    /// Records the contact's opt-out.
    OptOut,
    /// Delivers the triggering event to one of the workspace's webhook endpoints (signed, retried,
    /// logged like any delivery).
    CallWebhook {
        endpoint_id: Uuid,
    },
}

/// A rule as created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleSpec {
    pub name: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub actions: Vec<RuleAction>,
    /// The most runs of this rule per conversation in any hour (by event time; 1–100, default 3).
    #[serde(default = "default_rate")]
    pub max_per_conversation_per_hour: u32,
}

fn default_rate() -> u32 {
    3
}

/// A built-in rule, filled in by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "preset", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preset {
    /// Replies `text` to the first inbound message of a contact (on a channel).
    Welcome { text: String },
    /// Replies `text` to inbound messages outside business hours (`days`, `from`–`to` in the
    /// workspace's time zone), once per conversation per hour.
    AwayMessage {
        text: String,
        #[schema(value_type = Vec<String>, example = json!(["mon", "tue", "wed", "thu", "fri"]))]
        days: Vec<Weekday>,
        #[schema(value_type = String, example = "09:00:00")]
        from: NaiveTime,
        #[schema(value_type = String, example = "17:00:00")]
        to: NaiveTime,
    },
}

impl Preset {
    /// The rule this preset stands for.
    pub fn spec(self) -> RuleSpec {
        match self {
            Self::Welcome { text } => RuleSpec {
                name: "Welcome message".into(),
                trigger: Trigger::FirstInbound,
                conditions: vec![],
                actions: vec![RuleAction::ReplyText { text }],
                max_per_conversation_per_hour: 1,
            },
            Self::AwayMessage { text, days, from, to } => RuleSpec {
                name: "Away message".into(),
                trigger: Trigger::InboundMessage,
                conditions: vec![Condition::BusinessHours { inside: false, days, from, to }],
                actions: vec![RuleAction::ReplyText { text }],
                max_per_conversation_per_hour: 1,
            },
        }
    }
}

/// What is known of one event when rules are matched.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The triggers this event is (an inbound that starts its conversation is three).
    pub triggers: Vec<Trigger>,
    pub text: Option<&'a str>,
    pub channel_id: Option<ChannelId>,
    pub labels: &'a [String],
    pub attributes: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The event's day and time in the workspace's time zone.
    pub local: Option<(Weekday, NaiveTime)>,
}

/// A pattern compiled within the size bound.
pub fn compile(pattern: &str) -> Result<regex::Regex, DomainError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_COMPILED_BYTES)
        .build()
        .map_err(|e| DomainError::invalid("conditions.pattern", format!("not a usable regular expression: {e}")))
}

fn has_word(text: &str, word: &str) -> bool {
    let word = word.to_lowercase();
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| w == word)
}

impl Condition {
    fn holds(&self, f: &Facts<'_>) -> bool {
        match self {
            Self::Keyword { any } => f.text.is_some_and(|t| any.iter().any(|w| has_word(t, w))),
            Self::Regex { pattern } => f.text.is_some_and(|t| compile(pattern).is_ok_and(|r| r.is_match(t))),
            Self::Channel { channel_id } => f.channel_id == Some(*channel_id),
            Self::Label { label } => f.labels.iter().any(|l| l == label),
            Self::BusinessHours { inside, days, from, to } => f.local.is_some_and(|(day, t)| {
                let within_time = if from <= to { *from <= t && t < *to } else { t >= *from || t < *to };
                (days.contains(&day) && within_time) == *inside
            }),
            Self::Attribute { key, equals } => f.attributes.and_then(|a| a.get(key)) == Some(equals),
        }
    }

    fn validated(self) -> Result<Self, DomainError> {
        Ok(match self {
            Self::Keyword { any } => {
                if any.is_empty() || any.len() > MAX_PARTS {
                    return Err(DomainError::invalid("conditions.any", format!("give 1 to {MAX_PARTS} keywords")));
                }
                let any = any.iter().map(|w| bounded_text("conditions.any", w, 100)).collect::<Result<_, _>>()?;
                Self::Keyword { any }
            }
            Self::Regex { pattern } => {
                let pattern = bounded_text("conditions.pattern", &pattern, MAX_PATTERN_CHARS)?;
                compile(&pattern)?;
                Self::Regex { pattern }
            }
            // Labels are stored lowercase.
            Self::Label { label } => {
                Self::Label { label: bounded_text("conditions.label", &label, 100)?.to_lowercase() }
            }
            Self::BusinessHours { inside, mut days, from, to } => {
                if days.is_empty() || from == to {
                    return Err(DomainError::invalid("conditions", "business hours need days and from ≠ to"));
                }
                days.sort_by_key(Weekday::num_days_from_monday);
                days.dedup();
                Self::BusinessHours { inside, days, from, to }
            }
            Self::Attribute { key, equals } => {
                crate::values::storable_json("conditions.equals", &equals)?;
                Self::Attribute { key: bounded_text("conditions.key", &key, 100)?, equals }
            }
            c @ Self::Channel { .. } => c,
        })
    }
}

impl RuleAction {
    fn validated(self) -> Result<Self, DomainError> {
        Ok(match self {
            Self::ReplyText { text } => Self::ReplyText { text: bounded_text("actions.text", &text, 4096)? },
            Self::ReplyTemplate { template_id, variables } => {
                for (k, v) in &variables {
                    storable("actions.variables", k)?;
                    storable("actions.variables", v)?;
                }
                Self::ReplyTemplate { template_id, variables }
            }
            Self::Assign { agent_id: None, team_id: None } => {
                return Err(DomainError::invalid("actions", "assign needs agent_id and/or team_id"));
            }
            Self::AddLabel { label } => Self::AddLabel { label: bounded_text("actions.label", &label, 100)? },
            a => a,
        })
    }
}

impl RuleSpec {
    /// The spec as stored: every part checked.
    pub fn validated(self) -> Result<Self, DomainError> {
        let name = bounded_text("name", &self.name, 200)?;
        if self.actions.is_empty() || self.actions.len() > MAX_PARTS || self.conditions.len() > MAX_PARTS {
            return Err(DomainError::invalid(
                "actions",
                format!("give 1 to {MAX_PARTS} actions, at most {MAX_PARTS} conditions"),
            ));
        }
        if self.max_per_conversation_per_hour == 0 || self.max_per_conversation_per_hour > 100 {
            return Err(DomainError::invalid("max_per_conversation_per_hour", "between 1 and 100"));
        }
        let conditions = self.conditions.into_iter().map(Condition::validated).collect::<Result<_, _>>()?;
        let actions = self.actions.into_iter().map(RuleAction::validated).collect::<Result<_, _>>()?;
        Ok(Self { name, conditions, actions, ..self })
    }

    /// Whether this event starts the rule and all its conditions hold.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        facts.triggers.contains(&self.trigger) && self.conditions.iter().all(|c| c.holds(facts))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AutomationRule {
    pub created: bool,
    pub deleted: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub enum RuleCommand {
    Create(RuleSpec),
    Enable,
    Disable,
    Delete,
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum RuleEvent {
        #[serde(rename = "automation_rule.created")]
        Created { spec: RuleSpec },
        #[serde(rename = "automation_rule.enabled")]
        Enabled,
        #[serde(rename = "automation_rule.disabled")]
        Disabled,
        #[serde(rename = "automation_rule.deleted")]
        Deleted,
    }
}

impl Aggregate for AutomationRule {
    const CATEGORY: &'static str = CATEGORY;
    type Command = RuleCommand;
    type Event = RuleEvent;

    fn decide(&self, command: RuleCommand) -> Result<Vec<RuleEvent>, DomainError> {
        match command {
            RuleCommand::Create(spec) if !self.created => Ok(vec![RuleEvent::Created { spec: spec.validated()? }]),
            RuleCommand::Create(_) => Err(DomainError::AlreadyExists("automation rule")),
            _ if !self.created || self.deleted => Err(DomainError::NotFound("automation rule")),
            RuleCommand::Enable => Ok(if self.enabled { vec![] } else { vec![RuleEvent::Enabled] }),
            RuleCommand::Disable => Ok(if self.enabled { vec![RuleEvent::Disabled] } else { vec![] }),
            RuleCommand::Delete => Ok(vec![RuleEvent::Deleted]),
        }
    }

    fn evolve(mut self, event: &RuleEvent) -> Self {
        match event {
            RuleEvent::Created { .. } => {
                self.created = true;
                self.enabled = true;
            }
            RuleEvent::Enabled => self.enabled = true,
            RuleEvent::Disabled => self.enabled = false,
            RuleEvent::Deleted => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> Result<RuleSpec, String> {
        serde_json::from_value::<RuleSpec>(v).map_err(|e| e.to_string())?.validated().map_err(|e| e.to_string())
    }

    fn rule(conditions: serde_json::Value) -> RuleSpec {
        spec(json!({"name": "r", "trigger": "inbound_message", "conditions": conditions,
                    "actions": [{"kind": "reply_text", "text": "hi"}], "max_per_conversation_per_hour": 3}))
        .unwrap()
    }

    fn inbound(text: &str) -> Facts<'_> {
        Facts { triggers: vec![Trigger::InboundMessage], text: Some(text), ..Facts::default() }
    }

    #[test]
    fn keywords_match_whole_words_in_any_case() {
        let r = rule(json!([{"kind": "keyword", "any": ["price", "Harga"]}]));
        assert!(r.matches(&inbound("What is the PRICE?")));
        assert!(r.matches(&inbound("berapa harga-nya")));
        assert!(!r.matches(&inbound("priceless")));
        assert!(!r.matches(&Facts { triggers: vec![Trigger::MessageFailed], ..inbound("price") }));
    }

    #[test]
    fn business_hours_hold_inside_or_outside_and_may_span_midnight() {
        let t = |h: u32, m: u32| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let outside =
            rule(json!([{"kind": "business_hours", "inside": false, "days": ["mon", "tue", "wed", "thu", "fri"],
                                    "from": "09:00:00", "to": "17:00:00"}]));
        let at = |day, time| Facts { local: Some((day, time)), ..inbound("x") };
        assert!(!outside.matches(&at(Weekday::Mon, t(9, 0))));
        assert!(outside.matches(&at(Weekday::Mon, t(17, 0))));
        assert!(outside.matches(&at(Weekday::Sat, t(12, 0))));
        let night = rule(
            json!([{"kind": "business_hours", "inside": true, "days": ["fri"], "from": "22:00:00", "to": "02:00:00"}]),
        );
        assert!(night.matches(&at(Weekday::Fri, t(23, 30))) && night.matches(&at(Weekday::Fri, t(1, 0))));
        assert!(!night.matches(&at(Weekday::Fri, t(12, 0))));
    }

    #[test]
    fn bad_rules_are_refused_with_the_field() {
        let base = json!({"name": "r", "trigger": "inbound_message", "actions": [{"kind": "opt_out"}], "max_per_conversation_per_hour": 1});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            spec(b)
        };
        assert!(with("conditions", json!([{"kind": "regex", "pattern": "(unclosed"}]))
            .unwrap_err()
            .contains("regular expression"));
        assert!(with("conditions", json!([{"kind": "regex", "pattern": "\\w{1000}{1000}"}])).is_err());
        assert!(with("actions", json!([])).is_err());
        assert!(with("actions", json!([{"kind": "assign"}])).is_err());
        assert!(with("max_per_conversation_per_hour", json!(0)).is_err());
        assert!(with("name", json!("a\u{0}b")).is_err());
        assert!(with("conditions", json!([{"kind": "keyword", "any": []}])).is_err());
        assert!(with("conditions", json!([{"kind": "regex", "pattern": "^(stop|berhenti)$"}])).is_ok());
    }
}
