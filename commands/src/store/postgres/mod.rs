//! The PostgreSQL event store.
//!
//! - [`batch`]: the group-commit writer that lets many concurrent appends share one transaction.
//! - [`coalesce`]: the same idea for multi-stream reads: concurrent reads share one query.
//! - [`read`]: stream reads and the gap-free log read.

mod batch;
mod coalesce;
mod fair;
mod insert;
mod read;
mod snapshots;

use super::{
    AppendError, AppendOutcome, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord, IdempotencyWrite,
    LogCursor, LogPage, RecordedEvent, Snapshot, StoreError,
};
use crate::as_of::AsOf;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// The migrations of the whole system (they live in the top-level `migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Least time between two wake-up notifications of log readers (see `batch`). Readers poll for a while
/// after any activity, at a shorter period than this.
pub const NOTIFY_INTERVAL: Duration = Duration::from_millis(10);

/// Reads of this many streams or more go to the database on their own, not through the coalescer.
const DIRECT_READ_STREAMS: usize = 64;

/// Tuning of the group-commit writer and the read coalescer.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Concurrent writer tasks, each with its own connection and transaction.
    pub writers: usize,
    /// Most events one transaction carries.
    pub max_events: usize,
    /// Concurrent reader tasks answering multi-stream reads.
    pub readers: usize,
    /// Most stream ids one coalesced read asks for.
    pub max_read_streams: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { writers: default_writers(), max_events: 1024, readers: 2, max_read_streams: 512 }
    }
}

/// Group-commit writers by default: one per core, from 2 to 8. More transactions in flight than
/// the server has cores only make smaller batches that fight for the same cores: on 2 cores, 2
/// writers appended 34-41 % more than 4 at 16 concurrent appenders, 8-13 % more at 64, and took
/// 14-17 % more sends over HTTP (docs/benchmarks.md).
pub fn default_writers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

/// How long a pooled connection may sit idle before it is checked again when handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens a pool with the session settings the store relies on: a short idle-in-transaction timeout,
/// so a stuck client cannot hold the log's read horizon back, no parallel plans and no JIT (every
/// query of the store is a short index lookup; parallel workers and JIT compilation, which an
/// unanalysed table's inflated estimates can trigger, only add latency to those), and index paths
/// preferred over sequential scans (see below).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let options = options.options([
        ("idle_in_transaction_session_timeout", "10s"),
        ("max_parallel_workers_per_gather", "0"),
        ("jit", "off"),
        // Index paths wherever one exists. Prepared statements switch to a cached generic plan after
        // a few executions; one made while the log was small (a fresh system) chose a sequential
        // scan and then scanned the whole log on every append for the connection's lifetime (the
        // table outgrows its statistics far faster than autovacuum re-analyses it). Every hot query
        // here is an index lookup; a query with no usable index still gets its sequential scan.
        // (Planning every execution instead, `plan_cache_mode = force_custom_plan`, also avoids the
        // cliff but cost ~0.3 ms of planning per append: 10-15 % fewer sends per second.)
        ("enable_seqscan", "off"),
        ("application_name", "blazz"),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out (a round trip before each append's one
        // statement: a lone writer appended 11-25 % more without it). Only one that sat idle for a while is
        // checked: a connection used a moment ago that has since died fails its statement as it
        // would have a moment after a ping.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?)
}

type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

struct Pending {
    request: AppendRequest,
    reply: Reply,
}

/// The store's side of the append queue: when the last clone of the store goes, the queue closes and
/// the writers stop once they have written what was queued.
struct Submitter(Arc<fair::FairQueue>);

impl Drop for Submitter {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// PostgreSQL implementation of [`EventStore`]. Cheap to clone.
#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    /// Groups of requests: a group reaches a writer whole, so it shares one transaction.
    queue: Arc<Submitter>,
    reads: mpsc::Sender<coalesce::ReadPending>,
}

impl std::fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventStore").finish_non_exhaustive()
    }
}

impl PgEventStore {
    /// Starts the writer tasks on `pool`. Migrations must have run.
    pub fn new(pool: PgPool, config: BatchConfig) -> Self {
        let queue = fair::FairQueue::new(config.writers.max(1));
        let notify = Arc::new(batch::Throttle::new(NOTIFY_INTERVAL));
        for _ in 0..config.writers.max(1) {
            tokio::spawn(batch::writer(pool.clone(), queue.clone(), config.max_events, notify.clone()));
        }
        let queue = Arc::new(Submitter(queue));
        let (reads, read_rx) = mpsc::channel(config.max_read_streams * 4);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for _ in 0..config.readers.max(1) {
            tokio::spawn(coalesce::reader(pool.clone(), read_rx.clone(), config.max_read_streams));
        }
        Self { pool, queue, reads }
    }

    /// How many events of `workspace` were recorded in `[from, to]` (either end open).
    pub async fn count(
        &self,
        workspace: Uuid,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE workspace_id = $1 \
             AND ($2::timestamptz IS NULL OR recorded_at >= $2) AND ($3::timestamptz IS NULL OR recorded_at <= $3)",
        )
        .bind(workspace)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn submit(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.queue.0.push(vec![Pending { request, reply }]).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    #[tracing::instrument(skip_all, fields(stream = %request.stream_id, events = request.events.len()), err(level = "debug"))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        // `Any` can lose a race for the next version to a concurrent writer; it has no expectation to
        // violate, so try again. Only such a request is kept for another try (a copy of its events).
        if request.expected != ExpectedVersion::Any {
            return self.submit(request).await;
        }
        let mut tries = 0;
        loop {
            match self.submit(request.clone()).await {
                Err(AppendError::Conflict { .. }) if tries < 10 => tries += 1,
                other => return other,
            }
        }
    }

    /// The requests travel as one group, so they share a transaction (and a round trip) instead of
    /// trickling into several small batches.
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Vec<Result<AppendOutcome, AppendError>> {
        let n = requests.len();
        // Like `append`: only a request expecting `Any` is kept, to try again after a lost race.
        let (mut group, mut waits, mut again) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for request in requests {
            again.push((request.expected == ExpectedVersion::Any).then(|| request.clone()));
            let (reply, rx) = oneshot::channel();
            group.push(Pending { request, reply });
            waits.push(rx);
        }
        if self.queue.0.push(group).await.is_err() {
            return (0..n).map(|_| Err(StoreError::Closed.into())).collect();
        }
        let mut out = Vec::with_capacity(n);
        for (again, rx) in again.into_iter().zip(waits) {
            out.push(match (rx.await.map_err(|_| AppendError::from(StoreError::Closed)).and_then(|r| r), again) {
                (Err(AppendError::Conflict { .. }), Some(request)) => self.append(request).await,
                (other, _) => other,
            });
        }
        out
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::stream(&self.pool, stream_id, from_version, to_version).await
    }

    async fn read_correlation(
        &self,
        workspace: Uuid,
        correlation_id: Uuid,
        after: LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        read::correlation(&self.pool, workspace, correlation_id, after, limit).await
    }

    async fn snapshot(&self, stream_id: &str, code: &str, at: AsOf) -> Result<Option<Snapshot>, StoreError> {
        snapshots::newest(&self.pool, stream_id, code, at).await
    }

    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        snapshots::put(&self.pool, &snapshots).await
    }

    async fn read_streams(&self, stream_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        if stream_ids.len() >= DIRECT_READ_STREAMS {
            // Already a batch (a fan-out's chunk of contacts): coalescing it would only make the small
            // reads queued beside it (another workspace's send) wait for its rows.
            let ids: Vec<String> =
                stream_ids.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            return read::streams(&self.pool, &ids).await;
        }
        let (reply, rx) = oneshot::channel();
        let pending = coalesce::ReadPending { streams: stream_ids.to_vec(), reply };
        self.reads.send(pending).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_log(&self, after: LogCursor, limit: usize, workspace: Option<Uuid>) -> Result<LogPage, StoreError> {
        read::log(&self.pool, after, limit, workspace).await
    }

    async fn idempotency_record(&self, workspace_id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<(String, serde_json::Value, Option<i64>)> = sqlx::query_as(
            "SELECT fingerprint, result, position FROM idempotency_keys WHERE workspace_id = $1 AND key = $2",
        )
        .bind(workspace_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(fingerprint, result, position)| IdempotencyRecord { fingerprint, result, position }))
    }

    async fn put_idempotency_record(&self, write: IdempotencyWrite, position: Option<i64>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, result, position) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(write.scope)
        .bind(&write.key)
        .bind(&write.fingerprint)
        .bind(&write.result)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim(&self, scope: &str, value: &str) -> Result<Option<Claim>, StoreError> {
        let row: Option<(String, Uuid, serde_json::Value)> =
            sqlx::query_as("SELECT owner, workspace_id, data FROM unique_claims WHERE scope = $1 AND value = $2")
                .bind(scope)
                .bind(value)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(owner, workspace_id, data)| Claim {
            scope: scope.into(),
            value: value.into(),
            owner,
            workspace_id,
            data,
        }))
    }

    async fn claim_owners(&self, scope: &str, workspace_id: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT owner FROM unique_claims WHERE scope = $1 AND workspace_id = $2 ORDER BY owner",
        )
        .bind(scope)
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn owners_with_claim(
        &self,
        scope: &str,
        workspace_id: Uuid,
        owners: &[String],
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT owner FROM unique_claims WHERE scope = $1 AND workspace_id = $2 AND owner = ANY($3)",
        )
        .bind(scope)
        .bind(workspace_id)
        .bind(owners)
        .fetch_all(&self.pool)
        .await?)
    }
}
