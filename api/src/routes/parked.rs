//! Parked events, for operators: `GET /v1/operator/parked-events` lists them (open ones; `all=true`
//! also applied and skipped ones), `POST /v1/operator/parked-events/{id}/retry` applies the parked
//! events of its stream again in order, `POST …/{id}/skip` drops one and retries the ones behind it.
//! See `blazz_projections::parked`.

use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_projections::parked::{self, ResolveError};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    after: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/operator/parked-events",
    tag = "operator",
    params(ListQuery),
    responses((status = 200, description = "Done.", body = crate::openapi::OperatorPage)),
    security(("operator" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    _operator: Operator,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 1000"));
    }
    let items =
        parked::list(&s.pool, q.all, q.after.unwrap_or(0), limit).await.map_err(blazz_commands::CommandError::from)?;
    let next = items.last().map(|p| p.id);
    Ok(Json(json!({ "items": items, "next_after": next })).into_response())
}

fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::NotFound(_) => ApiError::not_found("parked event"),
        ResolveError::NotOpen(_) => ApiError::new(StatusCode::CONFLICT, "not_open", e.to_string()),
        ResolveError::UnknownProjection(_) => ApiError::new(StatusCode::CONFLICT, "unknown_projection", e.to_string()),
        ResolveError::Projection(e) => ApiError::internal(&e),
    }
}

#[utoipa::path(
    post,
    path = "/v1/operator/parked-events/{id}/retry",
    tag = "operator",
    params(("id" = i64, Path)),
    responses((status = 200, description = "Done.", body = Object)),
    security(("operator" = []))
)]
pub async fn retry(State(s): State<AppState>, _operator: Operator, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let c = &s.commands;
    let r = parked::retry(&s.pool, c.store().as_ref(), c.codec(), id).await.map_err(resolve_error)?;
    Ok(Json(r).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/operator/parked-events/{id}/skip",
    tag = "operator",
    params(("id" = i64, Path)),
    responses((status = 200, description = "Done.", body = Object)),
    security(("operator" = []))
)]
pub async fn skip(State(s): State<AppState>, _operator: Operator, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let c = &s.commands;
    let r = parked::skip(&s.pool, c.store().as_ref(), c.codec(), id).await.map_err(resolve_error)?;
    Ok(Json(r).into_response())
}
