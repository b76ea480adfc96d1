//! `POST /v1/canned-responses`, `PATCH|DELETE /v1/canned-responses/{id}`: short codes for reply
//! texts, sent with `{"type": "canned", "canned": {"short_code": …}}`.

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::outcome::{CannedCreated, CannedDeleted, CannedWritten};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCanned {
    short_code: String,
    text: String,
}

#[utoipa::path(
    post,
    path = "/v1/canned-responses",
    tag = "agents",
    request_body = NewCanned,
    responses((status = 201, description = "Created.", body = Written<CannedCreated>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<NewCanned>,
) -> Result<Response, ApiError> {
    let NewCanned { short_code, text } = body.value;
    let result = s.commands.create_canned_response(&caller.context(Some(body.fingerprint)), short_code, text).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CannedChange)]
#[serde(deny_unknown_fields)]
pub struct Change {
    text: String,
}

#[utoipa::path(
    patch,
    path = "/v1/canned-responses/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = Change,
    responses((status = 200, description = "Done.", body = Written<CannedWritten>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Change>,
) -> Result<Response, ApiError> {
    let result =
        s.commands.update_canned_response(&caller.context(Some(body.fingerprint)), id, body.value.text).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    delete,
    path = "/v1/canned-responses/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<CannedDeleted>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.delete_canned_response(&caller.context(None), id).await?;
    Ok(command_response(StatusCode::OK, result))
}
