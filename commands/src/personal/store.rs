//! An event store that seals personal fields on append and opens them on read, over any other.

use super::Vault;
use crate::as_of::AsOf;
use crate::store::{
    AppendError, AppendOutcome, AppendRequest, Claim, EventStore, IdempotencyRecord, IdempotencyWrite, LogCursor,
    LogPage, RecordedEvent, Snapshot, StoreError,
};
use async_trait::async_trait;
use std::sync::Arc;
use uuid::Uuid;

/// `inner` with personal data sealed in the log. `inner` itself keeps serving the sealed form (the
/// Kafka relay publishes it, audit verification hashes it).
#[derive(Clone)]
pub struct PersonalStore {
    inner: Arc<dyn EventStore>,
    vault: Vault,
}

impl std::fmt::Debug for PersonalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalStore").field("vault", &self.vault).finish_non_exhaustive()
    }
}

impl PersonalStore {
    pub fn new(inner: Arc<dyn EventStore>, vault: Vault) -> Self {
        Self { inner, vault }
    }

    /// The store underneath, serving events as stored (sealed).
    pub fn sealed(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    async fn revealed(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        self.vault.reveal(&mut events).await?;
        Ok(events)
    }

    async fn revealed_page(&self, mut page: LogPage) -> Result<LogPage, StoreError> {
        self.vault.reveal(&mut page.events).await?;
        Ok(page)
    }
}

#[async_trait]
impl EventStore for PersonalStore {
    async fn append(&self, mut request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        self.vault.protect(std::slice::from_mut(&mut request)).await?;
        self.inner.append(request).await
    }

    async fn append_all(&self, mut requests: Vec<AppendRequest>) -> Vec<Result<AppendOutcome, AppendError>> {
        if let Err(e) = self.vault.protect(&mut requests).await {
            let message = e.to_string();
            return requests.iter().map(|_| Err(StoreError::Unavailable(message.clone()).into())).collect();
        }
        self.inner.append_all(requests).await
    }

    async fn read_correlation(
        &self,
        workspace: Uuid,
        correlation_id: Uuid,
        after: LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        self.revealed_page(self.inner.read_correlation(workspace, correlation_id, after, limit).await?).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.revealed(self.inner.read_stream(stream_id, from_version, to_version).await?).await
    }

    async fn snapshot(&self, stream_id: &str, code: &str, at: AsOf) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot(stream_id, code, at).await
    }

    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        self.inner.put_snapshots(snapshots).await
    }

    async fn read_streams(&self, stream_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.revealed(self.inner.read_streams(stream_ids).await?).await
    }

    async fn read_log(&self, after: LogCursor, limit: usize, workspace: Option<Uuid>) -> Result<LogPage, StoreError> {
        self.revealed_page(self.inner.read_log(after, limit, workspace).await?).await
    }

    async fn idempotency_record(&self, workspace_id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(workspace_id, key).await
    }

    async fn put_idempotency_record(&self, write: IdempotencyWrite, position: Option<i64>) -> Result<bool, StoreError> {
        self.inner.put_idempotency_record(write, position).await
    }

    async fn claim(&self, scope: &str, value: &str) -> Result<Option<Claim>, StoreError> {
        self.inner.claim(scope, value).await
    }

    async fn claim_owners(&self, scope: &str, workspace_id: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.claim_owners(scope, workspace_id).await
    }

    async fn owners_with_claim(
        &self,
        scope: &str,
        workspace_id: Uuid,
        owners: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.inner.owners_with_claim(scope, workspace_id, owners).await
    }
}
