//! Queries of the read models. Every list takes `after` (the `next_after` of the previous page) and
//! `limit` (1–500, default 50); every query takes `min_position`: the position a command answered
//! with. The query then waits (up to 5 s) until the projections have applied it, or answers 503
//! `not_yet_consistent`.

mod lists;
mod reports;

pub use lists::*;
pub use reports::*;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::optional_param;
use crate::state::AppState;
use axum::http::StatusCode;
use axum::Json;
use blazz_commands::as_of::AsOf;
use blazz_domain::aggregate::StreamId;
use blazz_domain::role::Action;
use blazz_projections::queries::{self, Filter, List, Page};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::IntoParams;
use uuid::Uuid;

/// How long a query waits for the projections to reach `min_position`.
pub const CONSISTENCY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
pub struct Params {
    after: Option<Uuid>,
    limit: Option<i64>,
    min_position: Option<i64>,
    // Filters (each list uses those that apply to it).
    group_id: Option<Uuid>,
    opted_out: Option<bool>,
    /// `key:value`
    attribute: Option<String>,
    status: Option<String>,
    label: Option<String>,
    unread: Option<bool>,
    /// Conversations assigned to this agent.
    assignee: Option<Uuid>,
    team: Option<Uuid>,
    /// `true`: conversations without an agent.
    unassigned: Option<bool>,
    priority: Option<String>,
    /// Inbox report rows: `agent` (default; per team and agent), `team` or `workspace`.
    by: Option<String>,
    channel_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    /// A single row as of a past point, from the log: a log position, or an RFC 3339 time.
    as_of: Option<String>,
}

/// The paging parameters of every list, as the OpenAPI document shows them ([`Params`] reads them).
#[derive(Debug)]
pub struct Paging;
/// `min_position` alone (a single row's query).
#[derive(Debug)]
pub struct AtPosition;
/// `as_of` of a single row (contacts, conversations, messages, campaigns).
#[derive(Debug)]
pub struct AsOfParam;
/// The days of a report, and `min_position`.
#[derive(Debug)]
pub struct Days;

/// An optional query parameter of `format` (a string of it, or `int64`).
fn query_param(name: &str, format: KnownFormat, description: &str) -> Parameter {
    let kind = if format == KnownFormat::Int64 { Type::Integer } else { Type::String };
    let schema = ObjectBuilder::new().schema_type(kind).format(Some(SchemaFormat::KnownFormat(format)));
    optional_param(name, ParameterIn::Query, schema, description)
}

fn min_position() -> Parameter {
    query_param(
        "min_position",
        KnownFormat::Int64,
        "Wait (up to 5 s) until the read models have applied this log position (a command's `position`).",
    )
}

impl IntoParams for Paging {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query_param("after", KnownFormat::Uuid, "The `next_after` of the previous page."),
            query_param("limit", KnownFormat::Int64, "Page size, 1-500 (default 50)."),
            min_position(),
        ]
    }
}

impl IntoParams for AtPosition {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![min_position()]
    }
}

impl IntoParams for AsOfParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = "Answer from the log, as of a past point: a log position, or an RFC 3339 time. \
            The answer is then the aggregate's state there (as `GET /v1/history/streams/{id}/state`).";
        vec![optional_param("as_of", ParameterIn::Query, ObjectBuilder::new().schema_type(Type::String), description)]
    }
}

impl IntoParams for Days {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query_param("from", KnownFormat::Date, "First UTC day (default 30 days ago)."),
            query_param("to", KnownFormat::Date, "Last UTC day (default today)."),
            min_position(),
        ]
    }
}

/// Waits until the projections have applied the event at `min_position`. A position of another
/// workspace's event answers like one that does not exist: it tells nothing about other tenants.
pub(crate) async fn consistent(s: &AppState, caller: &Caller, min_position: Option<i64>) -> Result<(), ApiError> {
    let Some(position) = min_position else {
        return Ok(());
    };
    let workspace = caller.workspace_id();
    let cursor = blazz_projections::progress::cursor_of(&s.pool, workspace, position)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::bad_request("unknown_position", "min_position is not a position of the log"))?;
    if s.progress.wait_for(workspace, cursor, CONSISTENCY_WAIT).await {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_yet_consistent",
            "the read models have not reached min_position yet; retry",
        ))
    }
}

/// `?min_position=` alone: read your writes of one resource.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Wait until the projections have applied this position (a command's answer).
    pub min_position: Option<i64>,
}

/// A page size: 1–500, default 50.
pub(crate) fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l.unwrap_or(50) {
        n @ 1..=500 => Ok(n),
        _ => Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 500")),
    }
}

fn page_json(p: Page) -> Json<Value> {
    Json(json!({ "items": p.items, "next_after": p.next }))
}

async fn list(
    s: &AppState,
    caller: &Caller,
    which: List,
    p: &Params,
    filters: Vec<Filter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let limit = limit(p.limit)?;
    consistent(s, caller, p.min_position).await?;
    let page = queries::list(&s.pool, which, caller.workspace_id(), &filters, p.after, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(page_json(page))
}

/// A single row: from its read model, or with `as_of` the aggregate's state at that point of the log.
async fn one_as_of<A: blazz_domain::Aggregate>(
    s: &AppState,
    caller: &Caller,
    which: List,
    id: Uuid,
    p: &Params,
    what: &str,
) -> Result<Json<Value>, ApiError> {
    let Some(as_of) = p.as_of.as_deref() else {
        return one(s, caller, which, id, p.min_position, what).await;
    };
    let at = match as_of.parse::<i64>() {
        Ok(position) => AsOf::Position(position),
        Err(_) => AsOf::Time(
            chrono::DateTime::parse_from_rfc3339(as_of)
                .map_err(|_| ApiError::bad_request("invalid_query", "as_of is a log position or an RFC 3339 time"))?
                .to_utc(),
        ),
    };
    let state = super::history::state_at(s, caller, &StreamId::of::<A>(id), at).await?;
    Ok(Json(serde_json::to_value(state).map_err(|e| ApiError::internal(&e))?))
}

async fn one(
    s: &AppState,
    caller: &Caller,
    which: List,
    id: Uuid,
    min_position: Option<i64>,
    what: &str,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    consistent(s, caller, min_position).await?;
    queries::one(&s.pool, which, caller.workspace_id(), id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(what))
}
