//! `rm_messages` (the timeline with each message's current status and error) and `rm_daily_stats`
//! (messages per day, direction, kind and current status). One projector owns both, since a status
//! change moves a message from one statistics bucket to another.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::contact::ContactEvent;
use blazz_domain::conversation::{ConversationEvent, InboundMessage};
use blazz_domain::ids::ConversationId;
use blazz_domain::message::{MessageEvent, MessageStatus};
use blazz_domain::DomainEvent;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Messages;

async fn count(
    conn: &mut PgConnection,
    ws: Uuid,
    day: NaiveDate,
    kind: &str,
    status: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_daily_stats (workspace_id, day, direction, kind, status, messages) VALUES ($1, $2, 'out', $3, $4, $5)
         ON CONFLICT (workspace_id, day, direction, kind, status) DO UPDATE SET messages = rm_daily_stats.messages + $5",
    )
    .bind(ws)
    .bind(day)
    .bind(kind)
    .bind(status)
    .bind(delta)
    .execute(conn)
    .await?;
    Ok(())
}

fn is_queued(a: &Applied) -> bool {
    matches!(a.event, DomainEvent::Message(MessageEvent::Queued { .. }))
}

/// A run of `message.queued` events: one multi-row insert and one statistics upsert.
async fn insert_queued(conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
    let n = run.len();
    let (mut ws, mut ids, mut convs, mut chans, mut conts) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut kinds, mut previews, mut queued_at, mut at) = (Vec::with_capacity(n), vec![], vec![], vec![]);
    let mut changes = Vec::with_capacity(n);
    for a in run {
        let DomainEvent::Message(MessageEvent::Queued { channel_id, contact_id, content, at: queued, .. }) = &a.event
        else {
            continue;
        };
        let conversation = ConversationId::for_pair(*channel_id, *contact_id).as_uuid();
        let preview = super::preview(content);
        changes.push(vec![Change::upsert(
            "message",
            a.aggregate_id(),
            json!({ "conversation_id": conversation, "contact_id": contact_id, "kind": content.kind(), "status": "queued", "preview": preview }),
        )]);
        ws.push(a.record.workspace_id);
        ids.push(a.aggregate_id());
        convs.push(conversation);
        chans.push(channel_id.as_uuid());
        conts.push(contact_id.as_uuid());
        kinds.push(content.kind());
        previews.push(preview);
        queued_at.push(*queued);
        at.push(a.record.recorded_at);
    }
    let inserted: Vec<(Uuid, String, NaiveDate)> = sqlx::query_as(
        "INSERT INTO rm_messages (workspace_id, message_id, conversation_id, channel_id, contact_id, direction, kind, status,
                                  preview, queued_at, updated_at)
         SELECT w, m, cv, ch, ct, 'out', k, 'queued', p, q, u
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
              AS t(w, m, cv, ch, ct, k, p, q, u)
         ON CONFLICT DO NOTHING
         RETURNING workspace_id, kind, (queued_at AT TIME ZONE 'UTC')::date",
    )
    .bind(&ws)
    .bind(&ids)
    .bind(&convs)
    .bind(&chans)
    .bind(&conts)
    .bind(&kinds)
    .bind(&previews)
    .bind(&queued_at)
    .bind(&at)
    .fetch_all(&mut *conn)
    .await?;
    let mut buckets: BTreeMap<(Uuid, NaiveDate, String), i64> = BTreeMap::new();
    for (w, kind, day) in inserted {
        *buckets.entry((w, day, kind)).or_default() += 1;
    }
    let (mut bw, mut bd, mut bk, mut bn) = (vec![], vec![], vec![], vec![]);
    for ((w, d, k), count) in buckets {
        bw.push(w);
        bd.push(d);
        bk.push(k);
        bn.push(count);
    }
    sqlx::query(
        "INSERT INTO rm_daily_stats (workspace_id, day, direction, kind, status, messages)
         SELECT w, d, 'out', k, 'queued', n FROM unnest($1::uuid[], $2::date[], $3::text[], $4::int8[]) AS t(w, d, k, n)
         ON CONFLICT (workspace_id, day, direction, kind, status) DO UPDATE SET messages = rm_daily_stats.messages + excluded.messages",
    )
    .bind(&bw)
    .bind(&bd)
    .bind(&bk)
    .bind(&bn)
    .execute(conn)
    .await?;
    Ok(changes)
}

/// An inbound message joins its conversation's timeline (direction `in`, status `received`).
async fn insert_inbound(
    conn: &mut PgConnection,
    a: &Applied,
    m: &InboundMessage,
    at: DateTime<Utc>,
) -> Result<Vec<Change>, sqlx::Error> {
    let conversation = a.aggregate_id();
    let inserted = sqlx::query(
        "INSERT INTO rm_messages (workspace_id, message_id, conversation_id, channel_id, contact_id, direction, kind, status,
                                  preview, provider_message_id, queued_at, updated_at)
         VALUES ($1, $2, $3, $8, $9, 'in', $4, 'received', $5, $6, $7, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(a.record.workspace_id)
    .bind(m.message_id.as_uuid())
    .bind(conversation)
    .bind(&m.kind)
    .bind(m.text.as_deref().map(|t| t.chars().take(200).collect::<String>()))
    .bind(m.raw.get("id").and_then(|v| v.as_str()))
    .bind(at)
    .bind(m.channel_id.as_uuid())
    .bind(m.contact_id.as_uuid())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(vec![]);
    }
    sqlx::query(
        "INSERT INTO rm_daily_stats (workspace_id, day, direction, kind, status, messages) VALUES ($1, $2, 'in', $3, 'received', 1)
         ON CONFLICT (workspace_id, day, direction, kind, status) DO UPDATE SET messages = rm_daily_stats.messages + 1",
    )
    .bind(a.record.workspace_id)
    .bind(at.date_naive())
    .bind(&m.kind)
    .execute(conn)
    .await?;
    Ok(vec![Change::upsert(
        "message",
        m.message_id.as_uuid(),
        json!({ "conversation_id": conversation, "direction": "in", "kind": m.kind, "status": "received", "text": m.text }),
    )])
}

/// Messages whose attempt has been in flight (`dispatched`, no outcome) for longer than `older_than`
/// (workspace, message), at most `limit`: the crash policy's candidates.
pub async fn dispatched_before(
    pool: &sqlx::PgPool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT workspace_id, message_id FROM rm_messages
         WHERE status = 'dispatched' AND updated_at < now() - make_interval(secs => $1) LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[async_trait]
impl Projector for Messages {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_messages", "rm_daily_stats"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        is_queued(event)
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        insert_queued(conn, run).await
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let e = match &a.event {
            DomainEvent::Message(MessageEvent::Billed { .. } | MessageEvent::RetryScheduled { .. }) => {
                return Ok(vec![])
            }
            DomainEvent::Message(e) => e,
            DomainEvent::Conversation(ConversationEvent::InboundReceived { message: Some(m), at, .. }) => {
                return insert_inbound(conn, a, m, *at).await;
            }
            // The erased contact's messages keep their kind, status and times, not their text.
            DomainEvent::Contact(ContactEvent::Erased { .. }) => {
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE rm_messages SET preview = NULL
                     WHERE workspace_id = $1 AND contact_id = $2 AND preview IS NOT NULL RETURNING message_id",
                )
                .bind(a.record.workspace_id)
                .bind(a.aggregate_id())
                .fetch_all(conn)
                .await?;
                return Ok(ids
                    .into_iter()
                    .map(|id| Change::upsert("message", id, json!({ "preview": null })))
                    .collect());
            }
            _ => return Ok(vec![]),
        };
        let (ws, id) = (a.record.workspace_id, a.aggregate_id());
        // Queued messages go through the set-based path, alone or in a run.
        if let MessageEvent::Queued { .. } = e {
            return Ok(insert_queued(conn, &[a]).await?.pop().unwrap_or_default());
        }
        let (status, column, value, extra): (MessageStatus, &str, Option<&String>, serde_json::Value) = match e {
            MessageEvent::Queued { .. } | MessageEvent::Billed { .. } | MessageEvent::RetryScheduled { .. } => {
                unreachable!("handled above")
            }
            MessageEvent::Dispatched { .. } => (MessageStatus::Dispatched, "updated_at", None, json!({})),
            MessageEvent::OutcomeUnknown { .. } => (MessageStatus::Unknown, "updated_at", None, json!({})),
            MessageEvent::Sent { provider_message_id, .. } => (
                MessageStatus::Sent,
                "sent_at",
                Some(provider_message_id),
                json!({ "provider_message_id": provider_message_id }),
            ),
            MessageEvent::Delivered { .. } => (MessageStatus::Delivered, "delivered_at", None, json!({})),
            MessageEvent::Read { .. } => (MessageStatus::Read, "read_at", None, json!({})),
            MessageEvent::Failed { error, .. } => (MessageStatus::Failed, "failed_at", None, json!({ "error": error })),
        };
        let event_at = match e {
            MessageEvent::Dispatched { at, .. }
            | MessageEvent::OutcomeUnknown { at, .. }
            | MessageEvent::Sent { at, .. }
            | MessageEvent::Delivered { at }
            | MessageEvent::Read { at }
            | MessageEvent::Failed { at, .. } => *at,
            MessageEvent::Queued { at, .. }
            | MessageEvent::Billed { at, .. }
            | MessageEvent::RetryScheduled { at, .. } => *at,
        };
        let old: Option<(String, String, NaiveDate)> = sqlx::query_as(
            "SELECT status, kind, (queued_at AT TIME ZONE 'UTC')::date FROM rm_messages WHERE workspace_id = $1 AND message_id = $2 FOR UPDATE",
        )
        .bind(ws)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((old_status, kind, day)) = old else {
            return Ok(vec![]);
        };
        let error = extra.get("error").cloned();
        // The time column of the new status (none of its own for `dispatched`).
        let stamp = if column == "updated_at" { String::new() } else { format!("{column} = $4, ") };
        sqlx::query(&format!(
            "UPDATE rm_messages SET status = $3, {stamp}updated_at = $4,
                 provider_message_id = coalesce($5, provider_message_id), error = coalesce($6, error)
             WHERE workspace_id = $1 AND message_id = $2"
        ))
        .bind(ws)
        .bind(id)
        .bind(status.as_str())
        .bind(event_at)
        .bind(value)
        .bind(error)
        .execute(&mut *conn)
        .await?;
        if old_status != status.as_str() {
            count(&mut *conn, ws, day, &kind, &old_status, -1).await?;
            count(conn, ws, day, &kind, status.as_str(), 1).await?;
        }
        let mut changed = json!({ "status": status.as_str() });
        if let (Some(c), serde_json::Value::Object(x)) = (changed.as_object_mut(), extra) {
            c.extend(x);
        }
        Ok(vec![Change::upsert("message", id, changed)])
    }
}
