//! Conversation: one per channel and contact. Holds the 24-hour customer service window, opened or
//! renewed by every inbound message, the assignment to an agent and/or a team, the inbox status: open,
//! pending (waiting for the customer or a bot), snoozed until a time, or resolved, its labels, priority
//! and private notes. An inbound message reopens a resolved or snoozed conversation; a snooze whose
//! time has come reopens it too ([`ConversationCommand::Wake`]).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::{AgentId, ChannelId, ContactId, MessageId, NoteId, TeamId};
use crate::values::bounded_text;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long after the contact's last inbound message free-form messages may be sent.
pub const SERVICE_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Conversation {
    pub started: bool,
    pub channel_id: Option<ChannelId>,
    pub contact_id: Option<ContactId>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub agent_id: Option<AgentId>,
    pub team_id: Option<TeamId>,
    /// Whether it was ever assigned (routing to a channel's team happens once, not after an unassign).
    pub routed: bool,
    pub priority: Priority,
    pub status: ConversationStatus,
    /// While snoozed: when it reopens.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Inbound messages since someone last marked the conversation read.
    pub unread_inbound: u32,
    /// Labels, lowercase, sorted.
    pub labels: crate::label::Labels,
}

/// Where a conversation stands in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    #[default]
    Open,
    /// Waiting for the customer or a bot.
    Pending,
    Snoozed,
    Resolved,
}

impl ConversationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "open" => Ok(Self::Open),
            "pending" => Ok(Self::Pending),
            "snoozed" => Ok(Self::Snoozed),
            "resolved" => Ok(Self::Resolved),
            other => Err(DomainError::invalid(
                "status",
                format!("unknown status {other:?}; expected open, pending, snoozed or resolved"),
            )),
        }
    }
}

/// How urgent a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    None,
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "none" => Ok(Self::None),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "urgent" => Ok(Self::Urgent),
            other => Err(DomainError::invalid(
                "priority",
                format!("unknown priority {other:?}; expected none, low, medium, high or urgent"),
            )),
        }
    }
}

/// The longest private note.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// Why an assignment changed: a person's command, automatic assignment inside a team, or the
/// agent's deactivation (which hands the conversation back to its team).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignReason {
    Manual,
    Auto,
    AgentDeactivated,
}

/// The longest a conversation may be snoozed for.
pub const MAX_SNOOZE: Duration = Duration::days(366);

/// When the service window opened by an inbound message at `at` closes. Saturates instead of
/// overflowing: `at` comes from the provider.
pub fn window_end(at: DateTime<Utc>) -> DateTime<Utc> {
    at.checked_add_signed(SERVICE_WINDOW).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Conversation {
    /// When the service window closes (or closed); `None` if the contact never wrote.
    pub fn window_expires_at(&self) -> Option<DateTime<Utc>> {
        self.last_inbound_at.map(window_end)
    }

    /// Whether free-form messages may be sent at `now`.
    pub fn window_open(&self, now: DateTime<Utc>) -> bool {
        self.window_expires_at().is_some_and(|exp| now < exp)
    }
}

/// An inbound message as the provider delivered it. Every type is kept: `raw` is the provider's message
/// object verbatim (so unknown types are stored, not dropped); `text` is the readable part, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Our id of the message, derived from the channel and the provider's id (stable across retries).
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub contact_id: ContactId,
    /// The provider's type: text, image, interactive, button, reaction, … or one we do not know.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The provider id of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    pub raw: serde_json::Value,
}

#[derive(Debug, Clone)]
pub enum ConversationCommand {
    RecordInbound {
        channel_id: ChannelId,
        contact_id: ContactId,
        provider_message_id: String,
        message: Option<InboundMessage>,
        at: DateTime<Utc>,
    },
    /// Assigns to an agent and/or a team; `None` leaves that side as it is, `Some(None)` clears it.
    /// The caller has checked that agent and team exist.
    Assign {
        agent: Option<Option<AgentId>>,
        team: Option<Option<TeamId>>,
    },
    /// Automatic assignment: gives the conversation to `team` (and `agent`, when one was free), but
    /// only while no agent holds it and no other team does; otherwise nothing happens.
    AutoAssign {
        team: TeamId,
        agent: Option<AgentId>,
    },
    /// `agent` was deactivated: if the conversation is still theirs, it goes back to its team
    /// (nothing happens when someone reassigned it meanwhile).
    Release {
        agent: AgentId,
    },
    SetPriority {
        priority: Priority,
    },
    /// A private note: kept in the log and the inbox, never sent to WhatsApp.
    AddNote {
        note_id: NoteId,
        text: String,
        now: DateTime<Utc>,
    },
    /// Open, pending or resolved (`until: None`), or snoozed until `until`.
    SetStatus {
        status: ConversationStatus,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    /// A snooze whose time has come (`now` at or past `snoozed_until`) reopens the conversation.
    Wake {
        now: DateTime<Utc>,
    },
    /// Adds and removes labels (a label in both is removed).
    Label {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Someone read the conversation (nothing happens when no inbound message came since).
    MarkRead {
        now: DateTime<Utc>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ConversationEvent {
        #[serde(rename = "conversation.started")]
        Started { channel_id: ChannelId, contact_id: ContactId },
        #[serde(rename = "conversation.inbound_received")]
        InboundReceived {
            provider_message_id: String,
            at: DateTime<Utc>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            message: Option<InboundMessage>,
        },
        /// The assignment after the change (schema v2; v1 carried a free-text `assignee`).
        #[serde(rename = "conversation.assigned")]
        Assigned { agent_id: Option<AgentId>, team_id: Option<TeamId>, reason: AssignReason },
        #[serde(rename = "conversation.priority_changed")]
        PriorityChanged { priority: Priority },
        /// The author is the event's actor (and agent, when the key is bound to one).
        #[serde(rename = "conversation.note_added")]
        NoteAdded { note_id: NoteId, text: String, at: DateTime<Utc> },
        #[serde(rename = "conversation.labels_changed")]
        LabelsChanged { added: Vec<String>, removed: Vec<String> },
        /// Read by the event's actor (and agent): unread counts start again from zero.
        #[serde(rename = "conversation.read")]
        Read { at: DateTime<Utc> },
        /// `reason`: `agent` (a command), `inbound` (the customer wrote), `snooze_ended`.
        #[serde(rename = "conversation.status_changed")]
        StatusChanged {
            status: ConversationStatus,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            snoozed_until: Option<DateTime<Utc>>,
            reason: String,
            at: DateTime<Utc>,
        },
    }
}

fn status_changed(
    status: ConversationStatus,
    until: Option<DateTime<Utc>>,
    reason: &str,
    at: DateTime<Utc>,
) -> ConversationEvent {
    ConversationEvent::StatusChanged { status, snoozed_until: until, reason: reason.into(), at }
}

impl Aggregate for Conversation {
    const CATEGORY: &'static str = "conversation";
    type Command = ConversationCommand;
    type Event = ConversationEvent;

    fn decide(&self, command: ConversationCommand) -> Result<Vec<ConversationEvent>, DomainError> {
        match command {
            ConversationCommand::RecordInbound { channel_id, contact_id, provider_message_id, message, at } => {
                let mut events = vec![];
                if !self.started {
                    events.push(ConversationEvent::Started { channel_id, contact_id });
                }
                events.push(ConversationEvent::InboundReceived {
                    provider_message_id: bounded_text("provider_message_id", &provider_message_id, 256)?,
                    at,
                    message,
                });
                // The customer wrote: a resolved or snoozed conversation needs someone again.
                if matches!(self.status, ConversationStatus::Resolved | ConversationStatus::Snoozed) {
                    events.push(status_changed(ConversationStatus::Open, None, "inbound", at));
                }
                Ok(events)
            }
            ConversationCommand::SetStatus { status, until, now } => {
                if !self.started {
                    return Err(DomainError::NotFound("conversation"));
                }
                let until = match (status, until) {
                    (ConversationStatus::Snoozed, Some(u)) if u > now && u - now <= MAX_SNOOZE => Some(u),
                    (ConversationStatus::Snoozed, Some(_)) => {
                        return Err(DomainError::invalid(
                            "snoozed_until",
                            "must be in the future, at most a year ahead",
                        ))
                    }
                    (ConversationStatus::Snoozed, None) => {
                        return Err(DomainError::invalid("snoozed_until", "a snooze needs a time to end"))
                    }
                    (_, Some(_)) => return Err(DomainError::invalid("snoozed_until", "only a snooze has an end")),
                    (_, None) => None,
                };
                Ok(if status == self.status && until == self.snoozed_until {
                    vec![]
                } else {
                    vec![status_changed(status, until, "agent", now)]
                })
            }
            ConversationCommand::Label { add, remove } => {
                if !self.started {
                    return Err(DomainError::NotFound("conversation"));
                }
                let (added, removed) = crate::label::change(&self.labels, &add, &remove, "conversation")?;
                Ok(if added.is_empty() && removed.is_empty() {
                    vec![]
                } else {
                    vec![ConversationEvent::LabelsChanged { added, removed }]
                })
            }
            ConversationCommand::Wake { now } => Ok(match (self.status, self.snoozed_until) {
                (ConversationStatus::Snoozed, Some(u)) if u <= now => {
                    vec![status_changed(ConversationStatus::Open, None, "snooze_ended", now)]
                }
                _ => vec![],
            }),
            _ if !self.started => Err(DomainError::NotFound("conversation")),
            ConversationCommand::Assign { agent, team } => {
                let (agent_id, team_id) = (agent.unwrap_or(self.agent_id), team.unwrap_or(self.team_id));
                Ok(if (agent_id, team_id) == (self.agent_id, self.team_id) {
                    vec![]
                } else {
                    vec![ConversationEvent::Assigned { agent_id, team_id, reason: AssignReason::Manual }]
                })
            }
            ConversationCommand::AutoAssign { team, agent } => {
                let taken = self.agent_id.is_some() || self.team_id.is_some_and(|t| t != team);
                Ok(if taken || (agent.is_none() && self.team_id == Some(team)) {
                    vec![]
                } else {
                    vec![ConversationEvent::Assigned {
                        agent_id: agent,
                        team_id: Some(team),
                        reason: AssignReason::Auto,
                    }]
                })
            }
            ConversationCommand::MarkRead { now } => {
                Ok(if self.unread_inbound == 0 { vec![] } else { vec![ConversationEvent::Read { at: now }] })
            }
            ConversationCommand::Release { agent } => Ok(if self.agent_id == Some(agent) {
                vec![ConversationEvent::Assigned {
                    agent_id: None,
                    team_id: self.team_id,
                    reason: AssignReason::AgentDeactivated,
                }]
            } else {
                vec![]
            }),
            ConversationCommand::SetPriority { priority } => Ok(if priority == self.priority {
                vec![]
            } else {
                vec![ConversationEvent::PriorityChanged { priority }]
            }),
            ConversationCommand::AddNote { note_id, text, now } => Ok(vec![ConversationEvent::NoteAdded {
                note_id,
                text: bounded_text("text", &text, MAX_NOTE_CHARS)?,
                at: now,
            }]),
        }
    }

    fn evolve(mut self, event: &ConversationEvent) -> Self {
        match event {
            ConversationEvent::Started { channel_id, contact_id } => {
                self.started = true;
                self.channel_id = Some(*channel_id);
                self.contact_id = Some(*contact_id);
            }
            // Webhooks arrive out of order: the window follows the latest inbound message seen.
            ConversationEvent::InboundReceived { at, .. } => {
                self.last_inbound_at = Some(self.last_inbound_at.map_or(*at, |t| t.max(*at)));
                self.unread_inbound = self.unread_inbound.saturating_add(1);
            }
            ConversationEvent::Read { .. } => self.unread_inbound = 0,
            ConversationEvent::Assigned { agent_id, team_id, .. } => {
                self.agent_id = *agent_id;
                self.team_id = *team_id;
                self.routed = true;
            }
            ConversationEvent::PriorityChanged { priority } => self.priority = *priority,
            ConversationEvent::NoteAdded { .. } => {}
            ConversationEvent::StatusChanged { status, snoozed_until, .. } => {
                self.status = *status;
                self.snoozed_until = *snoozed_until;
            }
            ConversationEvent::LabelsChanged { added, removed } => {
                crate::label::apply(&mut self.labels, added, removed)
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_857_384, 0).unwrap() + Duration::hours(hours)
    }

    fn inbound(c: &Conversation, h: i64) -> Vec<ConversationEvent> {
        c.decide(ConversationCommand::RecordInbound {
            channel_id: ChannelId::from_uuid(Uuid::from_u128(1)),
            contact_id: ContactId::from_uuid(Uuid::from_u128(2)),
            provider_message_id: format!("wamid.{h}"),
            message: None,
            at: at(h),
        })
        .unwrap()
    }

    #[test]
    fn the_window_end_saturates_at_the_end_of_time() {
        assert_eq!(window_end(DateTime::<Utc>::MAX_UTC), DateTime::<Utc>::MAX_UTC);
        assert_eq!(window_end(at(0)), at(24));
    }

    #[test]
    fn first_inbound_starts_the_conversation_and_opens_the_window_for_24_hours() {
        let c = Conversation::default();
        assert!(!c.window_open(at(0)));
        let events = inbound(&c, 0);
        assert_eq!(events.len(), 2);
        let c = Conversation::replay(&events);
        assert!(c.window_open(at(23)));
        assert!(!c.window_open(at(24)));
    }

    #[test]
    fn a_later_inbound_renews_the_window_and_an_older_late_one_does_not_shrink_it() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 10));
        let c = inbound(&c, 2).iter().fold(c, Conversation::evolve);
        assert_eq!(c.window_expires_at(), Some(at(34)));
        let c = inbound(&c, 20).iter().fold(c, Conversation::evolve);
        assert!(c.window_open(at(43)));
    }

    fn set(
        c: &Conversation,
        status: ConversationStatus,
        until: Option<i64>,
        now: i64,
    ) -> Result<Vec<ConversationEvent>, DomainError> {
        c.decide(ConversationCommand::SetStatus { status, until: until.map(at), now: at(now) })
    }

    #[test]
    fn an_inbound_message_reopens_a_resolved_or_snoozed_conversation_but_not_a_pending_one() {
        use ConversationStatus::*;
        // Given a resolved conversation,
        let started = Conversation::replay(&inbound(&Conversation::default(), 0));
        let resolved = set(&started, Resolved, None, 1).unwrap().iter().fold(started.clone(), Conversation::evolve);
        assert_eq!(resolved.status, Resolved);
        // when the customer writes, it is open again (reason: inbound).
        let events = inbound(&resolved, 2);
        assert!(
            matches!(&events[..], [ConversationEvent::InboundReceived { .. }, ConversationEvent::StatusChanged { status: Open, reason, .. }] if reason == "inbound")
        );
        // Snoozed: the same.
        let snoozed = set(&started, Snoozed, Some(48), 1).unwrap().iter().fold(started.clone(), Conversation::evolve);
        assert_eq!((snoozed.status, snoozed.snoozed_until), (Snoozed, Some(at(48))));
        let woken = inbound(&snoozed, 3).iter().fold(snoozed.clone(), Conversation::evolve);
        assert_eq!((woken.status, woken.snoozed_until), (Open, None));
        // Pending (waiting for the customer or a bot) stays pending; open stays open.
        let pending = set(&started, Pending, None, 1).unwrap().iter().fold(started.clone(), Conversation::evolve);
        assert_eq!(inbound(&pending, 2).len(), 1);
        assert_eq!(inbound(&started, 2).len(), 1);
    }

    #[test]
    fn a_snooze_needs_a_future_end_within_a_year_and_wakes_when_it_comes() {
        use ConversationStatus::*;
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        assert!(set(&c, Snoozed, None, 1).is_err());
        assert!(set(&c, Snoozed, Some(1), 1).is_err(), "not in the past or now");
        assert!(set(&c, Snoozed, Some(24 * 367), 1).is_err(), "at most a year");
        assert!(set(&c, Resolved, Some(5), 1).is_err(), "only a snooze has an end");
        let s = set(&c, Snoozed, Some(10), 1).unwrap().iter().fold(c.clone(), Conversation::evolve);
        assert!(s.decide(ConversationCommand::Wake { now: at(9) }).unwrap().is_empty(), "not yet");
        let woken = s.decide(ConversationCommand::Wake { now: at(10) }).unwrap();
        assert!(
            matches!(&woken[..], [ConversationEvent::StatusChanged { status: Open, reason, .. }] if reason == "snooze_ended")
        );
        // Unchanged status: no event; unknown conversation: not found; odd names refused.
        assert!(set(&c, Open, None, 2).unwrap().is_empty());
        assert!(set(&Conversation::default(), Resolved, None, 1).is_err());
        assert!(ConversationStatus::parse("closed").is_err());
        assert_eq!(ConversationStatus::parse("snoozed"), Ok(Snoozed));
    }

    #[test]
    fn labels_change_once_and_need_a_conversation() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        let label = |c: &Conversation, add: &[&str], remove: &[&str]| {
            c.decide(ConversationCommand::Label {
                add: add.iter().map(|s| s.to_string()).collect(),
                remove: remove.iter().map(|s| s.to_string()).collect(),
            })
        };
        let e = label(&c, &[" VIP ", "vip", "order:123"], &[]).unwrap();
        assert_eq!(
            e,
            vec![ConversationEvent::LabelsChanged { added: vec!["order:123".into(), "vip".into()], removed: vec![] }]
        );
        let c = e.iter().fold(c, Conversation::evolve);
        // Already there: nothing; removing one that is not there: nothing.
        assert!(label(&c, &["vip"], &["nope"]).unwrap().is_empty());
        let c = label(&c, &[], &["VIP"]).unwrap().iter().fold(c, Conversation::evolve);
        assert_eq!(c.labels.iter().collect::<Vec<_>>(), ["order:123"]);
        // Validation and the bound are the label module's (tested there).
        assert!(label(&c, &["<script>"], &[]).is_err());
        assert!(label(&Conversation::default(), &["vip"], &[]).is_err());
    }

    fn agent(n: u128) -> AgentId {
        AgentId::from_uuid(Uuid::from_u128(n))
    }

    fn team(n: u128) -> TeamId {
        TeamId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn assignment_changes_only_the_side_given_and_only_when_different() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        assert!(!c.routed);
        let assign = |c: &Conversation, agent, team| c.decide(ConversationCommand::Assign { agent, team }).unwrap();
        let e = assign(&c, Some(Some(agent(7))), None);
        assert_eq!(
            e,
            vec![ConversationEvent::Assigned { agent_id: Some(agent(7)), team_id: None, reason: AssignReason::Manual }]
        );
        let c = e.iter().fold(c, Conversation::evolve);
        assert!(c.routed);
        assert!(assign(&c, Some(Some(agent(7))), None).is_empty());
        // Setting the team keeps the agent; clearing the agent keeps the team.
        let c = assign(&c, None, Some(Some(team(1)))).iter().fold(c, Conversation::evolve);
        assert_eq!((c.agent_id, c.team_id), (Some(agent(7)), Some(team(1))));
        let c = assign(&c, Some(None), None).iter().fold(c, Conversation::evolve);
        assert_eq!((c.agent_id, c.team_id), (None, Some(team(1))));
        assert!(Conversation::default().decide(ConversationCommand::Assign { agent: None, team: None }).is_err());
    }

    #[test]
    fn reading_counts_only_when_something_came_in_since() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        let read = |c: &Conversation| c.decide(ConversationCommand::MarkRead { now: at(1) }).unwrap();
        assert_eq!(read(&c), vec![ConversationEvent::Read { at: at(1) }]);
        let c = read(&c).iter().fold(c, Conversation::evolve);
        assert!(read(&c).is_empty(), "already read");
        let c = inbound(&c, 2).iter().fold(c, Conversation::evolve);
        assert_eq!(c.unread_inbound, 1);
        assert!(!read(&c).is_empty());
        assert!(Conversation::default().decide(ConversationCommand::MarkRead { now: at(1) }).is_err());
    }

    #[test]
    fn a_deactivated_agents_conversation_goes_back_to_its_team_unless_reassigned() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        let assign = ConversationCommand::Assign { agent: Some(Some(agent(7))), team: Some(Some(team(1))) };
        let c = c.decide(assign).unwrap().iter().fold(c, Conversation::evolve);
        let e = c.decide(ConversationCommand::Release { agent: agent(7) }).unwrap();
        assert_eq!(
            e,
            vec![ConversationEvent::Assigned {
                agent_id: None,
                team_id: Some(team(1)),
                reason: AssignReason::AgentDeactivated
            }]
        );
        let released = e.iter().fold(c.clone(), Conversation::evolve);
        assert!(released.decide(ConversationCommand::Release { agent: agent(7) }).unwrap().is_empty(), "once");
        // Someone else holds it now: the late release changes nothing.
        assert!(c.decide(ConversationCommand::Release { agent: agent(8) }).unwrap().is_empty());
    }

    #[test]
    fn automatic_assignment_never_takes_a_conversation_from_an_agent_or_another_team() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        let auto =
            |c: &Conversation, t, a| c.decide(ConversationCommand::AutoAssign { team: team(t), agent: a }).unwrap();
        // Routed to the team with nobody free: the team takes it, no agent.
        let e = auto(&c, 1, None);
        assert_eq!(
            e,
            vec![ConversationEvent::Assigned { agent_id: None, team_id: Some(team(1)), reason: AssignReason::Auto }]
        );
        let c = e.iter().fold(c, Conversation::evolve);
        assert!(auto(&c, 1, None).is_empty(), "still nobody free: nothing new");
        assert!(auto(&c, 2, Some(agent(5))).is_empty(), "another team's");
        let c = auto(&c, 1, Some(agent(5))).iter().fold(c, Conversation::evolve);
        assert_eq!((c.agent_id, c.team_id), (Some(agent(5)), Some(team(1))));
        assert!(auto(&c, 1, Some(agent(6))).is_empty(), "an agent holds it");
    }

    #[test]
    fn priority_and_notes() {
        let c = Conversation::replay(&inbound(&Conversation::default(), 0));
        let e = c.decide(ConversationCommand::SetPriority { priority: Priority::parse("urgent").unwrap() }).unwrap();
        let c = e.iter().fold(c, Conversation::evolve);
        assert_eq!(c.priority, Priority::Urgent);
        assert!(c.decide(ConversationCommand::SetPriority { priority: Priority::Urgent }).unwrap().is_empty());
        assert!(Priority::parse("asap").is_err());
        let note = |text: &str| {
            c.decide(ConversationCommand::AddNote {
                note_id: NoteId::from_uuid(Uuid::from_u128(9)),
                text: text.into(),
                now: at(1),
            })
        };
        assert!(
            matches!(&note(" call back ").unwrap()[..], [ConversationEvent::NoteAdded { text, .. }] if text == "call back")
        );
        assert!(note("").is_err());
        assert!(note("a\u{0}b").is_err());
        assert!(note(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
    }
}
