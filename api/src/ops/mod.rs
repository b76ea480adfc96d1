//! The live operations page: `GET /ops` serves one HTML file (no build step, no data in it);
//! `GET /v1/operator/overview` answers what it shows, and `GET /v1/operator/stream` pushes it once a
//! second over a WebSocket. Both need the operator token: the stream takes it as its first message
//! (`{"token": "…"}`), so it never appears in a URL or a log.
//!
//! What it shows: campaigns launching, running or paused with progress and rate; each projection's
//! position, lag and parked events, and the log's read horizon; per channel its rate limit, queue
//! (due, held), halt, and what this process sent; the newest webhook exceptions.

use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::Upgrade;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;
use subtle::ConstantTimeEq;

const PAGE: &str = include_str!("page.html");
/// How long a new stream may take to send its token.
const TOKEN_WAIT: Duration = Duration::from_secs(5);
const EVERY: Duration = Duration::from_secs(1);

/// `GET /ops`.
#[utoipa::path(
    get,
    path = "/ops",
    tag = "operator",
    responses((status = 200, description = "The live operations page (it asks for the operator token).", body = String, content_type = "text/html"))
)]
pub async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

/// What the page shows, as of now.
pub async fn overview(s: &AppState) -> Result<Value, ApiError> {
    use blazz_projections::read_models::{campaigns, outbox};
    let internal = |e: sqlx::Error| ApiError::internal(&e);
    let status = blazz_projections::status::status(&s.pool, s.kafka_partitions).await.map_err(internal)?;
    let active = campaigns::active(&s.pool, 50).await.map_err(internal)?;
    let mut channels = outbox::channels(&s.pool, 50).await.map_err(internal)?;
    let sent = crate::dispatch::sent_by_channel();
    for c in &mut channels {
        let id = c["channel_id"].as_str().and_then(|i| uuid::Uuid::try_parse(i).ok());
        c["sent_here"] = json!(id.and_then(|i| sent.get(&i)).copied().unwrap_or(0));
    }
    let (exceptions, last_hour) = blazz_commands::handlers::webhook::exceptions::recent(&s.pool, 10).await?;
    let exceptions: Vec<Value> = exceptions
        .into_iter()
        .map(|e| json!({ "id": e.id, "received_at": e.received_at, "kind": e.kind, "detail": e.detail, "channel_id": e.channel_id }))
        .collect();
    Ok(json!({
        "at": chrono::Utc::now(),
        "campaigns": active,
        "projections": status.projections,
        "horizon_age_seconds": status.horizon_age_seconds,
        "channels": channels,
        "exceptions": exceptions,
        "exceptions_last_hour": last_hour,
    }))
}

/// `GET /v1/operator/overview`.
#[utoipa::path(
    get,
    path = "/v1/operator/overview",
    tag = "operator",
    responses((status = 200, description = "What the operations page shows: campaigns, projections, dispatch, exceptions, parked events.", body = Object)),
    security(("operator" = []))
)]
pub async fn overview_json(State(s): State<AppState>, _operator: Operator) -> Result<Json<Value>, ApiError> {
    Ok(Json(overview(&s).await?))
}

/// `GET /v1/operator/stream`: the overview once a second, after the token.
#[utoipa::path(
    get,
    path = "/v1/operator/stream",
    tag = "operator",
    responses((status = 101, description = "A WebSocket: send the operator token as the first message, then receive an overview every second."))
)]
pub async fn stream(State(s): State<AppState>, Upgrade(upgrade): Upgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve(socket, s))
}

async fn serve(mut socket: WebSocket, s: AppState) {
    let refuse = |message: &str| Message::Text(json!({ "type": "error", "message": message }).to_string().into());
    let first = tokio::time::timeout(TOKEN_WAIT, socket.recv()).await;
    let token = match first {
        Ok(Some(Ok(Message::Text(t)))) => {
            serde_json::from_str::<Value>(&t).ok().and_then(|v| v["token"].as_str().map(str::to_owned))
        }
        _ => None,
    };
    let allowed = match (&s.operator_token, token) {
        (Some(expected), Some(given)) => bool::from(given.as_bytes().ct_eq(expected.as_bytes())),
        _ => false,
    };
    if !allowed {
        let _ = socket.send(refuse("the operator token is required")).await;
        let _ = socket.send(Message::Close(None)).await;
        return;
    }
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let message = match overview(&s).await {
                    Ok(o) => json!({ "type": "overview", "overview": o }),
                    Err(_) => json!({ "type": "unavailable", "message": "the overview could not be read; retrying" }),
                };
                let sent = tokio::time::timeout(EVERY * 5, socket.send(Message::Text(message.to_string().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
