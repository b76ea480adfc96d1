//! `webhook_exceptions`: what a notification held that was not turned into events, kept (outside the
//! log) for operators to look at: written after ingestion, listed by `GET /v1/operator/webhook-exceptions`.

use super::{Exception, WebhookTarget};
use crate::error::CommandError;
use blazz_domain::values::{scrub_json, scrubbed};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Stores a notification's exceptions (and logs each). Kept as received, except for NULs, which
/// PostgreSQL cannot store: those become U+FFFD.
pub async fn record(pool: &PgPool, target: &WebhookTarget, exceptions: &[Exception]) -> Result<(), CommandError> {
    if exceptions.is_empty() {
        return Ok(());
    }
    for e in exceptions {
        tracing::warn!(kind = e.kind, phone_number_id = e.phone_number_id.as_deref(), detail = %e.detail.escape_debug(), "webhook exception");
    }
    let kinds: Vec<&str> = exceptions.iter().map(|e| e.kind).collect();
    let numbers: Vec<Option<String>> = exceptions.iter().map(|e| e.phone_number_id.as_deref().map(scrubbed)).collect();
    let details: Vec<String> = exceptions.iter().map(|e| scrubbed(&e.detail)).collect();
    let payloads: Vec<Value> = exceptions.iter().map(|e| scrub_json(&e.payload)).collect();
    sqlx::query(
        "INSERT INTO webhook_exceptions (channel_id, workspace_id, kind, phone_number_id, detail, payload)
         SELECT $1, $2, k, n, d, p FROM unnest($3::text[], $4::text[], $5::text[], $6::jsonb[]) AS t(k, n, d, p)",
    )
    .bind(target.channel_id.as_uuid())
    .bind(target.workspace_id)
    .bind(&kinds)
    .bind(&numbers)
    .bind(&details)
    .bind(&payloads)
    .execute(pool)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, received_at, channel_id, workspace_id, kind, phone_number_id, detail, payload";

/// A stored exception.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StoredException {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub channel_id: Uuid,
    pub workspace_id: Uuid,
    pub kind: String,
    pub phone_number_id: Option<String>,
    pub detail: String,
    pub payload: Value,
}

/// Up to `limit` exceptions (of `kind`, when given) after the id `after`, oldest first.
pub async fn list(
    pool: &PgPool,
    kind: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredException>, CommandError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhook_exceptions
         WHERE ($1::text IS NULL OR kind = $1) AND id > coalesce($2, 0) ORDER BY id LIMIT $3"
    ))
    .bind(kind)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The `limit` newest exceptions, newest first, and how many came in the last hour.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<(Vec<StoredException>, i64), CommandError> {
    let items = sqlx::query_as(&format!("SELECT {COLUMNS} FROM webhook_exceptions ORDER BY id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let hour: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_exceptions WHERE received_at > now() - interval '1 hour'")
            .fetch_one(pool)
            .await?;
    Ok((items, hour))
}
