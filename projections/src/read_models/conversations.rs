//! `rm_conversations`: the inbox, one row per channel and contact: last message, unread inbound count,
//! 24-hour window expiry, status, assignment, labels, priority; and `rm_conversation_notes`, the
//! private notes.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::contact::ContactEvent;
use blazz_domain::conversation::{window_end, ConversationEvent};
use blazz_domain::ids::ConversationId;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Conversations;

const UPSERT: &str = "INSERT INTO rm_conversations (workspace_id, conversation_id, channel_id, contact_id, updated_at)
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// The last outbound message of a conversation: channel, contact, sent at, preview, recorded at.
type Outbound = (Uuid, Uuid, chrono::DateTime<chrono::Utc>, String, chrono::DateTime<chrono::Utc>);

fn is_outbound(a: &Applied) -> bool {
    matches!(a.event, DomainEvent::Message(MessageEvent::Queued { .. }))
}

/// A run of outbound messages: the last one per conversation wins, one upsert for all.
async fn upsert_outbound(conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
    let mut last: HashMap<(Uuid, Uuid), Outbound> = HashMap::new();
    let mut changes = Vec::with_capacity(run.len());
    for a in run {
        let DomainEvent::Message(MessageEvent::Queued { channel_id, contact_id, content, at: queued, .. }) = &a.event
        else {
            continue;
        };
        let id = ConversationId::for_pair(*channel_id, *contact_id).as_uuid();
        let preview = super::preview(content);
        changes.push(vec![Change::upsert(
            "conversation",
            id,
            json!({ "last_message_preview": preview, "last_direction": "out", "unread_count": 0 }),
        )]);
        last.insert(
            (a.record.workspace_id, id),
            (channel_id.as_uuid(), contact_id.as_uuid(), *queued, preview, a.record.recorded_at),
        );
    }
    let (mut ws, mut ids, mut chans, mut conts, mut ats, mut previews, mut upd) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((w, id), (ch, ct, at, preview, u)) in last {
        ws.push(w);
        ids.push(id);
        chans.push(ch);
        conts.push(ct);
        ats.push(at);
        previews.push(preview);
        upd.push(u);
    }
    sqlx::query(
        "INSERT INTO rm_conversations (workspace_id, conversation_id, channel_id, contact_id, last_message_at, last_message_preview,
                                       last_direction, unread_count, updated_at)
         SELECT w, c, ch, ct, a, p, 'out', 0, u
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[], $7::timestamptz[]) AS t(w, c, ch, ct, a, p, u)
         ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET
             last_message_at = excluded.last_message_at, last_message_preview = excluded.last_message_preview,
             last_direction = 'out', unread_count = 0, updated_at = excluded.updated_at",
    )
    .bind(&ws)
    .bind(&ids)
    .bind(&chans)
    .bind(&conts)
    .bind(&ats)
    .bind(&previews)
    .bind(&upd)
    .execute(conn)
    .await?;
    Ok(changes)
}

/// Snoozed conversations whose snooze has ended (workspace, conversation), at most `limit`: the
/// scheduler reopens them.
pub async fn snooze_ended(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT workspace_id, conversation_id FROM rm_conversations
         WHERE status = 'snoozed' AND snoozed_until <= now() ORDER BY snoozed_until LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[async_trait]
impl Projector for Conversations {
    fn name(&self) -> &'static str {
        "conversations"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_conversations", "rm_conversation_notes"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        is_outbound(event)
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        upsert_outbound(conn, run).await
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let (ws, at) = (a.record.workspace_id, a.record.recorded_at);
        match &a.event {
            DomainEvent::Conversation(e) => {
                let id = a.aggregate_id();
                match e {
                    ConversationEvent::Started { channel_id, contact_id } => {
                        sqlx::query(UPSERT)
                            .bind(ws)
                            .bind(id)
                            .bind(channel_id.as_uuid())
                            .bind(contact_id.as_uuid())
                            .bind(at)
                            .execute(conn)
                            .await?;
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "channel_id": channel_id, "contact_id": contact_id }),
                        )])
                    }
                    ConversationEvent::InboundReceived { at: received, .. } => {
                        let expires = window_end(*received);
                        let row: Option<(i64,)> = sqlx::query_as(
                            "UPDATE rm_conversations SET
                                 last_message_at = greatest(last_message_at, $3), last_direction = 'in',
                                 unread_count = unread_count + 1,
                                 window_expires_at = greatest(window_expires_at, $4), updated_at = $5
                             WHERE workspace_id = $1 AND conversation_id = $2 RETURNING unread_count",
                        )
                        .bind(ws)
                        .bind(id)
                        .bind(received)
                        .bind(expires)
                        .bind(at)
                        .fetch_optional(conn)
                        .await?;
                        let unread = row.map(|r| r.0);
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "unread_count": unread, "window_expires_at": expires, "last_direction": "in" }),
                        )])
                    }
                    ConversationEvent::Assigned { agent_id, team_id, reason } => {
                        sqlx::query(
                            "UPDATE rm_conversations SET agent_id = $3, team_id = $4, routed = true, updated_at = $5
                             WHERE workspace_id = $1 AND conversation_id = $2",
                        )
                        .bind(ws)
                        .bind(id)
                        .bind(agent_id.map(|a| a.as_uuid()))
                        .bind(team_id.map(|t| t.as_uuid()))
                        .bind(at)
                        .execute(conn)
                        .await?;
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "agent_id": agent_id, "team_id": team_id, "assigned_by": reason }),
                        )])
                    }
                    ConversationEvent::PriorityChanged { priority } => {
                        sqlx::query(
                            "UPDATE rm_conversations SET priority = $3, updated_at = $4
                             WHERE workspace_id = $1 AND conversation_id = $2",
                        )
                        .bind(ws)
                        .bind(id)
                        .bind(priority.as_str())
                        .bind(at)
                        .execute(conn)
                        .await?;
                        Ok(vec![Change::upsert("conversation", id, json!({ "priority": priority }))])
                    }
                    ConversationEvent::Read { at: read } => {
                        let agent = a.record.metadata.agent_id;
                        sqlx::query(
                            "UPDATE rm_conversations SET unread_count = 0, last_read_at = $3, last_read_agent_id = $4,
                                 updated_at = $5
                             WHERE workspace_id = $1 AND conversation_id = $2",
                        )
                        .bind(ws)
                        .bind(id)
                        .bind(read)
                        .bind(agent)
                        .bind(at)
                        .execute(conn)
                        .await?;
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "unread_count": 0, "last_read_at": read, "last_read_agent_id": agent }),
                        )])
                    }
                    ConversationEvent::NoteAdded { note_id, text, at: written } => {
                        let meta = &a.record.metadata;
                        sqlx::query(
                            "INSERT INTO rm_conversation_notes (workspace_id, note_id, conversation_id, text, actor, agent_id, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                        )
                        .bind(ws)
                        .bind(note_id.as_uuid())
                        .bind(id)
                        .bind(text)
                        .bind(&meta.actor)
                        .bind(meta.agent_id)
                        .bind(written)
                        .execute(conn)
                        .await?;
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "note": { "note_id": note_id, "agent_id": meta.agent_id, "created_at": written } }),
                        )])
                    }
                    ConversationEvent::LabelsChanged { added, removed } => {
                        let labels: Option<(Vec<String>,)> = sqlx::query_as(&format!(
                            "UPDATE rm_conversations SET labels = {}, updated_at = $5
                             WHERE workspace_id = $1 AND conversation_id = $2 RETURNING labels",
                            super::labels_after(3, 4)
                        ))
                        .bind(ws)
                        .bind(id)
                        .bind(added)
                        .bind(removed)
                        .bind(at)
                        .fetch_optional(conn)
                        .await?;
                        Ok(vec![Change::upsert("conversation", id, json!({ "labels": labels.map(|l| l.0) }))])
                    }
                    ConversationEvent::StatusChanged { status, snoozed_until, .. } => {
                        sqlx::query(
                            "UPDATE rm_conversations SET status = $3, snoozed_until = $4, updated_at = $5
                             WHERE workspace_id = $1 AND conversation_id = $2",
                        )
                        .bind(ws)
                        .bind(id)
                        .bind(status.as_str())
                        .bind(snoozed_until)
                        .bind(at)
                        .execute(conn)
                        .await?;
                        Ok(vec![Change::upsert(
                            "conversation",
                            id,
                            json!({ "status": status, "snoozed_until": snoozed_until }),
                        )])
                    }
                }
            }
            // Outbound messages go through the set-based path, alone or in a run.
            DomainEvent::Message(MessageEvent::Queued { .. }) => {
                Ok(upsert_outbound(conn, &[a]).await?.pop().unwrap_or_default())
            }
            DomainEvent::Contact(ContactEvent::Erased { .. }) => {
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE rm_conversations SET last_message_preview = NULL
                     WHERE workspace_id = $1 AND contact_id = $2 AND last_message_preview IS NOT NULL
                     RETURNING conversation_id",
                )
                .bind(a.record.workspace_id)
                .bind(a.aggregate_id())
                .fetch_all(conn)
                .await?;
                Ok(ids
                    .into_iter()
                    .map(|id| Change::upsert("conversation", id, json!({ "last_message_preview": null })))
                    .collect())
            }
            _ => Ok(vec![]),
        }
    }
}
