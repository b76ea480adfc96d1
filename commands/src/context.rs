//! The context every command runs in.

use crate::store::{EventMetadata, Lineage};
use blazz_domain::ids::AgentId;
use blazz_domain::role::Role;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An idempotency key with the fingerprint of the request that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The workspace the caller is scoped to (nil for operator commands before a workspace exists).
    pub workspace_id: Uuid,
    pub role: Role,
    /// `api_key:<id>`, `operator` or `system:<component>`.
    pub actor: String,
    /// The agent the caller's key is bound to, if any.
    pub agent_id: Option<AgentId>,
    pub request_id: Option<String>,
    pub correlation_id: Uuid,
    /// Set when the command reacts to a stream's events (the dispatcher to a queued message, a
    /// fan-out to a launch): its events then carry that stream's correlation and name the event
    /// reacted to as their cause, so one request's consequences can be traced.
    pub follows: Option<Lineage>,
    pub idempotency: Option<Idempotency>,
    /// The time the command is decided at.
    pub now: DateTime<Utc>,
}

impl CommandContext {
    /// A context for the system's own commands (`system:<component>`) in a workspace, now.
    pub fn system(workspace_id: Uuid, component: &str) -> Self {
        Self {
            workspace_id,
            role: Role::Owner,
            actor: format!("system:{component}"),
            agent_id: None,
            request_id: None,
            correlation_id: Uuid::now_v7(),
            follows: None,
            idempotency: None,
            now: Utc::now(),
        }
    }

    /// This context reacting to a stream with `lineage` (nothing changes for `None`).
    pub fn following(mut self, lineage: Option<Lineage>) -> Self {
        self.follows = lineage.or(self.follows);
        self
    }

    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            correlation_id: self.correlation_id,
            causation_id: None,
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            agent_id: self.agent_id.map(|a| a.as_uuid()),
        }
    }
}

/// What a command answers: its typed outcome (ids it created and the like, see [`crate::outcome`])
/// and the log position it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult<T> {
    pub outcome: T,
    /// Position of the last event written; `None` when the command changed nothing.
    pub position: Option<i64>,
    /// True when this is the stored answer of an earlier request with the same idempotency key.
    pub replayed: bool,
}
