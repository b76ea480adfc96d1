//! The scaled-out read side: Kafka carries the log; PostgreSQL stays the source of truth.
//!
//! - [`relay`]: publishes the log to the events topic in log order, keyed by stream id, with an
//!   idempotent producer and a checkpoint in PostgreSQL; finds a topic the broker lost and republishes
//!   it from the slowest projector's checkpoint.
//! - [`feed`]: the Kafka [`crate::feed::Feed`]: a consumer group over the events topic; offsets are
//!   committed only after the batch's transaction.
//! - [`deltas`]: projectors publish deltas to the deltas topic; every gateway reads all of it into its
//!   in-process hub.
//! - [`wire`]: the messages' JSON form.
//!
//! Partitioning: every event of a workspace goes to one partition ([`partition_of`]), so a partition
//! is a slice of the log in log order, and the read models (all scoped to a workspace) come out the same
//! as from the log feed. The key is still the stream id (per-stream order holds a fortiori).

pub mod deltas;
pub mod feed;
pub mod relay;
pub mod wire;

pub use feed::KafkaFeed;
pub use relay::Relay;

use crate::error::ProjectionError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a metadata or watermark request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the broker is and how the topics are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `KAFKA_BROKERS`: bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// `BLAZZ_KAFKA_TOPIC_PREFIX` (default `blazz`): topics are `<prefix>.events` and `<prefix>.deltas`.
    pub topic_prefix: String,
    /// `BLAZZ_KAFKA_PARTITIONS` (default 8): partitions of both topics. Workspaces are spread over
    /// them, so it is fixed once the topics exist.
    pub partitions: i32,
    /// `BLAZZ_KAFKA_GROUP` (default `blazz-projections`): the projectors' consumer group.
    pub group: String,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), topic_prefix: "blazz".into(), partitions: 8, group: "blazz-projections".into() }
    }

    pub fn events_topic(&self) -> String {
        format!("{}.events", self.topic_prefix)
    }

    pub fn deltas_topic(&self) -> String {
        format!("{}.deltas", self.topic_prefix)
    }

    /// A client configuration with the bootstrap servers and short reconnect back-offs.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "3");
        // BLAZZ_KAFKA_DEBUG: librdkafka's debug contexts (e.g. `cgrp,topic,fetch`), for diagnosis.
        if let Ok(contexts) = std::env::var("BLAZZ_KAFKA_DEBUG") {
            c.set("debug", contexts).set("log_level", "7");
        }
        c
    }

    /// A consumer configuration in `group`: offsets committed only explicitly, a partition read from
    /// its start when there is no committed offset or the broker lost the topic, short fetch waits.
    pub(crate) fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.client();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "5");
        c
    }
}

/// The partition of a workspace's events and deltas.
pub fn partition_of(workspace: Uuid, partitions: i32) -> i32 {
    (workspace.as_u128() % partitions.max(1) as u128) as i32
}

pub(crate) fn kafka_error(what: &str, e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Kafka(format!("{what}: {e}"))
}

/// Creates the events and deltas topics when missing (the broker need not create topics itself), and
/// checks an existing one has the configured partition count.
pub async fn ensure_topics(config: &KafkaConfig) -> Result<(), ProjectionError> {
    let admin: AdminClient<DefaultClientContext> =
        config.client().create().map_err(|e| kafka_error("admin client", e))?;
    let (events, deltas) = (config.events_topic(), config.deltas_topic());
    let topics = [
        NewTopic::new(&events, config.partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&deltas, config.partitions, TopicReplication::Fixed(1)),
    ];
    let results = admin
        .create_topics(&topics, &AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT)))
        .await
        .map_err(|e| kafka_error("creating topics", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(kafka_error(&format!("creating topic {topic}"), code)),
        }
    }
    let inspector = Inspector::new(config)?;
    for topic in [&events, &deltas] {
        let found = inspector.partition_count(topic).await?;
        if found != Some(config.partitions) {
            return Err(ProjectionError::Kafka(format!(
                "topic {topic} has {found:?} partitions, BLAZZ_KAFKA_PARTITIONS is {}: workspaces would move \
                 between partitions; keep the setting the topic was created with",
                config.partitions
            )));
        }
    }
    Ok(())
}

/// A consumer in a consumer group. Dropping one leaves the group, which waits for the group
/// coordinator (long, when the broker is away): the drop runs on a thread of its own, so it never
/// stalls an async thread or a runtime shutting down.
pub(crate) struct GroupMember(Option<StreamConsumer>);

impl GroupMember {
    pub(crate) fn new(consumer: StreamConsumer) -> Self {
        Self(Some(consumer))
    }
}

impl std::ops::Deref for GroupMember {
    type Target = StreamConsumer;

    fn deref(&self) -> &StreamConsumer {
        self.0.as_ref().expect("the consumer is only taken by drop")
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            let closing = std::thread::Builder::new().name("kafka-leave".into()).spawn(move || drop(consumer));
            if let Err(e) = closing {
                tracing::warn!(error = %e, "cannot leave the consumer group on a thread of its own");
            }
        }
    }
}

/// Metadata and watermark look-ups. librdkafka answers them synchronously, so they run on the
/// blocking pool and never stall the async threads (a broker that is down takes the whole timeout).
#[derive(Clone)]
pub(crate) struct Inspector(Arc<BaseConsumer>);

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspector")
    }
}

impl Inspector {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Self, ProjectionError> {
        // No group: it only asks, and dropping it has no group to leave.
        let consumer: BaseConsumer = config.client().create().map_err(|e| kafka_error("metadata client", e))?;
        Ok(Self(Arc::new(consumer)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let c = self.0.clone();
        tokio::task::spawn_blocking(move || f(&c)).await.map_err(|e| kafka_error("metadata task", e))?
    }

    /// The partition count of `topic` (`None`: the broker does not have it).
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<Option<i32>, ProjectionError> {
        let topic = topic.to_owned();
        self.blocking(move |c| {
            let metadata = c.fetch_metadata(Some(&topic), REQUEST_TIMEOUT).map_err(|e| kafka_error("metadata", e))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32))
        })
        .await
    }

    /// How many members the consumer group `group` has (0: none, or the broker does not know it).
    pub(crate) async fn group_members(&self, group: &str) -> Result<usize, ProjectionError> {
        let group = group.to_owned();
        self.blocking(move |c| {
            let list = c.fetch_group_list(Some(&group), REQUEST_TIMEOUT).map_err(|e| kafka_error("groups", e))?;
            Ok(list.groups().iter().filter(|g| g.name() == group).map(|g| g.members().len()).sum())
        })
        .await
    }

    /// The epoch and log position of the message at `offset` of `partition` (`None`: the partition
    /// holds none there, or not one of ours, or the broker gave no answer in time). Reads with a
    /// consumer of its own, assigned to that one offset: a rare check (see the relay).
    pub(crate) async fn message_at(
        &self,
        config: &KafkaConfig,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<(i64, blazz_commands::store::LogCursor)>, ProjectionError> {
        use rdkafka::{Message, Offset, TopicPartitionList};
        let consumer: BaseConsumer = config
            .client()
            .set("group.id", "blazz-relay-check")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "error")
            .create()
            .map_err(|e| kafka_error("check consumer", e))?;
        let topic = topic.to_owned();
        self.blocking(move |c| {
            let (_, high) =
                c.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT).map_err(|e| kafka_error("watermarks", e))?;
            if high <= offset {
                return Ok(None);
            }
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|e| kafka_error("check assignment", e))?;
            consumer.assign(&assignment).map_err(|e| kafka_error("check assignment", e))?;
            let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
            while std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) if m.offset() == offset => {
                        return Ok(m
                            .payload()
                            .and_then(|body| serde_json::from_slice::<wire::EventMessage>(body).ok())
                            .map(|e| {
                                let cursor = blazz_commands::store::LogCursor {
                                    transaction_id: e.transaction_id,
                                    position: e.position,
                                };
                                (e.epoch, cursor)
                            }));
                    }
                    Some(Ok(_)) => return Ok(None),
                    Some(Err(e)) => return Err(kafka_error("check fetch", e)),
                    None => {}
                }
            }
            tracing::warn!(topic, partition, offset, "relay check: no answer from the broker in time");
            Ok(None)
        })
        .await
    }

    /// The high watermark (the next offset) of each partition of `topic`.
    pub(crate) async fn high_watermarks(&self, topic: &str, partitions: i32) -> Result<Vec<i64>, ProjectionError> {
        let topic = topic.to_owned();
        self.blocking(move |c| {
            (0..partitions)
                .map(|p| {
                    c.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
                        .map(|(_, high)| high)
                        .map_err(|e| kafka_error("watermarks", e))
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_always_maps_to_the_same_partition_within_range() {
        for _ in 0..1000 {
            let w = Uuid::new_v4();
            let p = partition_of(w, 8);
            assert!((0..8).contains(&p));
            assert_eq!(p, partition_of(w, 8));
        }
        assert_eq!(partition_of(Uuid::from_u128(17), 8), 1);
        assert_eq!(partition_of(Uuid::from_u128(17), 0), 0, "no division by zero");
    }
}
