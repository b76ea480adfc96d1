//! The workspace's bot (`/v1/bot`): an OpenAI-compatible chat-completions endpoint that answers
//! conversations in `pending` or hands them to a person. Owners and admins only; the key is never
//! shown again. See docs/operations.md "Bot hand-off".

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use blazz_commands::bot::BotSettings;
use blazz_commands::error::CommandError;
use blazz_domain::role::Action;
use serde_json::{json, Value};

fn stored(e: blazz_commands::credentials::CredentialError) -> ApiError {
    ApiError::internal(&e)
}

/// `PUT /v1/bot`: sets the bot (a new `bot_id`; turns enqueued for the previous one are skipped).
#[utoipa::path(
    put,
    path = "/v1/bot",
    tag = "integrations",
    request_body = BotSettings,
    responses((status = 200, description = "Set; the key is kept sealed.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<BotSettings>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    let settings = body.value.validated().map_err(CommandError::from)?;
    blazz_commands::outbound::guard::check_url(&settings.base_url, s.webhooks_allow_private)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "webhook_url_not_public", e.to_string()))?;
    let bot_id = s.bots.put(caller.workspace_id(), settings).await.map_err(stored)?;
    show_bot(&s, &caller).await.map(|b| Json(b.unwrap_or_else(|| json!({ "bot_id": bot_id }))))
}

#[utoipa::path(
    get,
    path = "/v1/bot",
    tag = "integrations",
    responses((status = 200, description = "The bot (without its key) and its 20 latest turns.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn get(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    show_bot(&s, &caller).await?.map(Json).ok_or_else(|| ApiError::not_found("bot"))
}

#[utoipa::path(
    delete,
    path = "/v1/bot",
    tag = "integrations",
    responses((status = 200, description = "Removed; its turns not yet taken are skipped.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageAutomation)?;
    if !s.bots.delete(caller.workspace_id()).await.map_err(stored)? {
        return Err(ApiError::not_found("bot"));
    }
    Ok(Json(json!({ "deleted": true })))
}

async fn show_bot(s: &AppState, caller: &Caller) -> Result<Option<Value>, ApiError> {
    sqlx::query_scalar(
        "SELECT json_build_object(
            'bot_id', b.bot_id, 'base_url', b.base_url, 'model', b.model, 'system_prompt', b.system_prompt,
            'has_api_key', b.sealed_key IS NOT NULL, 'handoff_keywords', b.handoff_keywords,
            'min_confidence', b.min_confidence, 'history', b.history, 'enabled', b.enabled, 'updated_at', b.updated_at,
            'turns', (SELECT COALESCE(json_agg(t ORDER BY t.position DESC), '[]') FROM (
                SELECT run_id, event_id, conversation_id, position, event_at, status, results, last_error, finished_at
                FROM automation_runs r WHERE r.rule_id = b.bot_id ORDER BY position DESC LIMIT 20) t))
         FROM bot_configs b WHERE b.workspace_id = $1",
    )
    .bind(caller.workspace_id())
    .fetch_optional(&s.pool)
    .await
    .map_err(|e| ApiError::internal(&e))
}
