//! Meta's webhook, one path per channel: `GET /v1/webhooks/meta/{channel_id}` (the verification
//! handshake) and `POST` (notifications). A POST is accepted only with a valid `X-Hub-Signature-256`
//! over the raw body, keyed with the channel's app secret; its contents are written as events before
//! the 200 goes out. Parts that cannot be routed are answered 200 too (Meta would retry them for days)
//! and kept in `webhook_exceptions`, listed at `GET /v1/operator/webhook-exceptions`.

use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::{Path, Query, RequestMeta};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::credentials::{CredentialError, StoredCredentials};
use blazz_commands::handlers::webhook::{Exception, WebhookTarget};
use blazz_commands::provider::meta::webhook::Notification;
use blazz_commands::provider::signature;
use blazz_domain::ids::ChannelId;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Largest webhook body accepted (Meta's notifications are far smaller).
pub const WEBHOOK_BODY_LIMIT: usize = 3 * 1024 * 1024;

async fn credentials(s: &AppState, channel: Uuid) -> Result<StoredCredentials, ApiError> {
    match s.credentials.get(channel).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "channel_not_configured",
            "no channel with credentials at this webhook path",
        )),
        Err(CredentialError::Database(e)) => Err(blazz_commands::CommandError::from(e).into()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
}

pub async fn verify(
    State(s): State<AppState>,
    Path(channel): Path<Uuid>,
    Query(q): Query<Handshake>,
) -> Result<Response, ApiError> {
    let stored = credentials(&s, channel).await?;
    let expected = stored.secrets.verify_token.expose().as_bytes();
    let presented = q.verify_token.unwrap_or_default();
    let token_ok = bool::from(presented.as_bytes().ct_eq(expected));
    match (q.mode.as_deref(), q.challenge, token_ok) {
        (Some("subscribe"), Some(challenge), true) => Ok((StatusCode::OK, challenge).into_response()),
        _ => Err(ApiError::new(StatusCode::FORBIDDEN, "verification_failed", "wrong hub.mode or hub.verify_token")),
    }
}

pub async fn receive(
    State(s): State<AppState>,
    Path(channel): Path<Uuid>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let stored = credentials(&s, channel).await?;
    let presented = headers.get(signature::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !signature::verify(stored.secrets.app_secret.expose(), &body, presented) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", "X-Hub-Signature-256 does not match"));
    }
    let notification: Notification = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not a webhook notification: {e}")))?;
    if notification.object != "whatsapp_business_account" {
        return Err(ApiError::bad_request("unsupported_object", "object must be whatsapp_business_account"));
    }
    let target = WebhookTarget { workspace_id: stored.workspace_id, channel_id: ChannelId::from_uuid(channel) };
    let report = s.commands.ingest_meta_webhook(target, notification, meta.request_id.clone()).await?;
    record_exceptions(&s, &target, &report.exceptions).await?;
    Ok(Json(json!({
        "statuses": report.statuses,
        "inbound": report.inbound,
        "template_updates": report.template_updates,
        "absorbed": report.absorbed,
        "exceptions": report.exceptions.len(),
        "position": report.position,
    }))
    .into_response())
}

async fn record_exceptions(s: &AppState, target: &WebhookTarget, exceptions: &[Exception]) -> Result<(), ApiError> {
    if exceptions.is_empty() {
        return Ok(());
    }
    for e in exceptions {
        tracing::warn!(kind = e.kind, phone_number_id = e.phone_number_id.as_deref(), detail = %e.detail.escape_debug(), "webhook exception");
    }
    // Kept as received, except for NULs (which PostgreSQL cannot store): those become U+FFFD.
    use blazz_domain::values::{scrub_json, scrubbed};
    let kinds: Vec<&str> = exceptions.iter().map(|e| e.kind).collect();
    let numbers: Vec<Option<String>> = exceptions.iter().map(|e| e.phone_number_id.as_deref().map(scrubbed)).collect();
    let details: Vec<String> = exceptions.iter().map(|e| scrubbed(&e.detail)).collect();
    let payloads: Vec<serde_json::Value> = exceptions.iter().map(|e| scrub_json(&e.payload)).collect();
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
    .execute(&s.pool)
    .await
    .map_err(blazz_commands::CommandError::from)?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsQuery {
    kind: Option<String>,
    /// Only exceptions with a larger id (paging).
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/operator/webhook-exceptions`: the newest first, or after an id.
pub async fn exceptions(
    State(s): State<AppState>,
    _operator: Operator,
    Query(q): Query<ExceptionsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 1000"));
    }
    type Row = (i64, chrono::DateTime<chrono::Utc>, Uuid, Uuid, String, Option<String>, String, serde_json::Value);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, received_at, channel_id, workspace_id, kind, phone_number_id, detail, payload FROM webhook_exceptions
         WHERE ($1::text IS NULL OR kind = $1) AND id > coalesce($2, 0) ORDER BY id LIMIT $3",
    )
    .bind(&q.kind)
    .bind(q.after)
    .bind(limit)
    .fetch_all(&s.pool)
    .await
    .map_err(blazz_commands::CommandError::from)?;
    let next = rows.last().map(|r| r.0);
    let items: Vec<_> = rows
        .into_iter()
        .map(|(id, at, channel, workspace, kind, number, detail, payload)| {
            json!({ "id": id, "received_at": at, "channel_id": channel, "workspace_id": workspace, "kind": kind,
                    "phone_number_id": number, "detail": detail, "payload": payload })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_after": next })).into_response())
}
