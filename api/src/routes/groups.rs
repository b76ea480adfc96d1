//! `POST /v1/groups`, `PATCH /v1/groups/{id}`, `POST /v1/groups/{id}/members[/remove]`.

use super::command_response;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_domain::ids::{ContactId, GroupId};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    name: String,
}

pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<Named>) -> Result<Response, ApiError> {
    let result = s.commands.create_group(&caller.context(Some(body.fingerprint)), body.value.name).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    contact_ids: Vec<Uuid>,
}

fn ids(m: Members) -> Vec<ContactId> {
    m.contact_ids.into_iter().map(ContactId::from_uuid).collect()
}

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
