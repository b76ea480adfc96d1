//! The projector runtime: takes batches from a [`Feed`], applies each to every projector and stores
//! their checkpoints in one transaction, then publishes the deltas in log order.
//!
//! The checkpoints are the truth, not memory and not the feed: every batch transaction locks and reads
//! them first and gives each projector only the events after its own checkpoint of the event's lane.
//! So a projection rebuilt past the others (see [`crate::rebuild`]), a redelivered Kafka batch or a
//! topic republished from an older point is never applied twice.

use crate::checkpoints::{at, read_checkpoints, Checkpoint, CheckpointTable, Checkpoints, Lane, LOG_LANE};
use crate::delta::{Change, Delta, DeltaKey, DeltaSink};
use crate::error::ProjectionError;
use crate::feed::{Feed, FeedEvent, LogFeed};
use crate::parked;
use crate::progress::{Progress, Reached};
use crate::projector::{Applied, Projector};
use blazz_commands::codec::Codec;
use blazz_commands::store::{EventStore, LogCursor, RecordedEvent};
use futures::FutureExt;
use sqlx::{PgExecutor, PgPool};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::watch;

/// One checkpoint move of a batch.
struct Advance {
    name: &'static str,
    lane: Lane,
    to: Checkpoint,
    applied: i64,
}

/// Runs projectors over a feed.
pub struct Runner<F: Feed = LogFeed> {
    pool: PgPool,
    feed: F,
    codec: Codec,
    projectors: Vec<Arc<dyn Projector>>,
    sinks: Vec<Arc<dyn DeltaSink>>,
    progress: Arc<watch::Sender<Reached>>,
    /// Whether the log feed's checkpoint rows are known to exist.
    ensured: bool,
    /// The next batch is applied one projector and, on failure, one event at a time under savepoints,
    /// parking what fails; set after a batch failed on an event (see [`ProjectionError::Poisoned`]).
    careful: bool,
}

/// An event of a batch: decoded, or kept with why it could not be (it is parked for every projector).
type Decoded = Result<Applied, (RecordedEvent, String)>;

fn record_of(d: &Decoded) -> &RecordedEvent {
    match d {
        Ok(a) => &a.record,
        Err((r, _)) => r,
    }
}

impl<F: Feed> std::fmt::Debug for Runner<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("projectors", &self.projectors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .finish()
    }
}

impl Runner<LogFeed> {
    /// Projectors on the log feed, publishing their deltas to `sink` (an in-process hub).
    pub fn new(
        pool: PgPool,
        store: Arc<dyn EventStore>,
        codec: Codec,
        projectors: Vec<Arc<dyn Projector>>,
        sink: impl DeltaSink,
    ) -> Self {
        Runner::with_feed(pool.clone(), LogFeed::new(pool, store), codec, projectors, vec![Arc::new(sink)])
    }
}

impl<F: Feed> Runner<F> {
    pub fn with_feed(
        pool: PgPool,
        feed: F,
        codec: Codec,
        projectors: Vec<Arc<dyn Projector>>,
        sinks: Vec<Arc<dyn DeltaSink>>,
    ) -> Self {
        let (progress, _) = watch::channel(Reached::Log(LogCursor::START));
        Self { pool, feed, codec, projectors, sinks, progress: Arc::new(progress), ensured: false, careful: false }
    }

    /// How far these projectors are (log feed: the whole log; Kafka: use [`Progress::polling`]).
    pub fn progress(&self) -> Progress {
        Progress::new(self.progress.subscribe())
    }

    /// Where this runner reports its progress, to hand to a replacement ([`Runner::reporting_to`]).
    pub fn progress_sender(&self) -> Arc<watch::Sender<Reached>> {
        self.progress.clone()
    }

    /// Reports progress through `sender`: a runner restarted by a supervisor keeps its waiters.
    pub fn reporting_to(mut self, sender: Arc<watch::Sender<Reached>>) -> Self {
        self.progress = sender;
        self
    }

    fn names(&self) -> Vec<&'static str> {
        self.projectors.iter().map(|p| p.name()).collect()
    }

    fn table(&self) -> CheckpointTable {
        self.feed.checkpoint_table()
    }

    /// Creates missing checkpoint rows of `lanes` (the log table has one lane and needs this once).
    async fn ensure_rows<'c>(&mut self, conn: impl PgExecutor<'c>, lanes: &[Lane]) -> Result<(), sqlx::Error> {
        let names = self.names();
        match self.table() {
            CheckpointTable::Log if !self.ensured => {
                sqlx::query(
                    "INSERT INTO projection_checkpoints (projection) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                )
                .bind(&names)
                .execute(conn)
                .await?;
                self.ensured = true;
            }
            CheckpointTable::Log => {}
            CheckpointTable::Partitions if lanes.is_empty() => {}
            CheckpointTable::Partitions => {
                sqlx::query(
                    "INSERT INTO projection_partition_checkpoints (projection, partition)
                     SELECT n, l FROM unnest($1::text[]) AS n CROSS JOIN unnest($2::int4[]) AS l
                     ON CONFLICT DO NOTHING",
                )
                .bind(&names)
                .bind(lanes)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    /// Applies the next batch; returns how many events the feed delivered (0: nothing new now).
    #[tracing::instrument(level = "debug", skip_all, fields(events))]
    pub async fn step(&mut self) -> Result<usize, ProjectionError> {
        let names = self.names();
        self.ensure_rows(&self.pool.clone(), &[]).await?;
        let before = read_checkpoints(&self.pool, self.table(), &names, None, false).await?;
        let delivered = self.feed.next_batch(&before).await?;
        if delivered.is_empty() {
            self.report(&before);
            return Ok(0);
        }
        let n = delivered.len();
        tracing::Span::current().record("events", n);
        let started = std::time::Instant::now();
        let mut events = Vec::with_capacity(n);
        for FeedEvent { lane, epoch, prev, record } in delivered {
            let decoded: Decoded = match self.codec.decode(&record) {
                Ok(event) => Ok(Applied { record, event }),
                Err(e) => Err((record, format!("undecodable: {e}"))),
            };
            events.push((lane, epoch, prev, decoded));
        }
        let lanes: Vec<Lane> = events.iter().map(|e| e.0).collect::<BTreeSet<_>>().into_iter().collect();
        let lane_at: HashMap<i64, Lane> = events.iter().map(|e| (record_of(&e.3).position, e.0)).collect();
        let streams: Vec<&str> =
            events.iter().map(|e| record_of(&e.3).stream_id.as_str()).collect::<BTreeSet<_>>().into_iter().collect();

        let mut tx = self.pool.begin().await?;
        // Read models and their checkpoints commit together and can be rebuilt from the log: losing
        // the last few batches in a crash only means applying them again, so this transaction need not
        // wait for its WAL flush (the log's own appends still do).
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        self.ensure_rows(&mut *tx, &lanes).await?;
        let cps = read_checkpoints(&mut *tx, self.table(), &names, Some(&lanes), true).await?;
        // Streams with a parked event wait behind it, per projector.
        let mut held = parked::held(&mut tx, &streams).await?;
        let careful = std::mem::take(&mut self.careful);
        let mut deltas = vec![];
        let mut advances = vec![];
        // The newest epoch of each lane in this batch: stored with every projector's checkpoint, even
        // one that had nothing to apply (a republished batch it had applied already).
        let mut lane_epochs: HashMap<Lane, i64> = HashMap::new();
        for (lane, epoch, _, _) in &events {
            let e = lane_epochs.entry(*lane).or_insert(*epoch);
            *e = (*e).max(*epoch);
        }
        for p in &self.projectors {
            let mine =
                due(&events, |e| (e.0, e.2, LogCursor::of(record_of(&e.3))), |lane| at(&cps, p.name(), lane).cursor);
            // Park what cannot be applied (undecodable, or behind a parked event of its stream).
            let mut refs: Vec<&Applied> = Vec::with_capacity(mine.len());
            for (lane, _, _, d) in &mine {
                let record = record_of(d);
                let key = (p.name().to_owned(), record.stream_id.clone());
                match (d, held.get(&key).copied()) {
                    (Ok(a), None) => refs.push(a),
                    (Ok(_), Some(first)) => {
                        let why = format!("waits behind parked event {first} of its stream");
                        parked::park(&mut tx, p.name(), *lane, record, &why, Some(first)).await?;
                    }
                    (Err((_, why)), first) => {
                        let id = parked::park(&mut tx, p.name(), *lane, record, why, first).await?;
                        held.entry(key).or_insert(id);
                    }
                }
            }
            let applied = if careful {
                self.apply_carefully(&mut tx, p.as_ref(), &lane_at, refs, &mut held).await?
            } else {
                match parked::apply_guarded(p.as_ref(), &mut tx, &refs).await {
                    Ok(changes) => refs.into_iter().zip(changes).collect(),
                    Err(parked::Failure::Poison(error)) => {
                        self.careful = true;
                        return Err(ProjectionError::Poisoned { projection: p.name(), error });
                    }
                    Err(parked::Failure::Transient(e)) => return Err(e),
                }
            };
            let mut counts: HashMap<Lane, i64> = HashMap::new();
            for (a, changes) in applied {
                *counts.entry(lane_at.get(&a.record.position).copied().unwrap_or(LOG_LANE)).or_default() += 1;
                for c in changes {
                    let key = (a.record.transaction_id, a.record.position, deltas.len() as u32);
                    deltas.push((key, a.record.workspace_id, c));
                }
            }
            let mut moved: HashMap<Lane, Advance> = HashMap::new();
            for (lane, _, _, d) in &mine {
                let adv = moved.entry(*lane).or_insert(Advance {
                    name: p.name(),
                    lane: *lane,
                    to: at(&cps, p.name(), *lane),
                    applied: counts.get(lane).copied().unwrap_or(0),
                });
                adv.to.cursor = LogCursor::of(record_of(d));
            }
            for (lane, epoch) in &lane_epochs {
                let was = at(&cps, p.name(), *lane);
                if *epoch > was.epoch || moved.contains_key(lane) {
                    let adv =
                        moved.entry(*lane).or_insert(Advance { name: p.name(), lane: *lane, to: was, applied: 0 });
                    adv.to.epoch = adv.to.epoch.max(*epoch);
                }
            }
            advances.extend(moved.into_values());
        }
        store_advances(&mut tx, self.table(), &advances).await?;
        tx.commit().await?;
        metrics::histogram!("blazz_projection_batch_events").record(n as f64);
        metrics::histogram!("blazz_projection_batch_seconds").record(started.elapsed().as_secs_f64());
        self.feed.committed().await?;
        self.publish(deltas);
        let mut after = before;
        for a in &advances {
            after.insert((a.name.to_owned(), a.lane), a.to);
        }
        self.report(&after);
        Ok(n)
    }

    /// The careful pass over one projector's share of a poisoned batch: all of it under a savepoint,
    /// and if that fails, each event under its own, parking the ones that fail (and the events of
    /// their streams after them). Returns the applied events with their changes.
    async fn apply_carefully<'a>(
        &self,
        tx: &mut sqlx::PgConnection,
        p: &dyn Projector,
        lane_at: &HashMap<i64, Lane>,
        refs: Vec<&'a Applied>,
        held: &mut HashMap<(String, String), i64>,
    ) -> Result<Vec<(&'a Applied, Vec<Change>)>, ProjectionError> {
        sqlx::query("SAVEPOINT projector").execute(&mut *tx).await?;
        match parked::apply_guarded(p, tx, &refs).await {
            Ok(changes) => {
                sqlx::query("RELEASE SAVEPOINT projector").execute(&mut *tx).await?;
                return Ok(refs.into_iter().zip(changes).collect());
            }
            Err(parked::Failure::Transient(e)) => return Err(e),
            Err(parked::Failure::Poison(_)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT projector").execute(&mut *tx).await?;
            }
        }
        let mut out = Vec::with_capacity(refs.len());
        for a in refs {
            let key = (p.name().to_owned(), a.record.stream_id.clone());
            let lane = lane_at.get(&a.record.position).copied().unwrap_or(LOG_LANE);
            if let Some(&first) = held.get(&key) {
                let why = format!("waits behind parked event {first} of its stream");
                parked::park(tx, p.name(), lane, &a.record, &why, Some(first)).await?;
                continue;
            }
            sqlx::query("SAVEPOINT event").execute(&mut *tx).await?;
            match parked::apply_guarded(p, tx, &[a]).await {
                Ok(mut changes) => {
                    sqlx::query("RELEASE SAVEPOINT event").execute(&mut *tx).await?;
                    out.push((a, changes.pop().unwrap_or_default()));
                }
                Err(parked::Failure::Poison(error)) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT event").execute(&mut *tx).await?;
                    let id = parked::park(tx, p.name(), lane, &a.record, &error, None).await?;
                    held.insert(key, id);
                }
                Err(parked::Failure::Transient(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Tells waiting queries how far the log feed's projectors are.
    fn report(&self, cps: &Checkpoints) {
        if self.table() == CheckpointTable::Log {
            let reached = self.names().iter().map(|n| at(cps, n, LOG_LANE).cursor).min().unwrap_or_default();
            self.progress.send_replace(Reached::Log(reached));
        }
    }

    /// Stamps deltas with their place in the log (several projectors may answer one event) and
    /// publishes them in log order.
    fn publish(&self, mut deltas: Vec<(DeltaKey, uuid::Uuid, Change)>) {
        if deltas.is_empty() {
            return;
        }
        deltas.sort_by_key(|d| d.0);
        let mut last = (0, 0);
        let mut index = 0u32;
        let out: Vec<Delta> = deltas
            .into_iter()
            .map(|((xid, position, _), workspace_id, c)| {
                index = if (xid, position) == last { index + 1 } else { 0 };
                last = (xid, position);
                Delta {
                    kind: Cow::Borrowed(c.kind),
                    op: Cow::Borrowed(c.op),
                    id: c.id,
                    workspace_id,
                    position,
                    delta_id: format!("{xid}.{position}.{index}"),
                    changed: c.changed,
                    key: (xid, position, index),
                }
            })
            .collect();
        for s in &self.sinks {
            s.publish(out.clone());
        }
    }

    /// Runs until `shutdown` turns true, finishing the batch in flight. A failed batch is retried (a
    /// Kafka feed delivers the same events again).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let names = self.names();
        let start = read_checkpoints(&self.pool, self.table(), &names, None, false).await?;
        let floor = start.values().map(|c| c.cursor).min().unwrap_or_default();
        for s in &self.sinks {
            s.start_at((floor.transaction_id, floor.position, u32::MAX));
        }
        self.report(&start);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // A panic outside a projector's apply (those are parked) must not end the runner either:
            // the batch's transaction rolled back; it is tried again, carefully.
            let stepped = match AssertUnwindSafe(self.step()).catch_unwind().await {
                Ok(stepped) => stepped,
                Err(panic) => {
                    self.careful = true;
                    Err(ProjectionError::Panicked(parked::panic_message(panic.as_ref())))
                }
            };
            let delivered = match stepped {
                Ok(n) => n,
                // Applied again at once, carefully: what fails is parked.
                Err(e @ ProjectionError::Poisoned { .. }) => {
                    tracing::warn!(error = %e, "a batch failed on an event; applying it again event by event");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "projection batch failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            self.feed.wait(delivered, &mut shutdown).await;
        }
    }
}

/// The events of a batch a projector applies: in each lane, those after its checkpoint (`at`) whose
/// predecessor it has applied. An event whose predecessor is beyond the checkpoint follows a gap (the
/// broker lost messages): it is left for the relay's republication, which fills the gap in order.
/// `key` gives an event's lane, predecessor and cursor.
fn due<T>(
    events: &[T],
    key: impl Fn(&T) -> (Lane, Option<LogCursor>, LogCursor),
    at: impl Fn(Lane) -> LogCursor,
) -> Vec<&T> {
    let mut reached: HashMap<Lane, LogCursor> = HashMap::new();
    let mut warned = BTreeSet::new();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let (lane, prev, cursor) = key(e);
        let done = reached.entry(lane).or_insert_with(|| at(lane));
        if cursor <= *done {
            continue;
        }
        if prev.is_some_and(|p| p > *done) {
            if warned.insert(lane) {
                tracing::warn!(
                    partition = lane,
                    at = %done.encode(),
                    missing_before = %cursor.encode(),
                    "a message is missing before this one: waiting for the relay to republish"
                );
            }
            continue;
        }
        *done = cursor;
        out.push(e);
    }
    out
}

async fn store_advances(
    conn: &mut sqlx::PgConnection,
    table: CheckpointTable,
    advances: &[Advance],
) -> Result<(), sqlx::Error> {
    if advances.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = advances.iter().map(|a| a.name).collect();
    let lanes: Vec<i32> = advances.iter().map(|a| a.lane).collect();
    let xids: Vec<String> = advances.iter().map(|a| a.to.cursor.transaction_id.to_string()).collect();
    let positions: Vec<i64> = advances.iter().map(|a| a.to.cursor.position).collect();
    let counts: Vec<i64> = advances.iter().map(|a| a.applied).collect();
    let epochs: Vec<i64> = advances.iter().map(|a| a.to.epoch).collect();
    let sql = match table {
        CheckpointTable::Log => {
            "UPDATE projection_checkpoints c
             SET transaction_id = u.x::xid8, position = u.p, events_applied = c.events_applied + u.n, updated_at = now()
             FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) AS u(name, lane, x, p, n, e)
             WHERE c.projection = u.name"
        }
        CheckpointTable::Partitions => {
            "UPDATE projection_partition_checkpoints c
             SET transaction_id = u.x::xid8, position = u.p, events_applied = c.events_applied + u.n,
                 epoch = greatest(c.epoch, u.e), updated_at = now()
             FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) AS u(name, lane, x, p, n, e)
             WHERE c.projection = u.name AND c.partition = u.lane"
        }
    };
    sqlx::query(sql)
        .bind(&names)
        .bind(&lanes)
        .bind(&xids)
        .bind(&positions)
        .bind(&counts)
        .bind(&epochs)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(position: i64) -> LogCursor {
        LogCursor { transaction_id: 1, position }
    }

    /// (lane, predecessor, cursor)
    type E = (Lane, Option<LogCursor>, LogCursor);

    fn applied(events: &[E], at: i64) -> Vec<i64> {
        due(events, |e| *e, |_| c(at)).iter().map(|e| e.2.position).collect()
    }

    #[test]
    fn events_after_a_hole_in_the_chain_wait_for_the_republication() {
        // The broker lost 3 and 4; 5 and 6 arrived in the emptied topic, then the republication.
        let batch = [
            (0, Some(c(4)), c(5)),
            (0, Some(c(5)), c(6)),
            (0, None, c(1)),
            (0, Some(c(1)), c(3)),
            (0, Some(c(3)), c(4)),
            (0, Some(c(4)), c(5)),
            (0, Some(c(5)), c(6)),
        ];
        assert_eq!(applied(&batch, 2), vec![3, 4, 5, 6], "5 and 6 only once 3 and 4 are in, each once");
        assert_eq!(applied(&batch[..2], 2), Vec::<i64>::new(), "nothing applied across the hole");
        assert_eq!(applied(&batch[..2], 4), vec![5, 6], "no hole for a projector that had 4");
    }

    #[test]
    fn lanes_are_chained_separately() {
        let batch = [(0, Some(c(1)), c(2)), (1, Some(c(9)), c(10)), (1, Some(c(2)), c(3))];
        let lanes = due(&batch, |e| *e, |lane| if lane == 0 { c(1) } else { c(2) });
        assert_eq!(lanes.iter().map(|e| e.2.position).collect::<Vec<_>>(), vec![2, 3]);
    }
}
