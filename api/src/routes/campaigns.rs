//! `POST /v1/campaigns` and the lifecycle: `…/{id}/launch`, `/schedule`, `/pause`, `/resume`, `/cancel`.

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::handlers::campaign::NewCampaign;
use blazz_commands::outcome::{CampaignState, CampaignWritten};
use blazz_domain::campaign::{Audience, CampaignCommand, VariableMapping};
use blazz_domain::ids::{CampaignId, ChannelId, ContactId, GroupId, TemplateId};
use blazz_domain::DomainError;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceBody {
    /// `all`, `groups` or `contacts`.
    kind: String,
    #[serde(default)]
    group_ids: Vec<Uuid>,
    #[serde(default)]
    contact_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewCampaign)]
#[serde(deny_unknown_fields)]
pub struct Create {
    name: String,
    channel_id: Uuid,
    template_id: Uuid,
    audience: AudienceBody,
    #[serde(default)]
    #[schema(value_type = Object)]
    variables: BTreeMap<String, VariableMapping>,
    /// In the workspace's time zone, e.g. `2026-12-01T09:00:00`.
    schedule_at: Option<String>,
}

fn audience(b: AudienceBody) -> Result<Audience, DomainError> {
    Ok(match b.kind.as_str() {
        "all" => Audience::AllContacts,
        "groups" => Audience::Groups { group_ids: b.group_ids.into_iter().map(GroupId::from_uuid).collect() },
        "contacts" => Audience::Contacts { contact_ids: b.contact_ids.into_iter().map(ContactId::from_uuid).collect() },
        other => {
            return Err(DomainError::invalid("audience.kind", format!("{other:?}: expected all, groups or contacts")))
        }
    })
}

/// A local time of the workspace's time zone (or an RFC 3339 time with an offset) as UTC.
async fn schedule_time(s: &AppState, caller: &Caller, at: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(at) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M"))
        .map_err(|_| DomainError::invalid("schedule_at", "a local time like 2026-12-01T09:00:00, or RFC 3339"))?;
    let ws =
        s.commands.load::<blazz_domain::workspace::Workspace>(caller.workspace_id(), caller.workspace_id()).await?;
    let tz = ws.state.timezone.unwrap_or_else(blazz_domain::values::TimeZone::utc);
    tz.to_utc(local).ok_or_else(|| {
        DomainError::invalid("schedule_at", "that local time does not exist in the workspace's time zone").into()
    })
}

#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "campaigns",
    request_body = Create,
    responses((status = 201, description = "Created.", body = Written<CampaignWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<Create>) -> Result<Response, ApiError> {
    let b = body.value;
    let schedule_at = match &b.schedule_at {
        Some(at) => Some(schedule_time(&s, &caller, at).await?),
        None => None,
    };
    let input = NewCampaign {
        name: b.name,
        channel_id: ChannelId::from_uuid(b.channel_id),
        template_id: TemplateId::from_uuid(b.template_id),
        audience: audience(b.audience)?,
        variables: b.variables,
        schedule_at,
    };
    let result = s.commands.create_campaign(&caller.context(Some(body.fingerprint)), input).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

/// Starts a launch (202 `launching`); the fan-out runs in the background and ends with the campaign
/// `running` and its counts (`GET /v1/campaigns/{id}`, `campaign` deltas).
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/launch",
    tag = "campaigns",
    params(("id" = Uuid, Path)),
    responses((status = 202, description = "Accepted.", body = Written<CampaignState>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn launch(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let (ctx, id) = (caller.context(None), CampaignId::from_uuid(id));
    let result = s.commands.start_launch(&ctx, id).await?;
    s.launcher.fan_out(ctx, id);
    Ok(command_response(StatusCode::ACCEPTED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    at: String,
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/schedule",
    tag = "campaigns",
    params(("id" = Uuid, Path)),
    request_body = Schedule,
    responses((status = 200, description = "Done.", body = Written<CampaignState>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn schedule(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Schedule>,
) -> Result<Response, ApiError> {
    let at = schedule_time(&s, &caller, &body.value.at).await?;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s
        .commands
        .change_campaign(&ctx, CampaignId::from_uuid(id), |now| CampaignCommand::Schedule { at, now })
        .await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/pause",
    tag = "campaigns",
    params(("id" = Uuid, Path)),
    request_body = Pause,
    responses((status = 200, description = "Done.", body = Written<CampaignState>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Pause>,
) -> Result<Response, ApiError> {
    let reason = body.value.reason.unwrap_or_else(|| "paused by the workspace".into());
    let ctx = caller.context(Some(body.fingerprint));
    let result = s
        .commands
        .change_campaign(&ctx, CampaignId::from_uuid(id), |at| CampaignCommand::Pause { reason: reason.clone(), at })
        .await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/resume",
    tag = "campaigns",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<CampaignState>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let ctx = caller.context(None);
    let result =
        s.commands.change_campaign(&ctx, CampaignId::from_uuid(id), |at| CampaignCommand::Resume { at }).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/cancel",
    tag = "campaigns",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<CampaignState>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn cancel(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let ctx = caller.context(None);
    let result =
        s.commands.change_campaign(&ctx, CampaignId::from_uuid(id), |at| CampaignCommand::Cancel { at }).await?;
    Ok(command_response(StatusCode::OK, result))
}
