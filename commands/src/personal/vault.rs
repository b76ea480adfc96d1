//! Contacts' data keys (table `contact_keys`), sealed with the deployment key ([`Keyring`], the
//! same keyring as channel credentials) and cached for a short while.
//!
//! A row with no sealed key is an erased contact: its key is gone, its fields read as erased. The
//! row of a contact that exists is never deleted (only the key of a creation that failed goes again,
//! with its events), so erasure cannot be undone by a new key appearing for the same contact.

use super::fields::DataKey;
use crate::credentials::Keyring;
use crate::store::StoreError;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a looked-up key (or the fact of its erasure) is kept in memory. An erasure made by
/// another process reaches this one's readers within this time at the latest.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most keys kept in memory; the cache starts afresh when it is full.
const CACHE_MAX: usize = 200_000;

/// One contact's key, as far as this process knows.
#[derive(Debug, Clone)]
pub enum Slot {
    Open(DataKey),
    Erased,
}

/// A data key to store with the append that first uses it (a new contact's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub contact_id: Uuid,
    pub workspace_id: Uuid,
    /// The key sealed with the deployment key (the contact id as associated data).
    pub sealed: Vec<u8>,
}

struct Inner {
    pool: PgPool,
    keys: Keyring,
    cache: Mutex<HashMap<Uuid, (Instant, Slot)>>,
}

/// The data keys of every contact.
#[derive(Clone)]
pub struct Vault(Arc<Inner>);

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({:?})", self.0.keys)
    }
}

fn cannot_open(contact: Uuid) -> StoreError {
    StoreError::Corrupt(format!("the data key of contact {contact} does not open with the configured secret keys"))
}

impl Vault {
    pub fn new(pool: PgPool, keys: Keyring) -> Self {
        Self(Arc::new(Inner { pool, keys, cache: Mutex::default() }))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Instant, Slot)>> {
        // A poisoned cache is only a cache: keep using it.
        self.0.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn remember(&self, contact: Uuid, slot: Slot) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(contact, (Instant::now(), slot));
    }

    fn forget(&self, contact: Uuid) {
        self.cache().remove(&contact);
    }

    /// A fresh key for a new contact: to use now, and to store with the append.
    pub(crate) fn fresh(&self, workspace: Uuid, contact: Uuid) -> (DataKey, NewKey) {
        let (key, bytes) = DataKey::generate();
        let sealed = self.0.keys.seal(contact.as_bytes(), &bytes);
        (key, NewKey { contact_id: contact, workspace_id: workspace, sealed })
    }

    /// The keys of `contacts` that exist (open or erased); contacts without a row are left out.
    pub async fn slots(&self, contacts: &[Uuid]) -> Result<HashMap<Uuid, Slot>, StoreError> {
        let mut found = HashMap::with_capacity(contacts.len());
        let mut missing = vec![];
        {
            let cache = self.cache();
            for c in contacts {
                match cache.get(c) {
                    Some((at, slot)) if at.elapsed() < CACHE_TTL => {
                        found.insert(*c, slot.clone());
                    }
                    _ => missing.push(*c),
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(found);
        }
        let rows: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT contact_id, sealed FROM contact_keys WHERE contact_id = ANY($1)")
                .bind(&missing)
                .fetch_all(&self.0.pool)
                .await?;
        for (contact, sealed) in rows {
            let slot = match sealed {
                None => Slot::Erased,
                Some(sealed) => {
                    let bytes = self.0.keys.open(contact.as_bytes(), &sealed).ok_or_else(|| cannot_open(contact))?;
                    Slot::Open(DataKey::from_bytes(&bytes).ok_or_else(|| cannot_open(contact))?)
                }
            };
            self.remember(contact, slot.clone());
            found.insert(contact, slot);
        }
        Ok(found)
    }

    /// The keys of `contacts`, creating one for each that has none yet (a contact from before
    /// personal data was sealed).
    pub async fn ensure(&self, workspace: Uuid, contacts: &[Uuid]) -> Result<HashMap<Uuid, Slot>, StoreError> {
        let mut slots = self.slots(contacts).await?;
        let missing: Vec<Uuid> = contacts.iter().filter(|c| !slots.contains_key(c)).copied().collect();
        if missing.is_empty() {
            return Ok(slots);
        }
        let new: Vec<NewKey> = missing.iter().map(|c| self.fresh(workspace, *c).1).collect();
        sqlx::query(
            "INSERT INTO contact_keys (contact_id, workspace_id, sealed)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) ON CONFLICT DO NOTHING",
        )
        .bind(new.iter().map(|k| k.contact_id).collect::<Vec<_>>())
        .bind(new.iter().map(|k| k.workspace_id).collect::<Vec<_>>())
        .bind(new.iter().map(|k| k.sealed.clone()).collect::<Vec<_>>())
        .execute(&self.0.pool)
        .await?;
        // Whichever key went in (ours or a concurrent writer's) is the one.
        slots.extend(self.slots(&missing).await?);
        Ok(slots)
    }

    /// Destroys `contact`'s key (there may have been none: a contact from before sealing) and drops
    /// the snapshots of its stream. Erasing twice changes nothing. Refused for another workspace's
    /// contact: `false`.
    pub async fn erase(&self, workspace: Uuid, contact: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.0.pool.begin().await?;
        let erased: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO contact_keys (contact_id, workspace_id, sealed, erased_at) VALUES ($1, $2, NULL, now())
             ON CONFLICT (contact_id) DO UPDATE SET sealed = NULL, erased_at = coalesce(contact_keys.erased_at, now())
             WHERE contact_keys.workspace_id = excluded.workspace_id
             RETURNING contact_id",
        )
        .bind(contact)
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM stream_snapshots WHERE stream_id = $1 AND workspace_id = $2")
            .bind(format!("contact-{contact}"))
            .bind(workspace)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget(contact);
        if erased.is_some() {
            self.remember(contact, Slot::Erased);
        }
        Ok(erased.is_some())
    }

    /// Re-seals every key not sealed with the current deployment key (after adding a new one, before
    /// dropping the old); returns how many were re-sealed. Events are not touched.
    pub async fn reseal_all(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut after = Uuid::nil();
        loop {
            let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
                "SELECT contact_id, sealed FROM contact_keys WHERE sealed IS NOT NULL AND contact_id > $1
                 ORDER BY contact_id LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&self.0.pool)
            .await?;
            let Some(last) = rows.last() else { return Ok(n) };
            after = last.0;
            for (contact, sealed) in rows.into_iter().filter(|(_, s)| !self.0.keys.is_current(s)) {
                let bytes = self.0.keys.open(contact.as_bytes(), &sealed).ok_or_else(|| cannot_open(contact))?;
                // Only if it is still the same row: an erasure meanwhile wins.
                sqlx::query("UPDATE contact_keys SET sealed = $2 WHERE contact_id = $1 AND sealed = $3")
                    .bind(contact)
                    .bind(self.0.keys.seal(contact.as_bytes(), &bytes))
                    .bind(&sealed)
                    .execute(&self.0.pool)
                    .await?;
                n += 1;
            }
        }
    }
}
