//! The dispatcher role: polls the `dispatch_queue` projection for due messages and sends each through
//! [`Dispatcher::dispatch`], several at a time. Several dispatchers may poll the same queue: the
//! attempt recorded at an exact stream version before the provider call lets only one of them send.

use blazz_commands::dispatch::{Dispatched, Dispatcher};
use blazz_domain::ids::MessageId;
use futures::StreamExt;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// How often an idle dispatcher looks for work.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Messages taken per poll.
const BATCH: i64 = 256;
/// Provider calls in flight at once.
const CONCURRENCY: usize = 32;
/// A message handled here is not looked at again for this long (the queue projection lags a little).
const REMEMBER: Duration = Duration::from_secs(30);

/// Runs until `shutdown` turns true; finishes the sends in flight first.
pub async fn run(pool: PgPool, dispatcher: Dispatcher, mut shutdown: watch::Receiver<bool>) {
    let mut handled: HashMap<Uuid, Instant> = HashMap::new();
    while !*shutdown.borrow() {
        let due: Vec<(Uuid, Uuid)> = match sqlx::query_as(
            "SELECT workspace_id, message_id FROM dispatch_queue WHERE due_at <= now() ORDER BY due_at LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&pool)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "dispatch queue unreadable; retrying");
                Vec::new()
            }
        };
        handled.retain(|_, at| at.elapsed() < REMEMBER);
        let fresh: Vec<(Uuid, Uuid)> = due.into_iter().filter(|(_, m)| !handled.contains_key(m)).collect();
        if fresh.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for (_, m) in &fresh {
            handled.insert(*m, Instant::now());
        }
        futures::stream::iter(fresh)
            .for_each_concurrent(CONCURRENCY, |(workspace, message)| {
                let dispatcher = &dispatcher;
                async move {
                    match dispatcher.dispatch(workspace, MessageId::from_uuid(message)).await {
                        Ok(Dispatched::Failed(e)) => tracing::info!(%message, code = e.code, "send failed"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%message, error = %e, "dispatch failed"),
                    }
                }
            })
            .await;
    }
}
