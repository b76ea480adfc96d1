//! `POST /v1/messages`: queue a message to a contact on a channel.
//!
//! ```json
//! {"channel_id": "...", "contact_id": "...", "type": "text", "text": {"body": "Halo", "preview_url": false}}
//! {"channel_id": "...", "contact_id": "...", "type": "template", "template": {"id": "...", "variables": {"1": "Budi"}}}
//! {"channel_id": "...", "contact_id": "...", "type": "image", "media": {"link": "https://...", "caption": "..."}}
//! {"channel_id": "...", "contact_id": "...", "type": "canned", "canned": {"short_code": "thanks"}}
//! {"channel_id": "...", "contact_id": "...", "type": "interactive",
//!  "interactive": {"body": "Pick one", "buttons": [{"id": "yes", "title": "Yes"}]}}
//! ```

use super::command_response;
use super::Written;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::handlers::message::{SendContent, SendMessage};
use blazz_commands::outcome::MessageQueued;
use blazz_domain::ids::{ChannelId, ContactId, TemplateId};
use blazz_domain::message::{MediaKind, MediaRef, ReplyButton};
use blazz_domain::DomainError;
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Text {
    body: String,
    #[serde(default)]
    preview_url: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    id: Uuid,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// The provider's media id.
    id: Option<String>,
    /// A public link.
    link: Option<String>,
    /// Ours, from `POST /v1/media` (uploaded to the channel's provider once).
    media_id: Option<Uuid>,
    caption: Option<String>,
    filename: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interactive {
    body: String,
    #[schema(value_type = Vec<Object>)]
    buttons: Vec<ReplyButton>,
    header: Option<String>,
    footer: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedRef {
    short_code: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Send {
    /// Required on `POST /v1/messages`; refused on a conversation's reply (it has its own).
    pub(crate) channel_id: Option<Uuid>,
    pub(crate) contact_id: Option<Uuid>,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
    template: Option<TemplateRef>,
    media: Option<Media>,
    interactive: Option<Interactive>,
    canned: Option<CannedRef>,
    /// Provider message id this message replies to.
    pub(crate) reply_to: Option<String>,
}

fn missing(kind: &str, field: &str) -> ApiError {
    DomainError::invalid(field, format!("a {kind} message needs a \"{field}\" object")).into()
}

pub(crate) fn content(b: Send) -> Result<(SendContent, Send), ApiError> {
    let media_kind = |k: &str| match k {
        "image" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "audio" => Some(MediaKind::Audio),
        "document" => Some(MediaKind::Document),
        "sticker" => Some(MediaKind::Sticker),
        _ => None,
    };
    let mut b = b;
    let c = match b.kind.as_str() {
        "text" => {
            let t = b.text.take().ok_or_else(|| missing("text", "text"))?;
            SendContent::Text { body: t.body, preview_url: t.preview_url }
        }
        "template" => {
            let t = b.template.take().ok_or_else(|| missing("template", "template"))?;
            SendContent::Template { template_id: TemplateId::from_uuid(t.id), variables: t.variables }
        }
        "canned" => {
            let c = b.canned.take().ok_or_else(|| missing("canned", "canned"))?;
            SendContent::Canned { short_code: c.short_code }
        }
        "interactive" => {
            let i = b.interactive.take().ok_or_else(|| missing("interactive", "interactive"))?;
            SendContent::Interactive { body: i.body, buttons: i.buttons, header: i.header, footer: i.footer }
        }
        k => {
            let kind = media_kind(k).ok_or_else(|| {
                ApiError::from(DomainError::invalid(
                    "type",
                    "text, template, canned, interactive, image, video, audio, document or sticker",
                ))
            })?;
            let m = b.media.take().ok_or_else(|| missing(k, "media"))?;
            let media = match (m.id, m.link, m.media_id) {
                (Some(id), None, None) => MediaRef::Id(id),
                (None, Some(link), None) => MediaRef::Link(link),
                (None, None, Some(ours)) => MediaRef::Stored(ours),
                _ => return Err(DomainError::invalid("media", "give exactly one of id, link and media_id").into()),
            };
            SendContent::Media { kind, media, caption: m.caption, filename: m.filename }
        }
    };
    Ok((c, b))
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    request_body = Send,
    responses((status = 202, description = "Accepted.", body = Written<MessageQueued>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn send(State(s): State<AppState>, caller: Caller, body: JsonBody<Send>) -> Result<Response, ApiError> {
    let (content, b) = content(body.value)?;
    super::media::check_stored(&s, &caller, &content).await?;
    let required = |field: &str| DomainError::invalid(field, "is required");
    let input = SendMessage {
        channel_id: ChannelId::from_uuid(b.channel_id.ok_or_else(|| required("channel_id"))?),
        contact_id: ContactId::from_uuid(b.contact_id.ok_or_else(|| required("contact_id"))?),
        content,
        reply_to: b.reply_to,
    };
    let result = s.commands.send_message(&caller.context(Some(body.fingerprint)), input).await?;
    Ok(command_response(StatusCode::ACCEPTED, result))
}
