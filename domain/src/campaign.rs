//! Campaign: one approved template sent through one channel to an audience (groups, all contacts or an
//! explicit list), with a per-recipient variable mapping, now or at a scheduled time.
//!
//! Lifecycle: draft → (scheduled) → launching → running → completed, with paused ⇄ running and
//! cancelled from any state that is not final. Launching freezes the audience: each eligible recipient
//! gets one queued message (its id derived from campaign and contact, so a launch interrupted by a crash
//! resumes without duplicates); the launch ends with the counts of queued and skipped recipients.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::{ChannelId, ContactId, GroupId, MessageId, TemplateId};
use crate::values::bounded_text;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Whom a campaign is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    AllContacts,
    Groups { group_ids: Vec<GroupId> },
    Contacts { contact_ids: Vec<ContactId> },
}

/// Where one template variable's value comes from for each recipient: a fixed value, or a contact
/// attribute, falling back to `default`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VariableMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl VariableMapping {
    /// The value for a recipient with `attributes`, if the mapping yields one.
    pub fn resolve(&self, attributes: &crate::values::Attributes) -> Option<String> {
        self.value
            .clone()
            .or_else(|| self.attribute.as_ref().and_then(|a| attributes.get(a)).and_then(crate::values::attribute_text))
            .or_else(|| self.default.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    #[default]
    Draft,
    Scheduled,
    Launching,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Launching => "launching",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

/// Recipients left out at launch, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    pub opted_out: u64,
    pub duplicate: u64,
    /// Deleted or unknown contacts named by the audience.
    pub unknown: u64,
    /// A variable the mapping, the contact and the template defaults could not fill.
    pub missing_variable: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.opted_out + self.duplicate + self.unknown + self.missing_variable
    }
}

/// A finished campaign's messages by final status (a message `sent` may still be delivered and read
/// later: these are the figures when the campaign completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FinalCounts {
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    /// Attempts whose outcome never came back (the crash policy).
    pub unknown: u64,
}

impl FinalCounts {
    pub fn total(&self) -> u64 {
        self.sent + self.delivered + self.read + self.failed + self.unknown
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Campaign {
    pub created: bool,
    pub status: CampaignStatus,
    pub name: String,
    pub channel_id: Option<ChannelId>,
    pub template_id: Option<TemplateId>,
    pub audience: Option<Audience>,
    pub variables: BTreeMap<String, VariableMapping>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub queued: u64,
    pub skipped: Skipped,
    /// A launch started (`campaign.launch_started`) and its fan-out has not recorded its counts yet.
    pub fan_out_pending: bool,
    /// The fan-out recorded its counts (`campaign.launched`).
    pub launched: bool,
}

const NAMESPACE: Uuid = Uuid::from_u128(0x5c3a_8e21_44d0_4b7e_9a61_0f2d_7c84_b913);

impl Campaign {
    /// The message a campaign sends to a contact: the same id on every launch attempt.
    pub fn message_id(campaign: Uuid, contact: ContactId) -> MessageId {
        let mut name = campaign.as_bytes().to_vec();
        name.extend_from_slice(contact.as_uuid().as_bytes());
        MessageId::from_uuid(Uuid::new_v5(&NAMESPACE, &name))
    }
}

#[derive(Debug, Clone)]
pub enum CampaignCommand {
    Create {
        name: String,
        channel_id: ChannelId,
        template_id: TemplateId,
        audience: Audience,
        variables: BTreeMap<String, VariableMapping>,
        schedule_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    Schedule {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    StartLaunch {
        at: DateTime<Utc>,
    },
    FinishLaunch {
        queued: u64,
        skipped: Skipped,
        at: DateTime<Utc>,
    },
    Pause {
        reason: String,
        at: DateTime<Utc>,
    },
    Resume {
        at: DateTime<Utc>,
    },
    Cancel {
        at: DateTime<Utc>,
    },
    /// Every message is final (sent, delivered, read, failed or unknown), with these counts.
    Complete {
        counts: FinalCounts,
        at: DateTime<Utc>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum CampaignEvent {
        #[serde(rename = "campaign.created")]
        Created {
            name: String,
            channel_id: ChannelId,
            template_id: TemplateId,
            audience: Audience,
            variables: BTreeMap<String, VariableMapping>,
        },
        #[serde(rename = "campaign.scheduled")]
        Scheduled { at: DateTime<Utc> },
        #[serde(rename = "campaign.launch_started")]
        LaunchStarted { at: DateTime<Utc> },
        #[serde(rename = "campaign.launched")]
        Launched { queued: u64, skipped: Skipped, at: DateTime<Utc> },
        #[serde(rename = "campaign.paused")]
        Paused { reason: String, at: DateTime<Utc> },
        #[serde(rename = "campaign.resumed")]
        Resumed { at: DateTime<Utc> },
        #[serde(rename = "campaign.cancelled")]
        Cancelled { at: DateTime<Utc> },
        #[serde(rename = "campaign.completed")]
        Completed {
            #[serde(default)]
            counts: FinalCounts,
            #[serde(default)]
            skipped: Skipped,
            at: DateTime<Utc>,
        },
    }
}

fn invalid_state(what: &str, status: CampaignStatus) -> DomainError {
    DomainError::InvalidState(format!("cannot {what} a {} campaign", status.as_str()))
}

impl Aggregate for Campaign {
    const CATEGORY: &'static str = "campaign";
    type Command = CampaignCommand;
    type Event = CampaignEvent;

    fn decide(&self, command: CampaignCommand) -> Result<Vec<CampaignEvent>, DomainError> {
        use CampaignCommand as C;
        use CampaignStatus as S;
        if !self.created && !matches!(command, C::Create { .. }) {
            return Err(DomainError::NotFound("campaign"));
        }
        match command {
            C::Create { name, channel_id, template_id, audience, variables, schedule_at, now } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("campaign"));
                }
                let name = bounded_text("name", &name, 200)?;
                match &audience {
                    Audience::Groups { group_ids } if group_ids.is_empty() => {
                        return Err(DomainError::invalid("audience.group_ids", "at least one group"))
                    }
                    Audience::Contacts { contact_ids } if contact_ids.is_empty() => {
                        return Err(DomainError::EmptyAudience)
                    }
                    _ => {}
                }
                let mut events = vec![CampaignEvent::Created { name, channel_id, template_id, audience, variables }];
                if let Some(at) = schedule_at {
                    if at <= now {
                        return Err(DomainError::invalid("schedule_at", "must be in the future"));
                    }
                    events.push(CampaignEvent::Scheduled { at });
                }
                Ok(events)
            }
            C::Schedule { at, now } => match self.status {
                S::Draft | S::Scheduled if at > now => Ok(vec![CampaignEvent::Scheduled { at }]),
                S::Draft | S::Scheduled => Err(DomainError::invalid("schedule_at", "must be in the future")),
                s => Err(invalid_state("schedule", s)),
            },
            C::StartLaunch { at } => match self.status {
                S::Draft | S::Scheduled => Ok(vec![CampaignEvent::LaunchStarted { at }]),
                // A launch interrupted by a crash resumes.
                S::Launching => Ok(vec![]),
                s => Err(invalid_state("launch", s)),
            },
            // Also when paused or cancelled while launching: the counts belong on record.
            C::FinishLaunch { queued, skipped, at } => {
                Ok(if self.fan_out_pending { vec![CampaignEvent::Launched { queued, skipped, at }] } else { vec![] })
            }
            C::Pause { reason, at } => match self.status {
                S::Launching | S::Running | S::Scheduled => {
                    Ok(vec![CampaignEvent::Paused { reason: bounded_text("reason", &reason, 500)?, at }])
                }
                S::Paused => Ok(vec![]),
                s => Err(invalid_state("pause", s)),
            },
            C::Resume { at } => match self.status {
                S::Paused => Ok(vec![CampaignEvent::Resumed { at }]),
                S::Running => Ok(vec![]),
                s => Err(invalid_state("resume", s)),
            },
            C::Cancel { at } => match self.status {
                S::Cancelled => Ok(vec![]),
                s if s.is_final() => Err(invalid_state("cancel", s)),
                _ => Ok(vec![CampaignEvent::Cancelled { at }]),
            },
            C::Complete { counts, at } => match self.status {
                S::Running => Ok(vec![CampaignEvent::Completed { counts, skipped: self.skipped, at }]),
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(mut self, event: &CampaignEvent) -> Self {
        match event {
            CampaignEvent::Created { name, channel_id, template_id, audience, variables } => {
                self.created = true;
                self.name = name.clone();
                self.channel_id = Some(*channel_id);
                self.template_id = Some(*template_id);
                self.audience = Some(audience.clone());
                self.variables = variables.clone();
            }
            CampaignEvent::Scheduled { at } => {
                self.status = CampaignStatus::Scheduled;
                self.scheduled_at = Some(*at);
            }
            CampaignEvent::LaunchStarted { .. } => {
                self.status = CampaignStatus::Launching;
                self.fan_out_pending = true;
            }
            CampaignEvent::Launched { queued, skipped, .. } => {
                self.fan_out_pending = false;
                self.launched = true;
                self.queued = *queued;
                self.skipped = *skipped;
                if self.status == CampaignStatus::Launching {
                    self.status = CampaignStatus::Running;
                }
            }
            CampaignEvent::Paused { .. } => self.status = CampaignStatus::Paused,
            // Back to where the pause found it: a campaign paused before its launch is scheduled (or a
            // draft) again, not running with nothing queued.
            CampaignEvent::Resumed { .. } => {
                self.status = match (self.fan_out_pending, self.launched, self.scheduled_at) {
                    (true, _, _) => CampaignStatus::Launching,
                    (false, true, _) => CampaignStatus::Running,
                    (false, false, Some(_)) => CampaignStatus::Scheduled,
                    (false, false, None) => CampaignStatus::Draft,
                }
            }
            CampaignEvent::Cancelled { .. } => self.status = CampaignStatus::Cancelled,
            CampaignEvent::Completed { .. } => self.status = CampaignStatus::Completed,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_857_384 + s, 0).unwrap()
    }

    fn create(audience: Audience, schedule_at: Option<DateTime<Utc>>) -> Result<Vec<CampaignEvent>, DomainError> {
        Campaign::default().decide(CampaignCommand::Create {
            name: "Promo Oktober".into(),
            channel_id: ChannelId::from_uuid(Uuid::from_u128(1)),
            template_id: TemplateId::from_uuid(Uuid::from_u128(2)),
            audience,
            variables: BTreeMap::new(),
            schedule_at,
            now: at(0),
        })
    }

    #[test]
    fn an_empty_explicit_audience_or_a_past_schedule_is_refused() {
        assert_eq!(create(Audience::Contacts { contact_ids: vec![] }, None).unwrap_err(), DomainError::EmptyAudience);
        assert!(create(Audience::AllContacts, Some(at(-1))).is_err());
        assert_eq!(create(Audience::AllContacts, Some(at(60))).unwrap().len(), 2);
    }

    #[test]
    fn launch_pause_resume_cancel_follow_the_lifecycle() {
        let mut c = Campaign::replay(&create(Audience::AllContacts, None).unwrap());
        let step = |c: &Campaign, cmd| c.decide(cmd).unwrap().iter().fold(c.clone(), Campaign::evolve);
        c = step(&c, CampaignCommand::StartLaunch { at: at(1) });
        assert_eq!(c.status, CampaignStatus::Launching);
        assert!(c.decide(CampaignCommand::StartLaunch { at: at(2) }).unwrap().is_empty(), "a launch resumes");
        c = step(
            &c,
            CampaignCommand::FinishLaunch {
                queued: 3,
                skipped: Skipped { opted_out: 1, ..Skipped::default() },
                at: at(2),
            },
        );
        assert_eq!((c.status, c.queued, c.skipped.total()), (CampaignStatus::Running, 3, 1));
        c = step(&c, CampaignCommand::Pause { reason: "template paused".into(), at: at(3) });
        assert_eq!(c.status, CampaignStatus::Paused);
        assert!(c.decide(CampaignCommand::Schedule { at: at(100), now: at(4) }).is_err());
        c = step(&c, CampaignCommand::Resume { at: at(4) });
        assert_eq!(c.status, CampaignStatus::Running);
        c = step(&c, CampaignCommand::Cancel { at: at(5) });
        assert_eq!(c.status, CampaignStatus::Cancelled);
        assert!(c.decide(CampaignCommand::Resume { at: at(6) }).is_err());
        assert!(c.decide(CampaignCommand::Cancel { at: at(6) }).unwrap().is_empty());
    }

    #[test]
    fn a_running_campaign_completes_once_with_its_final_counts() {
        let step = |c: &Campaign, cmd| c.decide(cmd).unwrap().iter().fold(c.clone(), Campaign::evolve);
        // Given a campaign launched to 3 recipients (1 skipped) and paused,
        let mut c = Campaign::replay(&create(Audience::AllContacts, None).unwrap());
        c = step(&c, CampaignCommand::StartLaunch { at: at(1) });
        let skipped = Skipped { duplicate: 1, ..Skipped::default() };
        c = step(&c, CampaignCommand::FinishLaunch { queued: 3, skipped, at: at(2) });
        c = step(&c, CampaignCommand::Pause { reason: "check".into(), at: at(3) });
        let counts = FinalCounts { sent: 1, delivered: 1, failed: 1, ..FinalCounts::default() };
        // when all its messages are final: a paused campaign does not complete,
        assert!(c.decide(CampaignCommand::Complete { counts, at: at(4) }).unwrap().is_empty());
        // a running one does, with the counts and what the launch skipped,
        c = step(&c, CampaignCommand::Resume { at: at(5) });
        assert_eq!(
            c.decide(CampaignCommand::Complete { counts, at: at(6) }).unwrap(),
            vec![CampaignEvent::Completed { counts, skipped, at: at(6) }]
        );
        c = step(&c, CampaignCommand::Complete { counts, at: at(6) });
        assert_eq!(c.status, CampaignStatus::Completed);
        // and only once; a completed campaign cannot be paused or cancelled.
        assert!(c.decide(CampaignCommand::Complete { counts, at: at(7) }).unwrap().is_empty());
        assert!(c.decide(CampaignCommand::Pause { reason: "late".into(), at: at(7) }).is_err());
        assert!(c.decide(CampaignCommand::Cancel { at: at(7) }).is_err());
    }

    #[test]
    fn a_campaign_paused_before_its_launch_resumes_as_scheduled_not_running() {
        let step = |c: &Campaign, cmd| c.decide(cmd).unwrap().iter().fold(c.clone(), Campaign::evolve);
        let mut c = Campaign::replay(&create(Audience::AllContacts, Some(at(60))).unwrap());
        assert_eq!(c.status, CampaignStatus::Scheduled);
        c = step(&c, CampaignCommand::Pause { reason: "hold".into(), at: at(1) });
        c = step(&c, CampaignCommand::Resume { at: at(2) });
        assert_eq!(c.status, CampaignStatus::Scheduled);
        // Paused while launching: back to launching until the fan-out records its counts.
        c = step(&c, CampaignCommand::StartLaunch { at: at(60) });
        c = step(&c, CampaignCommand::Pause { reason: "hold".into(), at: at(61) });
        c = step(&c, CampaignCommand::Resume { at: at(62) });
        assert_eq!(c.status, CampaignStatus::Launching);
        assert!(c.decide(CampaignCommand::Complete { counts: FinalCounts::default(), at: at(63) }).unwrap().is_empty());
    }

    #[test]
    fn message_ids_are_stable_per_campaign_and_contact() {
        let (c, k) = (Uuid::from_u128(9), ContactId::from_uuid(Uuid::from_u128(1)));
        assert_eq!(Campaign::message_id(c, k), Campaign::message_id(c, k));
        assert_ne!(Campaign::message_id(c, k), Campaign::message_id(Uuid::from_u128(8), k));
    }

    #[test]
    fn a_mapping_takes_the_value_then_the_attribute_then_the_default() {
        let attrs: crate::values::Attributes = [("city".to_string(), serde_json::json!("Bandung"))].into();
        let m = VariableMapping { attribute: Some("city".into()), default: Some("kotamu".into()), value: None };
        assert_eq!(m.resolve(&attrs).as_deref(), Some("Bandung"));
        assert_eq!(m.resolve(&Default::default()).as_deref(), Some("kotamu"));
        let fixed = VariableMapping { value: Some("50%".into()), ..m };
        assert_eq!(fixed.resolve(&attrs).as_deref(), Some("50%"));
    }
}
