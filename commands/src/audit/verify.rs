//! `audit verify`: recomputes every event's digest and link and every scope's head from the stored
//! rows, in log order, and checks the heads against the signed checkpoints. Answers the first broken
//! link: an event whose content changed, one missing from its stream, events reordered, a checkpoint
//! whose events were deleted, altered or reordered, or one not signed by the trusted key.

use super::chain::{self, Hash, StoredEvent, STORED_COLUMNS};
use super::checkpoint::{self, Checkpoint, LOG};
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

/// Rows read per page; the next page is read while this one is checked.
const PAGE: usize = 10_000;

/// What was checked, and the first thing found broken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub events: u64,
    /// Checkpoints whose head, position and signature held.
    pub checkpoints: u64,
    /// The scope's events after its last checkpoint: their links hold, but nothing signed covers
    /// them yet (a deleted last event of a stream among them would not be seen).
    pub unsigned_tail: u64,
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The event (or the checkpoint's last event) where the chain breaks.
    pub position: i64,
    pub stream_id: Option<String>,
    pub stream_version: Option<i64>,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "position {}", self.position)?;
        if let (Some(s), Some(v)) = (&self.stream_id, self.stream_version) {
            write!(f, " ({s} version {v})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The next page of stored events after `after` (transaction id as text, position), in log order,
/// below the read horizon: of one workspace, or of the whole log.
pub async fn page(
    pool: PgPool,
    workspace: Option<Uuid>,
    after: (String, i64),
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let filter = if workspace.is_some() { "AND workspace_id = $3" } else { "" };
    let sql = format!(
        "SELECT {STORED_COLUMNS} FROM events
         WHERE (transaction_id, position) > ($1::text::xid8, $2)
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) {filter}
         ORDER BY events.transaction_id, events.position LIMIT {PAGE}"
    );
    let mut query = sqlx::query_as(&sql).bind(after.0).bind(after.1);
    if let Some(w) = workspace {
        query = query.bind(w);
    }
    query.fetch_all(&pool).await
}

/// A scope's running head and the checkpoints still ahead of it.
#[derive(Debug, Default)]
struct Scope {
    events: i64,
    head: Hash,
    /// The events the last checkpoint that held covered.
    signed: i64,
    checkpoints: HashMap<i64, Checkpoint>,
}

/// Verifies one workspace (`Some`) or the whole log with every workspace in it (`None`), trusting
/// checkpoints signed by `trusted`. `progress` hears the number of events checked after each page.
pub async fn verify(
    pool: &PgPool,
    workspace: Option<Uuid>,
    trusted: &[u8; 32],
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Verification, sqlx::Error> {
    let mut scopes: HashMap<Uuid, Scope> = HashMap::new();
    // A workspace's own checkpoints, or every scope's for the whole log.
    for (scope, c) in checkpoint::of(pool, workspace).await? {
        scopes.entry(scope).or_default().checkpoints.insert(c.events, c);
    }
    let mut streams: HashMap<String, (i64, Hash)> = HashMap::new();
    let mut out = Verification::default();
    let mut next = tokio::spawn(page(pool.clone(), workspace, ("0".into(), 0)));
    loop {
        let rows = next.await.map_err(|e| sqlx::Error::Protocol(format!("reading the log: {e}")))??;
        let Some(last) = rows.last() else { break };
        next = tokio::spawn(page(pool.clone(), workspace, (last.xid_text.clone(), last.position)));
        for row in rows {
            out.events += 1;
            if let Some(broken) = check(row, &mut streams, &mut scopes, workspace.is_none(), trusted, &mut out) {
                out.broken = Some(broken);
                next.abort();
                return Ok(out);
            }
        }
        progress(out.events);
    }
    // Checkpoints beyond what is there: events they covered are gone.
    let mut short: Vec<(&Uuid, &Scope, &Checkpoint)> =
        scopes.iter().flat_map(|(id, s)| s.checkpoints.values().map(move |c| (id, s, c))).collect();
    short.sort_by_key(|(_, _, c)| c.position);
    if let Some((id, s, c)) = short.first() {
        out.broken = Some(Broken {
            position: c.position,
            stream_id: None,
            stream_version: None,
            reason: format!(
                "the checkpoint of {} covers {} events, only {} are left",
                checkpoint::scope_name(**id),
                c.events,
                s.events
            ),
        });
        return Ok(out);
    }
    out.unsigned_tail = scopes
        .iter()
        .filter(|(id, _)| workspace.is_some() || **id == LOG)
        .map(|(_, s)| (s.events - s.signed).max(0) as u64)
        .sum();
    Ok(out)
}

fn check(
    e: StoredEvent,
    streams: &mut HashMap<String, (i64, Hash)>,
    scopes: &mut HashMap<Uuid, Scope>,
    whole_log: bool,
    trusted: &[u8; 32],
    out: &mut Verification,
) -> Option<Broken> {
    let (position, version) = (e.position, e.stream_version);
    let broken = |reason: String| {
        Some(Broken { position, stream_id: Some(e.stream_id.clone()), stream_version: Some(version), reason })
    };
    let (Some(stored_digest), Some(hash)) =
        (chain::hash_of(e.content_digest.as_deref()), chain::hash_of(e.hash.as_deref()))
    else {
        return broken(
            "not sealed: no digest or link (an event older than migration 0025 the sealer has not reached)".into(),
        );
    };
    if chain::content_digest(&e.content()) != stored_digest {
        return broken("the content differs from what was appended (payload, metadata, type or ids changed)".into());
    }
    let (previous_version, previous) = streams.get(&e.stream_id).copied().unwrap_or((0, chain::ZERO));
    if version != previous_version + 1 {
        return broken(format!(
            "the stream goes from version {previous_version} to {version}: events are missing or reordered"
        ));
    }
    if chain::link(&previous, &stored_digest, e.place()) != hash {
        return broken(
            "the link to the stream's previous event does not hold (position, time or version changed)".into(),
        );
    }
    let workspace = e.workspace_id;
    streams.insert(e.stream_id.clone(), (version, hash));
    let mut names = vec![workspace];
    if whole_log {
        names.push(LOG);
    }
    for name in names {
        let scope = scopes.entry(name).or_default();
        scope.events += 1;
        scope.head = chain::fold(&scope.head, &hash);
        if let Some(c) = scope.checkpoints.remove(&scope.events) {
            let what = checkpoint::scope_name(name);
            if !c.signed_by(trusted) {
                return broken(format!(
                    "the checkpoint of {what} at {} events is not signed by the trusted key",
                    c.events
                ));
            }
            if c.head != scope.head || c.position != position {
                return broken(format!(
                    "the checkpoint of {what} at {} events does not match: events before it were changed, removed or reordered",
                    c.events
                ));
            }
            out.checkpoints += 1;
            scope.signed = c.events;
        }
    }
    None
}
