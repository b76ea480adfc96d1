//! `POST /v1/groups`, `PATCH /v1/groups/{id}`, `POST /v1/groups/{id}/members[/remove]`.

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::outcome::{GroupMembersAdded, GroupMembersRemoved, GroupWritten};
use blazz_domain::ids::{ContactId, GroupId};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Named {
    name: String,
}

#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "groups",
    request_body = Named,
    responses((status = 201, description = "Created.", body = Written<GroupWritten>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<Named>) -> Result<Response, ApiError> {
    let result = s.commands.create_group(&caller.context(Some(body.fingerprint)), body.value.name).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[utoipa::path(
    patch,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = Uuid, Path)),
    request_body = Named,
    responses((status = 200, description = "Done.", body = Written<GroupWritten>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn rename(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Named>,
) -> Result<Response, ApiError> {
    let result = s
        .commands
        .rename_group(&caller.context(Some(body.fingerprint)), GroupId::from_uuid(id), body.value.name)
        .await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = GroupMembers)]
#[serde(deny_unknown_fields)]
pub struct Members {
    contact_ids: Vec<Uuid>,
}

fn ids(m: Members) -> Vec<ContactId> {
    m.contact_ids.into_iter().map(ContactId::from_uuid).collect()
}

#[utoipa::path(
    post,
    path = "/v1/groups/{id}/members",
    tag = "groups",
    params(("id" = Uuid, Path)),
    request_body = Members,
    responses((status = 200, description = "Done.", body = Written<GroupMembersAdded>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn add_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Members>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.add_group_members(&ctx, GroupId::from_uuid(id), ids(body.value)).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    post,
    path = "/v1/groups/{id}/members/remove",
    tag = "groups",
    params(("id" = Uuid, Path)),
    request_body = Members,
    responses((status = 200, description = "Done.", body = Written<GroupMembersRemoved>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn remove_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Members>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.remove_group_members(&ctx, GroupId::from_uuid(id), ids(body.value)).await?;
    Ok(command_response(StatusCode::OK, result))
}
