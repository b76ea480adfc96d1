//! Signing secrets of webhook endpoints (`whsec_` + base64 of 24 random bytes), sealed with the
//! deployment keyring (as channel credentials are) in `webhook_secrets`, never in the log. After a
//! rotation the previous secret stays valid for [`ROTATION_OVERLAP`]: deliveries carry a signature
//! of each valid secret, so a receiver can switch at its own pace.

use crate::credentials::{CredentialError, Keyring, Secret};
use base64::Engine;
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

/// How long a replaced secret still signs deliveries.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// A fresh secret in the Standard Webhooks form.
pub fn generate() -> Secret {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret::new(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// The `webhook_secrets` table.
#[derive(Debug, Clone)]
pub struct EndpointSecrets {
    pool: PgPool,
    keys: Keyring,
}

impl EndpointSecrets {
    pub fn new(pool: PgPool, keys: Keyring) -> Self {
        Self { pool, keys }
    }

    /// Makes `secret` the endpoint's current one; the one it replaces (if any) expires after
    /// [`ROTATION_OVERLAP`], older ones are dropped.
    pub async fn put(&self, workspace: Uuid, endpoint: Uuid, secret: &Secret) -> Result<(), CredentialError> {
        let sealed = self.keys.seal(endpoint.as_bytes(), secret.expose().as_bytes());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at IS NOT NULL")
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE webhook_secrets SET expires_at = now() + $2 WHERE endpoint_id = $1 AND expires_at IS NULL")
            .bind(endpoint)
            .bind(ROTATION_OVERLAP)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO webhook_secrets (endpoint_id, workspace_id, sealed) VALUES ($1, $2, $3)")
            .bind(endpoint)
            .bind(workspace)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The secrets that sign the endpoint's deliveries now, newest first.
    pub async fn valid(&self, endpoint: Uuid) -> Result<Vec<Secret>, CredentialError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT sealed FROM webhook_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now())
             ORDER BY secret_id DESC",
        )
        .bind(endpoint)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|sealed| {
                let plain = self.keys.open(endpoint.as_bytes(), sealed).ok_or(CredentialError::CannotOpen(endpoint))?;
                String::from_utf8(plain).map(Secret::new).map_err(|_| CredentialError::CannotOpen(endpoint))
            })
            .collect()
    }

    /// Drops every secret of a deleted endpoint.
    pub async fn remove(&self, endpoint: Uuid) -> Result<(), CredentialError> {
        sqlx::query("DELETE FROM webhook_secrets WHERE endpoint_id = $1").bind(endpoint).execute(&self.pool).await?;
        Ok(())
    }

    /// Re-seals every secret not sealed with the current key (after a key rotation); returns how many.
    pub async fn reseal_all(&self) -> Result<u64, CredentialError> {
        let rows: Vec<(i64, Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT secret_id, endpoint_id, sealed FROM webhook_secrets").fetch_all(&self.pool).await?;
        let mut n = 0;
        for (id, endpoint, sealed) in rows.into_iter().filter(|(_, _, s)| !self.keys.is_current(s)) {
            let plain = self.keys.open(endpoint.as_bytes(), &sealed).ok_or(CredentialError::CannotOpen(endpoint))?;
            sqlx::query("UPDATE webhook_secrets SET sealed = $2 WHERE secret_id = $1 AND sealed = $3")
                .bind(id)
                .bind(self.keys.seal(endpoint.as_bytes(), &plain))
                .bind(&sealed)
                .execute(&self.pool)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}
