//! The projector trait and checkpoints.

use crate::delta::Change;
use async_trait::async_trait;
use blazz_commands::store::{LogCursor, RecordedEvent};
use blazz_domain::DomainEvent;
use sqlx::PgConnection;

/// One event ready to project: the stored record (workspace, stream, time, cursor) and the decoded
/// domain event.
#[derive(Debug, Clone)]
pub struct Applied {
    pub record: RecordedEvent,
    pub event: DomainEvent,
}

impl Applied {
    /// The aggregate id of the event's stream (`contact-<uuid>` → the uuid).
    pub fn aggregate_id(&self) -> uuid::Uuid {
        blazz_domain::aggregate::id_of(&self.record.stream_id).unwrap_or_default()
    }
}

/// Maintains read-model tables from events. `apply` runs inside the runner's transaction, which also
/// stores the checkpoint: a batch is applied completely, with its checkpoint, or not at all.
#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Stable name, the key of its checkpoint.
    fn name(&self) -> &'static str;
    /// The tables it owns (and alone writes).
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event; returns what changed, for live clients.
    async fn apply(&self, conn: &mut PgConnection, event: &Applied) -> Result<Vec<Change>, sqlx::Error>;

    /// Whether `apply_run` can write this event together with its neighbours (default: none).
    fn batchable(&self, _event: &Applied) -> bool {
        false
    }

    /// Applies a run of consecutive batchable events with set-based statements; returns the changes of
    /// each event, aligned with `run`. Only called when `batchable` accepts every event of the run.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut out = Vec::with_capacity(run.len());
        for e in run {
            out.push(self.apply(conn, e).await?);
        }
        Ok(out)
    }

    /// Applies a batch in log order: runs of batchable events through `apply_run`, the others one by
    /// one; returns the changes of each event, aligned with `events`.
    async fn apply_batch(&self, conn: &mut PgConnection, events: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut out = Vec::with_capacity(events.len());
        for (batched, run) in runs(events, |a| self.batchable(a)) {
            if batched {
                out.extend(self.apply_run(conn, run).await?);
            } else {
                for a in run {
                    out.push(self.apply(conn, a).await?);
                }
            }
        }
        Ok(out)
    }
}

/// Splits a batch into runs: maximal sequences of events `batchable` accepts, and single others.
/// Set-based projectors write each such run with one statement and the others one by one, keeping the
/// log's order.
pub fn runs<'a, 'b>(events: &'b [&'a Applied], batchable: impl Fn(&Applied) -> bool) -> Vec<(bool, &'b [&'a Applied])> {
    let mut out = vec![];
    let mut start = 0;
    while start < events.len() {
        let kind = batchable(events[start]);
        let mut end = start + 1;
        while kind && end < events.len() && batchable(events[end]) {
            end += 1;
        }
        out.push((kind, &events[start..end]));
        start = end;
    }
    out
}

/// The stored checkpoint of a projector (`LogCursor::START` if it never ran).
pub async fn checkpoint(conn: &mut PgConnection, projection: &str) -> Result<LogCursor, sqlx::Error> {
    sqlx::query("INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(projection)
        .execute(&mut *conn)
        .await?;
    let (xid, position): (String, i64) =
        sqlx::query_as("SELECT transaction_id::text, position FROM projection_checkpoints WHERE projection = $1")
            .bind(projection)
            .fetch_one(&mut *conn)
            .await?;
    Ok(LogCursor { transaction_id: xid.parse().unwrap_or(0), position })
}

/// Moves a checkpoint forward by `applied` events to `to`.
pub async fn advance(
    conn: &mut PgConnection,
    projection: &str,
    to: LogCursor,
    applied: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints
         SET transaction_id = $2::text::xid8, position = $3, events_applied = events_applied + $4, updated_at = now()
         WHERE projection = $1",
    )
    .bind(projection)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(applied as i64)
    .execute(conn)
    .await?;
    Ok(())
}
