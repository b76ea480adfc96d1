//! `POST /v1/channels`, `PATCH /v1/channels/{id}`.

use super::command_response;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::handlers::channel::ConnectChannel;
use blazz_domain::channel::ProviderKind;
use blazz_domain::ids::ChannelId;
use blazz_domain::values::PhoneNumber;
use blazz_domain::DomainError;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    provider: String,
    phone_number_id: String,
    display_phone_number: String,
    rate_limit_per_second: Option<u32>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    rate_limit_per_second: u32,
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Update>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(Some(body.fingerprint));
    let result =
        s.commands.set_channel_rate_limit(&ctx, ChannelId::from_uuid(id), body.value.rate_limit_per_second).await?;
    Ok(command_response(StatusCode::OK, result))
}
