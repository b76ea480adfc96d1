//! Media (`/v1/media`): what inbound media was fetched and stored, and its bytes, for keys of its
//! workspace only. See docs/operations.md "Media".

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_domain::role::Action;
use object_store::{GetOptions, ObjectStore};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const MEDIA_JSON: &str = "json_build_object(
    'media_id', m.media_id, 'message_id', m.message_id, 'channel_id', m.channel_id, 'direction', m.direction,
    'kind', m.kind, 'mime_type', m.mime_type, 'filename', m.filename, 'size', m.size, 'sha256', m.sha256,
    'status', m.status, 'attempts', m.attempts, 'last_error', m.last_error, 'created_at', m.created_at,
    'stored_at', m.stored_at, 'content_url', '/v1/media/' || m.media_id || '/content')";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The media of this message.
    message_id: Option<Uuid>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// The workspace's media, newest first.
#[utoipa::path(
    get,
    path = "/v1/media",
    tag = "messages",
    params(ListParams),
    responses((status = 200, description = "Media records.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let limit = match p.limit.unwrap_or(50) {
        n @ 1..=500 => n,
        _ => return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 500")),
    };
    let items: Value = sqlx::query_scalar(&format!(
        "SELECT COALESCE(json_agg(x.j ORDER BY x.created_at DESC), '[]') FROM (
            SELECT {MEDIA_JSON} AS j, m.created_at FROM media m
            WHERE m.workspace_id = $1 AND ($2::uuid IS NULL OR m.message_id = $2)
            ORDER BY m.created_at DESC LIMIT $3) x"
    ))
    .bind(caller.workspace_id())
    .bind(p.message_id)
    .bind(limit)
    .fetch_one(&s.pool)
    .await
    .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "items": items })))
}

async fn record(s: &AppState, caller: &Caller, id: Uuid) -> Result<Value, ApiError> {
    let found: Option<Value> =
        sqlx::query_scalar(&format!("SELECT {MEDIA_JSON} FROM media m WHERE m.workspace_id = $1 AND m.media_id = $2"))
            .bind(caller.workspace_id())
            .bind(id)
            .fetch_optional(&s.pool)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    found.ok_or_else(|| ApiError::not_found("media"))
}

#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    tag = "messages",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The media record.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn show(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    record(&s, &caller, id).await.map(Json)
}

/// The media's bytes, with its MIME type; 409 `media_not_stored` while it is being fetched or after
/// fetching failed.
#[utoipa::path(
    get,
    path = "/v1/media/{id}/content",
    tag = "messages",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The bytes.", content_type = "application/octet-stream")),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn content(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let m = record(&s, &caller, id).await?;
    if m["status"] != "stored" {
        let why = format!(
            "the media is {} ({})",
            m["status"].as_str().unwrap_or(""),
            m["last_error"].as_str().unwrap_or("no error")
        );
        return Err(ApiError::new(StatusCode::CONFLICT, "media_not_stored", why));
    }
    let key = blazz_commands::media::object_key(caller.workspace_id(), id);
    let got = s.media.get_opts(&key, GetOptions::default()).await.map_err(|e| ApiError::internal(&e))?;
    let mime = m["mime_type"].as_str().unwrap_or("application/octet-stream").to_owned();
    let body = Body::from_stream(got.into_stream());
    Ok(([(header::CONTENT_TYPE, mime)], body).into_response())
}
