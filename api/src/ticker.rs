//! Progress ticks: once a second, the counts, rate and ETA of every running campaign go to the live
//! clients of its workspace, also when no event changed them (a stalled campaign's ETA still moves).
//! They are not deltas: they carry no log position and are not replayed on resume.

use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Workspace, campaign and progress of each running campaign.
pub type Tick = Arc<Vec<(Uuid, Uuid, serde_json::Value)>>;

const EVERY: Duration = Duration::from_secs(1);

/// Sends a tick every second while anyone listens, until `shutdown` turns true.
pub fn spawn(pool: PgPool, mut shutdown: watch::Receiver<bool>) -> broadcast::Sender<Tick> {
    let (tx, _) = broadcast::channel(4);
    let ticks = tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            if ticks.receiver_count() == 0 {
                continue;
            }
            match blazz_projections::read_models::campaigns::running(&pool).await {
                Ok(running) if !running.is_empty() => {
                    let _ = ticks.send(Arc::new(running));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "campaign progress unreadable"),
            }
        }
    });
    tx
}
