//! Where each projection is: position, lag in events and seconds, and the age of the log's read
//! horizon (the oldest running transaction, which holds every log reader back).
//!
//! On the log feed a projection has one checkpoint; on the Kafka feed one per partition, and an event
//! is behind when it is after the checkpoint of its workspace's partition.

use crate::checkpoints::{read_checkpoints, slowest_per_lane, CheckpointTable};
use crate::kafka::partition_of;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub projection: String,
    /// The log position of the last applied event (Kafka: the furthest over the partitions).
    pub position: i64,
    pub events_applied: i64,
    /// Events in the log after the checkpoint.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
    /// Events parked because they could not be applied (see [`crate::parked`]).
    pub parked: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub projections: Vec<ProjectionStatus>,
    /// How long the oldest transaction of the cluster has been running (it holds the horizon).
    pub horizon_age_seconds: f64,
}

/// The status of the log feed's projections, or with `kafka_partitions` the Kafka feed's.
pub async fn status(pool: &PgPool, kafka_partitions: Option<i32>) -> Result<Status, sqlx::Error> {
    let rows = match kafka_partitions {
        None => log_feed(pool).await?,
        Some(n) => kafka_feed(pool, n).await?,
    };
    let horizon_age_seconds: f64 = sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM max(now() - xact_start))::float8, 0) FROM pg_stat_activity
         WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await?;
    let parked = crate::parked::counts(pool).await?;
    Ok(Status {
        projections: rows
            .into_iter()
            .map(|(projection, position, events_applied, lag_events, lag_seconds)| ProjectionStatus {
                parked: parked.get(&projection).copied().unwrap_or(0),
                projection,
                position,
                events_applied,
                lag_events,
                lag_seconds,
            })
            .collect(),
        horizon_age_seconds,
    })
}

type Row = (String, i64, i64, i64, f64);

async fn log_feed(pool: &PgPool) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.projection, c.position, c.events_applied,
                (SELECT count(*) FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)),
                coalesce(extract(epoch FROM now() - (SELECT min(e.recorded_at) FROM events e
                    WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)))::float8, 0)
         FROM projection_checkpoints c ORDER BY c.projection",
    )
    .fetch_all(pool)
    .await
}

async fn kafka_feed(pool: &PgPool, partitions: i32) -> Result<Vec<Row>, sqlx::Error> {
    // The workspaces with events after the slowest checkpoint (a partition without a row: the start
    // of the log), and their partitions, computed here as the relay computes them.
    let names: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT projection FROM projection_partition_checkpoints").fetch_all(pool).await?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let cps = read_checkpoints(pool, CheckpointTable::Partitions, &names, None, false).await?;
    let slowest = slowest_per_lane(&cps, &names, 0..partitions).into_values().min().unwrap_or_default();
    let workspaces: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT workspace_id FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2)",
    )
    .bind(slowest.transaction_id.to_string())
    .bind(slowest.position)
    .fetch_all(pool)
    .await?;
    let lanes: Vec<i32> = workspaces.iter().map(|w| partition_of(*w, partitions)).collect();
    sqlx::query_as(
        "WITH names AS (SELECT DISTINCT projection FROM projection_partition_checkpoints),
              lanes AS (SELECT n.projection, p.partition,
                               coalesce(c.transaction_id, '0') AS transaction_id, coalesce(c.position, 0) AS position,
                               coalesce(c.events_applied, 0) AS events_applied
                        FROM names n CROSS JOIN generate_series(0, $3 - 1) AS p(partition)
                        LEFT JOIN projection_partition_checkpoints c
                               ON c.projection = n.projection AND c.partition = p.partition),
              behind AS (SELECT l.projection, count(e.*) AS events, min(e.recorded_at) AS oldest
                         FROM lanes l
                         JOIN unnest($1::uuid[], $2::int4[]) AS m(workspace_id, partition) ON m.partition = l.partition
                         JOIN events e ON e.workspace_id = m.workspace_id
                                      AND (e.transaction_id, e.position) > (l.transaction_id, l.position)
                         GROUP BY l.projection)
         SELECT l.projection, max(l.position), sum(l.events_applied)::int8, coalesce(max(b.events), 0),
                coalesce(extract(epoch FROM now() - max(b.oldest))::float8, 0)
         FROM lanes l LEFT JOIN behind b ON b.projection = l.projection
         GROUP BY l.projection ORDER BY l.projection",
    )
    .bind(&workspaces)
    .bind(&lanes)
    .bind(partitions)
    .fetch_all(pool)
    .await
}
