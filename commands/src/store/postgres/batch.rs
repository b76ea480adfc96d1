//! Group commit. Appends queue up while a transaction is in flight (fairly between workspaces, see
//! `fair`); a writer takes what is queued (up to a size limit) and writes it in one transaction with a
//! handful of set-based statements (or, for a batch of single-event requests without claims or
//! idempotency keys, in one statement without a transaction), so throughput comes from batching
//! rather than from more connections.
//!
//! A failing command must not fail its batch-mates: every statement uses `ON CONFLICT DO NOTHING
//! RETURNING` to learn which rows went in, commands with a missing row are marked failed, and whatever
//! they did write is deleted again before the transaction commits.
//!
//! Each event goes in with its content digest; the trigger `events_chain` links it to its stream
//! predecessor (`crate::audit::chain`).

use super::fair::FairQueue;
use super::insert::insert_events;
use super::Reply;
use crate::store::{AppendError, AppendOutcome, AppendRequest, ExpectedVersion, StoreError};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

type Outcome = Result<AppendOutcome, AppendError>;

/// At most one notification per `interval` across the store's writers.
#[derive(Debug)]
pub(super) struct Throttle {
    start: std::time::Instant,
    interval_ms: u64,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub(super) fn new(interval: std::time::Duration) -> Self {
        Self { start: std::time::Instant::now(), interval_ms: interval.as_millis() as u64, last_ms: u64::MAX.into() }
    }

    /// Whether a notification is due now (and, if so, takes it).
    fn due(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = self.start.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.interval_ms;
        due && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// One writer task: take a batch, write it, answer every request, repeat until the queue closes.
pub(super) async fn writer(pool: PgPool, queue: Arc<FairQueue>, max_events: usize, notify: Arc<Throttle>) {
    while let Some(batch) = queue.take(max_events).await {
        let workspaces = batch.workspaces().to_vec();
        let (requests, replies): (Vec<AppendRequest>, Vec<Reply>) =
            batch.pending.into_iter().map(|p| (p.request, p.reply)).unzip();
        let started = std::time::Instant::now();
        let events: usize = requests.iter().map(|r| r.events.len()).sum();
        let written = write_isolating(&pool, &requests, &notify).await;
        metrics::histogram!("blazz_append_batch_events").record(events as f64);
        metrics::histogram!("blazz_append_batch_seconds").record(started.elapsed().as_secs_f64());
        let outcome = if written.is_ok() { "written" } else { "failed" };
        metrics::counter!("blazz_append_batches_total", "outcome" => outcome).increment(1);
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = requests.len(), "append batch failed");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(AppendError::Store(StoreError::Unavailable(message.clone()))));
                }
            }
        }
        queue.done(&workspaces);
    }
}

/// Whether the database refused a statement because of the data it carried (SQLSTATE classes 22, data
/// exception, e.g. a NUL in text or jsonb; 23, integrity, other than the conflicts the statements
/// absorb; 54, a limit such as an index row too large), rather than because it is unavailable.
fn refused_data(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54"))
        }
        _ => false,
    }
}

/// Writes a batch; when the database refuses the data of one of its requests, only that request fails
/// (`AppendError::Rejected`): the batch is split in halves, each written on its own, until the refused
/// request stands alone. Group commit shares round trips, never fate. A batch without a refused
/// request (the normal case) costs nothing extra; one with a refused request costs about
/// 2·log2(batch size) more transactions.
async fn write_isolating(
    pool: &PgPool,
    requests: &[AppendRequest],
    notify: &Throttle,
) -> Result<Vec<Outcome>, sqlx::Error> {
    match write_with_retry(pool, requests, notify).await {
        Err(e) if refused_data(&e) => {
            if let [only] = requests {
                tracing::warn!(stream = %only.stream_id, workspace = %only.workspace_id, error = %e, "append refused by the database");
                let reason = match &e {
                    sqlx::Error::Database(d) => d.message().to_owned(),
                    other => other.to_string(),
                };
                return Ok(vec![Err(AppendError::Rejected(reason))]);
            }
            let (left, right) = requests.split_at(requests.len() / 2);
            let mut out = Box::pin(write_isolating(pool, left, notify)).await?;
            out.extend(Box::pin(write_isolating(pool, right, notify)).await?);
            Ok(out)
        }
        other => other,
    }
}

/// Deadlocks between concurrent batches are possible in principle (rows are locked in a consistent
/// order, but claims span tables); PostgreSQL aborts one side, which is simply retried.
async fn write_with_retry(
    pool: &PgPool,
    requests: &[AppendRequest],
    notify: &Throttle,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut attempt = 0;
    loop {
        match write(pool, requests, notify).await {
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("40P01" | "40001")) && attempt < 3 => {
                attempt += 1;
                tracing::warn!(attempt, "append batch hit a deadlock; retrying");
            }
            other => return other,
        }
    }
}

/// A batch whose requests each append at most one event and nothing else (no claims, releases or
/// idempotency record) is one insert statement, atomic on its own: it runs without an explicit
/// transaction, one round trip instead of three (BEGIN, INSERT, COMMIT). A request of it that fails
/// (a version conflict) wrote no event, so there is nothing to undo but its data key. Most appends
/// are such: a dispatcher step, a status, a queued message.
fn one_statement(requests: &[AppendRequest]) -> bool {
    requests
        .iter()
        .all(|r| r.events.len() <= 1 && r.claims.is_empty() && r.releases.is_empty() && r.idempotency.is_none())
}

/// The outcome of each request given the rows that went in: a request with a missing row failed
/// (`Conflict`); and each one's last stream version and position.
fn tally(
    requests: &[AppendRequest],
    written: &HashMap<Uuid, (i64, u64)>,
) -> (Vec<Option<Outcome>>, Vec<(u64, Option<i64>)>) {
    let mut outcomes: Vec<Option<Outcome>> = requests.iter().map(|_| None).collect();
    let mut last: Vec<(u64, Option<i64>)> = vec![(0, None); requests.len()];
    for (i, r) in requests.iter().enumerate() {
        let mut complete = true;
        for e in &r.events {
            match written.get(&e.event_id) {
                Some(&(position, version)) => {
                    let l = &mut last[i];
                    l.0 = l.0.max(version);
                    l.1 = Some(l.1.map_or(position, |p: i64| p.max(position)));
                }
                None => complete = false,
            }
        }
        if !complete {
            outcomes[i] = Some(Err(AppendError::Conflict { stream_id: r.stream_id.clone(), expected: r.expected }));
        }
        if r.events.is_empty() {
            if let ExpectedVersion::Exact(v) = r.expected {
                last[i].0 = v;
            }
        }
    }
    (outcomes, last)
}

fn answers(outcomes: Vec<Option<Outcome>>, last: Vec<(u64, Option<i64>)>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .zip(last)
        .map(|(o, (stream_version, position))| o.unwrap_or(Ok(AppendOutcome { stream_version, position })))
        .collect()
}

const NOTIFY: &str = "SELECT pg_notify('blazz_events', '')";

#[tracing::instrument(skip_all, fields(requests = requests.len()))]
async fn write(pool: &PgPool, requests: &[AppendRequest], notify: &Throttle) -> Result<Vec<Outcome>, sqlx::Error> {
    if one_statement(requests) {
        let mut conn = pool.acquire().await?;
        let written = insert_events(&mut conn, requests).await?;
        // After the commit: a wake-up only, readers read the log itself.
        if !written.is_empty() && notify.due() {
            sqlx::query(NOTIFY).execute(&mut *conn).await?;
        }
        let (outcomes, last) = tally(requests, &written);
        return Ok(answers(outcomes, last));
    }
    let mut tx = pool.begin().await?;
    let written = insert_events(&mut tx, requests).await?;
    let (mut outcomes, last) = tally(requests, &written);

    let claimed = insert_claims(&mut tx, requests, &mut outcomes).await?;
    insert_idempotency(&mut tx, requests, &last, &mut outcomes).await?;

    // Undo what failed commands wrote.
    let failed: Vec<usize> = (0..requests.len()).filter(|i| outcomes[*i].is_some()).collect();
    if !failed.is_empty() {
        let event_ids: Vec<Uuid> = failed
            .iter()
            .flat_map(|i| requests[*i].events.iter().map(|e| e.event_id))
            .filter(|id| written.contains_key(id))
            .collect();
        if !event_ids.is_empty() {
            sqlx::query("DELETE FROM events WHERE event_id = ANY($1)").bind(&event_ids).execute(&mut *tx).await?;
        }
        // Only claims the failed command itself inserted: a batch-mate may hold the same value.
        let mut undo: (Vec<&str>, Vec<&str>, Vec<&str>) = (vec![], vec![], vec![]);
        for &i in &failed {
            for c in &requests[i].claims {
                if claimed.get(&(c.scope.clone(), c.value.clone())) == Some(&i) {
                    undo.0.push(&c.scope);
                    undo.1.push(&c.value);
                    undo.2.push(&c.owner);
                }
            }
        }
        if !undo.0.is_empty() {
            sqlx::query(
                "DELETE FROM unique_claims u USING unnest($1::text[], $2::text[], $3::text[]) AS r(scope, value, owner)
                 WHERE u.scope = r.scope AND u.value = r.value AND u.owner = r.owner",
            )
            .bind(&undo.0)
            .bind(&undo.1)
            .bind(&undo.2)
            .execute(&mut *tx)
            .await?;
        }
    }

    release_claims(&mut tx, requests, &outcomes).await?;
    // Wake log readers once the batch commits (a wake-up only; they read the log itself). PostgreSQL
    // serialises the commits of notifying transactions, so writers notify at most once per interval;
    // readers keep polling briefly after activity and pick up what lands in between.
    if outcomes.iter().any(Option::is_none) && !written.is_empty() && notify.due() {
        sqlx::query(NOTIFY).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(answers(outcomes, last))
}

/// Takes the claims of requests still standing; fails those whose claim is held by someone else.
/// Returns the claims that went in, with the index of the request that took each.
async fn insert_claims(
    tx: &mut Transaction<'_, Postgres>,
    requests: &[AppendRequest],
    outcomes: &mut [Option<Outcome>],
) -> Result<HashMap<(String, String), usize>, sqlx::Error> {
    let mut first_claimant: HashMap<(&str, &str), usize> = HashMap::new();
    let (mut scopes, mut values, mut owners, mut workspaces, mut data) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, r) in requests.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        for c in &r.claims {
            if let Some(&j) = first_claimant.get(&(c.scope.as_str(), c.value.as_str())) {
                if j != i {
                    let same_workspace = requests[j].workspace_id == r.workspace_id;
                    outcomes[i] = Some(Err(AppendError::ClaimTaken {
                        scope: c.scope.clone(),
                        value: c.value.clone(),
                        owner: same_workspace.then(|| requests[j].stream_id.clone()),
                    }));
                }
                continue;
            }
            first_claimant.insert((c.scope.as_str(), c.value.as_str()), i);
        }
    }
    for (i, r) in requests.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        for c in &r.claims {
            if first_claimant.get(&(c.scope.as_str(), c.value.as_str())) == Some(&i) {
                scopes.push(c.scope.as_str());
                values.push(c.value.as_str());
                owners.push(c.owner.as_str());
                workspaces.push(c.workspace_id);
                data.push(&c.data);
            }
        }
    }
    if scopes.is_empty() {
        return Ok(HashMap::new());
    }
    let taken: HashSet<(String, String)> = sqlx::query_as::<_, (String, String)>(
        "INSERT INTO unique_claims (scope, value, owner, workspace_id, data)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::jsonb[]) ORDER BY 1, 2
         ON CONFLICT DO NOTHING
         RETURNING scope, value",
    )
    .bind(&scopes)
    .bind(&values)
    .bind(&owners)
    .bind(&workspaces)
    .bind(&data)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();

    // The holder is named only to a claimant of the same workspace: another workspace's ids stay
    // unknown to it.
    let missing: Vec<(usize, &str, &str)> = requests
        .iter()
        .enumerate()
        .filter(|(i, _)| outcomes[*i].is_none())
        .flat_map(|(i, r)| r.claims.iter().map(move |c| (i, c.scope.as_str(), c.value.as_str())))
        .filter(|(_, s, v)| !taken.contains(&(s.to_string(), v.to_string())))
        .collect();
    if !missing.is_empty() {
        let (ms, mv): (Vec<&str>, Vec<&str>) = missing.iter().map(|(_, s, v)| (*s, *v)).unzip();
        let holders: HashMap<(String, String), (String, Uuid)> = sqlx::query_as::<_, (String, String, String, Uuid)>(
            "SELECT u.scope, u.value, u.owner, u.workspace_id FROM unique_claims u
             JOIN unnest($1::text[], $2::text[]) AS r(scope, value) ON u.scope = r.scope AND u.value = r.value",
        )
        .bind(&ms)
        .bind(&mv)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(s, v, o, w)| ((s, v), (o, w)))
        .collect();
        for (i, s, v) in missing {
            if outcomes[i].is_none() {
                let owner = holders
                    .get(&(s.to_string(), v.to_string()))
                    .filter(|(_, w)| *w == requests[i].workspace_id)
                    .map(|(o, _)| o.clone());
                outcomes[i] = Some(Err(AppendError::ClaimTaken { scope: s.into(), value: v.into(), owner }));
            }
        }
    }
    Ok(taken
        .into_iter()
        .filter_map(|(s, v)| {
            let i = *first_claimant.get(&(s.as_str(), v.as_str()))?;
            Some(((s, v), i))
        })
        .collect())
}

/// Stores the idempotency records of requests still standing; a key already taken fails its request.
async fn insert_idempotency(
    tx: &mut Transaction<'_, Postgres>,
    requests: &[AppendRequest],
    last: &[(u64, Option<i64>)],
    outcomes: &mut [Option<Outcome>],
) -> Result<(), sqlx::Error> {
    let mut seen: HashSet<(Uuid, &str)> = HashSet::new();
    let (mut idx, mut workspaces, mut keys, mut fingerprints, mut results, mut positions) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, r) in requests.iter().enumerate() {
        let (None, Some(w)) = (&outcomes[i], &r.idempotency) else {
            continue;
        };
        if !seen.insert((w.scope, w.key.as_str())) {
            outcomes[i] = Some(Err(AppendError::IdempotencyKeyUsed { key: w.key.clone() }));
            continue;
        }
        idx.push(i);
        workspaces.push(w.scope);
        keys.push(w.key.as_str());
        fingerprints.push(w.fingerprint.as_str());
        results.push(&w.result);
        positions.push(last[i].1);
    }
    if idx.is_empty() {
        return Ok(());
    }
    let stored: HashSet<(Uuid, String)> = sqlx::query_as::<_, (Uuid, String)>(
        "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, result, position)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int8[]) ORDER BY 1, 2
         ON CONFLICT DO NOTHING
         RETURNING workspace_id, key",
    )
    .bind(&workspaces)
    .bind(&keys)
    .bind(&fingerprints)
    .bind(&results)
    .bind(&positions)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    for (n, i) in idx.into_iter().enumerate() {
        if !stored.contains(&(workspaces[n], keys[n].to_owned())) {
            outcomes[i] = Some(Err(AppendError::IdempotencyKeyUsed { key: keys[n].to_owned() }));
        }
    }
    Ok(())
}

async fn release_claims(
    tx: &mut Transaction<'_, Postgres>,
    requests: &[AppendRequest],
    outcomes: &[Option<Outcome>],
) -> Result<(), sqlx::Error> {
    let (mut scopes, mut values, mut owners) = (vec![], vec![], vec![]);
    for (i, r) in requests.iter().enumerate() {
        if outcomes[i].is_none() {
            for c in &r.releases {
                scopes.push(c.scope.as_str());
                values.push(c.value.as_str());
                owners.push(c.owner.as_str());
            }
        }
    }
    if scopes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM unique_claims u USING unnest($1::text[], $2::text[], $3::text[]) AS r(scope, value, owner)
         WHERE u.scope = r.scope AND u.value = r.value AND u.owner = r.owner",
    )
    .bind(&scopes)
    .bind(&values)
    .bind(&owners)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
