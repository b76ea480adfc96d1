//! `POST /v1/conversations/{id}/status`, `/labels`, `/assignment`, `/priority`, `/notes`, `/messages`
//! and `/read`: a conversation's inbox status, labels, assignment, priority, private notes,
//! replies, and who read it.

use super::Written;
use super::{command_response, LabelChange};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::outcome::{
    ConversationAssignment, ConversationLabels, ConversationNote, ConversationPriority, ConversationRead,
    ConversationState, MessageQueued,
};
use blazz_domain::conversation::{ConversationStatus, Priority};
use blazz_domain::ids::{AgentId, ConversationId, TeamId};
use blazz_domain::DomainError;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// `open`, `pending`, `snoozed` or `resolved`.
    status: String,
    /// RFC 3339 with an offset; required for `snoozed`, refused otherwise.
    snoozed_until: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/status",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = SetStatus,
    responses((status = 200, description = "Done.", body = Written<ConversationState>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
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

#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/labels",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = super::LabelChange,
    responses((status = 200, description = "Done.", body = Written<ConversationLabels>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn labels(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<LabelChange>,
) -> Result<Response, ApiError> {
    let LabelChange { add, remove } = body.value;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.label_conversation(&ctx, ConversationId::from_uuid(id), add, remove).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The agent; `null` unassigns; absent leaves it as it is.
    #[serde(default, deserialize_with = "super::double_option")]
    agent_id: Option<Option<Uuid>>,
    /// The team; `null` clears it; absent leaves it as it is.
    #[serde(default, deserialize_with = "super::double_option")]
    team_id: Option<Option<Uuid>>,
}

#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/assignment",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = Assignment,
    responses((status = 200, description = "Done.", body = Written<ConversationAssignment>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn assign(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Assignment>,
) -> Result<Response, ApiError> {
    let Assignment { agent_id, team_id } = body.value;
    if agent_id.is_none() && team_id.is_none() {
        return Err(DomainError::invalid("body", "give agent_id and/or team_id (null to clear)").into());
    }
    let ctx = caller.context(Some(body.fingerprint));
    let agent = agent_id.map(|a| a.map(AgentId::from_uuid));
    let team = team_id.map(|t| t.map(TeamId::from_uuid));
    let result = s.commands.assign_conversation(&ctx, ConversationId::from_uuid(id), agent, team).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPriority {
    /// `none`, `low`, `medium`, `high` or `urgent`.
    priority: String,
}

#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/priority",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = SetPriority,
    responses((status = 200, description = "Done.", body = Written<ConversationPriority>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn priority(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<SetPriority>,
) -> Result<Response, ApiError> {
    let priority = Priority::parse(&body.value.priority)?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.set_conversation_priority(&ctx, ConversationId::from_uuid(id), priority).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    text: String,
}

#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/notes",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = Note,
    responses((status = 201, description = "Created.", body = Written<ConversationNote>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn add_note(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Note>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.add_conversation_note(&ctx, ConversationId::from_uuid(id), body.value.text).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

/// A reply: the body of `POST /v1/messages` without `channel_id` and `contact_id` (the
/// conversation's are used).
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/messages",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    request_body = super::messages::Send,
    responses((status = 202, description = "Accepted.", body = Written<MessageQueued>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn reply(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<super::messages::Send>,
) -> Result<Response, ApiError> {
    let (content, b) = super::messages::content(body.value)?;
    super::media::check_stored(&s, &caller, &content).await?;
    if b.channel_id.is_some() || b.contact_id.is_some() {
        return Err(DomainError::invalid("channel_id", "a reply goes to the conversation's channel and contact").into());
    }
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.reply_in_conversation(&ctx, ConversationId::from_uuid(id), content, b.reply_to).await?;
    Ok(command_response(StatusCode::ACCEPTED, result))
}

/// `POST /v1/conversations/{id}/read`: read by the caller; its unread count starts again from zero.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/read",
    tag = "inbox",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<ConversationRead>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn read(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.mark_conversation_read(&caller.context(None), ConversationId::from_uuid(id)).await?;
    Ok(command_response(StatusCode::OK, result))
}
