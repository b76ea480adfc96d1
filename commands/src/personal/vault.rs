//! Contacts' data keys: derived from their workspace's key tree (`tree`, `nodes`), or, for a
//! contact given a random key before the tree existed, its row of `contact_keys`, sealed with the
//! deployment key ([`Keyring`], the same keyring as channel credentials). Cached for a short while.
//!
//! A `contact_keys` row with no sealed key is an erased contact: its fields read as erased. An
//! erasure also punctures the tree, so no stored seed derives the contact's key any more; the row
//! stays, so erasure cannot be undone by a key appearing again for the same contact.

use super::fields::DataKey;
use super::nodes::{NodeCache, COVERING};
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

pub(super) struct Inner {
    pub(super) pool: PgPool,
    pub(super) keys: Keyring,
    cache: Mutex<HashMap<Uuid, (Instant, Slot)>>,
    pub(super) nodes: Mutex<NodeCache>,
}

/// A contact's key as stored: contact, workspace, whether it has a row, the row's sealed key, and
/// else the node of its tree found for it (`lo`, depth, sealed seed).
type KeyRow = (Uuid, Uuid, bool, Option<Vec<u8>>, Option<Uuid>, Option<i16>, Option<Vec<u8>>);

/// The data keys of every contact.
#[derive(Clone)]
pub struct Vault(pub(super) Arc<Inner>);

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
        Self(Arc::new(Inner { pool, keys, cache: Mutex::default(), nodes: Mutex::default() }))
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

    /// The keys of `contacts` (`(workspace, contact)`) as stored: a contact's own row if it has one,
    /// else its workspace's tree; contacts of a workspace with no tree yet are left out.
    pub async fn slots(&self, contacts: &[(Uuid, Uuid)]) -> Result<HashMap<Uuid, Slot>, StoreError> {
        let mut found = HashMap::with_capacity(contacts.len());
        let mut missing = vec![];
        {
            let cache = self.cache();
            for &(w, c) in contacts {
                match cache.get(&c) {
                    Some((at, slot)) if at.elapsed() < CACHE_TTL => {
                        found.insert(c, slot.clone());
                    }
                    _ => missing.push((w, c)),
                }
            }
        }
        missing.sort_unstable_by_key(|(_, c)| *c);
        missing.dedup_by_key(|(_, c)| *c);
        if missing.is_empty() {
            return Ok(found);
        }
        let (workspaces, ids): (Vec<Uuid>, Vec<Uuid>) = missing.iter().copied().unzip();
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT c.contact_id, c.workspace_id, k.contact_id IS NOT NULL, k.sealed, n.lo, n.depth, n.sealed
                 FROM unnest($1::uuid[], $2::uuid[]) AS c(workspace_id, contact_id)
                 LEFT JOIN contact_keys k ON k.contact_id = c.contact_id AND k.workspace_id = c.workspace_id
                 LEFT JOIN LATERAL ({COVERING}) n ON k.contact_id IS NULL"
        ))
        .bind(&workspaces)
        .bind(&ids)
        .fetch_all(&self.0.pool)
        .await?;
        for (contact, workspace, own, sealed, lo, depth, node) in rows {
            let slot = match (own, sealed, lo.zip(depth).zip(node)) {
                (true, None, _) => Slot::Erased,
                (true, Some(sealed), _) => {
                    let bytes = self.0.keys.open(contact.as_bytes(), &sealed).ok_or_else(|| cannot_open(contact))?;
                    Slot::Open(DataKey::from_bytes(&bytes).ok_or_else(|| cannot_open(contact))?)
                }
                (false, _, Some(((lo, depth), sealed))) => {
                    let node = self.open_node(workspace, &(lo, depth, sealed))?;
                    self.slot_from(workspace, contact, node)
                }
                (false, _, None) => continue,
            };
            self.remember(contact, slot.clone());
            found.insert(contact, slot);
        }
        Ok(found)
    }

    /// The keys of `contacts` of `workspace`, planting its tree if it has none yet (for a contact
    /// from before personal data was sealed).
    pub async fn ensure(&self, workspace: Uuid, contacts: &[Uuid]) -> Result<HashMap<Uuid, Slot>, StoreError> {
        let pairs: Vec<(Uuid, Uuid)> = contacts.iter().map(|c| (workspace, *c)).collect();
        let mut slots = self.slots(&pairs).await?;
        let missing: Vec<(Uuid, Uuid)> = pairs.into_iter().filter(|(_, c)| !slots.contains_key(c)).collect();
        if !missing.is_empty() {
            slots.extend(self.tree_keys(&missing).await?);
        }
        Ok(slots)
    }

    /// Destroys `contact`'s key: its row's, and its leaf of the workspace's tree (there may have been
    /// neither: a contact from before sealing), and drops the snapshots of its stream. Erasing twice changes nothing. Refused for another workspace's
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
        if erased.is_some() {
            self.puncture(&mut tx, workspace, contact).await?;
        }
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

    /// Re-seals every key and node of the key trees not sealed with the current deployment key
    /// (after adding a new one, before dropping the old); returns how many were re-sealed. Events are
    /// not touched.
    pub async fn reseal_all(&self) -> Result<u64, StoreError> {
        let mut n = self.reseal_nodes().await?;
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
