//! The `media` projector: for each inbound message carrying media (image, video, audio, document,
//! sticker) inserts one `media` row (pending) in the transaction of its checkpoint, so the media
//! fetcher (`blazz_commands::media`) fetches it from the provider promptly: the provider's URLs
//! expire in minutes. It owns no table: `media` belongs to the fetcher (a rebuild fetches nothing
//! twice; the row is unique per message).

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::conversation::ConversationEvent;
use blazz_domain::DomainEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// The provider message types that carry media.
pub const KINDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];

#[derive(Debug)]
pub struct Media;

#[async_trait]
impl Projector for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Conversation(ConversationEvent::InboundReceived { message: Some(m), .. }) = &a.event else {
            return Ok(vec![]);
        };
        if !KINDS.contains(&m.kind.as_str()) {
            return Ok(vec![]);
        }
        let part = &m.raw[m.kind.as_str()];
        let Some(provider_id) = part["id"].as_str().filter(|id| !id.is_empty() && id.len() <= 256) else {
            return Ok(vec![]);
        };
        let text = |k: &str| part[k].as_str().map(|v| v.chars().take(256).collect::<String>());
        sqlx::query(
            "INSERT INTO media (media_id, workspace_id, channel_id, message_id, direction, kind, provider_media_id,
                                mime_type, expected_sha256, filename)
             VALUES ($1, $2, $3, $4, 'in', $5, $6, $7, $8, $9) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(a.record.workspace_id)
        .bind(m.channel_id.as_uuid())
        .bind(m.message_id.as_uuid())
        .bind(&m.kind)
        .bind(provider_id)
        .bind(text("mime_type"))
        .bind(text("sha256"))
        .bind(text("filename"))
        .execute(conn)
        .await?;
        Ok(vec![])
    }
}
