//! Signed checkpoints: a scope's head after a number of its events, signed with the deployment's
//! Ed25519 key, for an auditor to keep and check offline (`scripts/verify-audit-export.py`).

use super::chain::Hash;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The key checkpoints are signed with (`BLAZZ_AUDIT_SIGNING_KEY`: base64 of a 32-byte seed).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("public_key", &hex::encode(self.public_key())).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the audit signing key must be base64 of 32 bytes")]
pub struct BadKey;

impl Signer {
    pub fn from_base64(seed: &str) -> Result<Self, BadKey> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(seed.trim()).map_err(|_| BadKey)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| BadKey)?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }

    /// A fresh seed, base64.
    pub fn generate_base64() -> String {
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &str) -> [u8; 64] {
        self.key.sign(message.as_bytes()).to_bytes()
    }
}

/// The whole log's scope; every other scope is a workspace id.
pub const LOG: Uuid = Uuid::nil();

/// One signed checkpoint, as stored and as handed to an auditor (hex for the bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// A workspace id, or `log` for the whole log.
    pub scope: String,
    /// How many of the scope's events, in log order, the head folds.
    pub events: i64,
    /// The position of the last of them.
    pub position: i64,
    #[serde(with = "hex::serde")]
    pub head: Hash,
    /// RFC 3339 in microseconds, exactly as signed.
    pub signed_at: String,
    #[serde(with = "hex::serde")]
    pub public_key: [u8; 32],
    #[serde(with = "hex::serde")]
    pub signature: Vec<u8>,
}

pub fn scope_name(scope: Uuid) -> String {
    if scope == LOG {
        "log".into()
    } else {
        scope.to_string()
    }
}

/// The text a checkpoint's signature covers, one `name value` line each.
pub fn message(scope: &str, events: i64, position: i64, head: &Hash, signed_at: &str) -> String {
    format!(
        "blazz audit checkpoint v1\nscope {scope}\nevents {events}\nposition {position}\nhead {}\nsigned_at {signed_at}\n",
        hex::encode(head)
    )
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Checkpoint {
    pub fn message(&self) -> String {
        message(&self.scope, self.events, self.position, &self.head, &self.signed_at)
    }

    /// Whether `public_key` signed this checkpoint's fields.
    pub fn signed_by(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(self.message().as_bytes(), &signature).is_ok()
    }
}

/// Signs and stores a checkpoint of `scope` at its current head.
pub(super) async fn sign(
    conn: &mut sqlx::PgConnection,
    signer: &Signer,
    scope: Uuid,
    events: i64,
    position: i64,
    head: &Hash,
) -> Result<(), sqlx::Error> {
    // Stored to the microsecond, as PostgreSQL keeps it, so the text signed is the text read back.
    let now = Utc::now();
    let signed_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let signature = signer.sign(&message(&scope_name(scope), events, position, head, &timestamp(signed_at)));
    sqlx::query(
        "INSERT INTO audit_checkpoints (scope, events, position, head, signed_at, public_key, signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, events) DO NOTHING",
    )
    .bind(scope)
    .bind(events)
    .bind(position)
    .bind(&head[..])
    .bind(signed_at)
    .bind(&signer.public_key()[..])
    .bind(&signature[..])
    .execute(conn)
    .await?;
    Ok(())
}

type Row = (Uuid, i64, i64, Vec<u8>, DateTime<Utc>, Vec<u8>, Vec<u8>);

/// The checkpoints of a scope (a workspace, or [`LOG`]), oldest first.
pub async fn list(pool: &PgPool, scope: Uuid) -> Result<Vec<Checkpoint>, sqlx::Error> {
    Ok(of(pool, Some(scope)).await?.into_iter().map(|(_, c)| c).collect())
}

/// The checkpoints of one scope, or of every scope (`None`), each with its scope's id, oldest first.
pub async fn of(pool: &PgPool, scope: Option<Uuid>) -> Result<Vec<(Uuid, Checkpoint)>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT scope, events, position, head, signed_at, public_key, signature
         FROM audit_checkpoints WHERE $1::uuid IS NULL OR scope = $1 ORDER BY scope, events",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(scope, events, position, head, signed_at, public_key, signature)| {
            let c = Checkpoint {
                scope: scope_name(scope),
                events,
                position,
                head: head.try_into().unwrap_or_default(),
                signed_at: timestamp(signed_at),
                public_key: public_key.try_into().unwrap_or_default(),
                signature,
            };
            (scope, c)
        })
        .collect())
}
