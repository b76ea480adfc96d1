//! The union of all aggregates' events, with the stable name and schema version of each variant.
//!
//! Names are the variants' serde tags, declared once through [`event_enum!`] (never taken from
//! `type_name` or `Debug`), so renaming a Rust variant cannot silently change what is stored, and the
//! name in the `event_type` column is the payload's own tag.

use crate::agent::AgentEvent;
use crate::automation::RuleEvent;
use crate::campaign::CampaignEvent;
use crate::canned::CannedEvent;
use crate::channel::ChannelEvent;
use crate::contact::ContactEvent;
use crate::conversation::ConversationEvent;
use crate::endpoint::EndpointEvent;
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
    Endpoint(EndpointEvent),
    Rule(RuleEvent),
}

/// Declares an aggregate's event enum whose serde tags are the stored event type names: the one
/// source of each name. Every variant starts with `#[serde(rename = "<category>.<verb>")]` (after
/// its doc comment); the macro adds `TYPES` (every name) and `event_type()` from those same tags,
/// so the name stored in the `event_type` column and the payload's tag cannot disagree.
macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[doc = $doc:literal])*
                #[serde(rename = $type:literal)]
                $variant:ident $({ $($fields:tt)* })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $type)]
                $variant $({ $($fields)* })?
            ),*
        }

        impl $name {
            /// The stored names of these events, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($type),*];

            /// The stored name of this event, `<category>.<past_tense_verb>`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => $type),*
                }
            }
        }
    };
}
pub(crate) use event_enum;

impl DomainEvent {
    /// Stable event type name, `<category>.<past_tense_verb>` (the variant's serde tag).
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Workspace(e) => e.event_type(),
            Self::Channel(e) => e.event_type(),
            Self::Contact(e) => e.event_type(),
            Self::Group(e) => e.event_type(),
            Self::Template(e) => e.event_type(),
            Self::Message(e) => e.event_type(),
            Self::Conversation(e) => e.event_type(),
            Self::Campaign(e) => e.event_type(),
            Self::Agent(e) => e.event_type(),
            Self::Team(e) => e.event_type(),
            Self::Canned(e) => e.event_type(),
            Self::Endpoint(e) => e.event_type(),
            Self::Rule(e) => e.event_type(),
        }
    }

    /// Every event type this code writes or reads.
    pub fn types() -> impl Iterator<Item = &'static str> {
        [
            WorkspaceEvent::TYPES,
            ChannelEvent::TYPES,
            ContactEvent::TYPES,
            GroupEvent::TYPES,
            TemplateEvent::TYPES,
            MessageEvent::TYPES,
            ConversationEvent::TYPES,
            CampaignEvent::TYPES,
            AgentEvent::TYPES,
            TeamEvent::TYPES,
            CannedEvent::TYPES,
            EndpointEvent::TYPES,
            RuleEvent::TYPES,
        ]
        .into_iter()
        .flatten()
        .copied()
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
    DomainEvent::types().any(|t| t == event_type).then_some(1)
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
    Canned(CannedEvent),
    Endpoint(EndpointEvent),
    Rule(RuleEvent)
);
