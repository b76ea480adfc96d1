//! The data keys against a real PostgreSQL: keys from the tree, rows from before it, erasure.

use super::fields::DataKey;
use super::tree::Node;
use super::{Slot, Vault};
use crate::credentials::Keyring;
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

fn keys() -> Keyring {
    Keyring::from_base64(&Keyring::generate_base64(), &[]).expect("key")
}

/// Whether `a` opens what `b` sealed for `contact`.
fn same(contact: Uuid, a: &Slot, b: &Slot) -> bool {
    let (Slot::Open(a), Slot::Open(b)) = (a, b) else { return false };
    let sealed = b.seal(contact, "t", &["/x"], &[json!("v")]);
    a.open(contact, "t", &["/x".to_string()], sealed["sealed"].as_str().unwrap_or_default()).is_some()
}

/// What a process that has cached nothing finds for `contacts` of `ws`.
async fn fresh_look(pool: &PgPool, keys: &Keyring, ws: Uuid, contacts: &[Uuid]) -> HashMap<Uuid, Slot> {
    let pairs: Vec<(Uuid, Uuid)> = contacts.iter().map(|c| (ws, *c)).collect();
    Vault::new(pool.clone(), keys.clone()).slots(&pairs).await.expect("slots")
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.expect("count")
}

/// A workspace's nodes as (lo, hi): they must never overlap.
async fn ranges(pool: &PgPool, ws: Uuid) -> Vec<(Uuid, Uuid)> {
    let rows: Vec<(Uuid, i16)> =
        sqlx::query_as("SELECT lo, depth FROM key_tree_nodes WHERE workspace_id = $1 ORDER BY lo")
            .bind(ws)
            .fetch_all(pool)
            .await
            .expect("nodes");
    let node = |(lo, d): (Uuid, i16)| Node::from_parts(lo, d as u8, [0; 32]).expect("a stored node");
    rows.into_iter().map(node).map(|n| (n.lo(), n.hi())).collect()
}

#[sqlx::test(migrator = "crate::store::postgres::MIGRATOR")]
async fn new_contacts_take_their_keys_from_one_planted_tree_and_write_no_rows(pool: PgPool) {
    let keys = keys();
    let (ws, other_ws) = (Uuid::now_v7(), Uuid::now_v7());
    let contacts: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let vault = Vault::new(pool.clone(), keys.clone());
    let pairs: Vec<(Uuid, Uuid)> = contacts.iter().map(|c| (ws, *c)).collect();
    let made = vault.tree_keys(&pairs).await.expect("keys");
    assert_eq!(count(&pool, "contact_keys").await, 0, "no row per contact");
    assert_eq!(count(&pool, "key_tree_nodes").await, 1, "one root for the workspace");
    let found = fresh_look(&pool, &keys, ws, &contacts).await;
    for c in &contacts {
        assert!(same(*c, &made[c], &found[c]), "another process derives the same key");
    }
    assert!(!same(contacts[0], &made[&contacts[0]], &made[&contacts[1]]), "one key per contact");
    // Another workspace's tree is its own: the same contact id gets another key there.
    let elsewhere = fresh_look(&pool, &keys, other_ws, &contacts[..1]).await;
    assert!(elsewhere.is_empty(), "no tree there yet: {elsewhere:?}");
    // (A process that has not cached the id: its cache is by contact, and ids are never shared.)
    let planted = Vault::new(pool.clone(), keys.clone()).ensure(other_ws, &contacts[..1]).await.expect("ensure");
    assert!(!same(contacts[0], &made[&contacts[0]], &planted[&contacts[0]]));
    assert_eq!(count(&pool, "key_tree_nodes").await, 2);
}

#[sqlx::test(migrator = "crate::store::postgres::MIGRATOR")]
async fn an_erased_contacts_key_is_gone_from_the_tree_itself_and_the_others_keep_theirs(pool: PgPool) {
    let keys = keys();
    let ws = Uuid::now_v7();
    let contacts: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let vault = Vault::new(pool.clone(), keys.clone());
    let pairs: Vec<(Uuid, Uuid)> = contacts.iter().map(|c| (ws, *c)).collect();
    let before = vault.tree_keys(&pairs).await.expect("keys");

    // Erasures of one workspace at the same time: each punctures what the others left.
    let erased: Vec<Uuid> = contacts.iter().step_by(2).copied().collect();
    let done = futures::future::join_all(erased.iter().map(|c| vault.erase(ws, *c))).await;
    assert!(done.into_iter().all(|r| r.expect("erase")), "every erasure went in");

    // Even without the rows that mark them erased, no stored node gives their keys back.
    sqlx::query("DELETE FROM contact_keys").execute(&pool).await.expect("drop marks");
    let after = fresh_look(&pool, &keys, ws, &contacts).await;
    for c in &contacts {
        match erased.contains(c) {
            true => assert!(matches!(after[c], Slot::Erased), "{c} erased"),
            false => assert!(same(*c, &before[c], &after[c]), "{c} keeps its key"),
        }
    }
    let ranges = ranges(&pool, ws).await;
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "nodes never overlap");
    assert!(ranges.len() <= 1 + 127 * erased.len(), "{} nodes", ranges.len());
}

#[sqlx::test(migrator = "crate::store::postgres::MIGRATOR")]
async fn a_contact_keyed_before_the_tree_keeps_its_own_key_until_erased(pool: PgPool) {
    let keys = keys();
    let (ws, old, new) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (own, bytes) = DataKey::generate();
    sqlx::query("INSERT INTO contact_keys (contact_id, workspace_id, sealed) VALUES ($1, $2, $3)")
        .bind(old)
        .bind(ws)
        .bind(keys.seal(old.as_bytes(), &bytes))
        .execute(&pool)
        .await
        .expect("a key as ADR 0003 stored it");
    let vault = Vault::new(pool.clone(), keys.clone());
    vault.tree_keys(&[(ws, new)]).await.expect("plant the tree");
    let found = vault.ensure(ws, &[old, new]).await.expect("ensure");
    assert!(same(old, &Slot::Open(own), &found[&old]), "its row's key, not the tree's");
    assert!(matches!(found[&new], Slot::Open(_)));

    assert!(vault.erase(ws, old).await.expect("erase"));
    assert!(matches!(fresh_look(&pool, &keys, ws, &[old]).await[&old], Slot::Erased));
    assert!(!vault.erase(Uuid::now_v7(), old).await.expect("erase"), "another workspace's contact");
}
