//! `POST /v1/api-keys`, `DELETE /v1/api-keys/{id}`. The secret is returned once, on issue. A key may
//! be bound to an agent: it then acts as that agent, with the agent's role.

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::outcome::{ApiKeyIssued, ApiKeyRevoked};
use blazz_domain::ids::{AgentId, ApiKeyId};
use blazz_domain::role::Role;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKey {
    name: String,
    /// Required unless `agent_id` is given (a key bound to an agent has the agent's role).
    role: Option<String>,
    /// The agent the key acts as: every change made with it names the agent.
    agent_id: Option<Uuid>,
}

#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "workspaces",
    request_body = IssueKey,
    responses((status = 201, description = "Created.", body = Written<ApiKeyIssued>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn issue(State(s): State<AppState>, caller: Caller, body: JsonBody<IssueKey>) -> Result<Response, ApiError> {
    let IssueKey { name, role, agent_id } = body.value;
    let role = role.as_deref().map(Role::parse).transpose()?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.issue_api_key(&ctx, name, role, agent_id.map(AgentId::from_uuid)).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "workspaces",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<ApiKeyRevoked>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn revoke(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.revoke_api_key(&caller.context(None), ApiKeyId::from_uuid(id)).await?;
    Ok(command_response(StatusCode::OK, result))
}
