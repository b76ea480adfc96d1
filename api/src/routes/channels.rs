//! `POST /v1/channels`, `PATCH /v1/channels/{id}`, `PUT /v1/channels/{id}/credentials`.

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::credentials::{ChannelSecrets, CredentialError, Secret};
use blazz_commands::handlers::channel::ConnectChannel;
use blazz_commands::outcome::{ChannelHalt, ChannelWritten};
use blazz_commands::CommandContext;
use blazz_domain::channel::{Channel, ProviderKind};
use blazz_domain::ids::{ChannelId, TeamId};
use blazz_domain::role::Action;
use blazz_domain::values::PhoneNumber;
use blazz_domain::DomainError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    provider: String,
    phone_number_id: String,
    display_phone_number: String,
    rate_limit_per_second: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/v1/channels",
    tag = "channels",
    request_body = Connect,
    responses((status = 201, description = "Created.", body = Written<ChannelWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn connect(State(s): State<AppState>, caller: Caller, body: JsonBody<Connect>) -> Result<Response, ApiError> {
    let b = body.value;
    let display = PhoneNumber::parse(&b.display_phone_number)
        .map_err(|_| DomainError::invalid("display_phone_number", "an E.164 phone number"))?;
    let input = ConnectChannel {
        provider: ProviderKind::parse(&b.provider)?,
        phone_number_id: b.phone_number_id,
        display_phone_number: display,
        rate_limit_per_second: b.rate_limit_per_second,
    };
    let result = s.commands.connect_channel(&caller.context(Some(body.fingerprint)), input).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChannelChange)]
#[serde(deny_unknown_fields)]
pub struct Update {
    rate_limit_per_second: Option<u32>,
    /// The team new conversations go to; `null` for none.
    #[serde(default, deserialize_with = "super::double_option")]
    inbox_team_id: Option<Option<Uuid>>,
}

/// The answer to `PATCH /v1/channels/{id}`: the fields it changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelUpdated {
    channel_id: ChannelId,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_second: Option<u32>,
    /// The inbox team; `null` when it was cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TeamId>)]
    team_id: Option<Option<TeamId>>,
}

/// `PATCH /v1/channels/{id}`: the send rate and/or the inbox team (each field applied as its own
/// command; the answer merges them and carries the last position written).
#[utoipa::path(
    patch,
    path = "/v1/channels/{id}",
    tag = "channels",
    params(("id" = Uuid, Path)),
    request_body = Update,
    responses((status = 200, description = "Done.", body = Written<ChannelUpdated>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Update>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let (channel, b) = (ChannelId::from_uuid(id), body.value);
    if b.rate_limit_per_second.is_none() && b.inbox_team_id.is_none() {
        return Err(DomainError::invalid("body", "give rate_limit_per_second and/or inbox_team_id").into());
    }
    let rate = match b.rate_limit_per_second {
        Some(rate) => Some(s.commands.set_channel_rate_limit(&ctx, channel, rate).await?),
        None => None,
    };
    let team = match b.inbox_team_id {
        Some(team) => {
            // One idempotency key per request: the first command keeps it.
            let ctx = if rate.is_none() { ctx.clone() } else { CommandContext { idempotency: None, ..ctx.clone() } };
            Some(s.commands.set_channel_inbox_team(&ctx, channel, team.map(TeamId::from_uuid)).await?)
        }
        None => None,
    };
    let result = super::merged(rate, team, |rate, team| ChannelUpdated {
        channel_id: channel,
        rate_limit_per_second: rate.map(|r| r.rate_limit_per_second),
        team_id: team.map(|t| t.team_id),
    });
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    access_token: String,
    app_secret: String,
    verify_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

fn secret(field: &'static str, value: String) -> Result<Secret, DomainError> {
    if value.trim().is_empty() || value.len() > 4096 {
        return Err(DomainError::invalid(field, "1 to 4096 characters"));
    }
    Ok(Secret::new(value))
}

/// `PUT /v1/channels/{id}/credentials`: sets or rotates the channel's secrets. They are sealed outside
/// the event log and never returned.
#[utoipa::path(
    put,
    path = "/v1/channels/{id}/credentials",
    tag = "channels",
    params(("id" = Uuid, Path)),
    request_body = Credentials,
    responses((status = 200, description = "Done.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn set_credentials(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageChannels)?;
    let channel = s.commands.load::<Channel>(caller.workspace_id(), id).await?.state;
    if !channel.connected {
        return Err(DomainError::NotFound("channel").into());
    }
    let b = body.value;
    let secrets = ChannelSecrets {
        access_token: secret("access_token", b.access_token)?,
        app_secret: secret("app_secret", b.app_secret)?,
        verify_token: secret("verify_token", b.verify_token)?,
    };
    s.credentials.put(caller.workspace_id(), id, &secrets).await.map_err(|e| match e {
        CredentialError::Database(e) => ApiError::from(blazz_commands::CommandError::from(e)),
        other => ApiError::internal(&other),
    })?;
    let updated = s.credentials.updated_at(id).await.ok().flatten();
    Ok(Json(json!({ "channel_id": id, "credentials_updated_at": updated, "webhook_path": format!("/v1/webhooks/meta/{id}") }))
        .into_response())
}

/// `POST /v1/channels/{id}/resume`: sends again after the channel was halted (fix its credentials first).
#[utoipa::path(
    post,
    path = "/v1/channels/{id}/resume",
    tag = "channels",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<ChannelHalt>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.set_channel_halted(&caller.context(None), ChannelId::from_uuid(id), None).await?;
    Ok(command_response(StatusCode::OK, result))
}
