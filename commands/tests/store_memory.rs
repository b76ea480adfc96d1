//! The in-memory store passes the conformance suite.

use blazz_commands::store::conformance;
use blazz_commands::store::memory::MemoryEventStore;
use blazz_commands::store::EventStore;
use std::sync::Arc;

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run_all(|| async { Arc::new(MemoryEventStore::new()) as Arc<dyn EventStore> }).await;
}
