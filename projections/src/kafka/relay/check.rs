//! Checking that the broker still has what the relay published, and republishing when it lost it
//! (see the parent module's docs: floors, epochs, the slowest checkpoint).

use super::{producer, store_partitions, Relay};
use crate::checkpoints::{read_checkpoints, slowest_per_lane, CheckpointTable};
use crate::error::ProjectionError;
use crate::kafka::ensure_topics;
use blazz_commands::store::LogCursor;

/// What the broker has of the events topic, compared with what the relay published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    Intact,
    /// The topic does not exist.
    Missing,
    /// A partition's high watermark is below its floor.
    Lost,
}

impl Relay {
    /// Asks the broker whether it still has everything published so far. The answer is computed apart
    /// from the relay (a `'static` future), so publishing goes on while the broker answers.
    pub(super) fn probe(&self) -> impl std::future::Future<Output = Result<Probe, ProjectionError>> + Send + 'static {
        let (inspector, topic, partitions, floors) =
            (self.inspector.clone(), self.topic.clone(), self.config.partitions, self.floors.clone());
        async move {
            match inspector.partition_count(&topic).await? {
                None => Ok(Probe::Missing),
                Some(n) if n != partitions => Err(ProjectionError::Kafka(format!(
                    "topic {topic} has {n} partitions, BLAZZ_KAFKA_PARTITIONS is {partitions}"
                ))),
                Some(_) => {
                    let highs = inspector.high_watermarks(&topic, partitions).await?;
                    let lost = highs.iter().zip(&floors).any(|(high, floor)| high < floor);
                    Ok(if lost { Probe::Lost } else { Probe::Intact })
                }
            }
        }
    }

    /// Acts on a probe: recreates a missing topic; if the broker lost anything published, bumps the
    /// epoch and rewinds to the slowest projector's checkpoint. Returns whether it rewound.
    pub(super) async fn act(&mut self, probe: Probe) -> Result<bool, ProjectionError> {
        let lost = match probe {
            Probe::Intact => false,
            Probe::Lost => true,
            // A topic that never had anything published is simply new (the rewind creates it too).
            Probe::Missing if self.state.cursor == LogCursor::START && self.floors.iter().all(|o| *o == 0) => {
                ensure_topics(&self.config).await?;
                false
            }
            Probe::Missing => true,
        };
        if lost {
            self.rewind().await?;
        }
        Ok(lost)
    }

    /// Checks the broker and acts on the answer (see [`Self::act`]).
    pub async fn verify(&mut self) -> Result<bool, ProjectionError> {
        let probe = self.probe().await?;
        self.act(probe).await
    }

    /// Whether a partition was emptied and then refilled up to its floor: after a publication that
    /// failed, whose messages the broker may have stored without the relay learning where (a timed
    /// out delivery), a retry lands above the floor and the watermarks look whole. The message just
    /// below each floor is then checked to be the one the relay put there: the first of its last
    /// acknowledged batch to the partition, of this epoch and not past the partition's last event.
    /// A refilled partition holds there a message of the failed publication (past the last event).
    pub(super) async fn refilled(&self) -> Result<bool, ProjectionError> {
        for (p, (floor, last)) in self.floors.iter().zip(&self.last).enumerate() {
            // Nothing published to it in this epoch: its floor is a watermark read at a rewind.
            let (Some(last), true) = (last, *floor > 0) else {
                continue;
            };
            let ours = match self.inspector.message_at(&self.config, &self.topic, p as i32, floor - 1).await? {
                Some((epoch, cursor)) => epoch == self.state.epoch && cursor <= *last,
                None => false,
            };
            if !ours {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The slowest projector's checkpoint over every partition (a partition it never consumed: the
    /// start of the log).
    async fn slowest_checkpoint(&self) -> Result<LogCursor, ProjectionError> {
        let cps = read_checkpoints(&self.pool, CheckpointTable::Partitions, &self.projections, None, false).await?;
        let lanes = slowest_per_lane(&cps, &self.projections, 0..self.config.partitions);
        Ok(lanes.into_values().fold(self.state.cursor, LogCursor::min))
    }

    pub(super) async fn rewind(&mut self) -> Result<(), ProjectionError> {
        ensure_topics(&self.config).await?;
        let from = self.slowest_checkpoint().await?;
        let highs = self.inspector.high_watermarks(&self.topic, self.config.partitions).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE kafka_relay SET transaction_id = $2::text::xid8, position = $3, epoch = epoch + 1,
                 republished = republished + 1, updated_at = now()
             WHERE topic = $1",
        )
        .bind(&self.topic)
        .bind(from.transaction_id.to_string())
        .bind(from.position)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM kafka_relay_partitions WHERE topic = $1").bind(&self.topic).execute(&mut *tx).await?;
        store_partitions(&mut tx, &self.topic, &highs, &vec![None; highs.len()]).await?;
        tx.commit().await?;
        tracing::warn!(
            topic = %self.topic,
            from = %from.encode(),
            epoch = self.state.epoch + 1,
            "the broker lost published events: republishing from the slowest projector's checkpoint"
        );
        // The idempotent producer's sequence numbers belong to the lost topic.
        self.producer = producer(&self.config)?;
        self.load().await
    }
}
