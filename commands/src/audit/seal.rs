//! The sealer: folds the log's links into each scope's head (a workspace, and the whole log) in log
//! order, and signs checkpoints of the heads that moved. It also seals events older than migration
//! 0025, which went in without a digest or link.
//!
//! It is a consumer of the log with its own cursor (the whole log's head row in `audit_heads`); one
//! sealer works at a time across all processes (a transaction-scoped advisory lock), so several
//! `blazz project` or `blazz up` instances may each run one.

use super::chain::{self, Hash, StoredEvent, STORED_COLUMNS};
use super::checkpoint::{self, Signer, LOG};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// The advisory lock key the sealer holds while it works ("blazzsea").
const LOCK: i64 = 0x626c_617a_7a73_6561;
/// Events folded per transaction.
const PAGE: i64 = 5_000;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// Older events given their digest and link.
    pub sealed: u64,
    /// Events folded into the heads.
    pub folded: u64,
    /// Checkpoints signed.
    pub checkpoints: u64,
}

/// One round: seal older events, fold every event below the read horizon, sign a checkpoint of
/// every scope whose head moved since its last one. Answers zeros when another sealer holds the lock.
pub async fn round(pool: &PgPool, signer: &Signer) -> Result<Sealed, sqlx::Error> {
    let mut done = Sealed::default();
    loop {
        let Some(mut tx) = begin_locked(pool).await? else { return Ok(done) };
        let n = seal_older(&mut tx).await?;
        tx.commit().await?;
        done.sealed += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let Some(mut tx) = begin_locked(pool).await? else { return Ok(done) };
        let n = fold_page(&mut tx).await?;
        tx.commit().await?;
        done.folded += n;
        if n == 0 {
            break;
        }
    }
    let Some(mut tx) = begin_locked(pool).await? else { return Ok(done) };
    done.checkpoints = sign_moved(&mut tx, signer).await?;
    tx.commit().await?;
    Ok(done)
}

/// Rounds every `interval` until `shutdown`; a failed round is logged and tried again next time.
pub async fn run(pool: PgPool, signer: Signer, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        match round(&pool, &signer).await {
            Ok(s) if s != Sealed::default() => tracing::debug!(?s, "audit sealer round"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit sealer round failed; retrying next round"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// A transaction holding the sealer's lock; `None` when another sealer holds it.
async fn begin_locked(pool: &PgPool) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(LOCK).fetch_one(&mut *tx).await?;
    Ok(mine.then_some(tx))
}

/// Gives up to a page of unsealed events (in stream order) their digest and link; answers how many.
async fn seal_older(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {STORED_COLUMNS} FROM events WHERE hash IS NULL ORDER BY stream_id, stream_version LIMIT 1000"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut links: HashMap<(String, i64), Hash> = HashMap::new();
    let (mut positions, mut digests, mut hashes) = (vec![], vec![], vec![]);
    for e in rows {
        let previous = match links.get(&(e.stream_id.clone(), e.stream_version - 1)) {
            _ if e.stream_version == 1 => chain::ZERO,
            Some(h) => *h,
            None => {
                let stored: Option<Option<Vec<u8>>> =
                    sqlx::query_scalar("SELECT hash FROM events WHERE stream_id = $1 AND stream_version = $2")
                        .bind(&e.stream_id)
                        .bind(e.stream_version - 1)
                        .fetch_optional(&mut *conn)
                        .await?;
                // Sealed in stream order, so a predecessor is sealed; one that is missing leaves
                // a link `audit verify` reports.
                chain::hash_of(stored.flatten().as_deref()).unwrap_or(chain::ZERO)
            }
        };
        let digest = chain::content_digest(&e.content());
        let hash = chain::link(&previous, &digest, e.place());
        positions.push(e.position);
        links.insert((e.stream_id, e.stream_version), hash);
        digests.push(digest.to_vec());
        hashes.push(hash.to_vec());
    }
    // The one update the log ever sees: NULL to the values every later event gets at insert.
    sqlx::query(
        "UPDATE events e SET content_digest = s.digest, hash = s.hash
         FROM unnest($1::int8[], $2::bytea[], $3::bytea[]) AS s(position, digest, hash)
         WHERE e.position = s.position AND e.hash IS NULL",
    )
    .bind(&positions)
    .bind(&digests)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    Ok(positions.len() as u64)
}

/// Folds the next page of events below the read horizon into their heads; answers how many. Stops
/// short of an unsealed event (the next round seals it first).
async fn fold_page(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let cursor: Option<(String, i64)> =
        sqlx::query_as("SELECT transaction_id::text, position FROM audit_heads WHERE scope = $1")
            .bind(LOG)
            .fetch_optional(&mut *conn)
            .await?;
    let (xid, position) = cursor.unwrap_or(("0".into(), 0));
    let rows: Vec<(Uuid, String, i64, Option<Vec<u8>>)> = sqlx::query_as(&format!(
        "SELECT workspace_id, transaction_id::text AS xid_text, position, hash FROM events
         WHERE (transaction_id, position) > ($1::text::xid8, $2)
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY events.transaction_id, events.position LIMIT {PAGE}"
    ))
    .bind(&xid)
    .bind(position)
    .fetch_all(&mut *conn)
    .await?;
    let mut scopes: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    scopes.push(LOG);
    scopes.sort_unstable();
    scopes.dedup();
    let mut heads: HashMap<Uuid, Head> = sqlx::query_as::<_, (Uuid, i64, Vec<u8>, String, i64)>(
        "SELECT scope, events, head, transaction_id::text, position FROM audit_heads WHERE scope = ANY($1)",
    )
    .bind(&scopes)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(scope, events, head, xid, position)| {
        (scope, Head { events, head: chain::hash_of(Some(&head)).unwrap_or(chain::ZERO), xid, position })
    })
    .collect();
    let mut folded = 0;
    for (workspace, xid, position, hash) in rows {
        let Some(hash) = chain::hash_of(hash.as_deref()) else { break };
        for scope in [workspace, LOG] {
            let head = heads.entry(scope).or_insert_with(Head::start);
            head.events += 1;
            head.head = chain::fold(&head.head, &hash);
            head.xid.clone_from(&xid);
            head.position = position;
        }
        folded += 1;
    }
    if folded == 0 {
        return Ok(0);
    }
    let (mut s, mut e, mut h, mut x, mut p) = (vec![], vec![], vec![], vec![], vec![]);
    for (scope, head) in heads {
        s.push(scope);
        e.push(head.events);
        h.push(head.head.to_vec());
        x.push(head.xid);
        p.push(head.position);
    }
    sqlx::query(
        "INSERT INTO audit_heads (scope, events, head, transaction_id, position)
         SELECT scope, events, head, xid::xid8, position
         FROM unnest($1::uuid[], $2::int8[], $3::bytea[], $4::text[], $5::int8[]) AS t(scope, events, head, xid, position)
         ON CONFLICT (scope) DO UPDATE
         SET events = excluded.events, head = excluded.head, transaction_id = excluded.transaction_id,
             position = excluded.position",
    )
    .bind(&s)
    .bind(&e)
    .bind(&h)
    .bind(&x)
    .bind(&p)
    .execute(&mut *conn)
    .await?;
    Ok(folded)
}

#[derive(Debug)]
struct Head {
    events: i64,
    head: Hash,
    xid: String,
    position: i64,
}

impl Head {
    fn start() -> Self {
        Self { events: 0, head: chain::ZERO, xid: "0".into(), position: 0 }
    }
}

/// Signs a checkpoint of every scope whose head is past its last checkpoint; answers how many.
async fn sign_moved(conn: &mut PgConnection, signer: &Signer) -> Result<u64, sqlx::Error> {
    let moved: Vec<(Uuid, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT h.scope, h.events, h.position, h.head FROM audit_heads h
         WHERE h.events > coalesce((SELECT max(c.events) FROM audit_checkpoints c WHERE c.scope = h.scope), 0)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (scope, events, position, head) in &moved {
        let head = chain::hash_of(Some(head)).unwrap_or(chain::ZERO);
        checkpoint::sign(conn, signer, *scope, *events, *position, &head).await?;
    }
    Ok(moved.len() as u64)
}
