//! Read models, one projector per file. Each owns its tables (`rm_*`, see
//! `migrations/0003_read_models.sql` and `0004_whatsapp_edge.sql`).

pub mod agents;
pub mod automation;
pub mod campaigns;
pub mod canned;
pub mod catalog;
pub mod contacts;
pub mod conversations;
pub mod groups;
pub mod media;
pub mod messages;
pub mod outbox;
pub mod reports;
pub mod usage;
pub mod webhooks;

use crate::projector::Projector;
use blazz_domain::message::{MessageContent, MessageEvent, MessageStatus};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Every live projector.
pub fn all() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(contacts::Contacts),
        Arc::new(groups::Groups),
        Arc::new(catalog::Templates),
        Arc::new(catalog::Channels),
        Arc::new(conversations::Conversations),
        Arc::new(messages::Messages),
        Arc::new(outbox::Outbox),
        Arc::new(campaigns::Campaigns),
        Arc::new(usage::Usage),
        Arc::new(agents::Agents),
        Arc::new(agents::Teams),
        Arc::new(canned::CannedResponses),
        Arc::new(reports::Reports),
        Arc::new(webhooks::Webhooks),
        Arc::new(automation::Automation),
        Arc::new(media::Media),
    ]
}

/// Finds a projector by name.
pub fn by_name(name: &str) -> Option<Arc<dyn Projector>> {
    all().into_iter().find(|p| p.name() == name)
}

/// A one-line preview of a message, for the inbox and the timeline.
pub fn preview(content: &MessageContent) -> String {
    let text = match content {
        MessageContent::Text { body, .. } => body.clone(),
        MessageContent::Template { rendered, .. } => rendered.body_preview.clone(),
        MessageContent::Media { media_kind, caption, .. } => {
            format!("[{}] {}", tag(media_kind), caption.as_deref().unwrap_or("")).trim_end().to_owned()
        }
        MessageContent::Interactive { body, .. } => body.clone(),
    };
    text.chars().take(200).collect()
}

/// The serialised name of a unit enum value (`ProviderKind::Meta` → `"meta"`).
/// The SQL of a `labels` column after a change: `labels` plus the text array parameter `$added`,
/// less the one in `$removed`, without duplicates, sorted.
pub(crate) fn labels_after(added: u8, removed: u8) -> String {
    format!("ARRAY(SELECT DISTINCT l FROM unnest(labels || ${added}::text[]) AS l WHERE l <> ALL(${removed}::text[]) ORDER BY l)")
}

pub(crate) fn tag<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The status an event gives its message, with the event's time; `None` for
/// the events that change no status (queued: inserted; billed; a retry scheduled).
pub(crate) fn status_of(e: &MessageEvent) -> Option<(MessageStatus, DateTime<Utc>)> {
    Some(match e {
        MessageEvent::Dispatched { at, .. } => (MessageStatus::Dispatched, *at),
        MessageEvent::OutcomeUnknown { at, .. } => (MessageStatus::Unknown, *at),
        MessageEvent::Sent { at, .. } => (MessageStatus::Sent, *at),
        MessageEvent::Delivered { at } => (MessageStatus::Delivered, *at),
        MessageEvent::Read { at } => (MessageStatus::Read, *at),
        MessageEvent::Failed { at, .. } => (MessageStatus::Failed, *at),
        MessageEvent::Queued { .. } | MessageEvent::Billed { .. } | MessageEvent::RetryScheduled { .. } => return None,
    })
}
