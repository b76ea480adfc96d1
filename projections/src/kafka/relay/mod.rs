//! The relay: publishes the log to the events topic in log order.
//!
//! It reads the log gap-free from its checkpoint (like the log feed), sends each event to its
//! workspace's partition keyed by stream id through an idempotent producer, and once the broker has
//! acknowledged the whole batch stores the new checkpoint and each partition's floor. A crash
//! between the two publishes the batch again: consumers skip what they applied.
//!
//! Kafka only carries the log. Every second (and after any error) the relay checks that the broker
//! still has what it published: a missing topic, or a partition whose high watermark is below its
//! *floor* means the broker lost data (a memory-storage broker restarted, a topic deleted and
//! recreated); so does an acknowledgement at an offset below the floor. The floor is the offset of the
//! first message of the relay's last batch to the partition, plus one: a broker that has that batch
//! reports at least that much, even one (tansu 0.6) whose high watermark lags behind a multi-message
//! produce request.
//! A publication that failed (a timed-out delivery the broker may still have stored) can refill an
//! emptied partition past its floor unseen, so after one, and at start, the relay also checks that
//! the message just below each floor is its own before it publishes again ([`Relay::refilled`]).
//! The relay then recreates the topics, bumps the epoch and republishes from the slowest projector's
//! checkpoint, so nothing is lost; consumers that meet the new epoch read the partition from its start,
//! skipping what they applied, so nothing is applied twice.
//!
//! Each message names the one published before it to its partition in its epoch (a chain). Messages
//! published into an emptied topic before the relay noticed follow a hole: a projector that had not
//! applied their predecessor leaves them to the republication (see [`crate::runner`]).
//!
//! One relay per topic publishes at a time (a PostgreSQL advisory lock); others wait as standbys.

mod check;

use super::wire::EventMessage;
use super::{kafka_error, partition_of, Inspector, KafkaConfig};
use crate::error::ProjectionError;
use crate::feed::LogFeed;
use blazz_commands::store::{EventStore, LogCursor, RecordedEvent};
use check::Probe;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Events per published batch.
const BATCH: usize = 1000;
/// How often the relay checks that the broker still has what it published.
const VERIFY_EVERY: Duration = Duration::from_secs(1);

/// How far each topic's relay is behind the log: `(topic, events not published yet, age in seconds
/// of the oldest of them)`. None when no relay has run.
pub async fn lag(pool: &PgPool) -> Result<Vec<(String, i64, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.topic, count(e.position),
                coalesce(extract(epoch FROM now() - min(e.recorded_at))::float8, 0)
         FROM kafka_relay r LEFT JOIN events e ON (e.transaction_id, e.position) > (r.transaction_id, r.position)
         GROUP BY r.topic",
    )
    .fetch_all(pool)
    .await
}

/// Where the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayState {
    pub cursor: LogCursor,
    pub epoch: i64,
}

pub struct Relay {
    pool: PgPool,
    log: LogFeed,
    config: KafkaConfig,
    topic: String,
    /// The projectors whose checkpoints bound a republication.
    projections: Vec<&'static str>,
    producer: FutureProducer,
    inspector: Inspector,
    state: RelayState,
    /// Per partition, the high watermark the broker reports at least while it has what the relay
    /// published (see the module docs).
    floors: Vec<i64>,
    /// Per partition, the last event published to it in this epoch.
    last: Vec<Option<LogCursor>>,
    /// A publication failed since the broker was last found whole: check the floors' messages
    /// before the next one (see [`Self::refilled`]).
    suspect: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("topic", &self.topic).field("state", &self.state).finish()
    }
}

fn producer(config: &KafkaConfig) -> Result<FutureProducer, ProjectionError> {
    config
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .map_err(|e| kafka_error("producer", e))
}

impl Relay {
    pub async fn new(
        pool: PgPool,
        store: Arc<dyn EventStore>,
        config: KafkaConfig,
        projections: Vec<&'static str>,
    ) -> Result<Self, ProjectionError> {
        let topic = config.events_topic();
        let producer = producer(&config)?;
        let inspector = Inspector::new(&config)?;
        let mut relay = Self {
            log: LogFeed::new(pool.clone(), store),
            pool,
            topic,
            projections,
            producer,
            inspector,
            state: RelayState { cursor: LogCursor::START, epoch: 1 },
            floors: vec![0; config.partitions.max(1) as usize],
            last: vec![None; config.partitions.max(1) as usize],
            suspect: false,
            config,
        };
        relay.load().await?;
        Ok(relay)
    }

    pub fn state(&self) -> RelayState {
        self.state
    }

    /// Reads the stored checkpoint, floors and chain.
    async fn load(&mut self) -> Result<(), ProjectionError> {
        sqlx::query("INSERT INTO kafka_relay (topic) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&self.topic)
            .execute(&self.pool)
            .await?;
        let (xid, position, epoch): (String, i64, i64) =
            sqlx::query_as("SELECT transaction_id::text, position, epoch FROM kafka_relay WHERE topic = $1")
                .bind(&self.topic)
                .fetch_one(&self.pool)
                .await?;
        self.state = RelayState { cursor: LogCursor { transaction_id: xid.parse().unwrap_or(0), position }, epoch };
        let rows: Vec<(i32, i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT partition, next_offset, last_transaction_id::text, last_position
             FROM kafka_relay_partitions WHERE topic = $1",
        )
        .bind(&self.topic)
        .fetch_all(&self.pool)
        .await?;
        // A predecessor may have stopped part way through a publication.
        self.suspect = true;
        self.floors.iter_mut().for_each(|o| *o = 0);
        self.last.iter_mut().for_each(|l| *l = None);
        for (p, next, xid, position) in rows {
            if let (Some(o), Some(l)) = (self.floors.get_mut(p as usize), self.last.get_mut(p as usize)) {
                *o = next;
                *l = xid
                    .zip(position)
                    .map(|(x, position)| LogCursor { transaction_id: x.parse().unwrap_or(0), position });
            }
        }
        Ok(())
    }

    /// Publishes the next batch of the log; returns how many events it handled (0: caught up).
    pub async fn step(&mut self) -> Result<usize, ProjectionError> {
        if self.suspect && self.refilled().await? {
            self.rewind().await?;
        }
        self.suspect = false;
        let events = self.log.read(self.state.cursor, BATCH).await?;
        let Some(last) = events.last().map(LogCursor::of) else {
            return Ok(0);
        };
        let mut chain = self.last.clone();
        let (offsets, failed) = self.publish(&events, &mut chain).await;
        // Below what the partition had: the broker lost it since (the batch went into a new, empty
        // topic). Deliveries of a publication that failed part way count too: the retry would land
        // above the floor and hide the loss.
        let lost = offsets.iter().any(|(p, offset)| self.floors.get(*p as usize).is_some_and(|f| offset < f));
        if lost {
            self.rewind().await?;
            return Ok(events.len());
        }
        if let Some(e) = failed {
            // A fresh producer for the next try: this one may be stuck with a producer id or sequence
            // numbers the broker no longer knows (a broker that came back empty).
            self.producer = producer(&self.config)?;
            self.suspect = true;
            return Err(e);
        }
        let mut floors = self.floors.clone();
        for (p, offset) in offsets.iter().rev() {
            if let Some(f) = floors.get_mut(*p as usize) {
                *f = offset + 1;
            }
        }
        let mut tx = self.pool.begin().await?;
        // Losing this checkpoint in a crash only publishes the batch again (consumers skip it), so
        // the commit need not wait for its WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        sqlx::query(
            "UPDATE kafka_relay SET transaction_id = $2::text::xid8, position = $3,
                 events_published = events_published + $4, updated_at = now()
             WHERE topic = $1",
        )
        .bind(&self.topic)
        .bind(last.transaction_id.to_string())
        .bind(last.position)
        .bind(events.len() as i64)
        .execute(&mut *tx)
        .await?;
        store_partitions(&mut tx, &self.topic, &floors, &chain).await?;
        tx.commit().await?;
        self.state.cursor = last;
        self.floors = floors;
        self.last = chain;
        Ok(events.len())
    }

    /// Sends `events` in log order, chained after `chain` (each partition's last event, updated), and
    /// waits for every acknowledgement. Returns each delivered event's partition and offset and, if
    /// any was not delivered, the first error (after waiting for the rest of what was sent).
    async fn publish(
        &self,
        events: &[RecordedEvent],
        chain: &mut [Option<LogCursor>],
    ) -> (Vec<(i32, i64)>, Option<ProjectionError>) {
        let messages: Vec<(i32, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let partition = partition_of(e.workspace_id, self.config.partitions);
                let last = &mut chain[partition as usize];
                let message = EventMessage::new(self.state.epoch, *last, e);
                *last = Some(LogCursor::of(e));
                (partition, serde_json::to_vec(&message).unwrap_or_default())
            })
            .collect();
        // Enqueued one after the other, so each partition receives them in log order (the idempotent
        // producer keeps that order through retries).
        let mut pending: std::collections::VecDeque<DeliveryFuture> = Default::default();
        let mut delivered = Vec::with_capacity(events.len());
        let mut failed = None;
        let mut note = |ack: Result<(i32, i64), ProjectionError>| match ack {
            Ok(offset) => delivered.push(offset),
            Err(e) => {
                failed.get_or_insert(e);
            }
        };
        'sending: for (e, (partition, body)) in events.iter().zip(&messages) {
            let mut record = FutureRecord::to(&self.topic).partition(*partition).key(&e.stream_id).payload(body);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        pending.push_back(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match pending.pop_front() {
                            Some(f) => note(acknowledged(f).await),
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        note(Err(kafka_error("producing", e)));
                        break 'sending;
                    }
                }
            }
        }
        for f in pending {
            note(acknowledged(f).await);
        }
        (delivered, failed)
    }

    /// Runs until `shutdown` turns true: waits to be the active relay, then publishes as the log grows.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        // The lock lives as long as this connection: a crashed relay's standby takes over.
        let mut lock = self.pool.acquire().await?.detach();
        let key = format!("blazz-relay:{}", self.topic);
        tokio::select! {
            r = sqlx::query("SELECT pg_advisory_lock(hashtext($1))").bind(&key).execute(&mut lock) => { r?; }
            _ = shutdown.changed() => return Ok(()),
        }
        self.load().await?;
        // Until the broker is known to be sound (at start, after an error) the relay checks before it
        // publishes; then every VERIFY_EVERY in the background, tagged with the epoch it checked.
        let mut sound = false;
        let mut probing: Option<(i64, tokio::task::JoinHandle<Result<Probe, ProjectionError>>)> = None;
        let mut probed_at = Instant::now();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if !sound {
                if let Err(e) = self.verify().await {
                    tracing::warn!(error = %e, "relay: cannot check the broker; retrying");
                    pause(&mut shutdown, Duration::from_millis(500)).await;
                    continue;
                }
                (sound, probing, probed_at) = (true, None, Instant::now());
            }
            if probing.as_ref().is_some_and(|(_, task)| task.is_finished()) {
                if let Some((epoch, task)) = probing.take() {
                    let answer = task.await.map_err(|e| ProjectionError::Kafka(format!("broker check: {e}")));
                    // A rewind since the probe started made its answer stale.
                    let acted = match answer {
                        Ok(Ok(probe)) if epoch == self.state.epoch => self.act(probe).await.map(|_| ()),
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) | Err(e) => Err(e),
                    };
                    if let Err(e) = acted {
                        tracing::warn!(error = %e, "relay: cannot check the broker; retrying");
                        sound = false;
                        continue;
                    }
                }
            }
            if probing.is_none() && probed_at.elapsed() >= VERIFY_EVERY {
                probing = Some((self.state.epoch, tokio::spawn(self.probe())));
                probed_at = Instant::now();
            }
            match self.step().await {
                // Publishing has no fixed cost per batch worth waiting for more events: batch size 1
                // (no linger after a partial batch).
                Ok(n) => self.log.wait_for_appends(n, 1, &mut shutdown).await,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: publishing failed; checking the broker and retrying");
                    sound = false;
                    pause(&mut shutdown, Duration::from_millis(200)).await;
                }
            }
        }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

async fn acknowledged(f: DeliveryFuture) -> Result<(i32, i64), ProjectionError> {
    match f.await {
        Ok(Ok((partition, offset))) => Ok((partition, offset)),
        Ok(Err((e, _))) => Err(kafka_error("delivery", e)),
        Err(_) => Err(ProjectionError::Kafka("delivery: the producer was dropped".into())),
    }
}

/// Stores each partition's floor and last published event.
async fn store_partitions(
    conn: &mut sqlx::PgConnection,
    topic: &str,
    floors: &[i64],
    last: &[Option<LogCursor>],
) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = (0..floors.len() as i32).collect();
    let xids: Vec<Option<String>> = last.iter().map(|l| l.map(|c| c.transaction_id.to_string())).collect();
    let positions: Vec<Option<i64>> = last.iter().map(|l| l.map(|c| c.position)).collect();
    sqlx::query(
        "INSERT INTO kafka_relay_partitions (topic, partition, next_offset, last_transaction_id, last_position)
         SELECT $1, p, o, x::xid8, l FROM unnest($2::int4[], $3::int8[], $4::text[], $5::int8[]) AS u(p, o, x, l)
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset,
             last_transaction_id = excluded.last_transaction_id, last_position = excluded.last_position",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(floors)
    .bind(&xids)
    .bind(&positions)
    .execute(conn)
    .await?;
    Ok(())
}
