//! The stored key trees (table `key_tree_nodes`): every node's seed sealed with the deployment key,
//! found by the contact id it must cover, cached for a short while; planted with a workspace's
//! first new contact, punctured by an erasure, re-sealed on key rotation.
//!
//! A workspace's nodes never overlap, so the node covering an id, if any, is the one with the
//! greatest `lo` not above it. Planting and puncturing hold the workspace's advisory lock, so two of
//! them never interleave (two roots, or a puncture over a node another just replaced).

use super::tree::{Node, Path};
use super::{Slot, Vault};
use crate::store::StoreError;
use rand::RngCore;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use uuid::Uuid;

/// Most nodes kept in memory; the cache starts afresh when it is full.
const CACHE_MAX: usize = 20_000;

/// A node looked up: when, and the path of the last key derived from it.
struct Cached {
    at: Instant,
    node: Node,
    last: Option<Path>,
}

/// Nodes looked up, by workspace and `lo`.
#[derive(Default)]
pub(super) struct NodeCache {
    nodes: HashMap<Uuid, BTreeMap<Uuid, Cached>>,
    len: usize,
}

impl NodeCache {
    /// The data key of `contact` from a cached node that covers it.
    fn key(&mut self, workspace: Uuid, contact: Uuid) -> Option<super::DataKey> {
        let (_, c) = self.nodes.get_mut(&workspace)?.range_mut(..=contact).next_back()?;
        if c.at.elapsed() >= super::vault::CACHE_TTL {
            return None;
        }
        c.node.key_along(contact, &mut c.last).and_then(|k| super::DataKey::from_bytes(&k))
    }

    fn insert(&mut self, workspace: Uuid, node: Node) {
        if self.len >= CACHE_MAX {
            *self = Self::default();
        }
        let cached = Cached { at: Instant::now(), node, last: None };
        if self.nodes.entry(workspace).or_default().insert(cached.node.lo(), cached).is_none() {
            self.len += 1;
        }
    }

    fn drop_workspace(&mut self, workspace: Uuid) {
        self.len = self.len.saturating_sub(self.nodes.remove(&workspace).map_or(0, |n| n.len()));
    }
}

/// What a node's seed is sealed for: its workspace and place.
fn aad(workspace: Uuid, lo: Uuid, depth: u8) -> Vec<u8> {
    [&b"key tree"[..], workspace.as_bytes(), lo.as_bytes(), &[depth]].concat()
}

/// A stored node as read: `lo`, depth, sealed seed.
pub(super) type NodeRow = (Uuid, i16, Vec<u8>);

/// The node the statement `covering` (or the slots' lookup) finds for `contact`: the greatest `lo`
/// not above it.
pub(super) const COVERING: &str = "SELECT t.lo, t.depth, t.sealed FROM key_tree_nodes t
     WHERE t.workspace_id = c.workspace_id AND t.lo <= c.contact_id ORDER BY t.lo DESC LIMIT 1";

async fn lock_tree(conn: &mut PgConnection, workspace: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('key tree ' || $1::text, 0))")
        .bind(workspace)
        .execute(conn)
        .await?;
    Ok(())
}

impl Vault {
    fn node_cache(&self) -> std::sync::MutexGuard<'_, NodeCache> {
        // A poisoned cache is only a cache: keep using it.
        self.0.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node a stored row holds (an error if it does not open: a wrong deployment key).
    pub(super) fn open_node(&self, workspace: Uuid, (lo, depth, sealed): &NodeRow) -> Result<Node, StoreError> {
        let depth = u8::try_from(*depth).map_err(|_| cannot_open_node(workspace))?;
        let seed = self.0.keys.open(&aad(workspace, *lo, depth), sealed).ok_or_else(|| cannot_open_node(workspace))?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| cannot_open_node(workspace))?;
        Node::from_parts(*lo, depth, seed).ok_or_else(|| cannot_open_node(workspace))
    }

    /// The slot `node` (the one found for `contact`) gives it; the node is cached.
    pub(super) fn slot_from(&self, workspace: Uuid, contact: Uuid, node: Node) -> Slot {
        let key = node.key_of(contact).and_then(|k| super::DataKey::from_bytes(&k));
        self.node_cache().insert(workspace, node);
        // Found but not covering: the contact's leaf was punctured.
        key.map_or(Slot::Erased, Slot::Open)
    }

    /// The keys of contacts that have no `contact_keys` row (`(workspace, contact)`: new ones, or
    /// ones from before sealing), from their workspaces' trees, planting the trees of workspaces
    /// that have none yet. A contact whose leaf is punctured (erased) gets [`Slot::Erased`].
    pub(super) async fn tree_keys(&self, wanted: &[(Uuid, Uuid)]) -> Result<HashMap<Uuid, Slot>, StoreError> {
        let mut found = HashMap::with_capacity(wanted.len());
        let mut missing = vec![];
        {
            let mut cache = self.node_cache();
            for &(w, c) in wanted {
                match cache.key(w, c) {
                    Some(key) => {
                        found.insert(c, Slot::Open(key));
                    }
                    None => missing.push((w, c)),
                }
            }
        }
        for (c, slot) in &found {
            self.remember(*c, slot.clone());
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let mut rows = self.covering(&missing).await?;
        let unplanted: Vec<(Uuid, Uuid)> = missing.iter().filter(|(_, c)| !rows.contains_key(c)).copied().collect();
        if !unplanted.is_empty() {
            let mut workspaces: Vec<Uuid> = unplanted.iter().map(|(w, _)| *w).collect();
            workspaces.sort_unstable();
            workspaces.dedup();
            for w in workspaces {
                self.plant(w).await?;
            }
            rows.extend(self.covering(&unplanted).await?);
        }
        for (w, c) in missing {
            if let Some(row) = rows.get(&c) {
                let slot = self.slot_from(w, c, self.open_node(w, row)?);
                self.remember(c, slot.clone());
                found.insert(c, slot);
            }
        }
        Ok(found)
    }

    /// The stored node found for each contact of `wanted`, by contact (none: its workspace has no tree).
    async fn covering(&self, wanted: &[(Uuid, Uuid)]) -> Result<HashMap<Uuid, NodeRow>, StoreError> {
        let (workspaces, contacts): (Vec<Uuid>, Vec<Uuid>) = wanted.iter().copied().unzip();
        let rows: Vec<(Uuid, Uuid, i16, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT c.contact_id, n.lo, n.depth, n.sealed
             FROM unnest($1::uuid[], $2::uuid[]) AS c(workspace_id, contact_id)
             CROSS JOIN LATERAL ({COVERING}) n"
        ))
        .bind(&workspaces)
        .bind(&contacts)
        .fetch_all(&self.0.pool)
        .await?;
        Ok(rows.into_iter().map(|(c, lo, depth, sealed)| (c, (lo, depth, sealed))).collect())
    }

    /// Plants `workspace`'s tree (a random root covering every id) unless it has one.
    async fn plant(&self, workspace: Uuid) -> Result<(), StoreError> {
        let mut tx = self.0.pool.begin().await?;
        plant_in(&mut tx, &self.0.keys, workspace).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Punctures `workspace`'s tree at `contact` (planting it first if it has none), within the
    /// erasure's transaction `tx`: no stored node derives the contact's key afterwards.
    pub(super) async fn puncture(
        &self,
        tx: &mut PgConnection,
        workspace: Uuid,
        contact: Uuid,
    ) -> Result<(), StoreError> {
        plant_in(tx, &self.0.keys, workspace).await?;
        let row: Option<NodeRow> = sqlx::query_as(&format!(
            "SELECT n.* FROM (SELECT $1::uuid AS workspace_id, $2::uuid AS contact_id) c, LATERAL ({COVERING}) n"
        ))
        .bind(workspace)
        .bind(contact)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(node) = row.map(|r| self.open_node(workspace, &r)).transpose()? else { return Ok(()) };
        let Some(siblings) = node.punctured(contact) else { return Ok(()) };
        sqlx::query("DELETE FROM key_tree_nodes WHERE workspace_id = $1 AND lo = $2")
            .bind(workspace)
            .bind(node.lo())
            .execute(&mut *tx)
            .await?;
        insert_nodes(tx, &self.0.keys, workspace, &siblings).await?;
        // Whatever this process cached of the tree may cover the contact.
        self.node_cache().drop_workspace(workspace);
        Ok(())
    }

    /// Re-seals every node not sealed with the current deployment key; returns how many.
    pub(super) async fn reseal_nodes(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut after = (Uuid::nil(), Uuid::nil());
        loop {
            let rows: Vec<(Uuid, Uuid, i16, Vec<u8>)> = sqlx::query_as(
                "SELECT workspace_id, lo, depth, sealed FROM key_tree_nodes WHERE (workspace_id, lo) > ($1, $2)
                 ORDER BY workspace_id, lo LIMIT 1000",
            )
            .bind(after.0)
            .bind(after.1)
            .fetch_all(&self.0.pool)
            .await?;
            let Some(last) = rows.last() else { return Ok(n) };
            after = (last.0, last.1);
            for (workspace, lo, depth, sealed) in rows.into_iter().filter(|r| !self.0.keys.is_current(&r.3)) {
                let node = self.open_node(workspace, &(lo, depth, sealed.clone()))?;
                // Only if it is still the same row: a puncture meanwhile wins.
                sqlx::query(
                    "UPDATE key_tree_nodes SET sealed = $3 WHERE workspace_id = $1 AND lo = $2 AND sealed = $4",
                )
                .bind(workspace)
                .bind(lo)
                .bind(self.0.keys.seal(&aad(workspace, lo, node.depth()), node.seed()))
                .bind(&sealed)
                .execute(&self.0.pool)
                .await?;
                n += 1;
            }
        }
    }
}

fn cannot_open_node(workspace: Uuid) -> StoreError {
    StoreError::Corrupt(format!(
        "a node of the key tree of workspace {workspace} does not open with the configured secret keys"
    ))
}

/// Under the tree's lock (held to the end of `tx`): a root for `workspace` unless it has nodes.
async fn plant_in(
    tx: &mut PgConnection,
    keys: &crate::credentials::Keyring,
    workspace: Uuid,
) -> Result<(), StoreError> {
    lock_tree(tx, workspace).await?;
    let planted: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM key_tree_nodes WHERE workspace_id = $1)")
        .bind(workspace)
        .fetch_one(&mut *tx)
        .await?;
    if !planted {
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        insert_nodes(tx, keys, workspace, &[Node::root(seed)]).await?;
    }
    Ok(())
}

async fn insert_nodes(
    tx: &mut PgConnection,
    keys: &crate::credentials::Keyring,
    workspace: Uuid,
    nodes: &[Node],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_tree_nodes (workspace_id, lo, depth, sealed)
         SELECT $1, * FROM unnest($2::uuid[], $3::int2[], $4::bytea[])",
    )
    .bind(workspace)
    .bind(nodes.iter().map(Node::lo).collect::<Vec<_>>())
    .bind(nodes.iter().map(|n| i16::from(n.depth())).collect::<Vec<_>>())
    .bind(nodes.iter().map(|n| keys.seal(&aad(workspace, n.lo(), n.depth()), n.seed())).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}
