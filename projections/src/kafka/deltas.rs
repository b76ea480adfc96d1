//! Deltas through Kafka, so that every gateway instance can serve every workspace's live clients.
//!
//! Projectors publish each committed batch's deltas to the deltas topic, in the partition of their
//! workspace (so a workspace's deltas stay in log order); every gateway reads all partitions from the
//! end into its in-process [`Hub`], which buffers them for reconnecting clients. A process that runs
//! projectors and a gateway also hands its deltas straight to its hub (no broker round trip) and
//! skips them when they come back through the topic: each message names its origin process.

use super::wire::DeltaMessage;
use super::{ensure_topics, kafka_error, partition_of, GroupMember, KafkaConfig};
use crate::checkpoints::{read_checkpoints, CheckpointTable};
use crate::delta::{Delta, DeltaKey, DeltaSink, Hub};
use crate::error::ProjectionError;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Publishes deltas to the deltas topic.
#[derive(Clone)]
pub struct KafkaDeltaSink {
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    origin: Uuid,
}

impl std::fmt::Debug for KafkaDeltaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDeltaSink").field("topic", &self.topic).finish()
    }
}

impl KafkaDeltaSink {
    pub fn new(config: &KafkaConfig) -> Result<Self, ProjectionError> {
        let producer = config
            .client()
            .set("linger.ms", "1")
            .set("message.timeout.ms", "5000")
            .create()
            .map_err(|e| kafka_error("delta producer", e))?;
        Ok(Self { producer, topic: config.deltas_topic(), partitions: config.partitions, origin: Uuid::new_v4() })
    }

    /// The tag of this sink's messages.
    pub fn origin(&self) -> Uuid {
        self.origin
    }
}

impl DeltaSink for KafkaDeltaSink {
    fn publish(&self, deltas: Vec<Delta>) {
        let mut pending = Vec::with_capacity(deltas.len());
        for d in &deltas {
            let body = serde_json::to_vec(&DeltaMessage::new(d, self.origin)).unwrap_or_default();
            let key = d.workspace_id.to_string();
            let record = FutureRecord::to(&self.topic)
                .partition(partition_of(d.workspace_id, self.partitions))
                .key(&key)
                .payload(&body);
            match self.producer.send_result(record) {
                Ok(f) => pending.push(f),
                Err((e, _)) => tracing::warn!(error = %e, "delta not published; live clients will need to resync"),
            }
        }
        if !pending.is_empty() {
            tokio::spawn(async move {
                for f in pending {
                    if let Ok(Err((e, _))) = f.await {
                        tracing::warn!(error = %e, "delta not delivered; live clients will need to resync");
                    }
                }
            });
        }
    }
}

/// Reads every partition of the deltas topic from now on into `hub` (but for the deltas of `own`, a
/// sink that delivers to `hub` itself), until `shutdown` turns true. Returns once the consumer is
/// positioned, so deltas of events applied from then on all arrive.
pub async fn subscribe(
    config: &KafkaConfig,
    pool: PgPool,
    projections: Vec<&'static str>,
    hub: Hub,
    own: Option<Uuid>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    ensure_topics(config).await?;
    // Its own group (librdkafka assigns partitions only within one): it reads every partition and
    // commits nothing. A recreated topic (the broker lost it) starts below our position: it is read
    // from its start.
    let consumer: StreamConsumer = config
        .consumer(&format!("blazz-gateway-{}", uuid::Uuid::new_v4()))
        .create()
        .map_err(|e| kafka_error("delta consumer", e))?;
    let topic = config.deltas_topic();
    let mut tpl = TopicPartitionList::new();
    for p in 0..config.partitions {
        tpl.add_partition_offset(&topic, p, Offset::End).map_err(|e| kafka_error("assign", e))?;
    }
    let consumer = GroupMember::new(consumer);
    consumer.assign(&tpl).map_err(|e| kafka_error("assign", e))?;
    // Wait until the end offsets are resolved: deltas published from then on are received.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let positioned = consumer
            .position()
            .map(|l| l.elements().iter().all(|e| matches!(e.offset(), Offset::Offset(_))))
            .unwrap_or(false);
        if positioned || tokio::time::Instant::now() > deadline {
            break;
        }
        // Resolving the end offsets needs the consumer to be polled.
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await {
            deliver(&hub, &m, own);
        }
    }
    // Deltas of events the projectors applied before now may have been published before this
    // consumer was positioned: a client resuming from before them is told to resync.
    let cps = read_checkpoints(&pool, CheckpointTable::Partitions, &projections, None, false).await?;
    let floor = cps.values().map(|c| c.cursor).max().unwrap_or_default();
    hub.set_floor((floor.transaction_id, floor.position, u32::MAX) as DeltaKey);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = consumer.recv() => match m {
                    Ok(m) => deliver(&hub, &m, own),
                    Err(e) => {
                        tracing::warn!(error = %e, "delta consumer");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    });
    Ok(())
}

fn deliver(hub: &Hub, m: &rdkafka::message::BorrowedMessage<'_>, own: Option<Uuid>) {
    if !hand_over(hub, m.payload(), own) {
        tracing::warn!(offset = m.offset(), "undecodable delta skipped");
    }
}

/// Publishes a delta message's delta to `hub` unless `own` published it (and delivered it itself).
/// Returns false if the message is not a delta.
fn hand_over(hub: &Hub, payload: Option<&[u8]>, own: Option<Uuid>) -> bool {
    let Some(message) = payload.and_then(|p| serde_json::from_slice::<DeltaMessage>(p).ok()) else {
        return false;
    };
    if own.is_some() && message.origin == own {
        return true;
    }
    match message.into_delta() {
        Some(d) => {
            hub.publish(vec![d]);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(position: i64, origin: Uuid) -> Vec<u8> {
        let d = Delta {
            kind: "contact".into(),
            op: "upsert".into(),
            id: Uuid::new_v4(),
            workspace_id: Uuid::new_v4(),
            position,
            delta_id: format!("7.{position}.0"),
            changed: serde_json::Value::Null,
            key: (7, position, 0),
        };
        serde_json::to_vec(&DeltaMessage::new(&d, origin)).expect("encode")
    }

    #[test]
    fn a_gateway_skips_the_deltas_its_own_projectors_delivered() {
        let (hub, mine, theirs) = (Hub::new(10), Uuid::new_v4(), Uuid::new_v4());
        let mut all = hub.subscribe_all();
        assert!(hand_over(&hub, Some(&message(1, mine)), Some(mine)));
        assert!(hand_over(&hub, Some(&message(2, theirs)), Some(mine)));
        assert!(hand_over(&hub, Some(&message(3, mine)), None), "a gateway without projectors takes all");
        assert!(!hand_over(&hub, Some(b"not a delta"), Some(mine)));
        let taken: Vec<i64> = std::iter::from_fn(|| all.try_recv().ok()).map(|d| d.position).collect();
        assert_eq!(taken, vec![2, 3]);
    }
}
