//! What commands answer: one type per answer shape. The gateway serialises them (adding the log
//! `position`) and the OpenAPI document describes them from these types; the idempotency record
//! stores them as JSON and a replay reads them back.

use blazz_domain::agent::Availability;
use blazz_domain::campaign::{CampaignStatus, FinalCounts, Skipped};
use blazz_domain::conversation::{ConversationStatus, Priority};
use blazz_domain::ids::{
    AgentId, ApiKeyId, CampaignId, ChannelId, ContactId, ConversationId, GroupId, MessageId, NoteId, TeamId,
    TemplateId, WorkspaceId,
};
use blazz_domain::role::Role;
use blazz_domain::template::ReviewStatus;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An answer a command gives, and stores for an idempotent replay.
pub trait Outcome: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// What is stored for a replay: the answer without what is shown only once (a key's secret).
    fn stored(&self) -> Self {
        self.clone()
    }
}

macro_rules! outcomes {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }
        impl Outcome for $name {}
    )*};
}

/// A command of the system's own (webhook ingestion and the like) that answers nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Done {}
impl Outcome for Done {}

outcomes! {
    ContactWritten { contact_id: ContactId }
    ContactConsent { contact_id: ContactId, opted_out: bool }
    ContactLabels { contact_id: ContactId, labels: Vec<String> }
    ContactDeleted { contact_id: ContactId, deleted: bool }
    ContactErased { contact_id: ContactId, erased: bool }

    GroupWritten { group_id: GroupId }
    GroupMembersAdded {
        group_id: GroupId,
        /// How many of the given contacts were not members yet.
        added: usize,
    }
    GroupMembersRemoved {
        group_id: GroupId,
        /// How many of the given contacts were members.
        removed: usize,
    }

    TemplateReview {
        template_id: TemplateId,
        #[schema(value_type = String)]
        status: ReviewStatus,
    }

    ChannelWritten { channel_id: ChannelId }
    ChannelRate { channel_id: ChannelId, rate_limit_per_second: u32 }
    ChannelTeam { channel_id: ChannelId, team_id: Option<TeamId> }
    ChannelHalt {
        channel_id: ChannelId,
        /// Why the channel is halted; `null` when it sends.
        halted: Option<String>,
    }

    MessageQueued {
        message_id: MessageId,
        /// Always `queued`: the dispatcher sends it.
        status: String,
    }

    CampaignWritten { campaign_id: CampaignId }
    CampaignState { campaign_id: CampaignId, status: CampaignStatus }
    CampaignCompleted { campaign_id: CampaignId, counts: FinalCounts }
    CampaignLaunched { campaign_id: CampaignId, queued: u64, skipped: Skipped }

    ConversationWritten { conversation_id: ConversationId }
    ConversationState {
        conversation_id: ConversationId,
        status: ConversationStatus,
        snoozed_until: Option<DateTime<Utc>>,
    }
    ConversationRead { conversation_id: ConversationId, unread_count: u32 }
    ConversationLabels { conversation_id: ConversationId, labels: Vec<String> }
    ConversationPriority { conversation_id: ConversationId, priority: Priority }
    ConversationNote { conversation_id: ConversationId, note_id: NoteId }
    ConversationAssignment { conversation_id: ConversationId, agent_id: Option<AgentId>, team_id: Option<TeamId> }

    AgentWritten { agent_id: AgentId }
    AgentAvailability { agent_id: AgentId, availability: Availability }
    AgentRole { agent_id: AgentId, role: Role }
    AgentActivity { agent_id: AgentId, active: bool }

    TeamWritten { team_id: TeamId }
    TeamMembers { team_id: TeamId, members: Vec<AgentId> }

    CannedCreated { canned_response_id: Uuid, short_code: String }
    CannedWritten { canned_response_id: Uuid }
    CannedDeleted { canned_response_id: Uuid, deleted: bool }

    /// The signing secret is in the HTTP answer beside this (never in the log or the stored answer).
    EndpointWritten { endpoint_id: Uuid }

    RuleWritten { rule_id: Uuid }

    WorkspaceWritten { workspace_id: WorkspaceId }
    ApiKeyRevoked { id: ApiKeyId, revoked: bool }

    /// A contact import's report.
    ImportReport { imported: u64, failed: usize, errors: Vec<RowError> }
}

/// One row an import did not take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// The row's line (CSV, counting the header as line 1) or index + 1 (JSON).
    pub line: usize,
    pub code: String,
    pub message: String,
}

impl RowError {
    pub fn new(line: usize, code: &str, message: impl Into<String>) -> Self {
        Self { line, code: code.into(), message: message.into() }
    }
}

/// A key as it is issued: its secret `key` only in the first answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IssuedKey {
    pub id: ApiKeyId,
    pub role: Role,
    /// The key to present as `Authorization: Bearer <key>`; shown once, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceCreated {
    pub workspace_id: WorkspaceId,
    pub api_key: IssuedKey,
}

impl Outcome for WorkspaceCreated {
    fn stored(&self) -> Self {
        Self { api_key: IssuedKey { key: None, ..self.api_key.clone() }, ..self.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyIssued {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    pub agent_id: Option<AgentId>,
    /// The key to present as `Authorization: Bearer <key>`; shown once, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Outcome for ApiKeyIssued {
    fn stored(&self) -> Self {
        Self { key: None, ..self.clone() }
    }
}
