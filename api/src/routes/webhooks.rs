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
use blazz_commands::handlers::webhook::{exceptions, WebhookTarget};
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/meta/{channel_id}",
    tag = "webhooks",
    params(("channel_id" = Uuid, Path), Handshake),
    responses((status = 200, description = "The `hub.challenge`, echoed.", body = String, content_type = "text/plain"))
)]
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

#[utoipa::path(
    post,
    path = "/v1/webhooks/meta/{channel_id}",
    tag = "webhooks",
    params(
        ("channel_id" = Uuid, Path),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=<hex HMAC-SHA256 of the body with the app secret>`")
    ),
    request_body(content = Object, description = "A WhatsApp Cloud API notification (`object: whatsapp_business_account`)."),
    responses((status = 200, description = "Taken: every part recorded, or parked as an exception.", body = Object))
)]
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
    exceptions::record(&s.pool, &target, &report.exceptions).await?;
    count_parts(&report);
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsQuery {
    kind: Option<String>,
    /// Only exceptions with a larger id (paging).
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/operator/webhook-exceptions`: the newest first, or after an id.
#[utoipa::path(
    get,
    path = "/v1/operator/webhook-exceptions",
    tag = "operator",
    params(ExceptionsQuery),
    responses((status = 200, description = "Done.", body = crate::openapi::OperatorPage)),
    security(("operator" = []))
)]
pub async fn list_exceptions(
    State(s): State<AppState>,
    _operator: Operator,
    Query(q): Query<ExceptionsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 1000"));
    }
    let items = exceptions::list(&s.pool, q.kind.as_deref(), q.after, limit).await?;
    let next = items.last().map(|e| e.id);
    Ok(Json(json!({ "items": items, "next_after": next })).into_response())
}

/// Counts a notification's parts by outcome (`blazz_webhook_parts_total`), exceptions by kind.
fn count_parts(report: &blazz_commands::handlers::webhook::IngestReport) {
    for (outcome, n) in [
        ("status", report.statuses),
        ("inbound", report.inbound),
        ("template_update", report.template_updates),
        ("absorbed", report.absorbed),
    ] {
        metrics::counter!("blazz_webhook_parts_total", "outcome" => outcome, "kind" => "").increment(n as u64);
    }
    for e in &report.exceptions {
        metrics::counter!("blazz_webhook_parts_total", "outcome" => "exception", "kind" => e.kind).increment(1);
    }
}
