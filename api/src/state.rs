//! Shared state of the gateway: one `Arc` over the handles every request may use.

use blazz_commands::credentials::CredentialStore;
use blazz_commands::Commands;
use blazz_projections::delta::Hub;
use blazz_projections::progress::Progress;
use sqlx::PgPool;
use std::sync::Arc;

/// The gateway's state, as handlers take it. axum clones the state for every extractor of every
/// request that asks for it; cloning the handles themselves cost a reference count per handle (and a
/// copy of the keyrings) each time: 1–3 % of the process's CPU under the send benchmark (`perf`,
/// the clone alone and with its drops).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Handles>);

impl AppState {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

#[derive(Debug)]
pub struct Handles {
    pub commands: Commands,
    /// Token for operator-only routes (creating workspaces, recording template reviews). Without one
    /// those routes answer 403.
    pub operator_token: Option<Arc<str>>,
    /// For queries of the read models.
    pub pool: PgPool,
    /// How far the projectors are (read-your-writes).
    pub progress: Progress,
    /// Deltas for WebSocket subscribers.
    pub hub: Hub,
    /// Channel secrets (sealed).
    pub credentials: CredentialStore,
    /// Request timeout, concurrency limit and the default key rate of this gateway.
    pub limits: crate::limits::LimitSettings,
    /// Signing secrets of outbound webhook endpoints (sealed).
    pub endpoint_secrets: blazz_commands::outbound::secrets::EndpointSecrets,
    /// The workspaces' bots (their keys sealed).
    pub bots: blazz_commands::bot::Bots,
    /// Where media is kept.
    pub media: std::sync::Arc<dyn object_store::ObjectStore>,
    /// Endpoints may name private addresses (the operator allowed it; see the SSRF guard).
    pub webhooks_allow_private: bool,
    /// Per-API-key request rates.
    pub rates: Arc<crate::limits::KeyRates>,
    /// Once a second, the progress of every running campaign (see [`crate::ticker`]).
    pub ticks: tokio::sync::broadcast::Sender<crate::ticker::Tick>,
    /// Campaign fan-outs in the background.
    pub launcher: crate::launcher::Launcher,
    /// The Kafka topic's partitions when projectors read it (`None`: the log feed), for status.
    pub kafka_partitions: Option<i32>,
}
