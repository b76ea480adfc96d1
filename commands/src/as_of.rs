//! State as of a past point: an aggregate folded from its stream's events up to a log position or a
//! time, for auditors (`GET /v1/history/streams/{id}/state`, `?as_of=` on single-row queries).
//!
//! The fold is the write side's ([`Commands::fold`]): what an as-of query shows is what a command at
//! that point would have decided on. It starts from the nearest snapshot before the point (kept every
//! [`SNAPSHOT_EVERY`] events as queries pass them) and reads only the events up to the point, so its
//! cost is bounded by the snapshot interval, not the stream's length (docs/benchmarks.md).

use crate::error::CommandError;
use crate::service::Commands;
use crate::store::{RecordedEvent, Snapshot};
use blazz_domain::aggregate::{Aggregate, StreamId};
use blazz_domain::{agent, campaign, canned, channel, contact, conversation, group, message, team, template};
use blazz_domain::{workspace, DomainEvent};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// A point of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Everything up to and including this log position.
    Position(i64),
    /// Everything recorded at or before this time.
    Time(DateTime<Utc>),
    /// Everything there is.
    Now,
}

impl AsOf {
    fn includes(&self, e: &RecordedEvent) -> bool {
        match self {
            Self::Position(p) => e.position <= *p,
            Self::Time(t) => e.recorded_at <= *t,
            Self::Now => true,
        }
    }
}

/// An aggregate's state at a point, and which event it stands on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StateAt {
    pub stream_id: String,
    /// Events folded (the stream's version at the point); 0 when it did not exist yet.
    pub version: u64,
    /// Position and time of the last event folded; `null` when none was.
    pub position: Option<i64>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// The aggregate's state (the write side's view of it); `null` when it did not exist yet.
    #[schema(value_type = Option<Object>)]
    pub state: Value,
}

/// A snapshot is kept every this many events of a stream an as-of query folds through, so a query
/// reads and folds at most this many events past the nearest snapshot.
pub const SNAPSHOT_EVERY: u64 = 1000;
/// Events read per round trip while folding.
const READ_CHUNK: u64 = 1000;
/// Names the fold that made a snapshot: bump the leading number when an aggregate's `evolve` or its
/// state's shape changes, so snapshots of the old fold are ignored (they are a cache; see
/// migrations/0024_stream_snapshots.sql).
const FOLD_CODE: &str = concat!("1-", env!("CARGO_PKG_VERSION"));

impl Commands {
    /// The state of `stream` of `workspace` at `at`; `None` when the stream is not the workspace's
    /// (or does not exist), or is of no aggregate.
    pub async fn state_at(
        &self,
        workspace: Uuid,
        stream: &StreamId,
        at: AsOf,
    ) -> Result<Option<StateAt>, CommandError> {
        match stream.category() {
            agent::Agent::CATEGORY => self.state_of::<agent::Agent>(workspace, stream, at).await,
            campaign::Campaign::CATEGORY => self.state_of::<campaign::Campaign>(workspace, stream, at).await,
            canned::CannedResponse::CATEGORY => self.state_of::<canned::CannedResponse>(workspace, stream, at).await,
            channel::Channel::CATEGORY => self.state_of::<channel::Channel>(workspace, stream, at).await,
            contact::Contact::CATEGORY => self.state_of::<contact::Contact>(workspace, stream, at).await,
            conversation::Conversation::CATEGORY => {
                self.state_of::<conversation::Conversation>(workspace, stream, at).await
            }
            group::ContactGroup::CATEGORY => self.state_of::<group::ContactGroup>(workspace, stream, at).await,
            message::Message::CATEGORY => self.state_of::<message::Message>(workspace, stream, at).await,
            team::Team::CATEGORY => self.state_of::<team::Team>(workspace, stream, at).await,
            template::Template::CATEGORY => self.state_of::<template::Template>(workspace, stream, at).await,
            workspace::Workspace::CATEGORY => self.state_of::<workspace::Workspace>(workspace, stream, at).await,
            _ => Ok(None),
        }
    }

    /// Folds from the nearest snapshot at or before `at` (or the start), a chunk of events at a
    /// time, keeping a snapshot every [`SNAPSHOT_EVERY`] versions it passes.
    async fn state_of<A>(&self, workspace: Uuid, stream: &StreamId, at: AsOf) -> Result<Option<StateAt>, CommandError>
    where
        A: Aggregate + Serialize + DeserializeOwned,
        A::Event: TryFrom<DomainEvent>,
    {
        let name = stream.to_string();
        let mut base = (A::default(), 0, None);
        match self.store().snapshot(&name, FOLD_CODE, at).await? {
            Some(s) if s.workspace_id != workspace => return Ok(None),
            // One the fold cannot read (written by another build of the same code) is passed over.
            Some(s) => {
                if let Ok(state) = serde_json::from_value::<A>(s.state) {
                    base = (state, s.version, Some((s.position, s.recorded_at)));
                }
            }
            None => {}
        }
        let (mut state, mut version, mut last) = base;
        let mut snapshots = vec![];
        'read: loop {
            let chunk = self.store().read_stream(&name, version + 1, Some(version + READ_CHUNK)).await?;
            if version == 0 && chunk.first().map(|e| e.workspace_id) != Some(workspace) {
                return Ok(None);
            }
            for e in &chunk {
                if !at.includes(e) {
                    break 'read;
                }
                state = self.evolved(state, e)?;
                (version, last) = (e.stream_version, Some((e.position, e.recorded_at)));
                if version % SNAPSHOT_EVERY == 0 {
                    snapshots.push(Snapshot {
                        stream_id: name.clone(),
                        version,
                        workspace_id: workspace,
                        position: e.position,
                        recorded_at: e.recorded_at,
                        code: FOLD_CODE.into(),
                        state: json(&state)?,
                    });
                }
            }
            if (chunk.len() as u64) < READ_CHUNK {
                break;
            }
        }
        // A cache: the answer stands without it.
        if let Err(e) = self.store().put_snapshots(snapshots).await {
            tracing::warn!(error = %e, stream = %name, "as-of snapshots not kept");
        }
        Ok(Some(StateAt {
            stream_id: name,
            version,
            position: last.map(|l| l.0),
            recorded_at: last.map(|l| l.1),
            state: if version == 0 { Value::Null } else { json(&state)? },
        }))
    }
}

fn json<A: Serialize + Aggregate>(state: &A) -> Result<Value, CommandError> {
    serde_json::to_value(state)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("state of {}: {e}", A::CATEGORY)).into())
}
