//! Providers: the services that deliver WhatsApp messages, behind one trait.
//!
//! - [`meta`]: the WhatsApp Cloud API (HTTP client, request bodies, response and webhook formats).
//! - [`sandbox`]: a simulator that accepts sends and later posts signed, Meta-format webhooks to our own
//!   ingestion endpoint, so the whole loop runs without a Meta account.
//! - [`signature`]: `X-Hub-Signature-256` (HMAC-SHA256 over the raw body), made and checked.

pub mod meta;
pub mod sandbox;
pub mod signature;

use crate::credentials::ChannelSecrets;
use async_trait::async_trait;
use blazz_domain::ids::{ChannelId, MessageId};
use blazz_domain::message::{MessageContent, ProviderError};
use blazz_domain::values::Destination;

/// The sending channel as a provider needs it.
#[derive(Debug, Clone)]
pub struct Sender {
    pub channel_id: ChannelId,
    pub phone_number_id: String,
}

/// One outbound message.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Our id, sent along (`biz_opaque_callback_data`) and echoed in every status webhook.
    pub message_id: MessageId,
    /// A phone number, or for a user known only by it, a business-scoped user id.
    pub to: Destination,
    pub content: MessageContent,
    /// Provider id of the inbound message this one replies to.
    pub reply_to: Option<String>,
}

/// The provider accepted the message (it may still fail later, reported by webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The provider answered with an error: nothing was sent. Its class says what to do next.
    #[error("provider error {}: {}", .0.code, .0.title)]
    Rejected(ProviderError),
    /// The request never reached the provider (connection refused, DNS): safe to try again.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The request may have reached the provider but no answer came back (timeout, cut connection,
    /// unreadable answer): the outcome is unknown and must not be resent blindly.
    #[error("provider outcome unknown: {0}")]
    Unknown(String),
}

/// Our code of media a provider refused, or that is not there to upload (final, not Meta's).
pub const MEDIA_REFUSED: i64 = -4;

/// A file to upload to a provider, to send by the id it answers.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bytes: Vec<u8>,
    pub mime_type: String,
    pub filename: String,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    async fn send(&self, sender: &Sender, secrets: &ChannelSecrets, message: &Outbound) -> Result<Accepted, SendError>;
    /// Uploads media for the sender's number; answers the provider's media id.
    async fn upload(&self, sender: &Sender, secrets: &ChannelSecrets, file: &Upload) -> Result<String, SendError>;
}

impl std::fmt::Debug for dyn Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Provider")
    }
}
