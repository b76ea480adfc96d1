//! Feeds: where a [`crate::runner::Runner`] gets its events from.
//!
//! Two feeds sit behind [`Feed`]: the [`LogFeed`] reads the PostgreSQL log itself (one node), and
//! [`crate::kafka::KafkaFeed`] consumes the relay's topic in a consumer group (scaled out). A feed only
//! delivers events; the runner decides, under the checkpoints it locks, which of them each projector
//! still needs. So a feed may deliver an event twice (Kafka redelivery, a republished topic) without
//! any read model applying it twice.
//!
//! Events come in *lanes*, each in log order: the log feed has one lane, the Kafka feed one per
//! partition (a workspace's events all go to one partition). Checkpoints are kept per projector and
//! lane.

use crate::checkpoints::{CheckpointTable, Checkpoints, Lane, LOG_LANE};
use crate::error::ProjectionError;
use async_trait::async_trait;
use blazz_commands::store::{EventStore, LogCursor, RecordedEvent};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Channel appends notify on (payload-free: a wake-up, never the data).
pub const NOTIFY_CHANNEL: &str = "blazz_events";

/// One delivered event with its lane and the lane's epoch (Kafka: how often the topic was rebuilt
/// from the log; the log feed: 0).
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub lane: Lane,
    pub epoch: i64,
    /// The lane's event before this one, when the feed knows it (Kafka: the relay's chain). A projector
    /// whose checkpoint is below it would skip an event: it does not apply this one (see the runner).
    pub prev: Option<LogCursor>,
    pub record: RecordedEvent,
}

#[async_trait]
pub trait Feed: Send + 'static {
    fn checkpoint_table(&self) -> CheckpointTable;

    /// The next events after the projectors' checkpoints `at` (read without a lock: the runner filters
    /// again under lock), in log order within each lane. Empty: nothing now.
    async fn next_batch(&mut self, at: &Checkpoints) -> Result<Vec<FeedEvent>, ProjectionError>;

    /// The batch returned last has been applied and committed.
    async fn committed(&mut self) -> Result<(), ProjectionError>;

    /// Waits before the next `next_batch`, after one that delivered `delivered` events, until more may
    /// be there or `shutdown` changes.
    async fn wait(&mut self, delivered: usize, shutdown: &mut watch::Receiver<bool>);
}

/// Events per batch (one transaction).
pub const BATCH: usize = 500;
/// Poll interval when no notification arrives.
const POLL: Duration = Duration::from_millis(500);
/// Fast re-reads after a wake-up that found nothing below the horizon yet.
const QUICK: Duration = Duration::from_millis(5);
const QUICK_TRIES: u32 = 40;
/// Pause after a partial batch while busy (bounds the batch rate; adds at most this to delta latency).
const LINGER: Duration = Duration::from_millis(10);

/// The log feed: catch-up from the PostgreSQL log in gap-free `(transaction id, position)` order below
/// the snapshot horizon, woken by LISTEN/NOTIFY (appends notify on commit), polling as a fallback.
pub struct LogFeed {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    listener: Option<PgListener>,
    /// Fast re-reads left: after a wake-up the new events may still sit above the horizon (another
    /// transaction of the cluster is open for a moment), so look again quickly a few times.
    quick: u32,
}

impl std::fmt::Debug for LogFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFeed").field("listening", &self.listener.is_some()).finish()
    }
}

impl LogFeed {
    pub fn new(pool: PgPool, store: Arc<dyn EventStore>) -> Self {
        Self { pool, store, listener: None, quick: 0 }
    }

    /// Up to `limit` events after `from`, below the horizon.
    pub async fn read(&self, from: LogCursor, limit: usize) -> Result<Vec<RecordedEvent>, ProjectionError> {
        Ok(self.store.read_log(from, limit, None).await?.events)
    }
}

#[async_trait]
impl Feed for LogFeed {
    fn checkpoint_table(&self) -> CheckpointTable {
        CheckpointTable::Log
    }

    async fn next_batch(&mut self, at: &Checkpoints) -> Result<Vec<FeedEvent>, ProjectionError> {
        let from = at.values().map(|c| c.cursor).min().unwrap_or(LogCursor::START);
        let events = self.read(from, BATCH).await?;
        Ok(events.into_iter().map(|record| FeedEvent { lane: LOG_LANE, epoch: 0, prev: None, record }).collect())
    }

    async fn committed(&mut self) -> Result<(), ProjectionError> {
        Ok(())
    }

    async fn wait(&mut self, delivered: usize, shutdown: &mut watch::Receiver<bool>) {
        self.wait_for_appends(delivered, BATCH, shutdown).await
    }
}

impl LogFeed {
    /// After a read of `delivered` events (of at most `batch`), waits until more may have been
    /// appended: at once while busy, briefly after a partial read, otherwise until an append notifies,
    /// the poll interval passes or `shutdown` changes.
    pub async fn wait_for_appends(&mut self, delivered: usize, batch: usize, shutdown: &mut watch::Receiver<bool>) {
        if delivered > 0 {
            // Stay attentive: appends notify at most every 10 ms (blazz_commands' NOTIFY_INTERVAL),
            // so more may land without a notification.
            self.quick = QUICK_TRIES;
            // A partial batch means the log is nearly caught up: let a few more commands land so the
            // next batch is larger (each batch has a fixed cost).
            if delivered < batch {
                tokio::time::sleep(LINGER).await;
            }
            return;
        }
        if self.quick > 0 {
            self.quick -= 1;
            tokio::time::sleep(QUICK).await;
            return;
        }
        if self.listener.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => {
                        // Appends committed before LISTEN took effect notified nobody: read once more.
                        self.listener = Some(l);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for appends; polling"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for appends; polling"),
            }
        }
        let notified = async {
            match self.listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = notified => {
                if let Err(e) = n {
                    tracing::warn!(error = %e, "notification listener failed; polling");
                    self.listener = None;
                }
                self.quick = QUICK_TRIES;
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}
