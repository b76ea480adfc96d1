//! The Kafka feed: projectors consume the events topic in a consumer group.
//!
//! Offsets are committed only after the batch's transaction has committed, and the runner skips, per
//! partition, events at or below its checkpoint: a redelivered batch (a restart, a rebalance) is not
//! applied twice. Processes running `blazz project` share the partitions through the group.
//!
//! Epochs: when the relay republishes a topic the broker lost, its messages carry a higher epoch. A
//! consumer whose position is left over from the lost topic could otherwise resume in the middle of the
//! new one and skip its start; on meeting a higher epoch than its checkpoint has, it reads the partition
//! again from the beginning (what it applied already is skipped).
//!
//! A member left without partitions: after a broker came back empty, librdkafka (2.3, against tansu
//! 0.6) could settle the group with an assignment made while the topic was missing and never revisit
//! it, so the projectors stopped for good. A member that holds no partition for [`UNASSIGNED_LIMIT`]
//! while its group has no more members than the topic has partitions (so every member should hold
//! one) joins the group afresh.

use super::wire::EventMessage;
use super::{ensure_topics, kafka_error, GroupMember, Inspector, KafkaConfig};
use crate::checkpoints::{CheckpointTable, Checkpoints, Lane};
use crate::error::ProjectionError;
use crate::feed::{Feed, FeedEvent, BATCH};
use async_trait::async_trait;
use blazz_commands::personal::Vault;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a batch waits for its first message.
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// How long it waits for more once it has one.
const MORE_WAIT: Duration = Duration::from_millis(2);
/// How long a member may hold no partition before it checks whether it should (far longer than a
/// rebalance takes).
pub const UNASSIGNED_LIMIT: Duration = Duration::from_secs(15);

pub struct KafkaFeed {
    config: KafkaConfig,
    consumer: GroupMember,
    inspector: Inspector,
    topic: String,
    /// Since when the member holds no partition.
    unassigned_since: Option<Instant>,
    /// The batch handed out last, kept until it is committed (a failed batch is handed out again).
    batch: Vec<FeedEvent>,
    /// Per partition, the offset after the last message of `batch`.
    offsets: HashMap<Lane, i64>,
    /// Whether `batch`'s personal fields are opened yet (see [`Self::revealing`]).
    revealed: bool,
    /// The data keys to open personal fields with; without, events go on as published (sealed).
    vault: Option<Vault>,
    /// Per partition, the newest epoch met.
    epochs: HashMap<Lane, i64>,
    /// Partitions met in a newer epoch that still have to be read again from their start.
    rewind: BTreeSet<Lane>,
}

impl std::fmt::Debug for KafkaFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaFeed").field("topic", &self.topic).field("pending", &self.batch.len()).finish()
    }
}

impl KafkaFeed {
    /// Joins the consumer group `config.group` on the events topic (created if missing).
    pub async fn new(config: &KafkaConfig) -> Result<Self, ProjectionError> {
        ensure_topics(config).await?;
        let topic = config.events_topic();
        Ok(Self {
            consumer: join(config, &topic)?,
            inspector: Inspector::new(config)?,
            config: config.clone(),
            topic,
            unassigned_since: None,
            batch: vec![],
            revealed: false,
            vault: None,
            offsets: HashMap::new(),
            epochs: HashMap::new(),
            rewind: BTreeSet::new(),
        })
    }

    /// Opens the personal fields of the events it hands out with `vault`'s keys: the topic carries
    /// them sealed, as the log stores them.
    pub fn revealing(mut self, vault: Vault) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The batch, its personal fields opened once (a batch handed out again is not opened twice).
    async fn revealed_batch(&mut self) -> Result<Vec<FeedEvent>, ProjectionError> {
        if let (Some(vault), false) = (&self.vault, self.revealed) {
            vault.reveal_in(&mut self.batch, |f| &mut f.record).await?;
        }
        self.revealed = !self.batch.is_empty();
        Ok(self.batch.clone())
    }

    /// Joins the group afresh if this member has held no partition for [`UNASSIGNED_LIMIT`] although
    /// it should (see the module docs).
    async fn check_assignment(&mut self) -> Result<(), ProjectionError> {
        let holds = self.consumer.assignment().map(|a| a.count() > 0).unwrap_or(true);
        if holds {
            self.unassigned_since = None;
            return Ok(());
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() < UNASSIGNED_LIMIT {
            return Ok(());
        }
        self.unassigned_since = Some(Instant::now());
        let partitions = self.inspector.partition_count(&self.topic).await?;
        let members = self.inspector.group_members(&self.config.group).await?;
        if let Some(partitions) = partitions.filter(|p| members <= *p as usize) {
            tracing::warn!(
                topic = %self.topic,
                partitions,
                members,
                "this consumer holds no partition although every member should: joining the group afresh"
            );
            self.consumer = join(&self.config, &self.topic)?;
            // Offsets of skipped messages belong to the old membership's partitions.
            self.offsets.clear();
        }
        Ok(())
    }

    /// Seeks the partitions waiting for it to their start; those that cannot yet stay waiting.
    fn seek_rewinds(&mut self) {
        let lanes: Vec<Lane> = self.rewind.iter().copied().collect();
        for lane in lanes {
            match self.consumer.seek(&self.topic, lane, Offset::Beginning, Duration::from_secs(2)) {
                Ok(()) => {
                    self.rewind.remove(&lane);
                    tracing::info!(partition = lane, "new relay epoch: reading the partition from its start");
                }
                Err(e) => tracing::warn!(partition = lane, error = %e, "cannot seek yet; retrying"),
            }
        }
    }

    /// Takes one message into the batch, unless it opens an epoch this consumer must first rewind to.
    fn take(&mut self, lane: Lane, offset: i64, payload: Option<&[u8]>) {
        let message = match payload.map(serde_json::from_slice::<EventMessage>) {
            Some(Ok(m)) => m,
            other => {
                // Not ours (the relay writes only events): skip it rather than block the partition.
                let error = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "empty message".into(),
                };
                tracing::error!(partition = lane, offset, %error, "undecodable message on the events topic; skipped");
                self.offsets.insert(lane, offset + 1);
                return;
            }
        };
        if self.rewind.contains(&lane) {
            return;
        }
        let known = self.epochs.entry(lane).or_insert(0);
        if message.epoch > *known {
            *known = message.epoch;
            if offset > 0 {
                // The topic was republished and this consumer resumed inside it: start over.
                self.rewind.insert(lane);
                return;
            }
        }
        let (epoch, prev, record) = message.into_record();
        self.offsets.insert(lane, offset + 1);
        self.batch.push(FeedEvent { lane, epoch, prev, record });
    }
}

#[async_trait]
impl Feed for KafkaFeed {
    fn checkpoint_table(&self) -> CheckpointTable {
        CheckpointTable::Partitions
    }

    async fn next_batch(&mut self, at: &Checkpoints) -> Result<Vec<FeedEvent>, ProjectionError> {
        if !self.batch.is_empty() {
            return self.revealed_batch().await;
        }
        for ((_, lane), c) in at {
            let known = self.epochs.entry(*lane).or_insert(0);
            *known = (*known).max(c.epoch);
        }
        self.seek_rewinds();
        let mut wait = FIRST_WAIT;
        while self.batch.len() < BATCH {
            let received = match tokio::time::timeout(wait, self.consumer.recv()).await {
                Err(_) => break,
                Ok(r) => r,
            };
            match received {
                Ok(m) => {
                    let (lane, offset) = (m.partition(), m.offset());
                    let payload = m.payload().map(<[u8]>::to_vec);
                    drop(m);
                    self.take(lane, offset, payload.as_deref());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka feed: consuming");
                    break;
                }
            }
            wait = MORE_WAIT;
            if !self.rewind.is_empty() {
                self.seek_rewinds();
            }
        }
        if self.batch.is_empty() && self.offsets.is_empty() {
            // Nothing came (a busy member plainly holds partitions, so only an idle one checks).
            if let Err(e) = self.check_assignment().await {
                // The broker is away: nothing to read anyway; checked again later.
                tracing::warn!(error = %e, "kafka feed: cannot check the consumer group");
            }
        } else {
            self.unassigned_since = None;
        }
        if self.batch.is_empty() && !self.offsets.is_empty() {
            // Only skipped messages: nothing to apply, but their offsets can be committed.
            self.committed().await?;
        }
        self.revealed_batch().await
    }

    async fn committed(&mut self) -> Result<(), ProjectionError> {
        self.batch.clear();
        self.revealed = false;
        if self.offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (lane, next) in self.offsets.drain() {
            tpl.add_partition_offset(&self.topic, lane, Offset::Offset(next)).map_err(|e| kafka_error("offsets", e))?;
        }
        // Asynchronous: a lost commit only means a redelivery, which the checkpoints absorb. A partition
        // taken away by a rebalance refuses it for the same reason.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "kafka feed: offset commit refused");
        }
        Ok(())
    }

    async fn wait(&mut self, _delivered: usize, _shutdown: &mut watch::Receiver<bool>) {
        // `next_batch` already waits for messages, briefly enough to notice a shutdown.
    }
}

/// A member of `config.group` subscribed to `topic`.
fn join(config: &KafkaConfig, topic: &str) -> Result<GroupMember, ProjectionError> {
    let consumer: StreamConsumer = config
        .consumer(&config.group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create()
        .map_err(|e| kafka_error("consumer", e))?;
    consumer.subscribe(&[topic]).map_err(|e| kafka_error("subscribe", e))?;
    Ok(GroupMember::new(consumer))
}
