//! Where each projection is: position, lag in events and seconds, and the age of the log's read
//! horizon (the oldest running transaction, which holds every log reader back).

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub projection: String,
    pub position: i64,
    pub events_applied: i64,
    /// Events in the log after the checkpoint.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub projections: Vec<ProjectionStatus>,
    /// How long the oldest transaction of the cluster has been running (it holds the horizon).
    pub horizon_age_seconds: f64,
}

pub async fn status(pool: &PgPool) -> Result<Status, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT c.projection, c.position, c.events_applied,
                (SELECT count(*) FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)),
                coalesce(extract(epoch FROM now() - (SELECT min(e.recorded_at) FROM events e
                    WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)))::float8, 0)
         FROM projection_checkpoints c ORDER BY c.projection",
    )
    .fetch_all(pool)
    .await?;
    let horizon_age_seconds: f64 = sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM max(now() - xact_start))::float8, 0) FROM pg_stat_activity
         WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await?;
    Ok(Status {
        projections: rows
            .into_iter()
            .map(|(projection, position, events_applied, lag_events, lag_seconds)| ProjectionStatus {
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
