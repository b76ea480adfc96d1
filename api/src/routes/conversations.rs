//! `POST /v1/conversations/{id}/status` and `/labels`: a conversation's inbox status and labels.

use super::command_response;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_domain::conversation::ConversationStatus;
use blazz_domain::ids::ConversationId;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// `open`, `pending`, `snoozed` or `resolved`.
    status: String,
    /// RFC 3339 with an offset; required for `snoozed`, refused otherwise.
    snoozed_until: Option<DateTime<Utc>>,
}

pub async fn set_status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<SetStatus>,
) -> Result<Response, ApiError> {
    let status = ConversationStatus::parse(&body.value.status)?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s
        .commands
        .set_conversation_status(&ctx, ConversationId::from_uuid(id), status, body.value.snoozed_until)
        .await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

pub async fn labels(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Labels>,
) -> Result<Response, ApiError> {
    let Labels { add, remove } = body.value;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.label_conversation(&ctx, ConversationId::from_uuid(id), add, remove).await?;
    Ok(command_response(StatusCode::OK, result))
}
