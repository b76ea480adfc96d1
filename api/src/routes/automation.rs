//! Automation rules (`/v1/automation-rules`): create (a rule, or a built-in preset), list, show,
//! enable or disable, delete, and read a rule's runs with each action's outcome. Owners and admins
//! only. See docs/operations.md "Automation rules".

use super::command_response;
use super::queries::ReadParams;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::routes::Written;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use blazz_commands::outcome::RuleWritten;
use blazz_domain::automation::{AutomationRule, Preset, RuleCommand, RuleSpec};
use blazz_domain::role::Action;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

fn internal(e: sqlx::Error) -> ApiError {
    ApiError::internal(&e)
}

/// `POST /v1/automation-rules`: trigger, conditions (all must hold) and actions (in order).
#[utoipa::path(
    post,
    path = "/v1/automation-rules",
    tag = "integrations",
    request_body = RuleSpec,
    responses((status = 201, description = "Created and enabled.", body = Written<RuleWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<RuleSpec>) -> Result<Response, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let result = s.commands.create_automation_rule(&caller.context(Some(body.fingerprint)), body.value).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

/// `POST /v1/automation-rules/presets`: a built-in rule (`welcome`, `away_message`).
#[utoipa::path(
    post,
    path = "/v1/automation-rules/presets",
    tag = "integrations",
    request_body = Preset,
    responses((status = 201, description = "Created and enabled.", body = Written<RuleWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create_preset(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<Preset>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.create_automation_rule(&ctx, body.value.spec()).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = RuleChange)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// `false` stops the rule (nothing new is enqueued), `true` starts it again.
    enabled: bool,
}

#[utoipa::path(
    patch,
    path = "/v1/automation-rules/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    request_body = Change,
    responses((status = 200, description = "Done.", body = Written<RuleWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Change>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let command = if body.value.enabled { RuleCommand::Enable } else { RuleCommand::Disable };
    let result = s.commands.change_automation_rule(&caller.context(Some(body.fingerprint)), id, command).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    delete,
    path = "/v1/automation-rules/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Deleted; runs not yet performed are skipped.", body = Written<RuleWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let result = s.commands.change_automation_rule(&caller.context(None), id, RuleCommand::Delete).await?;
    Ok(command_response(StatusCode::OK, result))
}

const RULE_JSON: &str = "json_build_object(
    'rule_id', r.rule_id, 'name', r.name, 'trigger', r.trigger, 'enabled', r.enabled,
    'conditions', r.spec->'conditions', 'actions', r.spec->'actions',
    'max_per_conversation_per_hour', r.spec->'max_per_conversation_per_hour',
    'created_at', r.created_at, 'updated_at', r.updated_at)";

#[utoipa::path(
    get,
    path = "/v1/automation-rules",
    tag = "integrations",
    params(ReadParams),
    responses((status = 200, description = "The workspace's rules, oldest first.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<ReadParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    super::queries::consistent(&s, &caller, p.min_position).await?;
    let items: Value = sqlx::query_scalar(&format!(
        "SELECT COALESCE(json_agg({RULE_JSON} ORDER BY r.created_at), '[]')
         FROM automation_rules r WHERE r.workspace_id = $1 AND NOT r.deleted"
    ))
    .bind(caller.workspace_id())
    .fetch_one(&s.pool)
    .await
    .map_err(internal)?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    get,
    path = "/v1/automation-rules/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path), ReadParams),
    responses((status = 200, description = "The rule.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<ReadParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    super::queries::consistent(&s, &caller, p.min_position).await?;
    let found: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT {RULE_JSON} FROM automation_rules r WHERE r.workspace_id = $1 AND r.rule_id = $2 AND NOT r.deleted"
    ))
    .bind(caller.workspace_id())
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(internal)?;
    found.map(Json).ok_or_else(|| ApiError::not_found("automation rule"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Runs of events before this log position (the `next_before` of the previous page).
    before: Option<i64>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// A rule's runs, newest first: the triggering event, status and each action's outcome.
#[utoipa::path(
    get,
    path = "/v1/automation-rules/{id}/runs",
    tag = "integrations",
    params(("id" = Uuid, Path), RunParams),
    responses((status = 200, description = "A page of runs.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn runs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<RunParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let limit = super::queries::limit(p.limit)?;
    let rule = s.commands.load::<AutomationRule>(caller.workspace_id(), id).await?.state;
    if !rule.created {
        return Err(ApiError::not_found("automation rule"));
    }
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT position, json_build_object(
                'run_id', run_id, 'event_id', event_id, 'stream_id', stream_id, 'position', position,
                'conversation_id', conversation_id, 'event_at', event_at, 'status', status, 'attempts', attempts,
                'results', results, 'last_error', last_error, 'finished_at', finished_at)
         FROM automation_runs WHERE workspace_id = $1 AND rule_id = $2 AND ($3::bigint IS NULL OR position < $3)
         ORDER BY position DESC LIMIT $4",
    )
    .bind(caller.workspace_id())
    .bind(id)
    .bind(p.before)
    .bind(limit)
    .fetch_all(&s.pool)
    .await
    .map_err(internal)?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.0)).flatten();
    Ok(Json(json!({ "items": rows.into_iter().map(|r| r.1).collect::<Vec<_>>(), "next_before": next_before })))
}
