//! `POST /v1/api-keys`, `DELETE /v1/api-keys/{id}`. The secret is returned once, on issue.

use super::command_response;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_domain::ids::ApiKeyId;
use blazz_domain::role::Role;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueKey {
    name: String,
    role: String,
}

pub async fn issue(State(s): State<AppState>, caller: Caller, body: JsonBody<IssueKey>) -> Result<Response, ApiError> {
    let role = Role::parse(&body.value.role)?;
    let result = s.commands.issue_api_key(&caller.context(Some(body.fingerprint)), body.value.name, role).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

pub async fn revoke(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.revoke_api_key(&caller.context(None), ApiKeyId::from_uuid(id)).await?;
    Ok(command_response(StatusCode::OK, result))
}
