//! The automation worker: performs the runs the `automation` projector enqueued (one per rule and
//! triggering event), action by action, as commands of `system:automation`, and the bot's turns
//! ([`crate::bot`]).
//!
//! - **Exactly-once effects**: each action's command carries the idempotency key
//!   `automation:<rule>:<event>:<action index>`, so a run retried after a crash (its lease ended) or
//!   claimed twice answers from the first command's record instead of acting again.
//! - **Lineage**: the commands follow the triggering event (its correlation, it as their cause).
//! - **Order and fairness**: only the oldest pending run of a conversation is claimable, and a
//!   claim takes the oldest runs of every workspace in turn, so one busy workspace never holds up
//!   another's.
//! - **Outcomes**: a refused action (outside the 24-hour window, an unknown template…) is recorded
//!   with its reason and the run goes on; a storage failure retries the run later, up to
//!   [`MAX_ATTEMPTS`] times.

use crate::bot::{self, Bots, Turn};
use crate::context::{CommandContext, Idempotency};
use crate::error::CommandError;
use crate::handlers::message::SendContent;
use crate::store::{EventStore, Lineage, RecordedEvent};
use crate::Commands;
use blazz_domain::automation::{RuleAction, RuleSpec};
use blazz_domain::contact::ConsentSource;
use blazz_domain::conversation::{Conversation, ConversationStatus};
use blazz_domain::ids::ConversationId;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Attempts of a run before it is marked failed.
pub const MAX_ATTEMPTS: i32 = 10;
/// Runs claimed at once.
const CLAIM: i64 = 32;
/// How long a claimed run stays leased (a worker killed mid-run leaves it due again after this).
const LEASE: Duration = Duration::from_secs(60);
/// The component name of the worker's commands (their actor is `system:automation`).
pub const COMPONENT: &str = "automation";

#[derive(Debug, sqlx::FromRow)]
struct Run {
    run_id: Uuid,
    rule_id: Uuid,
    workspace_id: Uuid,
    event_id: Uuid,
    stream_id: String,
    stream_version: i64,
    conversation_id: Option<Uuid>,
    attempts: i32,
    /// `rule` or `bot` (a turn of the workspace's bot, `rule_id` being its `bot_id`).
    kind: String,
    spec: Option<Value>,
}

/// Performs automation runs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AutomationWorker {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    commands: Commands,
    bots: Bots,
    poll: Duration,
}

impl AutomationWorker {
    pub fn new(pool: PgPool, commands: Commands, bots: Bots, poll: Duration) -> Self {
        Self { pool, store: commands.store().clone(), commands, bots, poll }
    }

    /// Works until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let runs = self.claim().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming automation runs failed");
                vec![]
            });
            if runs.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            futures::future::join_all(runs.into_iter().map(|r| self.perform(r))).await;
        }
    }

    /// Leases due runs: the oldest of each conversation, workspaces in turn.
    async fn claim(&self) -> Result<Vec<Run>, sqlx::Error> {
        sqlx::query_as(
            "WITH due AS (
                SELECT r.run_id, row_number() OVER (PARTITION BY r.workspace_id ORDER BY r.position) AS rank
                FROM automation_runs r
                WHERE r.status = 'pending' AND r.next_attempt_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM automation_runs p
                                  WHERE p.conversation_id = r.conversation_id AND p.status = 'pending'
                                    AND (p.position, p.kind = 'bot') < (r.position, r.kind = 'bot'))
             ), picked AS (
                SELECT run_id FROM due ORDER BY rank LIMIT $1
             )
             UPDATE automation_runs r SET attempts = r.attempts + 1, next_attempt_at = now() + $2
             FROM picked
             WHERE r.run_id = picked.run_id AND r.status = 'pending' AND r.next_attempt_at <= now()
             RETURNING r.run_id, r.rule_id, r.workspace_id, r.event_id, r.stream_id, r.stream_version,
                       r.conversation_id, r.attempts, r.kind,
                       (SELECT spec FROM automation_rules a WHERE a.rule_id = r.rule_id AND a.enabled AND NOT a.deleted) AS spec",
        )
        .bind(CLAIM)
        .bind(chrono::Duration::from_std(LEASE).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
    }

    async fn perform(&self, run: Run) {
        let (id, attempts) = (run.run_id, run.attempts);
        let done = if run.kind == "bot" { self.bot_turn(&run).await } else { self.actions(&run).await };
        let finished = match done {
            Ok(results) => self.finish(id, "done", &results, None).await,
            Err(e) if attempts >= MAX_ATTEMPTS => self.finish(id, "failed", &json!([]), Some(&e.to_string())).await,
            Err(e) => {
                tracing::warn!(error = %e, run = %id, "an automation run failed; it is retried after its lease");
                sqlx::query("UPDATE automation_runs SET last_error = $2 WHERE run_id = $1")
                    .bind(id)
                    .bind(e.to_string())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = finished {
            tracing::warn!(error = %e, run = %id, "an automation run's outcome could not be recorded");
        }
    }

    async fn finish(&self, id: Uuid, status: &str, results: &Value, error: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE automation_runs SET status = $2, results = $3, last_error = $4, finished_at = now() WHERE run_id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(results)
        .bind(error)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The run's triggering event; `Err(skipped)` when it is not in the log.
    async fn event_of(&self, run: &Run) -> Result<Result<RecordedEvent, Value>, CommandError> {
        let version = run.stream_version as u64;
        let event = self.store.read_stream(&run.stream_id, version, Some(version)).await?.into_iter().next();
        Ok(event.ok_or_else(|| json!([{"skipped": format!("event {}@{version} is not in the log", run.stream_id)}])))
    }

    /// A context of `system:automation` following `event`, its idempotency key `<prefix>:<rule>:<event>:<part>`.
    fn context(prefix: &str, run: &Run, event: &RecordedEvent, part: &str) -> CommandContext {
        let lineage = Lineage { correlation_id: event.metadata.correlation_id, event_id: event.event_id };
        let key = format!("{prefix}:{}:{}:{part}", run.rule_id, run.event_id);
        let mut ctx = CommandContext::system(run.workspace_id, COMPONENT).following(Some(lineage));
        ctx.idempotency = Some(Idempotency { key: key.clone(), fingerprint: key });
        ctx
    }

    /// Each action's outcome; `Err` when the run should be tried again.
    async fn actions(&self, run: &Run) -> Result<Value, CommandError> {
        let Some(spec) = run.spec.clone().and_then(|s| serde_json::from_value::<RuleSpec>(s).ok()) else {
            return Ok(json!([{"skipped": "the rule was disabled or deleted before it ran"}]));
        };
        let event = match self.event_of(run).await? {
            Ok(e) => e,
            Err(skipped) => return Ok(skipped),
        };
        let mut results = vec![];
        for (i, action) in spec.actions.iter().enumerate() {
            let ctx = Self::context("automation", run, &event, &i.to_string());
            let kind = serde_json::to_value(action).ok().and_then(|v| v.get("kind").cloned()).unwrap_or(Value::Null);
            match self.act(&ctx, run, &event, action).await {
                Ok(()) => results.push(json!({"kind": kind, "ok": true})),
                Err(e @ (CommandError::Store(_) | CommandError::Conflict(_))) => return Err(e),
                Err(e) => results.push(json!({"kind": kind, "ok": false, "error": e.to_string()})),
            }
        }
        Ok(Value::Array(results))
    }

    async fn act(
        &self,
        ctx: &CommandContext,
        run: &Run,
        event: &RecordedEvent,
        action: &RuleAction,
    ) -> Result<(), CommandError> {
        let c = &self.commands;
        let conversation = || {
            run.conversation_id
                .map(ConversationId::from_uuid)
                .ok_or_else(|| blazz_domain::DomainError::invalid("conversation", "this event has no conversation"))
        };
        match action {
            RuleAction::ReplyText { text } => {
                let content = SendContent::Text { body: text.clone(), preview_url: false };
                c.reply_in_conversation(ctx, conversation()?, content, None).await.map(drop)
            }
            RuleAction::ReplyTemplate { template_id, variables } => {
                let content = SendContent::Template { template_id: *template_id, variables: variables.clone() };
                c.reply_in_conversation(ctx, conversation()?, content, None).await.map(drop)
            }
            RuleAction::Assign { agent_id, team_id } => {
                let (agent, team) = (agent_id.map(Some), team_id.map(Some));
                c.assign_conversation(ctx, conversation()?, agent, team).await.map(drop)
            }
            RuleAction::AddLabel { label } => {
                c.label_conversation(ctx, conversation()?, vec![label.clone()], vec![]).await.map(drop)
            }
            RuleAction::SetStatus { status } => {
                c.set_conversation_status(ctx, conversation()?, *status, None).await.map(drop)
            }
            RuleAction::OptOut => {
                let id = conversation()?;
                let state = c.load::<Conversation>(ctx.workspace_id, id.as_uuid()).await?.state;
                let contact = state.contact_id.ok_or(blazz_domain::DomainError::NotFound("conversation"))?;
                let reason = Some("automation rule".to_owned());
                c.set_contact_consent(ctx, contact, true, reason, ConsentSource::Api).await.map(drop)
            }
            RuleAction::CallWebhook { endpoint_id } => self.call_webhook(run, event, *endpoint_id).await,
        }
    }

    /// The bot's turn at an inbound message: skipped unless the workspace's bot is still the one that
    /// enqueued it and the conversation is pending now; else a reply or a hand-off.
    async fn bot_turn(&self, run: &Run) -> Result<Value, CommandError> {
        let cfg = self.bots.get(run.workspace_id).await.map_err(crate::handlers::endpoint::stored)?;
        let Some(cfg) = cfg.filter(|c| c.enabled && c.bot_id == run.rule_id) else {
            return Ok(json!([{"skipped": "the bot was changed or turned off before its turn"}]));
        };
        let Some(conversation) = run.conversation_id.map(ConversationId::from_uuid) else {
            return Ok(json!([{"skipped": "no conversation"}]));
        };
        let state = self.commands.load::<Conversation>(run.workspace_id, conversation.as_uuid()).await?.state;
        if state.status != ConversationStatus::Pending {
            return Ok(json!([{"skipped": format!("the conversation is {}", state.status.as_str())}]));
        }
        let event = match self.event_of(run).await? {
            Ok(e) => e,
            Err(skipped) => return Ok(skipped),
        };
        let text = event.payload["message"]["text"].as_str().unwrap_or_default().to_owned();
        let turn = match bot::handoff_keyword(&cfg, &text) {
            Some(k) => Turn::Handoff(format!("the customer wrote {k:?}")),
            None if text.trim().is_empty() => Turn::Handoff("a message without text".into()),
            None => {
                let message = event.payload["message"]["message_id"].as_str().and_then(|m| m.parse::<Uuid>().ok());
                let history = self.history(run.workspace_id, conversation, message, cfg.history).await?;
                self.bots.ask(&cfg, &history, &text).await
            }
        };
        let reply = match &turn {
            Turn::Reply(answer) => {
                let ctx = Self::context("bot", run, &event, "reply");
                let content = SendContent::Text { body: answer.clone(), preview_url: false };
                match self.commands.reply_in_conversation(&ctx, conversation, content, None).await {
                    Ok(_) => return Ok(json!([{"kind": "bot_reply", "ok": true}])),
                    Err(e @ (CommandError::Store(_) | CommandError::Conflict(_))) => return Err(e),
                    Err(e) => format!("the bot's answer could not be sent: {e}"),
                }
            }
            Turn::Handoff(reason) => reason.clone(),
        };
        let ctx = Self::context("bot", run, &event, "handoff");
        self.commands.set_conversation_status(&ctx, conversation, ConversationStatus::Open, None).await?;
        let ctx = Self::context("bot", run, &event, "note");
        self.commands.add_conversation_note(&ctx, conversation, format!("Handed to a person: {reply}")).await?;
        Ok(json!([{"kind": "handoff", "ok": true, "reason": reply}]))
    }

    /// The conversation's last `n` messages before `current`, oldest first, as chat roles (texts as
    /// the timeline previews them: 200 characters at most).
    async fn history(
        &self,
        workspace: Uuid,
        conversation: ConversationId,
        current: Option<Uuid>,
        n: i32,
    ) -> Result<Vec<(String, String)>, CommandError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT CASE WHEN direction = 'in' THEN 'user' ELSE 'assistant' END, preview FROM (
                SELECT direction, preview, queued_at, message_id FROM rm_messages
                WHERE workspace_id = $1 AND conversation_id = $2 AND preview IS NOT NULL
                  AND message_id IS DISTINCT FROM $3
                ORDER BY queued_at DESC, message_id DESC LIMIT $4) m
             ORDER BY queued_at, message_id",
        )
        .bind(workspace)
        .bind(conversation.as_uuid())
        .bind(current)
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Enqueues the triggering event for one endpoint of the workspace (nothing new if the endpoint
    /// already has it through its subscription).
    async fn call_webhook(&self, run: &Run, event: &RecordedEvent, endpoint: Uuid) -> Result<(), CommandError> {
        let usable: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_endpoints
                            WHERE endpoint_id = $1 AND workspace_id = $2 AND enabled AND NOT deleted)",
        )
        .bind(endpoint)
        .bind(run.workspace_id)
        .fetch_one(&self.pool)
        .await?;
        if !usable {
            return Err(
                blazz_domain::DomainError::invalid("endpoint_id", "no enabled webhook endpoint with this id").into()
            );
        }
        let order_key = run.conversation_id.map_or_else(|| event.stream_id.clone(), |c| format!("conversation-{c}"));
        sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, workspace_id, event_id, position, stream_id,
                                             stream_version, event_type, order_key, recorded_at, next_attempt_at)
             VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8, $9, now())
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        )
        .bind(endpoint)
        .bind(run.workspace_id)
        .bind(event.event_id)
        .bind(event.position)
        .bind(&event.stream_id)
        .bind(event.stream_version as i64)
        .bind(&event.event_type)
        .bind(order_key)
        .bind(event.recorded_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
