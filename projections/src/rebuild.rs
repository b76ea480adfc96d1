//! Rebuilding one projection from the log while the others (and the live one) keep running.
//!
//! The projector replays the whole log into copies of its tables in a schema of their own (its SQL
//! names tables without a schema, so `search_path` points it at the copies). When the copy has caught
//! up, one transaction locks the live tables (waiting for a live batch in flight, holding off the next
//! one), reads the live checkpoint, applies the copy up to exactly that point, and swaps the copies in.
//! A live batch that was waiting on the lock then fails once and is retried against the new tables.

use crate::checkpoints::{read_checkpoints, CheckpointTable};
use crate::projector::{advance, checkpoint, Applied, Projector};
use blazz_commands::codec::Codec;
use blazz_commands::store::{EventStore, LogCursor};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Instant;

const BATCH: usize = 2000;

/// How far a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildProgress {
    pub done: u64,
    /// Events in the log when the rebuild started (more may arrive while it runs).
    pub total: u64,
    pub per_second: f64,
}

impl RebuildProgress {
    /// Seconds left at the current rate.
    pub fn eta_seconds(&self) -> f64 {
        if self.per_second > 0.0 {
            self.total.saturating_sub(self.done) as f64 / self.per_second
        } else {
            0.0
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("the copy could not reach the live projection's checkpoint; nothing was switched")]
    Behind,
    #[error(transparent)]
    Projection(#[from] crate::error::ProjectionError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<blazz_commands::store::StoreError> for RebuildError {
    fn from(e: blazz_commands::store::StoreError) -> Self {
        Self::Projection(e.into())
    }
}

impl From<blazz_commands::codec::CodecError> for RebuildError {
    fn from(e: blazz_commands::codec::CodecError) -> Self {
        Self::Projection(e.into())
    }
}

/// Whether the copy can be switched in from `cursor`: the live projection is at or past it (the
/// switch-over applies the difference), or nothing is written after it.
async fn caught_up(pool: &PgPool, projection: &str, cursor: LogCursor) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if live_checkpoint(&mut conn, projection).await? >= cursor {
        return Ok(true);
    }
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2))",
    )
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .fetch_one(&mut *conn)
    .await?;
    Ok(!pending)
}

/// How far the live projection is: its log feed checkpoint, or with the Kafka feed the furthest of
/// its partitions' (the switch-over brings the copy there and every partition up to the copy).
async fn live_checkpoint(conn: &mut PgConnection, projection: &str) -> Result<LogCursor, sqlx::Error> {
    let log = checkpoint(&mut *conn, projection).await?;
    let partitions = read_checkpoints(&mut *conn, CheckpointTable::Partitions, &[projection], None, false).await?;
    Ok(partitions.values().map(|c| c.cursor).fold(log, LogCursor::max))
}

/// Creates on the copies the indexes the live tables have besides their primary keys.
async fn build_secondary_indexes(pool: &PgPool, p: &dyn Projector, shadow: &str) -> Result<(), sqlx::Error> {
    for t in p.tables() {
        let defs: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1
               AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = $2::regclass)",
        )
        .bind(t)
        .bind(format!("public.{t}"))
        .fetch_all(pool)
        .await?;
        for def in defs {
            let on_copy = def.replacen(&format!(" ON public.{t} "), &format!(" ON {shadow}.{t} "), 1);
            sqlx::query(&on_copy).execute(pool).await?;
        }
    }
    Ok(())
}

fn schema(p: &dyn Projector) -> String {
    format!("rebuild_{}", p.name())
}

/// Applies the log after `from` (up to `until`, if given) to the copies; returns where it stopped and
/// how many events it read.
async fn apply_range(
    conn: &mut PgConnection,
    store: &dyn EventStore,
    codec: &Codec,
    p: &dyn Projector,
    from: LogCursor,
    until: Option<LogCursor>,
) -> Result<(LogCursor, usize), RebuildError> {
    let page = store.read_log(from, BATCH, None).await?;
    let mut applied = Vec::with_capacity(page.events.len());
    for record in page.events {
        if until.is_some_and(|u| LogCursor::of(&record) > u) {
            break;
        }
        let event = codec.decode(&record)?;
        applied.push(Applied { record, event });
    }
    let refs: Vec<&Applied> = applied.iter().collect();
    p.apply_batch(conn, &refs).await?;
    Ok((applied.last().map_or(from, |a| LogCursor::of(&a.record)), applied.len()))
}

/// Rebuilds `projector` and switches it in; `report` is called after every batch.
pub async fn rebuild(
    pool: &PgPool,
    store: Arc<dyn EventStore>,
    codec: &Codec,
    projector: Arc<dyn Projector>,
    mut report: impl FnMut(RebuildProgress),
) -> Result<RebuildProgress, RebuildError> {
    let p = projector.as_ref();
    let shadow = schema(p);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    {
        let mut tx = pool.begin().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE")).execute(&mut *tx).await?;
        sqlx::query(&format!("CREATE SCHEMA {shadow}")).execute(&mut *tx).await?;
        // Only the primary key now (updates find rows by it); secondary indexes are built in one pass
        // once the copy has caught up, which is much cheaper than maintaining them row by row.
        for t in p.tables() {
            sqlx::query(&format!(
                "CREATE TABLE {shadow}.{t} (LIKE public.{t} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            .execute(&mut *tx)
            .await?;
            let pkey: String = sqlx::query_scalar(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'",
            )
            .bind(format!("public.{t}"))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(&format!("ALTER TABLE {shadow}.{t} ADD {pkey}")).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let started = Instant::now();
    let mut progress = RebuildProgress { done: 0, total: total as u64, per_second: 0.0 };
    let mut cursor = LogCursor::START;
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query(&format!("SET LOCAL search_path = {shadow}, public")).execute(&mut *tx).await?;
        let (next, n) = apply_range(&mut tx, &*store, codec, p, cursor, None).await?;
        tx.commit().await?;
        cursor = next;
        progress.done += n as u64;
        progress.per_second = progress.done as f64 / started.elapsed().as_secs_f64().max(1e-6);
        report(progress);
        if n < BATCH && caught_up(pool, p.name(), cursor).await? {
            break;
        }
        if n == 0 {
            // Events exist past the read horizon (a transaction of the cluster is still open).
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    build_secondary_indexes(pool, p, &shadow).await?;

    // Switch over. Lock order as in the runner: the checkpoint row first, then the tables.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(p.name())
        .execute(&mut *tx)
        .await?;
    read_checkpoints(&mut *tx, CheckpointTable::Partitions, &[p.name()], None, true).await?;
    for t in p.tables() {
        sqlx::query(&format!("LOCK TABLE public.{t} IN ACCESS EXCLUSIVE MODE")).execute(&mut *tx).await?;
    }
    let live = live_checkpoint(&mut tx, p.name()).await?;
    sqlx::query(&format!("SET LOCAL search_path = {shadow}, public")).execute(&mut *tx).await?;
    while cursor < live {
        let (next, n) = apply_range(&mut tx, &*store, codec, p, cursor, Some(live)).await?;
        if n == 0 {
            // Cannot happen while the horizon only moves forward; never swap in a copy that is behind.
            return Err(RebuildError::Behind);
        }
        progress.done += n as u64;
        cursor = next;
    }
    // The copy may be ahead of the live projection (which lags, or is not running): its checkpoint
    // moves to the copy's, and the runner gives it only later events.
    if cursor > live {
        advance(&mut tx, p.name(), cursor, 0).await?;
    }
    // With the Kafka feed, every partition's events up to the copy's cursor are in the copy.
    sqlx::query(
        "UPDATE projection_partition_checkpoints SET transaction_id = $2::text::xid8, position = $3, updated_at = now()
         WHERE projection = $1 AND (transaction_id, position) < ($2::text::xid8, $3)",
    )
    .bind(p.name())
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SET LOCAL search_path = public").execute(&mut *tx).await?;
    for t in p.tables() {
        sqlx::query(&format!("DROP TABLE public.{t}")).execute(&mut *tx).await?;
        sqlx::query(&format!("ALTER TABLE {shadow}.{t} SET SCHEMA public")).execute(&mut *tx).await?;
    }
    sqlx::query(&format!("DROP SCHEMA {shadow}")).execute(&mut *tx).await?;
    tx.commit().await?;
    progress.per_second = progress.done as f64 / started.elapsed().as_secs_f64().max(1e-6);
    report(progress);
    Ok(progress)
}
