//! Reports: day-bucketed statistics, the inbox report, a campaign's report, usage.

use super::{consistent, AtPosition, Days, Params};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use blazz_domain::role::Action;
use blazz_projections::queries;
use serde_json::{json, Value};
use uuid::Uuid;

/// Day-bucketed statistics: `from`..`to` (default the last 30 days), after `min_position`.
async fn per_day<F, Fut>(s: &AppState, caller: &Caller, p: &Params, rows: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(chrono::NaiveDate, chrono::NaiveDate) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, sqlx::Error>>,
{
    caller.require(Action::Read)?;
    consistent(s, caller, p.min_position).await?;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (p.from.unwrap_or(today - chrono::Days::new(30)), p.to.unwrap_or(today));
    // Dates PostgreSQL's types hold (chrono's reach further, to years before 4713 BC).
    use chrono::Datelike;
    if !(1970..=9999).contains(&from.year()) || !(1970..=9999).contains(&to.year()) || from > to {
        return Err(ApiError::bad_request("invalid_query", "from and to are days of the years 1970-9999, from <= to"));
    }
    let rows = rows(from, to).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "items": rows })))
}

#[utoipa::path(
    get,
    path = "/v1/stats/daily",
    tag = "reports",
    params(Days),
    responses((status = 200, description = "Found.", body = crate::openapi::Rows)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn daily_stats(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    per_day(&s, &caller, &p, |from, to| queries::daily_stats(&s.pool, caller.workspace_id(), from, to)).await
}

/// `GET /v1/usage`: billing reports per channel, day and pricing category.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "reports",
    params(Days),
    responses((status = 200, description = "Found.", body = crate::openapi::Rows)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn usage(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    per_day(&s, &caller, &p, |from, to| queries::usage(&s.pool, caller.workspace_id(), from, to)).await
}

/// `GET /v1/reports/inbox?from=&to=&by=agent|team|workspace`: per UTC day (and team and agent)
/// conversations opened and resolved, first response and resolution times (median, p90), messages sent.
#[utoipa::path(
    get,
    path = "/v1/reports/inbox",
    tag = "reports",
    params(Days, ("by" = Option<String>, Query, description = "agent (default), team or workspace.")),
    responses((status = 200, description = "Found.", body = crate::openapi::Rows)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn inbox_report(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    use blazz_projections::read_models::reports::{self, GroupBy};
    let by = match p.by.as_deref() {
        None | Some("agent") => GroupBy::Agent,
        Some("team") => GroupBy::Team,
        Some("workspace") => GroupBy::Workspace,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "by must be agent, team or workspace")),
    };
    per_day(&s, &caller, &p, |from, to| reports::inbox(&s.pool, caller.workspace_id(), from, to, by)).await
}

/// `GET /v1/reports/campaigns/{id}`: delivery and read rates and replies within 24 hours.
#[utoipa::path(
    get,
    path = "/v1/reports/campaigns/{id}",
    tag = "reports",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn campaign_report(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    consistent(&s, &caller, p.min_position).await?;
    blazz_projections::read_models::reports::campaign(&s.pool, caller.workspace_id(), id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign"))
}
