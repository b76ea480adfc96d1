//! An in-memory [`EventStore`]: the reference behaviour, used by tests. Each append is atomic under one
//! lock, so every transaction id equals its position and the log has no in-flight gaps.

use super::{
    AppendError, AppendOutcome, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord, IdempotencyWrite,
    LogCursor, LogPage, RecordedEvent, StoreError,
};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use uuid::Uuid;

#[derive(Debug, Default)]
struct Inner {
    events: Vec<RecordedEvent>,
    versions: HashMap<String, u64>,
    event_ids: HashSet<Uuid>,
    claims: HashMap<(String, String), Claim>,
    idempotency: HashMap<(Uuid, String), IdempotencyRecord>,
}

#[derive(Debug, Default)]
pub struct MemoryEventStore {
    inner: Mutex<Inner>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied append (all checks run first).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(&self, r: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let mut g = self.lock();
        let current = g.versions.get(&r.stream_id).copied().unwrap_or(0);
        let conflict = || AppendError::Conflict { stream_id: r.stream_id.clone(), expected: r.expected };
        let base = match r.expected {
            ExpectedVersion::NoStream if current != 0 && !r.events.is_empty() => return Err(conflict()),
            ExpectedVersion::Exact(v) if v != current && !r.events.is_empty() => return Err(conflict()),
            ExpectedVersion::Exact(v) => v,
            _ => current,
        };
        if r.events.iter().any(|e| g.event_ids.contains(&e.event_id)) {
            return Err(conflict());
        }
        let mut claimed = HashSet::new();
        for c in &r.claims {
            let key = (c.scope.clone(), c.value.clone());
            if let Some(holder) = g.claims.get(&key) {
                return Err(AppendError::ClaimTaken {
                    scope: c.scope.clone(),
                    value: c.value.clone(),
                    // Named only within its own workspace.
                    owner: (holder.workspace_id == r.workspace_id).then(|| holder.owner.clone()),
                });
            }
            if !claimed.insert(key) {
                return Err(AppendError::ClaimTaken {
                    scope: c.scope.clone(),
                    value: c.value.clone(),
                    owner: Some(r.stream_id.clone()),
                });
            }
        }
        if let Some(w) = &r.idempotency {
            if g.idempotency.contains_key(&(w.scope, w.key.clone())) {
                return Err(AppendError::IdempotencyKeyUsed { key: w.key.clone() });
            }
        }
        // All checks passed: apply.
        let now = Utc::now();
        let mut position = None;
        for (i, e) in r.events.iter().enumerate() {
            let pos = g.events.len() as i64 + 1;
            g.event_ids.insert(e.event_id);
            g.events.push(RecordedEvent {
                position: pos,
                transaction_id: pos as u64,
                stream_id: r.stream_id.clone(),
                stream_version: base + i as u64 + 1,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                workspace_id: r.workspace_id,
                payload: e.payload.clone(),
                metadata: r.metadata.clone(),
                recorded_at: now,
                hash: None,
                erased: vec![],
            });
            position = Some(pos);
        }
        let version = base + r.events.len() as u64;
        if !r.events.is_empty() {
            g.versions.insert(r.stream_id.clone(), version);
        }
        for c in r.claims {
            g.claims.insert((c.scope.clone(), c.value.clone()), c);
        }
        for rel in &r.releases {
            let key = (rel.scope.clone(), rel.value.clone());
            if g.claims.get(&key).is_some_and(|c| c.owner == rel.owner) {
                g.claims.remove(&key);
            }
        }
        if let Some(w) = r.idempotency {
            g.idempotency
                .insert((w.scope, w.key), IdempotencyRecord { fingerprint: w.fingerprint, result: w.result, position });
        }
        Ok(AppendOutcome { stream_version: version, position })
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let to = to_version.unwrap_or(u64::MAX);
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|e| e.stream_id == stream_id && e.stream_version >= from_version && e.stream_version <= to)
            .cloned()
            .collect())
    }

    async fn read_correlation(
        &self,
        workspace: Uuid,
        correlation_id: Uuid,
        after: LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        let events: Vec<RecordedEvent> = self
            .lock()
            .events
            .iter()
            .filter(|e| e.workspace_id == workspace && e.metadata.correlation_id == correlation_id)
            .filter(|e| LogCursor::of(e) > after)
            .take(limit)
            .cloned()
            .collect();
        let next = events.last().map(LogCursor::of).unwrap_or(after);
        Ok(LogPage { events, next })
    }

    async fn read_streams(&self, stream_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out: Vec<RecordedEvent> =
            self.lock().events.iter().filter(|e| stream_ids.contains(&e.stream_id)).cloned().collect();
        out.sort_by(|a, b| (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version)));
        Ok(out)
    }

    async fn read_log(&self, after: LogCursor, limit: usize, workspace: Option<Uuid>) -> Result<LogPage, StoreError> {
        let events: Vec<RecordedEvent> = self
            .lock()
            .events
            .iter()
            .filter(|e| LogCursor::of(e) > after && workspace.is_none_or(|w| e.workspace_id == w))
            .take(limit)
            .cloned()
            .collect();
        let next = events.last().map(LogCursor::of).unwrap_or(after);
        Ok(LogPage { events, next })
    }

    async fn idempotency_record(&self, workspace_id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock().idempotency.get(&(workspace_id, key.to_owned())).cloned())
    }

    async fn put_idempotency_record(&self, write: IdempotencyWrite, position: Option<i64>) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let key = (write.scope, write.key);
        if g.idempotency.contains_key(&key) {
            return Ok(false);
        }
        g.idempotency.insert(key, IdempotencyRecord { fingerprint: write.fingerprint, result: write.result, position });
        Ok(true)
    }

    async fn claim(&self, scope: &str, value: &str) -> Result<Option<Claim>, StoreError> {
        Ok(self.lock().claims.get(&(scope.to_owned(), value.to_owned())).cloned())
    }

    async fn claim_owners(&self, scope: &str, workspace_id: Uuid) -> Result<Vec<String>, StoreError> {
        let g = self.lock();
        let owners: std::collections::BTreeSet<String> = g
            .claims
            .values()
            .filter(|c| c.scope == scope && c.workspace_id == workspace_id)
            .map(|c| c.owner.clone())
            .collect();
        Ok(owners.into_iter().collect())
    }

    async fn owners_with_claim(
        &self,
        scope: &str,
        workspace_id: Uuid,
        owners: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let g = self.lock();
        let holders: HashSet<&str> = g
            .claims
            .values()
            .filter(|c| c.scope == scope && c.workspace_id == workspace_id)
            .map(|c| c.owner.as_str())
            .collect();
        Ok(owners
            .iter()
            .filter(|o| holders.contains(o.as_str()))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect())
    }
}
