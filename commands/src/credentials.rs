//! Channel credentials (access token, app secret, webhook verify token), kept out of the event log:
//! sealed with ChaCha20-Poly1305 under a key from configuration and stored in `channel_credentials`.
//!
//! A sealed value is `key id (4 bytes) ‖ nonce (12) ‖ ciphertext`, with the channel id as associated
//! data, so a row copied onto another channel does not open. The keyring holds the current key (used to
//! seal) and previous ones (only to open), so the key can be rotated: add the new key, run
//! [`CredentialStore::reseal_all`], drop the old one.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// A secret string: never printed, never serialised into logs by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything a channel needs to talk to its provider and to check its webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSecrets {
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the secret key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("stored credentials of channel {0} cannot be opened with the configured keys")]
    CannotOpen(Uuid),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A 32-byte sealing key with its id (the first 4 bytes of its SHA-256).
#[derive(Clone)]
struct SealKey {
    id: [u8; 4],
    cipher: ChaCha20Poly1305,
}

impl SealKey {
    fn new(bytes: &[u8]) -> Result<Self, CredentialError> {
        if bytes.len() != 32 {
            return Err(CredentialError::BadKey);
        }
        let digest = Sha256::digest(bytes);
        Ok(Self {
            id: [digest[0], digest[1], digest[2], digest[3]],
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        })
    }
}

/// The current key and previous ones.
#[derive(Clone)]
pub struct Keyring {
    current: SealKey,
    previous: Vec<SealKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(current {}, {} previous)", hex::encode(self.current.id), self.previous.len())
    }
}

impl Keyring {
    /// From base64 keys: the current one and previous ones still accepted for opening.
    pub fn from_base64(current: &str, previous: &[String]) -> Result<Self, CredentialError> {
        use base64::Engine;
        let decode =
            |s: &str| base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| CredentialError::BadKey);
        Ok(Self {
            current: SealKey::new(&decode(current)?)?,
            previous: previous.iter().map(|p| SealKey::new(&decode(p)?)).collect::<Result<_, _>>()?,
        })
    }

    /// A fresh random key, base64-encoded (for a new embedded installation).
    pub fn generate_base64() -> String {
        use base64::Engine;
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        base64::engine::general_purpose::STANDARD.encode(k)
    }

    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("ChaCha20-Poly1305 sealing cannot fail for in-memory buffers");
        [&self.current.id[..], &nonce, &sealed].concat()
    }

    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 16 {
            return None;
        }
        let (id, rest) = sealed.split_at(4);
        let (nonce, body) = rest.split_at(12);
        let key = std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id)?;
        key.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad }).ok()
    }

    pub(crate) fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.get(..4) == Some(&self.current.id[..])
    }
}

/// Stored credentials of one channel.
#[derive(Debug, Clone)]
pub struct StoredCredentials {
    pub workspace_id: Uuid,
    pub secrets: ChannelSecrets,
    pub updated_at: DateTime<Utc>,
}

/// The `channel_credentials` table.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    pool: PgPool,
    keys: Keyring,
}

impl CredentialStore {
    pub fn new(pool: PgPool, keys: Keyring) -> Self {
        Self { pool, keys }
    }

    /// Stores (or replaces: rotation) a channel's credentials.
    pub async fn put(&self, workspace: Uuid, channel: Uuid, secrets: &ChannelSecrets) -> Result<(), CredentialError> {
        let plain = serde_json::to_vec(secrets).expect("secrets serialise");
        let sealed = self.keys.seal(channel.as_bytes(), &plain);
        sqlx::query(
            "INSERT INTO channel_credentials (channel_id, workspace_id, sealed, updated_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (channel_id) DO UPDATE SET sealed = excluded.sealed, updated_at = now()
             WHERE channel_credentials.workspace_id = excluded.workspace_id",
        )
        .bind(channel)
        .bind(workspace)
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, channel: Uuid) -> Result<Option<StoredCredentials>, CredentialError> {
        let row: Option<(Uuid, Vec<u8>, DateTime<Utc>)> =
            sqlx::query_as("SELECT workspace_id, sealed, updated_at FROM channel_credentials WHERE channel_id = $1")
                .bind(channel)
                .fetch_optional(&self.pool)
                .await?;
        let Some((workspace_id, sealed, updated_at)) = row else {
            return Ok(None);
        };
        let plain = self.keys.open(channel.as_bytes(), &sealed).ok_or(CredentialError::CannotOpen(channel))?;
        let secrets = serde_json::from_slice(&plain).map_err(|_| CredentialError::CannotOpen(channel))?;
        Ok(Some(StoredCredentials { workspace_id, secrets, updated_at }))
    }

    /// When a channel's credentials were last set, without opening them.
    pub async fn updated_at(&self, channel: Uuid) -> Result<Option<DateTime<Utc>>, CredentialError> {
        Ok(sqlx::query_scalar("SELECT updated_at FROM channel_credentials WHERE channel_id = $1")
            .bind(channel)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Re-seals every row not sealed with the current key; returns how many were re-sealed.
    pub async fn reseal_all(&self) -> Result<u64, CredentialError> {
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT channel_id, sealed FROM channel_credentials").fetch_all(&self.pool).await?;
        let mut n = 0;
        for (channel, sealed) in rows.into_iter().filter(|(_, s)| !self.keys.is_current(s)) {
            let plain = self.keys.open(channel.as_bytes(), &sealed).ok_or(CredentialError::CannotOpen(channel))?;
            sqlx::query("UPDATE channel_credentials SET sealed = $2 WHERE channel_id = $1 AND sealed = $3")
                .bind(channel)
                .bind(self.keys.seal(channel.as_bytes(), &plain))
                .bind(&sealed)
                .execute(&self.pool)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_a_known_key_and_the_same_channel() {
        let old = Keyring::generate_base64();
        let new = Keyring::generate_base64();
        let a = Keyring::from_base64(&old, &[]).unwrap();
        let sealed = a.seal(b"channel-1", b"token");
        assert_eq!(a.open(b"channel-1", &sealed).as_deref(), Some(&b"token"[..]));
        assert_eq!(a.open(b"channel-2", &sealed), None);
        let rotated = Keyring::from_base64(&new, &[old]).unwrap();
        assert_eq!(rotated.open(b"channel-1", &sealed).as_deref(), Some(&b"token"[..]));
        assert!(!rotated.is_current(&sealed));
        assert_eq!(Keyring::from_base64(&new, &[]).unwrap().open(b"channel-1", &sealed), None);
        assert!(Keyring::from_base64("c2hvcnQ=", &[]).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = ChannelSecrets {
            access_token: Secret::new("EAAG-token"),
            app_secret: Secret::new("app-secret"),
            verify_token: Secret::new("verify"),
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("EAAG") && !printed.contains("app-secret") && !printed.contains("verify\""));
    }
}
