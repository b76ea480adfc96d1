//! Media in object storage (the `object_store` crate: the local filesystem by default, an
//! S3-compatible service in production). Events hold references (the provider's media id, ours),
//! never bytes.
//!
//! The fetcher takes the inbound media the `media` projector enqueued and, promptly (the provider's
//! download URLs expire in minutes), asks the Graph API for the media's URL (`GET /{version}/{id}`
//! with the channel's token), downloads it (the same token; at most the WhatsApp limit of its kind),
//! checks the SHA-256 Meta gave, and stores it under `media/<workspace>/<media id>`. A failure is
//! retried with a fresh URL after 2, 4, 8 and 16 s, then the media is `failed` with the reason.

use crate::credentials::{ChannelSecrets, CredentialStore};
use crate::provider::meta::MetaConfig;
use crate::provider::{Provider, SendError, Sender, Upload, MEDIA_REFUSED};
use base64::Engine;
use blazz_domain::message::ProviderError;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// The largest file of each WhatsApp media kind (Cloud API limits).
pub fn max_bytes(kind: &str) -> u64 {
    const MB: u64 = 1024 * 1024;
    match kind {
        "image" => 5 * MB,
        "video" | "audio" => 16 * MB,
        "sticker" => 500 * 1024,
        _ => 100 * MB,
    }
}

/// Where a media's bytes are kept in the store.
pub fn object_key(workspace: Uuid, media: Uuid) -> Path {
    Path::from(format!("media/{workspace}/{media}"))
}

/// Delays before the 2nd… 5th attempt.
fn schedule() -> Vec<Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_max_times(4)
        .build()
        .collect()
}

/// Media claimed at once.
const CLAIM: i64 = 8;
/// A claim's lease: a fetcher killed mid-fetch leaves the media due again after this.
const LEASE: Duration = Duration::from_secs(120);

#[derive(Debug, sqlx::FromRow)]
struct Due {
    media_id: Uuid,
    workspace_id: Uuid,
    channel_id: Uuid,
    kind: String,
    provider_media_id: String,
    expected_sha256: Option<String>,
    attempts: i32,
}

/// Fetches inbound media; cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    pool: PgPool,
    store: Arc<dyn ObjectStore>,
    credentials: CredentialStore,
    meta: MetaConfig,
    client: reqwest::Client,
    poll: Duration,
}

impl MediaFetcher {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn ObjectStore>,
        credentials: CredentialStore,
        meta: MetaConfig,
        poll: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(meta.timeout.max(Duration::from_secs(30))).build()?;
        Ok(Self { pool, store, credentials, meta, client, poll })
    }

    /// Fetches until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let due = self.claim().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming media to fetch failed");
                vec![]
            });
            if due.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            futures::future::join_all(due.into_iter().map(|d| self.fetch(d))).await;
        }
    }

    async fn claim(&self) -> Result<Vec<Due>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE media m SET attempts = m.attempts + 1, next_attempt_at = now() + $2
             WHERE m.media_id IN (SELECT media_id FROM media WHERE status = 'pending' AND next_attempt_at <= now()
                                  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING m.media_id, m.workspace_id, m.channel_id, m.kind, m.provider_media_id, m.expected_sha256, m.attempts",
        )
        .bind(CLAIM)
        .bind(chrono::Duration::from_std(LEASE).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
    }

    async fn fetch(&self, d: Due) {
        let outcome = self.download(&d).await;
        let recorded = match outcome {
            Ok((size, sha256)) => {
                sqlx::query(
                    "UPDATE media SET status = 'stored', size = $2, sha256 = $3, object_key = $4, stored_at = now(),
                                  last_error = NULL WHERE media_id = $1",
                )
                .bind(d.media_id)
                .bind(size as i64)
                .bind(sha256)
                .bind(object_key(d.workspace_id, d.media_id).to_string())
                .execute(&self.pool)
                .await
            }
            Err(error) => {
                let retry = schedule().get(d.attempts.max(1) as usize - 1).copied();
                tracing::warn!(media = %d.media_id, %error, retried = retry.is_some(), "fetching inbound media failed");
                sqlx::query(
                    "UPDATE media SET last_error = $2,
                            status = CASE WHEN $3::interval IS NULL THEN 'failed' ELSE 'pending' END,
                            next_attempt_at = now() + COALESCE($3::interval, interval '0')
                     WHERE media_id = $1",
                )
                .bind(d.media_id)
                .bind(error)
                .bind(retry.and_then(|r| chrono::Duration::from_std(r).ok()))
                .execute(&self.pool)
                .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, media = %d.media_id, "a media fetch could not be recorded; it is retried after its lease");
        }
    }

    /// The media's bytes into the store: answers their size and SHA-256 (hex).
    async fn download(&self, d: &Due) -> Result<(u64, String), String> {
        let token = match self.credentials.get(d.channel_id).await {
            Ok(Some(c)) => c.secrets.access_token,
            Ok(None) => return Err("the channel has no credentials".into()),
            Err(e) => return Err(format!("channel credentials: {e}")),
        };
        let info = format!("{}/{}/{}", self.meta.base_url, self.meta.api_version, d.provider_media_id);
        let info: serde_json::Value = self
            .client
            .get(&info)
            .bearer_auth(token.expose())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("media URL: {e}"))?
            .json()
            .await
            .map_err(|e| format!("media URL answer: {e}"))?;
        let url = info["url"].as_str().ok_or("the media URL answer has no url")?;
        let expected = d.expected_sha256.clone().or_else(|| info["sha256"].as_str().map(str::to_owned));
        let limit = max_bytes(&d.kind);
        let mut response = self
            .client
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("download: {e}"))?;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(format!("larger than the {limit} bytes a {} may have", d.kind));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("download: {e}"))? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(format!("larger than the {limit} bytes a {} may have", d.kind));
            }
            bytes.extend_from_slice(&chunk);
        }
        let digest = Sha256::digest(&bytes);
        let hex = hex::encode(digest);
        if let Some(expected) = expected.filter(|e| !e.is_empty()) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
            if !expected.eq_ignore_ascii_case(&hex) && expected != b64 {
                return Err(format!("the bytes' SHA-256 {hex} is not the {expected} the provider gave"));
            }
        }
        let size = bytes.len() as u64;
        self.store
            .put_opts(&object_key(d.workspace_id, d.media_id), PutPayload::from(bytes), PutOptions::default())
            .await
            .map_err(|e| format!("object store: {e}"))?;
        Ok((size, hex))
    }
}

/// Our media as each channel's provider knows it: uploaded on its first send on a channel, then
/// sent by the id that upload got (`media_uploads`); cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaUploads {
    pool: PgPool,
    store: Arc<dyn ObjectStore>,
}

impl MediaUploads {
    pub fn new(pool: PgPool, store: Arc<dyn ObjectStore>) -> Self {
        Self { pool, store }
    }

    /// The provider's id of our media `media` for `sender`'s channel, uploading it if needed.
    pub async fn provider_id(
        &self,
        provider: &dyn Provider,
        sender: &Sender,
        secrets: &ChannelSecrets,
        workspace: Uuid,
        media: Uuid,
    ) -> Result<String, SendError> {
        let retry = |e: &dyn std::fmt::Display| SendError::Unreachable(format!("media {media}: {e}"));
        let channel = sender.channel_id.as_uuid();
        // One upload per (media, channel) at a time, across dispatchers: sends racing here wait for
        // the first one's upload and use its id.
        let mut lock = self.pool.begin().await.map_err(|e| retry(&e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("media-upload:{media}:{channel}"))
            .execute(&mut *lock)
            .await
            .map_err(|e| retry(&e))?;
        // The provider keeps an upload for 30 days: an older one is uploaded again.
        let cached: Option<String> = sqlx::query_scalar(
            "SELECT provider_media_id FROM media_uploads
             WHERE media_id = $1 AND channel_id = $2 AND uploaded_at > now() - interval '29 days'",
        )
        .bind(media)
        .bind(channel)
        .fetch_optional(&mut *lock)
        .await
        .map_err(|e| retry(&e))?;
        if let Some(id) = cached {
            return Ok(id);
        }
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT mime_type, filename FROM media WHERE media_id = $1 AND workspace_id = $2 AND status = 'stored'",
        )
        .bind(media)
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| retry(&e))?;
        let Some((mime, filename)) = row else {
            let why = Some(format!("media {media} is not stored in this workspace"));
            return Err(SendError::Rejected(ProviderError::new(MEDIA_REFUSED, "media not found", why)));
        };
        let got =
            self.store.get_opts(&object_key(workspace, media), GetOptions::default()).await.map_err(|e| retry(&e))?;
        let bytes = got.bytes().await.map_err(|e| retry(&e))?.to_vec();
        let file = Upload {
            bytes,
            mime_type: mime.unwrap_or_else(|| "application/octet-stream".into()),
            filename: filename.unwrap_or_else(|| media.to_string()),
        };
        let id = provider.upload(sender, secrets, &file).await?;
        // A fresh id stays, an expired one is replaced.
        let kept: String = sqlx::query_scalar(
            "INSERT INTO media_uploads (media_id, channel_id, provider_media_id) VALUES ($1, $2, $3)
             ON CONFLICT (media_id, channel_id) DO UPDATE SET
                 provider_media_id = CASE WHEN media_uploads.uploaded_at > now() - interval '29 days'
                                          THEN media_uploads.provider_media_id ELSE EXCLUDED.provider_media_id END,
                 uploaded_at = CASE WHEN media_uploads.uploaded_at > now() - interval '29 days'
                                    THEN media_uploads.uploaded_at ELSE now() END
             RETURNING provider_media_id",
        )
        .bind(media)
        .bind(channel)
        .bind(&id)
        .fetch_one(&mut *lock)
        .await
        .map_err(|e| retry(&e))?;
        lock.commit().await.map_err(|e| retry(&e))?;
        Ok(kept)
    }
}
