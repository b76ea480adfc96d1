//! History for auditors, straight from the log:
//! - `GET /v1/history/events?after=<cursor>&limit=<n>`: the workspace's events in gap-free log order,
//!   paged by an opaque cursor.
//! - `GET /v1/history/streams/{stream_id}?from_version=<v>&to_version=<v>&limit=<n>`: one stream.
//! - `GET /v1/history/correlations/{id}?after=<cursor>&limit=<n>`: everything one request caused.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use blazz_commands::as_of::{AsOf, StateAt};
use blazz_commands::store::{LogCursor, LogPage, RecordedEvent};
use blazz_domain::aggregate::StreamId;
use blazz_domain::role::Action;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

const MAX_LIMIT: usize = 1000;

/// An event as the history answers it (and `blazz audit export` writes it).
pub(crate) fn event_json(e: &RecordedEvent) -> Value {
    json!({
        "position": e.position,
        "cursor": LogCursor::of(e).encode(),
        "workspace_id": e.workspace_id,
        "stream_id": e.stream_id,
        "stream_version": e.stream_version,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "schema_version": e.schema_version,
        "recorded_at": e.recorded_at,
        "payload": e.payload,
        "metadata": e.metadata,
        "hash": e.hash.map(hex::encode),
        "erased": e.erased,
    })
}

fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l.unwrap_or(100) {
        0 => Err(ApiError::bad_request("invalid_query", "limit must be at least 1")),
        n => Ok(n.min(MAX_LIMIT)),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    after: Option<String>,
    limit: Option<usize>,
}

fn after(p: &LogParams) -> Result<LogCursor, ApiError> {
    match p.after.as_deref() {
        None | Some("") => Ok(LogCursor::START),
        Some(c) => LogCursor::decode(c)
            .ok_or_else(|| ApiError::bad_request("invalid_cursor", "after must be a cursor from a previous page")),
    }
}

fn page_json(page: &LogPage) -> Json<Value> {
    Json(json!({
        "events": page.events.iter().map(event_json).collect::<Vec<_>>(),
        "next_cursor": page.next.encode(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/history/events",
    tag = "history",
    params(LogParams),
    responses((status = 200, description = "Done.", body = crate::openapi::EventPage)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn log(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<LogParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let page = s.commands.store().read_log(after(&p)?, limit(p.limit)?, Some(caller.workspace_id())).await?;
    Ok(page_json(&page))
}

/// Everything one request caused, in log order: the events carrying its correlation id (the
/// `X-Correlation-Id` answer header of the request; system reactions such as dispatch and delivery
/// statuses carry it on). Another workspace's correlation answers an empty page.
#[utoipa::path(
    get,
    path = "/v1/history/correlations/{id}",
    tag = "history",
    params(("id" = Uuid, Path), LogParams),
    responses((status = 200, description = "Done.", body = crate::openapi::EventPage)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn correlation(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
    Query(p): Query<LogParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let page = s.commands.store().read_correlation(caller.workspace_id(), id, after(&p)?, limit(p.limit)?).await?;
    Ok(page_json(&page))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    from_version: Option<u64>,
    to_version: Option<u64>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/history/streams/{stream_id}",
    tag = "history",
    params(("stream_id" = String, Path, description = "`<category>-<uuid>`, e.g. `contact-…`"), StreamParams),
    responses((status = 200, description = "Done.", body = crate::openapi::StreamPage)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    Path(stream_id): Path<String>,
    Query(p): Query<StreamParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    if StreamId::parse(&stream_id).is_none() {
        return Err(ApiError::bad_request("invalid_path", "stream ids look like contact-<uuid>"));
    }
    let from = p.from_version.unwrap_or(1).max(1);
    let limit = limit(p.limit)? as u64;
    let to = p.to_version.unwrap_or(u64::MAX).min(from.saturating_add(limit - 1));
    let store = s.commands.store();
    let events = store.read_stream(&stream_id, from, Some(to)).await?;
    // Whether the stream exists and is the caller's is decided by its first event.
    let owner = match events.first() {
        Some(e) if e.stream_version == 1 => Some(e.workspace_id),
        _ => store.read_stream(&stream_id, 1, Some(1)).await?.first().map(|e| e.workspace_id),
    };
    if owner != Some(caller.workspace_id()) {
        return Err(ApiError::not_found("stream"));
    }
    let next = events.last().filter(|_| events.len() as u64 == limit).map(|e| e.stream_version + 1);
    Ok(Json(json!({
        "stream_id": stream_id,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "next_from_version": next,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateParams {
    /// The state after the events up to this log position.
    at_position: Option<i64>,
    /// The state after the events recorded at or before this time (RFC 3339).
    at_time: Option<DateTime<Utc>>,
}

/// An aggregate's state as of a past point, folded from its stream (the latest without a point):
/// what a command at that point would have decided on.
#[utoipa::path(
    get,
    path = "/v1/history/streams/{stream_id}/state",
    tag = "history",
    params(("stream_id" = String, Path, description = "`<category>-<uuid>`, e.g. `contact-…`"), StateParams),
    responses((status = 200, description = "Found.", body = StateAt)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn state(
    State(s): State<AppState>,
    caller: Caller,
    Path(stream_id): Path<String>,
    Query(p): Query<StateParams>,
) -> Result<Json<StateAt>, ApiError> {
    let at = match (p.at_position, p.at_time) {
        (Some(position), None) => AsOf::Position(position),
        (None, Some(time)) => AsOf::Time(time),
        (None, None) => AsOf::Now,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("invalid_query", "give at_position or at_time, not both"))
        }
    };
    let stream = StreamId::parse(&stream_id)
        .ok_or_else(|| ApiError::bad_request("invalid_path", "stream ids look like contact-<uuid>"))?;
    state_at(&s, &caller, &stream, at).await.map(Json)
}

/// The state of `stream` of the caller's workspace at `at` (404 for another workspace's stream).
pub(crate) async fn state_at(s: &AppState, caller: &Caller, stream: &StreamId, at: AsOf) -> Result<StateAt, ApiError> {
    caller.require(Action::Read)?;
    s.commands.state_at(caller.workspace_id(), stream, at).await?.ok_or_else(|| ApiError::not_found("stream"))
}
