//! The log feed: projectors catch up from the PostgreSQL log in gap-free order, woken by
//! LISTEN/NOTIFY (appends notify on commit) and polling as a fallback. Each batch is applied to every
//! projector and their checkpoints are stored in one transaction, so the read models are mutually
//! consistent and deltas come out in log order.
//!
//! The checkpoints are the truth, not memory: every batch transaction locks and reads them first and
//! gives each projector only the events after its own checkpoint. So a projection rebuilt past the
//! others (see [`crate::rebuild`]) is never fed an event twice.

use crate::delta::{Delta, Hub};
use crate::projector::{checkpoint, Applied, Projector};
use blazz_commands::codec::Codec;
use blazz_commands::store::{EventStore, LogCursor};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Channel appends notify on (payload-free: a wake-up, never the data).
pub const NOTIFY_CHANNEL: &str = "blazz_events";
/// Events per transaction.
const BATCH: usize = 500;
/// Poll interval when no notification arrives.
const POLL: Duration = Duration::from_millis(500);
/// Fast re-reads after a wake-up that found nothing below the horizon yet.
const QUICK: Duration = Duration::from_millis(5);
const QUICK_TRIES: u32 = 40;
/// Pause after a partial batch while busy (bounds the batch rate; adds at most this to delta latency).
const LINGER: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] blazz_commands::store::StoreError),
    #[error(transparent)]
    Codec(#[from] blazz_commands::codec::CodecError),
}

/// Where the live projectors are; queries wait on it for read-your-writes.
#[derive(Debug, Clone)]
pub struct Progress {
    rx: watch::Receiver<LogCursor>,
}

impl Progress {
    /// Progress of projectors running elsewhere (`blazz project`), read from their stored checkpoints
    /// every `interval` until `shutdown` turns true.
    pub fn polling(
        pool: PgPool,
        names: Vec<&'static str>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (tx, rx) = watch::channel(LogCursor::START);
        tokio::spawn(async move {
            loop {
                let row: Result<Option<(String, i64)>, sqlx::Error> = sqlx::query_as(
                    "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projection = ANY($1)
                     ORDER BY transaction_id, position LIMIT 1",
                )
                .bind(&names)
                .fetch_optional(&pool)
                .await;
                match row {
                    Ok(Some((xid, position))) => {
                        tx.send_replace(LogCursor { transaction_id: xid.parse().unwrap_or(0), position });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "reading projection checkpoints"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
        Self { rx }
    }

    pub fn current(&self) -> LogCursor {
        *self.rx.borrow()
    }

    /// Waits until every projector has applied the event at `target`, or `timeout` passes.
    pub async fn wait_for(&self, target: LogCursor, timeout: Duration) -> bool {
        let mut rx = self.rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= target)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Runs projectors over the log.
pub struct Runner {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    codec: Codec,
    projectors: Vec<Arc<dyn Projector>>,
    hub: Hub,
    progress: watch::Sender<LogCursor>,
    /// Whether the checkpoint rows are known to exist.
    ensured: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("projectors", &self.projectors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .finish()
    }
}

/// Locks and reads the checkpoints of `names` (in a fixed order, so concurrent lockers cannot deadlock).
async fn lock_checkpoints(conn: &mut PgConnection, names: &[&str]) -> Result<HashMap<String, LogCursor>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT projection, transaction_id::text, position FROM projection_checkpoints
         WHERE projection = ANY($1) ORDER BY projection FOR UPDATE",
    )
    .bind(names)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, x, pos)| (p, LogCursor { transaction_id: x.parse().unwrap_or(0), position: pos }))
        .collect())
}

impl Runner {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn EventStore>,
        codec: Codec,
        projectors: Vec<Arc<dyn Projector>>,
        hub: Hub,
    ) -> Self {
        let (progress, _) = watch::channel(LogCursor::START);
        Self { pool, store, codec, projectors, hub, progress, ensured: Default::default() }
    }

    pub fn progress(&self) -> Progress {
        Progress { rx: self.progress.subscribe() }
    }

    fn names(&self) -> Vec<&'static str> {
        self.projectors.iter().map(|p| p.name()).collect()
    }

    /// Applies the next batch; returns how many events it read (0: caught up with the horizon).
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let names = self.names();
        if !self.ensured.load(std::sync::atomic::Ordering::Relaxed) {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&names)
            .execute(&self.pool)
            .await?;
            self.ensured.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut tx = self.pool.begin().await?;
        // Read models and their checkpoints commit together and can be rebuilt from the log: losing
        // the last few batches in a crash only means applying them again, so this transaction need not
        // wait for its WAL flush (the log's own appends still do).
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        let cps = lock_checkpoints(&mut tx, &names).await?;
        let at = |name: &str| cps.get(name).copied().unwrap_or(LogCursor::START);
        let from = names.iter().map(|n| at(n)).min().unwrap_or(LogCursor::START);
        let page = self.store.read_log(from, BATCH, None).await?;
        if page.events.is_empty() {
            self.progress.send_replace(from);
            return Ok(0);
        }
        let mut applied = Vec::with_capacity(page.events.len());
        for record in page.events {
            let event = self.codec.decode(&record)?;
            applied.push(Applied { record, event });
        }
        let mut deltas = vec![];
        let mut advanced: Vec<(&str, i64)> = vec![];
        for p in &self.projectors {
            let cp = at(p.name());
            let mine: Vec<&Applied> = applied.iter().filter(|a| LogCursor::of(&a.record) > cp).collect();
            if mine.is_empty() {
                continue;
            }
            let changes = p.apply_batch(&mut tx, &mine).await?;
            for (a, changes) in mine.iter().zip(changes) {
                for c in changes {
                    deltas.push((
                        (a.record.transaction_id, a.record.position, deltas.len() as u32),
                        a.record.workspace_id,
                        c,
                    ));
                }
            }
            advanced.push((p.name(), mine.len() as i64));
        }
        let (names_done, counts): (Vec<&str>, Vec<i64>) = advanced.into_iter().unzip();
        sqlx::query(
            "UPDATE projection_checkpoints c
             SET transaction_id = $1::text::xid8, position = $2, events_applied = c.events_applied + u.n, updated_at = now()
             FROM unnest($3::text[], $4::int8[]) AS u(name, n) WHERE c.projection = u.name",
        )
        .bind(page.next.transaction_id.to_string())
        .bind(page.next.position)
        .bind(&names_done)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.publish(deltas);
        let reached = names.iter().map(|n| at(n).max(page.next)).min().unwrap_or(page.next);
        self.progress.send_replace(reached);
        Ok(applied.len())
    }

    /// Stamps deltas with their place in the log (several projectors may answer one event) and
    /// publishes them in log order.
    fn publish(&self, mut deltas: Vec<(crate::delta::DeltaKey, uuid::Uuid, crate::delta::Change)>) {
        deltas.sort_by_key(|d| d.0);
        let mut last = (0, 0);
        let mut index = 0u32;
        let out = deltas
            .into_iter()
            .map(|((xid, position, _), workspace_id, c)| {
                index = if (xid, position) == last { index + 1 } else { 0 };
                last = (xid, position);
                Delta {
                    kind: c.kind,
                    op: c.op,
                    id: c.id,
                    workspace_id,
                    position,
                    delta_id: format!("{xid}.{position}.{index}"),
                    changed: c.changed,
                    key: (xid, position, index),
                }
            })
            .collect();
        self.hub.publish(out);
    }

    /// Runs until `shutdown` turns true, finishing the batch in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let start = {
            let mut conn = self.pool.acquire().await?;
            let mut min = None::<LogCursor>;
            for p in &self.projectors {
                let c = checkpoint(&mut conn, p.name()).await?;
                min = Some(min.map_or(c, |m| m.min(c)));
            }
            min.unwrap_or(LogCursor::START)
        };
        self.hub.set_floor((start.transaction_id, start.position, u32::MAX));
        self.progress.send_replace(start);
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        // After a wake-up the new events may still sit above the horizon (another transaction of the
        // cluster is open for a moment): look again quickly a few times before waiting.
        let mut quick = 0u32;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self.step().await {
                Ok(n) if n > 0 => {
                    // Stay attentive: appends notify at most every 10 ms (blazz_commands'
                    // NOTIFY_INTERVAL), so more may land without a notification.
                    quick = QUICK_TRIES;
                    // A partial batch means the log is nearly caught up: let a few more commands land
                    // so the next batch is larger (each batch has a fixed cost).
                    if n < BATCH {
                        tokio::time::sleep(LINGER).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "projection batch failed; retrying"),
            }
            if quick > 0 {
                quick -= 1;
                tokio::time::sleep(QUICK).await;
                continue;
            }
            tokio::select! {
                n = listener.recv() => {
                    if let Err(e) = n {
                        tracing::warn!(error = %e, "notification listener failed; polling");
                    }
                    quick = QUICK_TRIES;
                }
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
