//! How far the projectors are, for read-your-writes: a query may wait (bounded) until the projections
//! it reads have applied the event a command answered with.

use crate::checkpoints::{read_checkpoints, slowest_per_lane, CheckpointTable, Lane};
use crate::kafka::partition_of;
use blazz_commands::store::LogCursor;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Where in the log the event at `position` of `workspace` is; `None` for a position that is not one
/// of that workspace's events (another tenant's position tells nothing).
pub async fn cursor_of(pool: &PgPool, workspace: Uuid, position: i64) -> Result<Option<LogCursor>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT transaction_id::text FROM events WHERE position = $1 AND workspace_id = $2")
            .bind(position)
            .bind(workspace)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(x,)| Some(LogCursor { transaction_id: x.parse().ok()?, position })))
}

/// What the projectors have applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Reached {
    /// The log feed: every event up to this cursor.
    Log(LogCursor),
    /// The Kafka feed: in each partition (of `partitions`, by workspace), every event up to its cursor.
    Partitions { partitions: i32, at: Arc<HashMap<Lane, LogCursor>> },
}

impl Reached {
    /// Whether the event at `target`, written in `workspace`, has been applied.
    pub fn covers(&self, workspace: Uuid, target: LogCursor) -> bool {
        match self {
            Reached::Log(c) => *c >= target,
            Reached::Partitions { partitions, at } => {
                at.get(&partition_of(workspace, *partitions)).is_some_and(|c| *c >= target)
            }
        }
    }
}

/// Where the live projectors are; queries wait on it for read-your-writes.
#[derive(Debug, Clone)]
pub struct Progress {
    rx: watch::Receiver<Reached>,
}

impl Progress {
    pub(crate) fn new(rx: watch::Receiver<Reached>) -> Self {
        Self { rx }
    }

    /// Progress of projectors running elsewhere (`blazz project`, or a Kafka feed), read from their
    /// stored checkpoints every `interval` until `shutdown` turns true. `kafka_partitions`: the Kafka
    /// feed's partition count (`None`: the log feed).
    pub fn polling(
        pool: PgPool,
        names: Vec<&'static str>,
        kafka_partitions: Option<i32>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let start = match kafka_partitions {
            None => Reached::Log(LogCursor::START),
            Some(partitions) => Reached::Partitions { partitions, at: Arc::default() },
        };
        let (tx, rx) = watch::channel(start);
        tokio::spawn(async move {
            loop {
                let table = if kafka_partitions.is_some() { CheckpointTable::Partitions } else { CheckpointTable::Log };
                match read_checkpoints(&pool, table, &names, None, false).await {
                    Ok(cps) => {
                        // The lanes with checkpoints; one without any has nothing applied (not covered).
                        let present: BTreeSet<Lane> = cps.keys().map(|(_, lane)| *lane).collect();
                        let lanes = slowest_per_lane(&cps, &names, present);
                        let reached = match kafka_partitions {
                            None => Reached::Log(lanes.values().copied().min().unwrap_or_default()),
                            Some(partitions) => Reached::Partitions { partitions, at: Arc::new(lanes) },
                        };
                        tx.send_replace(reached);
                    }
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

    pub fn current(&self) -> Reached {
        self.rx.borrow().clone()
    }

    /// Waits until every projector has applied the event at `target` of `workspace`, or `timeout` passes.
    pub async fn wait_for(&self, workspace: Uuid, target: LogCursor, timeout: Duration) -> bool {
        let mut rx = self.rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|r| r.covers(workspace, target))).await.is_ok_and(|r| r.is_ok())
    }
}
