//! Parked events: what a projector could not apply, kept aside so that no single event can stop a
//! projection (table `parked_events`, see `migrations/0009_parked_events.sql`).
//!
//! When applying an event fails with an error that belongs to the event (the database refused its
//! data, the projector panicked, the event cannot be decoded) the runner records it here and moves its
//! checkpoint past it; every other stream and workspace keeps moving. Later events of the same stream
//! are parked behind it (`held_by`), so a read model never sees a stream's events out of order.
//! Operators list them, retry them (in stream order, stopping at the first that fails again) or skip
//! one (then the ones behind it are retried). A retried event is applied to the read model but
//! publishes no live delta: it is older than what clients have seen (they see it on their next query).
//!
//! Errors that do not belong to the event (connection lost, a deadlock, a timeout) are not parked: the
//! batch is retried as a whole.

use crate::checkpoints::{Lane, LOG_LANE};
use crate::delta::Change;
use crate::error::ProjectionError;
use crate::projector::{Applied, Projector};
use crate::read_models;
use blazz_commands::codec::Codec;
use blazz_commands::store::{EventStore, RecordedEvent};
use blazz_domain::values::scrubbed;
use futures::FutureExt;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use uuid::Uuid;

/// How applying failed: the event's fault (park it) or the infrastructure's (retry the batch).
#[derive(Debug)]
pub(crate) enum Failure {
    Poison(String),
    Transient(ProjectionError),
}

/// Whether a database error is about the data a statement carried (SQLSTATE classes 22 data
/// exception, 23 integrity, 54 limit exceeded, P0 raised by a function) rather than about the
/// database being unavailable or busy.
fn is_poison(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54") || c.starts_with("P0")),
        _ => false,
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}

/// Applies `events` with `projector`, turning a panic or a data error into [`Failure::Poison`].
pub(crate) async fn apply_guarded(
    projector: &dyn Projector,
    conn: &mut PgConnection,
    events: &[&Applied],
) -> Result<Vec<Vec<Change>>, Failure> {
    match AssertUnwindSafe(projector.apply_batch(conn, events)).catch_unwind().await {
        Ok(Ok(changes)) => Ok(changes),
        Ok(Err(e)) if is_poison(&e) => Err(Failure::Poison(scrubbed(&e.to_string()))),
        Ok(Err(e)) => Err(Failure::Transient(e.into())),
        Err(panic) => Err(Failure::Poison(panic_message(panic.as_ref()))),
    }
}

/// The first open parked event of each (projection, stream) among `streams`: later events of those
/// streams wait behind it.
pub(crate) async fn held(
    conn: &mut PgConnection,
    streams: &[&str],
) -> Result<HashMap<(String, String), i64>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT projection, stream_id, min(id) FROM parked_events
         WHERE status = 'parked' AND stream_id = ANY($1) GROUP BY projection, stream_id",
    )
    .bind(streams)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(p, s, id)| ((p, s), id)).collect())
}

/// Records that `projection` could not apply `record` (or holds it behind `held_by`); returns the
/// parked row's id. Parking the same event again counts an attempt.
pub(crate) async fn park(
    conn: &mut PgConnection,
    projection: &str,
    lane: Lane,
    record: &RecordedEvent,
    error: &str,
    held_by: Option<i64>,
) -> Result<i64, sqlx::Error> {
    tracing::warn!(
        projection,
        position = record.position,
        stream = %record.stream_id,
        workspace = %record.workspace_id,
        error,
        "event parked"
    );
    sqlx::query_scalar(
        "INSERT INTO parked_events (projection, lane, transaction_id, position, stream_id, stream_version, workspace_id,
                                    event_type, error, held_by)
         VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (projection, position) DO UPDATE SET
             error = excluded.error, held_by = excluded.held_by, last_seen = now(),
             attempts = parked_events.attempts + 1, status = 'parked', resolved_at = NULL
         RETURNING id",
    )
    .bind(projection)
    .bind(lane)
    .bind(record.transaction_id.to_string())
    .bind(record.position)
    .bind(&record.stream_id)
    .bind(i64::try_from(record.stream_version).unwrap_or(i64::MAX))
    .bind(record.workspace_id)
    .bind(&record.event_type)
    .bind(scrubbed(error))
    .bind(held_by)
    .fetch_one(conn)
    .await
}

/// One parked event as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ParkedEvent {
    pub id: i64,
    pub projection: String,
    pub lane: i32,
    pub position: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub error: String,
    pub held_by: Option<i64>,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub attempts: i32,
    pub status: String,
}

/// Open parked events (`status` parked; `all`: applied and skipped ones too), oldest first, after id
/// `after`.
pub async fn list(pool: &PgPool, all: bool, after: i64, limit: i64) -> Result<Vec<ParkedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, projection, lane, position, stream_id, stream_version, workspace_id, event_type, error, held_by,
                first_seen, last_seen, attempts, status
         FROM parked_events WHERE ($1 OR status = 'parked') AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(all)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Open parked events per projection.
pub async fn counts(pool: &PgPool) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, count(*) FROM parked_events WHERE status = 'parked' GROUP BY projection")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// What a retry or skip did to the stream of the parked event.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Resolution {
    /// Parked events of the stream now applied.
    pub applied: usize,
    /// Whether the event named was skipped.
    pub skipped: bool,
    /// Parked events of the stream still parked (the first failed again, the rest wait behind it).
    pub still_parked: usize,
    /// The error of the one that failed again.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no parked event {0}")]
    NotFound(i64),
    #[error("parked event {0} is not open (already applied or skipped)")]
    NotOpen(i64),
    #[error("projection {0:?} is not known here")]
    UnknownProjection(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

impl From<sqlx::Error> for ResolveError {
    fn from(e: sqlx::Error) -> Self {
        Self::Projection(e.into())
    }
}

/// Retries the parked events of `id`'s projection and stream, in stream order from the first; stops
/// at the first that fails again (it stays parked, its attempts counted, the rest behind it).
pub async fn retry(pool: &PgPool, store: &dyn EventStore, codec: &Codec, id: i64) -> Result<Resolution, ResolveError> {
    resolve(pool, store, codec, id, false).await
}

/// Skips parked event `id` for good, then retries the events of its stream parked behind it.
pub async fn skip(pool: &PgPool, store: &dyn EventStore, codec: &Codec, id: i64) -> Result<Resolution, ResolveError> {
    resolve(pool, store, codec, id, true).await
}

/// Retries every open parked event, stream by stream; returns the summed resolution.
pub async fn retry_all(pool: &PgPool, store: &dyn EventStore, codec: &Codec) -> Result<Resolution, ResolveError> {
    let firsts: Vec<i64> = sqlx::query_scalar(
        "SELECT min(id) FROM parked_events WHERE status = 'parked' GROUP BY projection, stream_id ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut total = Resolution::default();
    for id in firsts {
        let r = retry(pool, store, codec, id).await?;
        total.applied += r.applied;
        total.still_parked += r.still_parked;
        total.error = total.error.or(r.error);
    }
    Ok(total)
}

async fn resolve(
    pool: &PgPool,
    store: &dyn EventStore,
    codec: &Codec,
    id: i64,
    skip: bool,
) -> Result<Resolution, ResolveError> {
    let mut tx = pool.begin().await?;
    let named: Option<(String, String, String, i32)> =
        sqlx::query_as("SELECT projection, stream_id, status, lane FROM parked_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (projection, stream, status, lane) = named.ok_or(ResolveError::NotFound(id))?;
    if status != "parked" {
        return Err(ResolveError::NotOpen(id));
    }
    let projector = read_models::by_name(&projection).ok_or(ResolveError::UnknownProjection(projection.clone()))?;
    // The runner's lock on this projection's checkpoint: a batch and a retry never interleave.
    lock_checkpoint(&mut tx, &projection, lane).await?;
    let mut resolution = Resolution { skipped: skip, ..Resolution::default() };
    if skip {
        sqlx::query("UPDATE parked_events SET status = 'skipped', resolved_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let open: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, stream_version FROM parked_events WHERE projection = $1 AND stream_id = $2 AND status = 'parked'
         ORDER BY position FOR UPDATE",
    )
    .bind(&projection)
    .bind(&stream)
    .fetch_all(&mut *tx)
    .await?;
    for (n, (parked_id, version)) in open.iter().enumerate() {
        let version = u64::try_from(*version).unwrap_or_default();
        let record =
            store.read_stream(&stream, version, Some(version)).await.map_err(ProjectionError::from)?.pop().ok_or_else(
                || {
                    ProjectionError::Store(blazz_commands::store::StoreError::Corrupt(format!(
                        "parked event {parked_id} is not in the log"
                    )))
                },
            )?;
        sqlx::query("SAVEPOINT retry").execute(&mut *tx).await?;
        let outcome = match codec.decode(&record) {
            Ok(event) => apply_guarded(projector.as_ref(), &mut tx, &[&Applied { record, event }]).await.map(|_| ()),
            Err(e) => Err(Failure::Poison(scrubbed(&format!("undecodable: {e}")))),
        };
        match outcome {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT retry").execute(&mut *tx).await?;
                sqlx::query("UPDATE parked_events SET status = 'applied', resolved_at = now(), attempts = attempts + 1 WHERE id = $1")
                    .bind(parked_id)
                    .execute(&mut *tx)
                    .await?;
                count_applied(&mut tx, &projection, lane).await?;
                resolution.applied += 1;
            }
            Err(Failure::Poison(error)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT retry").execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE parked_events SET error = $2, held_by = NULL, attempts = attempts + 1, last_seen = now() WHERE id = $1",
                )
                .bind(parked_id)
                .bind(&error)
                .execute(&mut *tx)
                .await?;
                // The rest of the stream now waits behind this one.
                let behind: Vec<i64> = open[n + 1..].iter().map(|(id, _)| *id).collect();
                sqlx::query("UPDATE parked_events SET held_by = $1 WHERE id = ANY($2)")
                    .bind(parked_id)
                    .bind(&behind)
                    .execute(&mut *tx)
                    .await?;
                resolution.still_parked = open.len() - n;
                resolution.error = Some(error);
                break;
            }
            Err(Failure::Transient(e)) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(resolution)
}

async fn lock_checkpoint(conn: &mut PgConnection, projection: &str, lane: Lane) -> Result<(), sqlx::Error> {
    let sql = if lane == LOG_LANE {
        "SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR UPDATE"
    } else {
        "SELECT 1 FROM projection_partition_checkpoints WHERE projection = $1 AND partition = $2 FOR UPDATE"
    };
    let query = sqlx::query(sql).bind(projection);
    let query = if lane == LOG_LANE { query } else { query.bind(lane) };
    query.execute(conn).await?;
    Ok(())
}

async fn count_applied(conn: &mut PgConnection, projection: &str, lane: Lane) -> Result<(), sqlx::Error> {
    let sql = if lane == LOG_LANE {
        "UPDATE projection_checkpoints SET events_applied = events_applied + 1 WHERE projection = $1"
    } else {
        "UPDATE projection_partition_checkpoints SET events_applied = events_applied + 1
         WHERE projection = $1 AND partition = $2"
    };
    let query = sqlx::query(sql).bind(projection);
    let query = if lane == LOG_LANE { query } else { query.bind(lane) };
    query.execute(conn).await?;
    Ok(())
}
