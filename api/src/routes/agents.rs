//! Agents and teams: `POST /v1/agents`, `PATCH /v1/agents/{id}`, `POST /v1/agents/{id}/availability`,
//! `/deactivate`, `/reactivate`,
//! `POST /v1/teams`, `PATCH /v1/teams/{id}`, `POST /v1/teams/{id}/members[/remove]`.

use super::Written;
use super::{command_response, merged};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::outcome::{AgentActivity, AgentAvailability, AgentWritten, TeamMembers, TeamWritten};
use blazz_commands::CommandContext;
use blazz_domain::agent::Availability;
use blazz_domain::ids::{AgentId, TeamId};
use blazz_domain::role::Role;
use blazz_domain::team::TeamSettings;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    name: String,
    email: String,
    /// `admin`, `agent` (default) or `viewer`.
    role: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/agents",
    tag = "agents",
    request_body = NewAgent,
    responses((status = 201, description = "Created.", body = Written<AgentWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<NewAgent>) -> Result<Response, ApiError> {
    let b = body.value;
    let role = b.role.as_deref().map(Role::parse).transpose()?.unwrap_or(Role::Agent);
    let result = s.commands.create_agent(&caller.context(Some(body.fingerprint)), b.name, b.email, role).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    name: Option<String>,
    /// `admin`, `agent` or `viewer`; keys bound to the agent take it.
    role: Option<String>,
}

/// The answer to `PATCH /v1/agents/{id}`: the agent, and its role when that changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentUpdated {
    agent_id: AgentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

/// `PATCH /v1/agents/{id}`: name and/or role, each its own command; the answer merges them.
#[utoipa::path(
    patch,
    path = "/v1/agents/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = AgentChange,
    responses((status = 200, description = "Done.", body = Written<AgentUpdated>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<AgentChange>,
) -> Result<Response, ApiError> {
    let (ctx, id) = (caller.context(Some(body.fingerprint)), AgentId::from_uuid(id));
    let AgentChange { name, role } = body.value;
    let role = role.as_deref().map(Role::parse).transpose()?;
    if name.is_none() && role.is_none() {
        return Err(blazz_domain::DomainError::invalid("body", "give name and/or role").into());
    }
    let renamed = match name {
        Some(name) => Some(s.commands.rename_agent(&ctx, id, name).await?),
        None => None,
    };
    let role = match role {
        Some(role) => {
            // One idempotency key per request: the first command keeps it.
            let ctx = if renamed.is_none() { ctx.clone() } else { CommandContext { idempotency: None, ..ctx.clone() } };
            Some(s.commands.change_agent_role(&ctx, id, role).await?)
        }
        None => None,
    };
    let result = merged(renamed, role, |_, role| AgentUpdated { agent_id: id, role: role.map(|r| r.role) });
    Ok(command_response(StatusCode::OK, result))
}

/// `POST /v1/agents/{id}/deactivate`: offline, no new conversations, bound keys refused, its
/// conversations handed back to their teams.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/deactivate",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<AgentActivity>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn deactivate(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.set_agent_active(&caller.context(None), AgentId::from_uuid(id), false).await?;
    Ok(command_response(StatusCode::OK, result))
}

/// `POST /v1/agents/{id}/reactivate`: back, offline until it sets its availability.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/reactivate",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<AgentActivity>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn reactivate(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.set_agent_active(&caller.context(None), AgentId::from_uuid(id), true).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAvailability {
    /// `online`, `busy` or `offline`.
    availability: String,
}

#[utoipa::path(
    post,
    path = "/v1/agents/{id}/availability",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = SetAvailability,
    responses((status = 200, description = "Done.", body = Written<AgentAvailability>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn availability(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<SetAvailability>,
) -> Result<Response, ApiError> {
    let availability = Availability::parse(&body.value.availability)?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.set_agent_availability(&ctx, AgentId::from_uuid(id), availability).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Team {
    name: Option<String>,
    auto_assign: Option<bool>,
    /// Open (or pending) conversations an agent may hold before automatic assignment skips them;
    /// `null`: no cap.
    #[serde(default, deserialize_with = "super::double_option")]
    max_open_per_agent: Option<Option<u32>>,
}

impl From<Team> for TeamSettings {
    fn from(t: Team) -> Self {
        Self { name: t.name, auto_assign: t.auto_assign, max_open_per_agent: t.max_open_per_agent }
    }
}

#[utoipa::path(
    post,
    path = "/v1/teams",
    tag = "agents",
    request_body = Team,
    responses((status = 201, description = "Created.", body = Written<TeamWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create_team(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<Team>,
) -> Result<Response, ApiError> {
    let result = s.commands.create_team(&caller.context(Some(body.fingerprint)), body.value.into()).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[utoipa::path(
    patch,
    path = "/v1/teams/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = Team,
    responses((status = 200, description = "Done.", body = Written<TeamWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update_team(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Team>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.update_team(&ctx, TeamId::from_uuid(id), body.value.into()).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TeamMemberIds)]
#[serde(deny_unknown_fields)]
pub struct Members {
    agent_ids: Vec<Uuid>,
}

async fn members(
    s: &AppState,
    caller: &Caller,
    id: Uuid,
    body: JsonBody<Members>,
    add: bool,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let agents = body.value.agent_ids.into_iter().map(AgentId::from_uuid).collect();
    let result = s.commands.change_team_members(&ctx, TeamId::from_uuid(id), agents, add).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    post,
    path = "/v1/teams/{id}/members",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = Members,
    responses((status = 200, description = "Done.", body = Written<TeamMembers>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn add_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Members>,
) -> Result<Response, ApiError> {
    members(&s, &caller, id, body, true).await
}

#[utoipa::path(
    post,
    path = "/v1/teams/{id}/members/remove",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = Members,
    responses((status = 200, description = "Done.", body = Written<TeamMembers>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn remove_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Members>,
) -> Result<Response, ApiError> {
    members(&s, &caller, id, body, false).await
}
