//! The event log behind one trait, [`EventStore`], with two implementations: [`postgres`] (the real
//! one, with group commit) and [`memory`] (for tests and as a reference). [`conformance`] is the test
//! suite every implementation must pass.
//!
//! Besides events, an append can carry two things that must commit atomically with them:
//! - **uniqueness claims** ([`Claim`]): a (scope, value) pair owned by one stream, e.g. a contact's phone
//!   number within a workspace. A taken claim fails the append; releases free a claim.
//! - an **idempotency record** ([`IdempotencyWrite`]): the command's result stored under its key, so a
//!   retried command returns the first answer.

pub mod conformance;
pub mod memory;
pub mod postgres;

use crate::as_of::AsOf;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the writer believes the stream's current version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event has this version).
    Exact(u64),
    /// Append after whatever is there.
    Any,
}

impl ExpectedVersion {
    /// `NoStream` for version 0, `Exact` otherwise.
    pub fn from_current(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }
}

/// Who caused an event and in answer to what. Stored with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub correlation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// `api_key:<id>`, `operator` or `system:<component>`.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The agent the acting key is bound to: every change a person makes names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
}

/// An event ready to be appended (already encoded by the codec).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
}

/// A uniqueness claim: `(scope, value)` belongs to `owner` (a stream id) until released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub scope: String,
    pub value: String,
    pub owner: String,
    pub workspace_id: Uuid,
    /// Extra facts kept with the claim (e.g. an API key's hash and role); never written to the log.
    pub data: serde_json::Value,
}

/// A claim to free, if `owner` still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRelease {
    pub scope: String,
    pub value: String,
    pub owner: String,
}

/// The result of a command, stored with its events under the command's idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyWrite {
    /// The workspace the key belongs to (the nil id for operator commands).
    pub scope: Uuid,
    pub key: String,
    /// A hash of the request, so that reusing a key for a different request is detected.
    pub fingerprint: String,
    pub result: serde_json::Value,
}

/// A stored idempotency record.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub result: serde_json::Value,
    /// Log position the original command wrote (none if it wrote no event).
    pub position: Option<i64>,
}

/// Everything one command writes, atomically.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream_id: String,
    pub workspace_id: Uuid,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
    pub claims: Vec<Claim>,
    pub releases: Vec<ClaimRelease>,
    pub idempotency: Option<IdempotencyWrite>,
}

impl AppendRequest {
    pub fn new(
        stream_id: String,
        workspace_id: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: EventMetadata,
    ) -> Self {
        Self {
            stream_id,
            workspace_id,
            expected,
            events,
            metadata,
            claims: vec![],
            releases: vec![],
            idempotency: None,
        }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append.
    pub stream_version: u64,
    /// Global position of the last event written; `None` if the request carried no events.
    pub position: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Optimistic concurrency: the stream is not at the expected version.
    #[error("stream {stream_id} is not at the expected version {expected:?}")]
    Conflict { stream_id: String, expected: ExpectedVersion },
    /// A uniqueness claim is held by another owner.
    #[error("{scope} {value:?} is already taken")]
    ClaimTaken { scope: String, value: String, owner: Option<String> },
    /// The idempotency key was used by a command that committed first.
    #[error("idempotency key {key:?} already used")]
    IdempotencyKeyUsed { key: String },
    /// The database refused this request's data (e.g. a value of the wrong form). Only this request
    /// failed: group commit writes its batch-mates without it.
    #[error("the database refused the data: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the event store is shutting down")]
    Closed,
    #[error("the event store could not write: {0}")]
    Unavailable(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    /// The id of the transaction that wrote the event (PostgreSQL `xid8`).
    pub transaction_id: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub workspace_id: Uuid,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// The link chaining it to its stream predecessor (`crate::audit::chain`); `None` where the
    /// store keeps no chain (the in-memory store, the Kafka topic) or not yet sealed.
    pub hash: Option<crate::audit::chain::Hash>,
    /// Personal fields (JSON pointers into the payload) that read as erased (`crate::personal`).
    pub erased: Vec<&'static str>,
}

/// An aggregate's state after `version` events of its stream, as the fold `code` made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_id: String,
    pub version: u64,
    pub workspace_id: Uuid,
    /// Position and time of the event at `version`.
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub code: String,
    pub state: serde_json::Value,
}

/// Where a reaction to a stream comes from: its last event (the one reacted to), whose correlation the
/// reaction carries on and which it names as its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    pub correlation_id: Uuid,
    pub event_id: Uuid,
}

impl Lineage {
    /// The lineage of a stream's events (in version order); `None` for no events.
    pub fn of(events: &[RecordedEvent]) -> Option<Self> {
        let last = events.last()?;
        Some(Self { correlation_id: last.metadata.correlation_id, event_id: last.event_id })
    }
}

/// A position in the gap-free order of the whole log: `(transaction id, position)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct LogCursor {
    pub transaction_id: u64,
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub const START: Self = Self { transaction_id: 0, position: 0 };

    pub fn of(event: &RecordedEvent) -> Self {
        Self { transaction_id: event.transaction_id, position: event.position }
    }

    /// `"<transaction id>-<position>"`, the opaque form used in URLs.
    pub fn encode(&self) -> String {
        format!("{}-{}", self.transaction_id, self.position)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (t, p) = s.split_once('-')?;
        Some(Self { transaction_id: t.parse().ok()?, position: p.parse().ok()? })
    }
}

/// One page of the log in gap-free order.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub events: Vec<RecordedEvent>,
    /// Where the next read continues (unchanged when the page is empty).
    pub next: LogCursor,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends one command's events atomically with its claims, releases and idempotency record.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// Appends several commands' writes, each atomic on its own and failing on its own (a conflict in one
    /// does not fail the others), in order of the answers. Implementations may write them together.
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Vec<Result<AppendOutcome, AppendError>> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            out.push(self.append(r).await);
        }
        out
    }

    /// Up to `limit` events of `workspace` carrying `correlation_id` (everything one request caused),
    /// after `after` in gap-free log order.
    async fn read_correlation(
        &self,
        workspace: Uuid,
        correlation_id: Uuid,
        after: LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError>;

    /// Events of one stream with `from_version <= version <= to_version`, in version order.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The newest snapshot of `stream_id` made by the fold `code` that stands at or before `at` (see
    /// [`crate::as_of`]). A store without snapshots has none.
    async fn snapshot(&self, stream_id: &str, code: &str, at: AsOf) -> Result<Option<Snapshot>, StoreError> {
        let _ = (stream_id, code, at);
        Ok(None)
    }

    /// Keeps snapshots (one already kept is left as it is). A store without snapshots drops them.
    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        drop(snapshots);
        Ok(())
    }

    /// All events of several streams (ordered by stream, then version) in one round trip.
    async fn read_streams(&self, stream_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events after `after` in `(transaction id, position)` order, only from transactions
    /// that can no longer be followed by an earlier-committing one, so a reader that checkpoints the
    /// returned cursor never skips an event. Optionally only one workspace's events.
    async fn read_log(&self, after: LogCursor, limit: usize, workspace: Option<Uuid>) -> Result<LogPage, StoreError>;

    /// The stored result of an idempotent command.
    async fn idempotency_record(&self, workspace_id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Stores an idempotency record on its own (for commands made of several appends); `false` if the
    /// key was already taken.
    async fn put_idempotency_record(&self, write: IdempotencyWrite, position: Option<i64>) -> Result<bool, StoreError>;

    /// The current holder of a claim.
    async fn claim(&self, scope: &str, value: &str) -> Result<Option<Claim>, StoreError>;

    /// Every owner holding a claim in `scope` within `workspace_id` (e.g. all live contacts of a
    /// workspace, through their phone claims), without duplicates.
    async fn claim_owners(&self, scope: &str, workspace_id: Uuid) -> Result<Vec<String>, StoreError>;

    /// Which of `owners` hold at least one claim in `scope` within `workspace_id`.
    async fn owners_with_claim(
        &self,
        scope: &str,
        workspace_id: Uuid,
        owners: &[String],
    ) -> Result<Vec<String>, StoreError>;
}
