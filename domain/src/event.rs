//! The union of all aggregates' events, with the stable name and schema version of each variant.
//!
//! Names come from an exhaustive `match` (never from `type_name` or `Debug`), so renaming a Rust variant
//! cannot silently change what is stored. The serialised payload carries the same name as its `type`
//! tag; the write side checks both agree.

use crate::agent::AgentEvent;
use crate::campaign::CampaignEvent;
use crate::canned::CannedEvent;
use crate::channel::ChannelEvent;
use crate::contact::ContactEvent;
use crate::conversation::ConversationEvent;
use crate::group::GroupEvent;
use crate::message::MessageEvent;
use crate::team::TeamEvent;
use crate::template::TemplateEvent;
use crate::workspace::WorkspaceEvent;

#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Workspace(WorkspaceEvent),
    Channel(ChannelEvent),
    Contact(ContactEvent),
    Group(GroupEvent),
    Template(TemplateEvent),
    Message(MessageEvent),
    Conversation(ConversationEvent),
    Campaign(CampaignEvent),
    Agent(AgentEvent),
    Team(TeamEvent),
    Canned(CannedEvent),
}

impl DomainEvent {
    /// Stable event type name, `<category>.<past_tense_verb>`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Workspace(e) => match e {
                WorkspaceEvent::Created { .. } => "workspace.created",
                WorkspaceEvent::ApiKeyIssued { .. } => "workspace.api_key_issued",
                WorkspaceEvent::ApiKeyRevoked { .. } => "workspace.api_key_revoked",
                WorkspaceEvent::SettingsUpdated { .. } => "workspace.settings_updated",
            },
            Self::Channel(e) => match e {
                ChannelEvent::Connected { .. } => "channel.connected",
                ChannelEvent::RateLimitChanged { .. } => "channel.rate_limit_changed",
                ChannelEvent::Halted { .. } => "channel.halted",
                ChannelEvent::Resumed => "channel.resumed",
                ChannelEvent::InboxTeamSet { .. } => "channel.inbox_team_set",
            },
            Self::Contact(e) => match e {
                ContactEvent::Created { .. } => "contact.created",
                ContactEvent::Renamed { .. } => "contact.renamed",
                ContactEvent::PhoneChanged { .. } => "contact.phone_changed",
                ContactEvent::AttributesChanged { .. } => "contact.attributes_changed",
                ContactEvent::OptedOut { .. } => "contact.opted_out",
                ContactEvent::OptedIn { .. } => "contact.opted_in",
                ContactEvent::Deleted { .. } => "contact.deleted",
                ContactEvent::UserIdLinked { .. } => "contact.user_id_linked",
                ContactEvent::LabelsChanged { .. } => "contact.labels_changed",
            },
            Self::Group(e) => match e {
                GroupEvent::Created { .. } => "group.created",
                GroupEvent::Renamed { .. } => "group.renamed",
                GroupEvent::MembersAdded { .. } => "group.members_added",
                GroupEvent::MembersRemoved { .. } => "group.members_removed",
            },
            Self::Template(e) => match e {
                TemplateEvent::Created { .. } => "template.created",
                TemplateEvent::ReviewStatusChanged { .. } => "template.review_status_changed",
            },
            Self::Message(e) => match e {
                MessageEvent::Queued { .. } => "message.queued",
                MessageEvent::Dispatched { .. } => "message.dispatched",
                MessageEvent::Sent { .. } => "message.sent",
                MessageEvent::Delivered { .. } => "message.delivered",
                MessageEvent::Read { .. } => "message.read",
                MessageEvent::Failed { .. } => "message.failed",
                MessageEvent::Billed { .. } => "message.billed",
                MessageEvent::RetryScheduled { .. } => "message.retry_scheduled",
                MessageEvent::OutcomeUnknown { .. } => "message.outcome_unknown",
            },
            Self::Conversation(e) => match e {
                ConversationEvent::Started { .. } => "conversation.started",
                ConversationEvent::InboundReceived { .. } => "conversation.inbound_received",
                ConversationEvent::Assigned { .. } => "conversation.assigned",
                ConversationEvent::PriorityChanged { .. } => "conversation.priority_changed",
                ConversationEvent::NoteAdded { .. } => "conversation.note_added",
                ConversationEvent::StatusChanged { .. } => "conversation.status_changed",
                ConversationEvent::LabelsChanged { .. } => "conversation.labels_changed",
                ConversationEvent::Read { .. } => "conversation.read",
            },
            Self::Campaign(e) => match e {
                CampaignEvent::Created { .. } => "campaign.created",
                CampaignEvent::Scheduled { .. } => "campaign.scheduled",
                CampaignEvent::LaunchStarted { .. } => "campaign.launch_started",
                CampaignEvent::Launched { .. } => "campaign.launched",
                CampaignEvent::Paused { .. } => "campaign.paused",
                CampaignEvent::Resumed { .. } => "campaign.resumed",
                CampaignEvent::Cancelled { .. } => "campaign.cancelled",
                CampaignEvent::Completed { .. } => "campaign.completed",
            },
            Self::Agent(e) => match e {
                AgentEvent::Created { .. } => "agent.created",
                AgentEvent::Renamed { .. } => "agent.renamed",
                AgentEvent::AvailabilityChanged { .. } => "agent.availability_changed",
                AgentEvent::RoleChanged { .. } => "agent.role_changed",
                AgentEvent::Deactivated => "agent.deactivated",
                AgentEvent::Reactivated => "agent.reactivated",
            },
            Self::Team(e) => match e {
                TeamEvent::Created { .. } => "team.created",
                TeamEvent::Updated { .. } => "team.updated",
                TeamEvent::MembersAdded { .. } => "team.members_added",
                TeamEvent::MembersRemoved { .. } => "team.members_removed",
            },
            Self::Canned(e) => match e {
                CannedEvent::Created { .. } => "canned_response.created",
                CannedEvent::Updated { .. } => "canned_response.updated",
                CannedEvent::Deleted => "canned_response.deleted",
            },
        }
    }

    /// Current schema version of this event type. Bump it when the payload shape changes, and add an
    /// upcaster on the write side that lifts the previous version.
    pub fn schema_version(&self) -> u32 {
        schema_version_of(self.event_type()).unwrap_or(1)
    }
}

/// The current schema version of a stored event type; `None` for a type this code does not know.
pub fn schema_version_of(event_type: &str) -> Option<u32> {
    if event_type == "conversation.assigned" {
        // v1: `{assignee: string|null}`; v2: agent and team ids (upcaster in the write side's codec).
        return Some(2);
    }
    let (category, _) = event_type.split_once('.')?;
    match category {
        "workspace" | "channel" | "contact" | "group" | "template" | "message" | "conversation" | "campaign"
        | "agent" | "team" | "canned_response" => Some(1),
        _ => None,
    }
}

macro_rules! into_domain_event {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for DomainEvent {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        }

        impl TryFrom<DomainEvent> for $ty {
            /// The event, unchanged, when it belongs to another aggregate.
            type Error = DomainEvent;
            fn try_from(e: DomainEvent) -> Result<Self, DomainEvent> {
                match e {
                    DomainEvent::$variant(x) => Ok(x),
                    other => Err(other),
                }
            }
        }
    )*};
}

into_domain_event!(
    Workspace(WorkspaceEvent),
    Channel(ChannelEvent),
    Contact(ContactEvent),
    Group(GroupEvent),
    Template(TemplateEvent),
    Message(MessageEvent),
    Conversation(ConversationEvent),
    Campaign(CampaignEvent),
    Agent(AgentEvent),
    Team(TeamEvent),
    Canned(CannedEvent)
);
