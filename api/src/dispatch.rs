//! The dispatcher role: polls the `dispatch_queue` projection for due messages and sends each through
//! [`Dispatcher::dispatch`], several at a time; and [`schedule`] launches scheduled campaigns on time
//! (also after a restart: the schedule is in the log and the `campaigns` projection). Several dispatchers may poll the same queue: the
//! attempt recorded at an exact stream version before the provider call lets only one of them send.

use crate::launcher::Launcher;
use blazz_commands::dispatch::{slots, Dispatched, Dispatcher};
use blazz_domain::ids::{AgentId, CampaignId, ConversationId, MessageId, TeamId};
use blazz_projections::read_models::outbox::{self, Due};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

/// How often an idle dispatcher looks for work.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Messages taken per poll (a second's worth of the fastest channel).
const BATCH: i64 = 1000;
/// Provider calls in flight at once.
const CONCURRENCY: usize = 128;
/// The next second's slots are looked up when a channel's slotted sends all start within this long.
const LOOKAHEAD: Duration = Duration::from_millis(250);
/// A message skipped here (not ours to send, yet no later event marks its row stale) or whose
/// dispatch failed is not looked at again for this long: it must not take a send slot every round.
const REMEMBER: Duration = Duration::from_secs(30);

/// How often scheduled campaigns are looked for.
const SCHEDULE_POLL: Duration = Duration::from_secs(1);
/// A launch still `launching` after this long, and not fanning out in this process, was interrupted
/// (a crash) and is launched again.
const LAUNCH_STALLED: Duration = Duration::from_secs(120);

/// Launches scheduled campaigns when due, relaunches interrupted launches (a launch is idempotent:
/// message ids derive from campaign and contact), applies the crash policy to attempts left without
/// an outcome, completes campaigns whose messages are all final, reopens snoozed conversations
/// whose time has come, and assigns waiting conversations to teams and agents. Runs until `shutdown`
/// turns true.
pub async fn schedule(pool: PgPool, dispatcher: Dispatcher, launcher: Launcher, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        launch_due(&pool, &dispatcher, &launcher).await;
        give_up_stale(&pool, &dispatcher).await;
        complete_finished(&pool, &dispatcher).await;
        wake_snoozed(&pool, &dispatcher).await;
        release_deactivated(&pool, &dispatcher).await;
        assign_waiting(&pool, &dispatcher).await;
        tokio::select! {
            _ = tokio::time::sleep(SCHEDULE_POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Launches scheduled campaigns whose time has come, and launches again those left `launching` (a
/// crash) that this process is not fanning out.
async fn launch_due(pool: &PgPool, dispatcher: &Dispatcher, launcher: &Launcher) {
    let due = match blazz_projections::read_models::campaigns::due_for_launch(pool, LAUNCH_STALLED).await {
        Ok(d) => d,
        Err(e) => return tracing::warn!(error = %e, "scheduled campaigns unreadable; retrying"),
    };
    for (workspace, campaign) in due {
        let (ctx, campaign) = (Dispatcher::context(workspace), CampaignId::from_uuid(campaign));
        if launcher.is_running(campaign) {
            continue;
        }
        match dispatcher.commands().start_launch(&ctx, campaign).await {
            Ok(_) => launcher.fan_out(ctx, campaign),
            Err(e) => tracing::warn!(%campaign, error = %e, "scheduled campaign not launched"),
        }
    }
}

/// The crash policy: attempts whose outcome never came back are marked unknown, not resent.
async fn give_up_stale(pool: &PgPool, dispatcher: &Dispatcher) {
    let unknown_after = dispatcher.policy().unknown_after;
    let stale = match blazz_projections::read_models::messages::dispatched_before(pool, unknown_after, 1000).await {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "attempts in flight unreadable; retrying"),
    };
    for (workspace, message) in stale {
        match dispatcher.give_up_waiting(workspace, MessageId::from_uuid(message)).await {
            Ok(true) => tracing::warn!(%message, "no outcome for an attempt: marked unknown (not resent)"),
            Ok(false) => {}
            Err(e) => tracing::warn!(%message, error = %e, "could not mark an attempt unknown"),
        }
    }
}

/// Completes every running campaign whose messages are all final (also those that ended as
/// `unknown` by the crash policy, and after a restart: the state is in the campaigns projection).
async fn complete_finished(pool: &PgPool, dispatcher: &Dispatcher) {
    let finished = match blazz_projections::read_models::campaigns::finished(pool).await {
        Ok(f) => f,
        Err(e) => return tracing::warn!(error = %e, "finished campaigns unreadable; retrying"),
    };
    for (workspace, campaign, counts) in finished {
        let ctx = Dispatcher::context(workspace);
        match dispatcher.commands().complete_campaign(&ctx, CampaignId::from_uuid(campaign), counts).await {
            Ok(r) if r.position.is_some() => tracing::info!(%campaign, total = counts.total(), "campaign completed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(%campaign, error = %e, "campaign not completed; retrying"),
        }
    }
}

/// Reopens snoozed conversations whose snooze has ended.
async fn wake_snoozed(pool: &PgPool, dispatcher: &Dispatcher) {
    let due = match blazz_projections::read_models::conversations::snooze_ended(pool, 1000).await {
        Ok(d) => d,
        Err(e) => return tracing::warn!(error = %e, "snoozed conversations unreadable; retrying"),
    };
    for (workspace, conversation) in due {
        let ctx = Dispatcher::context(workspace);
        if let Err(e) = dispatcher.commands().wake_conversation(&ctx, ConversationId::from_uuid(conversation)).await {
            tracing::warn!(%conversation, error = %e, "snoozed conversation not reopened; retrying");
        }
    }
}

/// Hands the conversations of deactivated agents back to their teams (where automatic assignment,
/// if the team has it, gives them to someone else). The conversation aggregate releases only a
/// conversation the agent still holds, so a stale read changes nothing.
async fn release_deactivated(pool: &PgPool, dispatcher: &Dispatcher) {
    use blazz_projections::read_models::agents;
    let held = match agents::held_by_deactivated(pool, ASSIGN_PER_WORKSPACE, ASSIGN_PER_TICK).await {
        Ok(h) => h,
        Err(e) => return tracing::warn!(error = %e, "conversations of deactivated agents unreadable; retrying"),
    };
    for (workspace, conversation, agent) in held {
        let ctx = blazz_commands::CommandContext::system(workspace, "assigner");
        let (id, agent) = (ConversationId::from_uuid(conversation), AgentId::from_uuid(agent));
        if let Err(e) = dispatcher.commands().release_conversation(&ctx, id, agent).await {
            tracing::warn!(%conversation, error = %e, "conversation of a deactivated agent not released; retrying");
        }
    }
}

/// Conversations a team takes per workspace and tick, and in all per tick.
const ASSIGN_PER_WORKSPACE: i64 = 50;
const ASSIGN_PER_TICK: i64 = 1000;

/// Automatic assignment: each open conversation without an agent that a team should take goes to
/// that team and, if the team assigns automatically, to the next of its online members under the
/// cap ([`blazz_domain::team::next_agent`]: round-robin by who was given one longest ago). The
/// conversation aggregate refuses to take one from an agent or another team, so a stale read or a
/// second node's scheduler changes nothing.
async fn assign_waiting(pool: &PgPool, dispatcher: &Dispatcher) {
    use blazz_projections::read_models::agents;
    let waiting = match agents::waiting_for_assignment(pool, ASSIGN_PER_WORKSPACE, ASSIGN_PER_TICK).await {
        Ok(w) => w,
        Err(e) => return tracing::warn!(error = %e, "conversations waiting for assignment unreadable; retrying"),
    };
    let mut teams: HashMap<(Uuid, Uuid), Vec<blazz_domain::team::Candidate>> = HashMap::new();
    for w in waiting {
        let agent = if w.auto_assign {
            let key = (w.workspace_id, w.team_id);
            if !teams.contains_key(&key) {
                match agents::candidates(pool, w.workspace_id, w.team_id).await {
                    Ok(c) => teams.insert(key, c),
                    Err(e) => return tracing::warn!(error = %e, "team members unreadable; retrying"),
                };
            }
            let cap = w.max_open_per_agent.and_then(|c| u32::try_from(c).ok());
            teams.get(&key).and_then(|c| blazz_domain::team::next_agent(c, cap))
        } else {
            None
        };
        let ctx = blazz_commands::CommandContext::system(w.workspace_id, "assigner");
        let (conversation, team) = (ConversationId::from_uuid(w.conversation_id), TeamId::from_uuid(w.team_id));
        match dispatcher.commands().auto_assign_conversation(&ctx, conversation, team, agent).await {
            Ok(r) if r.position.is_some() => {
                let taken = teams.get_mut(&(w.workspace_id, w.team_id));
                if let Some(c) = taken.and_then(|c| c.iter_mut().find(|c| Some(c.agent_id) == agent)) {
                    c.open = c.open.saturating_add(1);
                    c.last_assigned_at = Some(ctx.now);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%conversation, error = %e, "conversation not assigned; retrying"),
        }
    }
}

/// Keeps the due messages that may go now: campaign messages take their recipient's pace slot on the
/// channel (one per recipient per round, and none while an earlier one's slot is still running);
/// other messages pass.
async fn paced(pool: &PgPool, due: Vec<Due>, pace: Duration) -> Result<Vec<Due>, sqlx::Error> {
    let mut pairs: Vec<(Uuid, Uuid)> = due.iter().filter_map(|d| Some((d.channel_id, d.pace_contact?))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut granted = slots::pace(pool, &pairs, pace).await?;
    // Each granted slot serves the first of that recipient's messages (in queue order) only.
    Ok(due.into_iter().filter(|d| d.pace_contact.is_none_or(|r| granted.remove(&(d.channel_id, r)))).collect())
}

/// Counts a dispatch by channel, outcome and, for a provider error, its class (`blazz_dispatch_total`).
fn count_attempt(channel: Uuid, result: &Result<Dispatched, blazz_commands::CommandError>) {
    let (outcome, class) = match result {
        Ok(Dispatched::Sent { .. }) => ("sent", ""),
        Ok(Dispatched::Failed(e)) => ("failed", e.class().as_str()),
        Ok(Dispatched::Retrying { error, .. }) => ("retrying", error.class().as_str()),
        Ok(Dispatched::Unknown(_)) => ("unknown", ""),
        Ok(Dispatched::Skipped) => ("skipped", ""),
        Ok(Dispatched::Held) => ("held", ""),
        Ok(Dispatched::NotYet(_)) => ("not_yet", ""),
        Err(_) => ("error", ""),
    };
    metrics::counter!("blazz_dispatch_total", "channel" => channel.to_string(), "outcome" => outcome, "class" => class)
        .increment(1);
    if outcome == "sent" {
        *sent_here().lock().unwrap_or_else(|e| e.into_inner()).entry(channel).or_default() += 1;
    }
}

fn sent_here() -> &'static std::sync::Mutex<HashMap<Uuid, u64>> {
    static SENT: std::sync::OnceLock<std::sync::Mutex<HashMap<Uuid, u64>>> = std::sync::OnceLock::new();
    SENT.get_or_init(Default::default)
}

/// Messages this process's dispatchers have sent, per channel, since it started (the operations
/// page turns two readings into a rate).
pub fn sent_by_channel() -> HashMap<Uuid, u64> {
    sent_here().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A slotted send: when it may start, its workspace, message and channel.
type Slotted = (Instant, Uuid, Uuid, Uuid);

/// Runs until `shutdown` turns true; finishes the sends in flight first. Each channel's messages go out
/// at its rate: one second's worth of slots is reserved at a time, spaced evenly, and the next second's
/// are looked up while the last of these are still to go (`LOOKAHEAD`), so the poll's own time is no
/// gap between them.
pub async fn run(pool: PgPool, dispatcher: Dispatcher, mut shutdown: watch::Receiver<bool>) {
    let dispatcher = Arc::new(dispatcher);
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut skipped: HashMap<Uuid, Instant> = HashMap::new();
    // Sends on their own tasks (a send waiting for a connection never waits on this loop's poll),
    // by task: slotted or being sent here, so not fetched again.
    let mut sends: JoinSet<bool> = JoinSet::new();
    let mut pending: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    // Per channel, when its last slotted send starts.
    let mut booked: HashMap<Uuid, Instant> = HashMap::new();
    let mut next_poll = Instant::now();
    loop {
        let stopping = *shutdown.borrow();
        if stopping && sends.is_empty() {
            return;
        }
        let now = Instant::now();
        if !stopping && now >= next_poll {
            skipped.retain(|_, at| at.elapsed() < REMEMBER);
            booked.retain(|_, last| *last > now);
            let except: Vec<Uuid> = skipped.keys().chain(pending.values()).copied().collect();
            for (at, workspace, message, channel) in poll(&pool, &dispatcher, &except, &booked).await {
                let last = booked.entry(channel).or_insert(at);
                *last = (*last).max(at);
                let task = sends.spawn(send(dispatcher.clone(), permits.clone(), at, workspace, message, channel));
                pending.insert(task.id(), message);
            }
            // Next when the earliest booked channel's slots are nearly through (or, with none booked,
            // soon); never sooner than `IDLE_POLL` after this one.
            let soonest = booked.values().min().map(|last| last.checked_sub(LOOKAHEAD).unwrap_or(now));
            next_poll = soonest.unwrap_or(now).max(now + IDLE_POLL);
        }
        tokio::select! {
            Some(done) = sends.join_next_with_id(), if !sends.is_empty() => {
                let (task, skip) = match done {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(error = %e, "a send task failed");
                        (e.id(), true)
                    }
                };
                if let (Some(message), true) = (pending.remove(&task), skip) {
                    skipped.insert(message, Instant::now());
                }
            }
            _ = tokio::time::sleep_until(next_poll.into()), if !stopping => {}
            _ = shutdown.changed(), if !stopping => {}
        }
    }
}

/// Looks up the due messages (fair across channels and workspaces; rows the projector has not caught
/// up with are not due, see `outbox::due`) and slots them: at most one second's worth per channel, in
/// queue order, none for a channel whose slots reach beyond `LOOKAHEAD` already; only those take
/// their recipient's pace slot (a slot taken by a message left for a later round would hold it back).
async fn poll(
    pool: &PgPool,
    dispatcher: &Dispatcher,
    except: &[Uuid],
    booked: &HashMap<Uuid, Instant>,
) -> Vec<Slotted> {
    let due = match outbox::due(pool, BATCH, except).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "dispatch queue unreadable; retrying");
            return vec![];
        }
    };
    let horizon = Instant::now() + LOOKAHEAD;
    let mut picked: HashMap<Uuid, usize> = HashMap::new();
    let due: Vec<Due> = due
        .into_iter()
        .filter(|d| booked.get(&d.channel_id).is_none_or(|last| *last <= horizon))
        .filter(|d| {
            let n = picked.entry(d.channel_id).or_insert(0);
            *n += 1;
            *n <= d.rate.max(1) as usize
        })
        .collect();
    let due = match paced(pool, due, dispatcher.policy().recipient_pace).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "recipient pacing unavailable; retrying");
            return vec![];
        }
    };
    let mut per_channel: HashMap<Uuid, (f64, Vec<(Uuid, Uuid)>)> = HashMap::new();
    for d in due {
        let rate = f64::from(d.rate.max(1));
        per_channel.entry(d.channel_id).or_insert_with(|| (rate, vec![])).1.push((d.workspace_id, d.message_id));
    }
    let mut slotted = vec![];
    for (channel, (rate, rows)) in per_channel {
        let first = match slots::reserve(pool, channel, rows.len(), rate).await {
            Ok(d) => Instant::now() + d,
            Err(e) => {
                tracing::warn!(error = %e, "send slots unavailable; retrying");
                continue;
            }
        };
        for (i, (w, m)) in rows.into_iter().enumerate() {
            slotted.push((first + Duration::from_secs_f64(i as f64 / rate), w, m, channel));
        }
    }
    slotted
}

/// Sends one message at its slot (at most `CONCURRENCY` provider calls at once); returns whether to
/// pass over it for a while.
async fn send(
    dispatcher: Arc<Dispatcher>,
    permits: Arc<tokio::sync::Semaphore>,
    at: Instant,
    workspace: Uuid,
    message: Uuid,
    channel: Uuid,
) -> bool {
    tokio::time::sleep_until(at.into()).await;
    let _permit = permits.acquire().await;
    let result = dispatcher.dispatch(workspace, MessageId::from_uuid(message)).await;
    count_attempt(channel, &result);
    match result {
        // Not ours, yet its row is not stale: remembered, so it does not take a slot every round
        // until the projector catches up.
        Ok(Dispatched::Skipped) => true,
        Ok(Dispatched::Failed(e)) => {
            tracing::info!(%message, code = e.code, "send failed");
            false
        }
        Err(e) => {
            tracing::warn!(%message, error = %e, "dispatch failed");
            true
        }
        // Its row went stale with the events this dispatch appended; or, held or not yet due, it is
        // looked at again as soon as it resumes or is due.
        Ok(_) => false,
    }
}
