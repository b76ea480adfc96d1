//! The log feed: projectors catch up from the PostgreSQL log in gap-free order, woken by
//! LISTEN/NOTIFY (appends notify on commit) and polling as a fallback. All projectors advance together:
//! each batch is applied to every projector and their checkpoints are stored in one transaction, so the
//! read models are always mutually consistent and deltas come out in log order.

use crate::delta::{Delta, Hub};
use crate::projector::{advance, checkpoint, Applied, Projector};
use blazz_commands::codec::Codec;
use blazz_commands::store::{EventStore, LogCursor};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
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
    pub fn current(&self) -> LogCursor {
        *self.rx.borrow()
    }

    /// Waits until the projectors have applied the event at `target`, or `timeout` passes.
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
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("projectors", &self.projectors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .finish()
    }
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
        Self { pool, store, codec, projectors, hub, progress }
    }

    pub fn progress(&self) -> Progress {
        Progress { rx: self.progress.subscribe() }
    }

    /// The common checkpoint: the lowest of the projectors' (they only differ after a crash between
    /// versions or a rebuild switch-over; events below a projector's own checkpoint are skipped for it).
    async fn start_cursor(&self) -> Result<Vec<LogCursor>, ProjectionError> {
        let mut conn = self.pool.acquire().await?;
        let mut cursors = Vec::with_capacity(self.projectors.len());
        for p in &self.projectors {
            cursors.push(checkpoint(&mut conn, p.name()).await?);
        }
        Ok(cursors)
    }

    /// Applies one batch after `cursors`; returns how many events it read.
    pub async fn step(&self, cursors: &mut [LogCursor]) -> Result<usize, ProjectionError> {
        let from = cursors.iter().min().copied().unwrap_or(LogCursor::START);
        let page = self.store.read_log(from, BATCH, None).await?;
        if page.events.is_empty() {
            return Ok(0);
        }
        let mut applied = Vec::with_capacity(page.events.len());
        for record in page.events {
            let event = self.codec.decode(&record)?;
            applied.push(Applied { record, event });
        }
        let mut tx = self.pool.begin().await?;
        let mut deltas = vec![];
        for (p, cursor) in self.projectors.iter().zip(cursors.iter_mut()) {
            let mut count = 0;
            for a in applied.iter().filter(|a| LogCursor::of(&a.record) > *cursor) {
                let changes = p.apply(&mut tx, a).await?;
                count += 1;
                for (i, c) in changes.into_iter().enumerate() {
                    let key = (a.record.transaction_id, a.record.position, deltas.len() as u32 + i as u32);
                    deltas.push((key, a.record.workspace_id, a.record.position, c));
                }
            }
            if count > 0 {
                advance(&mut tx, p.name(), page.next, count).await?;
            }
        }
        tx.commit().await?;
        for c in cursors.iter_mut() {
            *c = (*c).max(page.next);
        }
        // Deltas in log order (several projectors may answer one event).
        deltas.sort_by_key(|d| d.0);
        let mut index = 0u32;
        let mut last = (0, 0);
        let out = deltas
            .into_iter()
            .map(|(key, workspace_id, position, c)| {
                index = if (key.0, key.1) == last { index + 1 } else { 0 };
                last = (key.0, key.1);
                let key = (key.0, key.1, index);
                Delta {
                    kind: c.kind,
                    op: c.op,
                    id: c.id,
                    workspace_id,
                    position,
                    delta_id: format!("{}.{}.{}", key.0, key.1, key.2),
                    changed: c.changed,
                    key,
                }
            })
            .collect();
        self.hub.publish(out);
        self.progress.send_replace(page.next);
        Ok(applied.len())
    }

    /// Runs until `shutdown` resolves, finishing the batch in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let mut cursors = self.start_cursor().await?;
        let start = cursors.iter().min().copied().unwrap_or(LogCursor::START);
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
            match self.step(&mut cursors).await {
                Ok(n) if n > 0 => {
                    quick = 0;
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
