//! The dispatcher role: polls the `dispatch_queue` projection for due messages and sends each through
//! [`Dispatcher::dispatch`], several at a time; and [`schedule`] launches scheduled campaigns on time
//! (also after a restart: the schedule is in the log and the `campaigns` projection). Several dispatchers may poll the same queue: the
//! attempt recorded at an exact stream version before the provider call lets only one of them send.

use blazz_commands::dispatch::{Dispatched, Dispatcher};
use blazz_domain::ids::{CampaignId, MessageId};
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

/// How often scheduled campaigns are looked for.
const SCHEDULE_POLL: Duration = Duration::from_secs(1);
/// A launch still `launching` after this long was interrupted (a crash) and is launched again.
const LAUNCH_STALLED: &str = "2 minutes";

/// Launches scheduled campaigns when due, and relaunches interrupted launches (a launch is idempotent:
/// message ids derive from campaign and contact). Runs until `shutdown` turns true.
pub async fn schedule(pool: PgPool, dispatcher: Dispatcher, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
            "SELECT workspace_id, campaign_id FROM rm_campaigns
             WHERE (status = 'scheduled' AND scheduled_at <= now())
                OR (status = 'launching' AND launched_at < now() - interval '{LAUNCH_STALLED}')"
        ))
        .fetch_all(&pool)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "scheduled campaigns unreadable; retrying");
            vec![]
        });
        for (workspace, campaign) in due {
            let ctx = Dispatcher::context(workspace);
            match dispatcher.commands().launch_campaign(&ctx, CampaignId::from_uuid(campaign)).await {
                Ok(r) => tracing::info!(%campaign, result = %r.body, "scheduled campaign launched"),
                Err(e) => tracing::warn!(%campaign, error = %e, "scheduled campaign not launched"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SCHEDULE_POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Runs until `shutdown` turns true; finishes the sends in flight first.
pub async fn run(pool: PgPool, dispatcher: Dispatcher, mut shutdown: watch::Receiver<bool>) {
    let mut handled: HashMap<Uuid, Instant> = HashMap::new();
    while !*shutdown.borrow() {
        let due: Vec<(Uuid, Uuid)> = match sqlx::query_as(
            "SELECT q.workspace_id, q.message_id FROM dispatch_queue q
             WHERE q.due_at <= now()
               AND NOT EXISTS (SELECT 1 FROM dispatch_held_campaigns h WHERE h.campaign_id = q.campaign_id)
             ORDER BY q.due_at LIMIT $1",
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
        let done: Vec<Uuid> = futures::stream::iter(fresh)
            .map(|(workspace, message)| {
                let dispatcher = &dispatcher;
                async move {
                    match dispatcher.dispatch(workspace, MessageId::from_uuid(message)).await {
                        Ok(Dispatched::Failed(e)) => tracing::info!(%message, code = e.code, "send failed"),
                        Ok(Dispatched::Held) => return (message, true),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%message, error = %e, "dispatch failed"),
                    }
                    (message, false)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|(m, held)| async move { (!held).then_some(m) })
            .collect()
            .await;
        // Messages handled here are not looked at again until the queue projection drops them;
        // a held campaign's messages are, as soon as it resumes.
        for m in done {
            handled.insert(m, Instant::now());
        }
    }
}
