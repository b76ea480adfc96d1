//! Rebuilding one projection from the log while the others (and the live one) keep running.
//!
//! The projector replays the whole log into copies of its tables in a schema of their own (its SQL
//! names tables without a schema, so `search_path` points it at the copies). When the copy has caught
//! up, one transaction locks the live tables (waiting for a live batch in flight, holding off the next
//! one), reads the live checkpoint, applies the copy up to exactly that point, and swaps the copies in.
//! A live batch that was waiting on the lock then fails once and is retried against the new tables.

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
    Projection(#[from] crate::runner::ProjectionError),
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
        for t in p.tables() {
            sqlx::query(&format!("CREATE TABLE {shadow}.{t} (LIKE public.{t} INCLUDING ALL)"))
                .execute(&mut *tx)
                .await?;
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
        if n < BATCH {
            break;
        }
    }

    // Switch over. Lock order as in the runner: the checkpoint row first, then the tables.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(p.name())
        .execute(&mut *tx)
        .await?;
    for t in p.tables() {
        sqlx::query(&format!("LOCK TABLE public.{t} IN ACCESS EXCLUSIVE MODE")).execute(&mut *tx).await?;
    }
    let live = checkpoint(&mut tx, p.name()).await?;
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
