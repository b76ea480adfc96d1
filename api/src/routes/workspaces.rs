//! `POST /v1/workspaces` (operator), `GET /v1/workspace`, `PATCH /v1/workspace`,
//! `PUT /v1/operator/workspaces/{id}/rate-limit` (operator).

use super::command_response;
use super::Written;
use crate::auth::{Caller, Operator};
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::handlers::workspace::SettingsChange;
use blazz_commands::outcome::{WorkspaceCreated, WorkspaceWritten};
use blazz_domain::ids::ApiKeyId;
use blazz_domain::role::{Action, Role};
use blazz_domain::workspace::Workspace;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    name: String,
    timezone: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/workspaces",
    tag = "workspaces",
    request_body = CreateWorkspace,
    responses((status = 201, description = "Created.", body = Written<WorkspaceCreated>)),
    security(("operator" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    op: Operator,
    body: JsonBody<CreateWorkspace>,
) -> Result<Response, ApiError> {
    let ctx = op.context(Uuid::nil(), Some(body.fingerprint));
    let result = s.commands.create_workspace(&ctx, body.value.name, body.value.timezone).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[utoipa::path(
    get,
    path = "/v1/workspace",
    tag = "workspaces",
    responses((status = 200, description = "Done.", body = WorkspaceView)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn show(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let ws = s.commands.load::<Workspace>(caller.workspace_id(), caller.workspace_id()).await?;
    let w = ws.state;
    let api_keys = w
        .keys
        .iter()
        .map(|(id, k)| KeyView { id: *id, name: k.name.clone(), role: k.role, revoked: k.revoked })
        .collect();
    let view = WorkspaceView {
        workspace_id: caller.workspace_id(),
        name: w.name,
        timezone: w.timezone,
        opt_out_keywords: w.opt_out_keywords,
        opt_in_keywords: w.opt_in_keywords,
        api_keys,
        version: ws.version,
    };
    Ok(Json(view).into_response())
}

/// The workspace's settings and keys (never their secrets), from its stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    workspace_id: Uuid,
    name: String,
    #[schema(value_type = Option<String>)]
    timezone: Option<blazz_domain::values::TimeZone>,
    opt_out_keywords: Vec<String>,
    opt_in_keywords: Vec<String>,
    api_keys: Vec<KeyView>,
    /// The workspace stream's version.
    version: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    id: ApiKeyId,
    name: String,
    role: Role,
    revoked: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    name: Option<String>,
    timezone: Option<String>,
    opt_out_keywords: Option<Vec<String>>,
    opt_in_keywords: Option<Vec<String>>,
}

#[utoipa::path(
    patch,
    path = "/v1/workspace",
    tag = "workspaces",
    request_body = UpdateWorkspace,
    responses((status = 200, description = "Done.", body = Written<WorkspaceWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<UpdateWorkspace>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let change = SettingsChange {
        name: b.name,
        timezone: b.timezone,
        opt_out_keywords: b.opt_out_keywords,
        opt_in_keywords: b.opt_in_keywords,
    };
    let result = s.commands.update_workspace_settings(&caller.context(Some(body.fingerprint)), change).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// Requests per second per API key of the workspace; `null` returns to the gateway's default.
    requests_per_second: Option<u32>,
}

/// `PUT /v1/operator/workspaces/{id}/rate-limit` (operator): the workspace's own per-key request rate.
/// Gateways pick it up within seconds.
#[utoipa::path(
    put,
    path = "/v1/operator/workspaces/{id}/rate-limit",
    tag = "operator",
    params(("id" = Uuid, Path)),
    request_body = RateLimitBody,
    responses((status = 200, description = "Done.", body = Object)),
    security(("operator" = []))
)]
pub async fn set_rate_limit(
    State(s): State<AppState>,
    _operator: Operator,
    Path(id): Path<Uuid>,
    body: JsonBody<RateLimitBody>,
) -> Result<Response, ApiError> {
    let rate = match body.value.requests_per_second {
        None => None,
        Some(r @ 1..=1_000_000) => Some(r as i32),
        Some(_) => {
            return Err(ApiError::from(blazz_domain::DomainError::invalid(
                "requests_per_second",
                "between 1 and 1000000, or null",
            )))
        }
    };
    let done = crate::limits::set_workspace_rate(&s.pool, id, rate).await;
    done.map_err(blazz_commands::CommandError::from)?;
    Ok(Json(json!({ "workspace_id": id, "requests_per_second": rate })).into_response())
}
