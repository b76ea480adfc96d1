//! The `automation` projector: folds `automation_rule.*` events into `automation_rules` (and the
//! workspaces' time zones into `automation_workspaces`), and for each event that starts rules
//! (an inbound message, a conversation opened, a message failed) inserts one `automation_runs` row
//! per matching enabled rule of its workspace, in the same transaction as its checkpoint: each
//! (rule, event) is enqueued once. The automation worker (`blazz_commands::automation`) performs the
//! actions.
//!
//! - **No loops**: events written by automation itself (actor `system:automation`) start nothing,
//!   nor do failures of messages automation queued (remembered in `automation_messages`).
//! - **Rate**: a rule runs at most `max_per_conversation_per_hour` times per conversation in any
//!   hour of event time.
//! - **Fresh events only**: an event older than [`MAX_TRIGGER_AGE`] when projected starts nothing,
//!   so a rebuild (or a read side catching up after a long stop) never answers old messages.
//! - **Bot turns**: every fresh inbound message of a workspace with an enabled bot also enqueues a
//!   run of kind `bot` (see `blazz_commands::bot`), ordered after the rules' runs of the same event.
//! - Conditions on labels and contact attributes read the `conversations` and `contacts` read
//!   models as they are when the event is projected.
//!
//! `automation_runs` is not among [`Projector::tables`], like `webhook_deliveries`: a rebuild
//! keeps it, and the unique (rule, event) key keeps a re-derived run from being enqueued twice.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::automation::{Facts, RuleEvent, RuleSpec, Trigger};
use blazz_domain::conversation::{ConversationEvent, ConversationStatus};
use blazz_domain::ids::ChannelId;
use blazz_domain::message::MessageEvent;
use blazz_domain::values::TimeZone;
use blazz_domain::workspace::WorkspaceEvent;
use blazz_domain::DomainEvent;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// The actor of automation's own commands.
pub const ACTOR: &str = "system:automation";
/// Events older than this when projected start no rule.
pub const MAX_TRIGGER_AGE: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug)]
pub struct Automation;

/// What an event that may start rules says of itself.
struct Triggering<'a> {
    triggers: Vec<Trigger>,
    text: Option<&'a str>,
    channel_id: Option<ChannelId>,
    conversation_id: Option<Uuid>,
}

/// The triggers `a` is, if any.
fn triggers_of(a: &Applied) -> Option<Triggering<'_>> {
    let conversation = Some(a.aggregate_id());
    let t = |triggers, text, channel_id, conversation_id| Triggering { triggers, text, channel_id, conversation_id };
    match &a.event {
        DomainEvent::Conversation(ConversationEvent::Started { channel_id, .. }) => {
            Some(t(vec![Trigger::ConversationOpened], None, Some(*channel_id), conversation))
        }
        DomainEvent::Conversation(ConversationEvent::StatusChanged { status: ConversationStatus::Open, .. }) => {
            Some(t(vec![Trigger::ConversationOpened], None, None, conversation))
        }
        DomainEvent::Conversation(ConversationEvent::InboundReceived { message, .. }) => {
            // A conversation starts with its first inbound message: `started` is version 1.
            let mut triggers = vec![Trigger::InboundMessage];
            if a.record.stream_version == 2 {
                triggers.push(Trigger::FirstInbound);
            }
            let m = message.as_ref();
            Some(t(triggers, m.and_then(|m| m.text.as_deref()), m.map(|m| m.channel_id), conversation))
        }
        DomainEvent::Message(MessageEvent::Failed { .. }) => Some(t(vec![Trigger::MessageFailed], None, None, None)),
        _ => None,
    }
}

fn trigger_name(t: Trigger) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[async_trait]
impl Projector for Automation {
    fn name(&self) -> &'static str {
        "automation"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["automation_rules", "automation_workspaces", "automation_messages"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let (ws, at) = (a.record.workspace_id, a.record.recorded_at);
        match &a.event {
            DomainEvent::Rule(e) => return fold_rule(conn, a, e).await,
            DomainEvent::Workspace(
                WorkspaceEvent::Created { timezone, .. }
                | WorkspaceEvent::SettingsUpdated { timezone: Some(timezone), .. },
            ) => {
                sqlx::query(
                    "INSERT INTO automation_workspaces (workspace_id, timezone) VALUES ($1, $2)
                     ON CONFLICT (workspace_id) DO UPDATE SET timezone = $2",
                )
                .bind(ws)
                .bind(timezone.as_str())
                .execute(conn)
                .await?;
                return Ok(vec![]);
            }
            DomainEvent::Message(MessageEvent::Queued { .. }) if a.record.metadata.actor == ACTOR => {
                sqlx::query("INSERT INTO automation_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(a.aggregate_id())
                    .execute(conn)
                    .await?;
                return Ok(vec![]);
            }
            _ => {}
        }
        let Some(mut t) = triggers_of(a) else { return Ok(vec![]) };
        if a.record.metadata.actor == ACTOR || chrono::Utc::now() - at > MAX_TRIGGER_AGE {
            return Ok(vec![]);
        }
        if t.triggers.contains(&Trigger::InboundMessage) {
            bot_turn(conn, a, t.conversation_id).await?;
        }
        let mut names: Vec<String> = t.triggers.iter().copied().map(trigger_name).collect();
        if t.triggers.contains(&Trigger::InboundMessage) {
            names.push(trigger_name(Trigger::CampaignReply));
        }
        let rules: Vec<(Uuid, Value)> = sqlx::query_as(
            "SELECT rule_id, spec FROM automation_rules
             WHERE workspace_id = $1 AND enabled AND NOT deleted AND trigger = ANY($2) ORDER BY created_at",
        )
        .bind(ws)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?;
        if rules.is_empty() {
            return Ok(vec![]);
        }
        if matches!(a.event, DomainEvent::Message(_)) {
            let ours: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM automation_messages WHERE message_id = $1)")
                    .bind(a.aggregate_id())
                    .fetch_one(&mut *conn)
                    .await?;
            if ours {
                return Ok(vec![]);
            }
            let row: Option<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT conversation_id, channel_id FROM rm_messages WHERE workspace_id = $1 AND message_id = $2",
            )
            .bind(ws)
            .bind(a.aggregate_id())
            .fetch_optional(&mut *conn)
            .await?;
            (t.conversation_id, t.channel_id) = (row.map(|r| r.0), row.map(|r| ChannelId::from_uuid(r.1)));
        }
        let campaign_rules = rules.iter().any(|(_, s)| s["trigger"] == trigger_name(Trigger::CampaignReply).as_str());
        if campaign_rules && campaign_reply(conn, ws, t.conversation_id, at).await? {
            t.triggers.push(Trigger::CampaignReply);
        }
        let (labels, attributes, channel, timezone) = context(conn, ws, t.conversation_id).await?;
        let zone = timezone.and_then(|z| TimeZone::parse(&z).ok()).unwrap_or_else(TimeZone::utc);
        let facts = Facts {
            triggers: t.triggers.clone(),
            text: t.text,
            channel_id: t.channel_id.or(channel),
            labels: &labels,
            attributes: attributes.as_ref(),
            local: Some(zone.local(at)),
        };
        for (rule_id, spec) in rules {
            let Ok(spec) = serde_json::from_value::<RuleSpec>(spec) else { continue };
            if !spec.matches(&facts) {
                continue;
            }
            sqlx::query(
                "INSERT INTO automation_runs (run_id, rule_id, workspace_id, event_id, position, stream_id, stream_version,
                                              conversation_id, event_at)
                 SELECT gen_random_uuid(), $1, $2, $3, $4, $5, $9, $6, $7
                 WHERE (SELECT count(*) FROM automation_runs
                        WHERE rule_id = $1 AND conversation_id IS NOT DISTINCT FROM $6
                          AND event_at > $7 - interval '1 hour' AND event_at <= $7) < $8
                 ON CONFLICT (rule_id, event_id) DO NOTHING",
            )
            .bind(rule_id)
            .bind(ws)
            .bind(a.record.event_id)
            .bind(a.record.position)
            .bind(&a.record.stream_id)
            .bind(t.conversation_id)
            .bind(at)
            .bind(i64::from(spec.max_per_conversation_per_hour))
            .bind(a.record.stream_version as i64)
            .execute(&mut *conn)
            .await?;
        }
        Ok(vec![])
    }
}

/// Enqueues the workspace's bot's turn for an inbound message (if it has an enabled bot; within its
/// rate per conversation). The worker checks that the conversation is pending when it runs.
async fn bot_turn(conn: &mut PgConnection, a: &Applied, conversation: Option<Uuid>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO automation_runs (run_id, rule_id, workspace_id, event_id, position, stream_id, stream_version,
                                      conversation_id, event_at, kind)
         SELECT gen_random_uuid(), b.bot_id, $1, $2, $3, $4, $5, $6, $7, 'bot' FROM bot_configs b
         WHERE b.workspace_id = $1 AND b.enabled
           AND (SELECT count(*) FROM automation_runs
                WHERE rule_id = b.bot_id AND conversation_id IS NOT DISTINCT FROM $6
                  AND event_at > $7 - interval '1 hour' AND event_at <= $7) < $8
         ON CONFLICT (rule_id, event_id) DO NOTHING",
    )
    .bind(a.record.workspace_id)
    .bind(a.record.event_id)
    .bind(a.record.position)
    .bind(&a.record.stream_id)
    .bind(a.record.stream_version as i64)
    .bind(conversation)
    .bind(a.record.recorded_at)
    .bind(blazz_commands::bot::MAX_TURNS_PER_HOUR)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the conversation got a campaign's message in the 24 hours before `at`.
async fn campaign_reply(
    conn: &mut PgConnection,
    ws: Uuid,
    conversation: Option<Uuid>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_messages m JOIN rm_campaign_messages c USING (message_id)
                        WHERE m.workspace_id = $1 AND m.conversation_id = $2 AND m.direction = 'out'
                          AND m.queued_at > $3 - interval '24 hours' AND m.queued_at <= $3)",
    )
    .bind(ws)
    .bind(conversation)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// The conversation's labels and channel, its contact's attributes, and the workspace's time zone.
async fn context(
    conn: &mut PgConnection,
    ws: Uuid,
    conversation: Option<Uuid>,
) -> Result<(Vec<String>, Option<Map<String, Value>>, Option<ChannelId>, Option<String>), sqlx::Error> {
    let row: Option<(Option<Vec<String>>, Option<Value>, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT c.labels, k.attributes, c.channel_id, w.timezone
         FROM (SELECT $1::uuid AS workspace_id) s
         LEFT JOIN rm_conversations c ON c.workspace_id = s.workspace_id AND c.conversation_id = $2
         LEFT JOIN rm_contacts k ON k.workspace_id = s.workspace_id AND k.contact_id = c.contact_id
         LEFT JOIN automation_workspaces w ON w.workspace_id = s.workspace_id",
    )
    .bind(ws)
    .bind(conversation)
    .fetch_optional(conn)
    .await?;
    let Some((labels, attributes, channel, zone)) = row else { return Ok((vec![], None, None, None)) };
    let attributes = match attributes {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    Ok((labels.unwrap_or_default(), attributes, channel.map(ChannelId::from_uuid), zone))
}

async fn fold_rule(conn: &mut PgConnection, a: &Applied, e: &RuleEvent) -> Result<Vec<Change>, sqlx::Error> {
    let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
    let (sql, change) = match e {
        RuleEvent::Created { spec } => {
            sqlx::query(
                "INSERT INTO automation_rules (rule_id, workspace_id, name, trigger, spec, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(ws)
            .bind(&spec.name)
            .bind(trigger_name(spec.trigger))
            .bind(serde_json::to_value(spec).unwrap_or_default())
            .bind(at)
            .execute(conn)
            .await?;
            return Ok(vec![Change::upsert("automation_rule", id, json!({ "name": spec.name, "enabled": true }))]);
        }
        RuleEvent::Enabled => ("enabled = true", Change::upsert("automation_rule", id, json!({ "enabled": true }))),
        RuleEvent::Disabled => ("enabled = false", Change::upsert("automation_rule", id, json!({ "enabled": false }))),
        RuleEvent::Deleted => ("deleted = true", Change::delete("automation_rule", id)),
    };
    sqlx::query(&format!(
        "UPDATE automation_rules SET {sql}, updated_at = $3 WHERE workspace_id = $1 AND rule_id = $2"
    ))
    .bind(ws)
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(vec![change])
}
