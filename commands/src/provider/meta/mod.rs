//! The WhatsApp Cloud API: `POST {base}/{version}/{phone_number_id}/messages` with a bearer token.
//!
//! - [`wire`]: request bodies for every content kind, and the success and error answers.
//! - [`webhook`]: the webhook notification format.

pub mod webhook;
pub mod wire;

use super::{Accepted, Outbound, Provider, SendError, Sender};
use crate::credentials::ChannelSecrets;
use async_trait::async_trait;
use std::time::Duration;
use wire::Answer;

/// Where the Graph API is and which version to call.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// e.g. `https://graph.facebook.com`.
    pub base_url: String,
    /// e.g. `v21.0`.
    pub api_version: String,
    pub timeout: Duration,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            base_url: "https://graph.facebook.com".into(),
            api_version: "v21.0".into(),
            timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetaProvider {
    config: MetaConfig,
    http: reqwest::Client,
}

impl MetaProvider {
    pub fn new(config: MetaConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .expect("the HTTP client configuration is valid");
        Self { config, http }
    }

    fn url(&self, phone_number_id: &str) -> String {
        format!(
            "{}/{}/{}/messages",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version,
            phone_number_id
        )
    }
}

#[async_trait]
impl Provider for MetaProvider {
    /// `POST /{version}/{phone_number_id}/media` (multipart: `messaging_product`, `type`, `file`).
    async fn upload(
        &self,
        sender: &Sender,
        secrets: &ChannelSecrets,
        file: &super::Upload,
    ) -> Result<String, SendError> {
        let part = reqwest::multipart::Part::bytes(file.bytes.clone())
            .file_name(file.filename.clone())
            .mime_str(&file.mime_type)
            .map_err(|e| {
                let why = Some(format!("{}: {e}", file.mime_type));
                SendError::Rejected(blazz_domain::message::ProviderError::new(
                    super::MEDIA_REFUSED,
                    "media type not accepted",
                    why,
                ))
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.mime_type.clone())
            .part("file", part);
        let url = format!(
            "{}/{}/{}/media",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version,
            sender.phone_number_id
        );
        let response = self.http.post(url).bearer_auth(secrets.access_token.expose()).multipart(form).send().await;
        let response = response.map_err(|e| SendError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| SendError::Unreachable(e.to_string()))?;
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match answer["id"].as_str() {
            Some(id) if status.is_success() && !id.is_empty() => Ok(id.to_owned()),
            _ => match wire::parse_answer(&body) {
                Some(Answer::Rejected(error)) => Err(SendError::Rejected(error)),
                _ => Err(SendError::Unreachable(format!("media upload: HTTP {status}"))),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(channel = %sender.channel_id, message = %message.message_id), err)]
    async fn send(&self, sender: &Sender, secrets: &ChannelSecrets, message: &Outbound) -> Result<Accepted, SendError> {
        let response = self
            .http
            .post(self.url(&sender.phone_number_id))
            .bearer_auth(secrets.access_token.expose())
            .json(&wire::request_body(message))
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    SendError::Unreachable(e.to_string())
                } else {
                    SendError::Unknown(e.to_string())
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| SendError::Unknown(e.to_string()))?;
        match wire::parse_answer(&body) {
            Some(Answer::Accepted(id)) if status.is_success() => Ok(Accepted { provider_message_id: id }),
            Some(Answer::Rejected(error)) => Err(SendError::Rejected(error)),
            _ => Err(SendError::Unknown(format!("HTTP {status} with an unreadable answer"))),
        }
    }
}
