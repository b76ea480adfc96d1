//! `rm_messages` (the timeline with each message's current status and error) and `rm_daily_stats`
//! (messages per day, direction, kind and current status). One projector owns both, since a status
//! change moves a message from one statistics bucket to another.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::contact::ContactEvent;
use blazz_domain::conversation::{ConversationEvent, InboundMessage};
use blazz_domain::ids::ConversationId;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Messages;

/// Per-bucket changes of `rm_daily_stats` (outbound messages): workspace, UTC day, kind, status.
type Buckets = BTreeMap<(Uuid, NaiveDate, String, String), i64>;

/// Adds every bucket's change in one upsert, then drops the buckets it emptied: the table holds the
/// same rows however the events were batched (an empty bucket is never shown).
async fn add_counts(conn: &mut PgConnection, buckets: Buckets) -> Result<(), sqlx::Error> {
    let (mut bw, mut bd, mut bk, mut bs, mut bn) = (vec![], vec![], vec![], vec![], vec![]);
    for ((w, d, k, s), n) in buckets.into_iter().filter(|(_, n)| *n != 0) {
        bw.push(w);
        bd.push(d);
        bk.push(k);
        bs.push(s);
        bn.push(n);
    }
    if bw.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO rm_daily_stats (workspace_id, day, direction, kind, status, messages)
         SELECT w, d, 'out', k, s, n FROM unnest($1::uuid[], $2::date[], $3::text[], $4::text[], $5::int8[]) AS t(w, d, k, s, n)
         ON CONFLICT (workspace_id, day, direction, kind, status) DO UPDATE SET messages = rm_daily_stats.messages + excluded.messages",
    )
    .bind(&bw)
    .bind(&bd)
    .bind(&bk)
    .bind(&bs)
    .bind(&bn)
    .execute(&mut *conn)
    .await?;
    if bn.iter().any(|n| *n < 0) {
        sqlx::query(
            "DELETE FROM rm_daily_stats t USING unnest($1::uuid[], $2::date[], $3::text[], $4::text[], $5::int8[]) AS b(w, d, k, s, n)
             WHERE b.n < 0 AND t.workspace_id = b.w AND t.day = b.d AND t.direction = 'out' AND t.kind = b.k
               AND t.status = b.s AND t.messages = 0",
        )
        .bind(&bw)
        .bind(&bd)
        .bind(&bk)
        .bind(&bs)
        .bind(&bn)
        .execute(conn)
        .await?;
    }
    Ok(())
}

fn is_queued(a: &Applied) -> bool {
    matches!(a.event, DomainEvent::Message(MessageEvent::Queued { .. }))
}

/// The `message.queued` events of a run: one multi-row insert; the new rows' statistics go to `buckets`.
/// Returns the changes of the queued events, in order.
async fn insert_queued(
    conn: &mut PgConnection,
    run: &[&Applied],
    buckets: &mut Buckets,
) -> Result<Vec<Vec<Change>>, sqlx::Error> {
    if run.is_empty() {
        return Ok(vec![]);
    }
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
    for (w, kind, day) in inserted {
        *buckets.entry((w, day, kind, "queued".to_owned())).or_default() += 1;
    }
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

/// The delta of a status event for live clients.
fn status_change(a: &Applied) -> Option<Change> {
    let DomainEvent::Message(e) = &a.event else { return None };
    let (status, _) = super::status_of(e)?;
    let mut changed = json!({ "status": status.as_str() });
    match e {
        MessageEvent::Sent { provider_message_id, .. } => changed["provider_message_id"] = json!(provider_message_id),
        MessageEvent::Failed { error, .. } => changed["error"] = json!(error),
        _ => {}
    }
    Some(Change::upsert("message", a.aggregate_id(), changed))
}

/// What a run's status events make of one message's row, composed in log order.
#[derive(Default)]
struct Composed {
    status: &'static str,
    at: Option<DateTime<Utc>>,
    sent: Option<DateTime<Utc>>,
    delivered: Option<DateTime<Utc>>,
    read: Option<DateTime<Utc>>,
    failed: Option<DateTime<Utc>>,
    provider_message_id: Option<String>,
    error: Option<serde_json::Value>,
}

/// The status events of a run, composed per message and written with one statement; moves each
/// message whose status changed from its old statistics bucket to its new one. Returns the
/// messages it found (a status event of a message without a row changes nothing).
async fn update_statuses(
    conn: &mut PgConnection,
    run: &[&Applied],
    buckets: &mut Buckets,
) -> Result<std::collections::HashSet<(Uuid, Uuid)>, sqlx::Error> {
    let mut composed: BTreeMap<(Uuid, Uuid), Composed> = BTreeMap::new();
    for a in run {
        let DomainEvent::Message(e) = &a.event else { continue };
        let Some((status, at)) = super::status_of(e) else { continue };
        let c = composed.entry((a.record.workspace_id, a.aggregate_id())).or_default();
        c.status = status.as_str();
        c.at = Some(at);
        match e {
            MessageEvent::Sent { provider_message_id, .. } => {
                c.sent = Some(at);
                c.provider_message_id = Some(provider_message_id.clone());
            }
            MessageEvent::Delivered { .. } => c.delivered = Some(at),
            MessageEvent::Read { .. } => c.read = Some(at),
            MessageEvent::Failed { error, .. } => {
                c.failed = Some(at);
                c.error = Some(json!(error));
            }
            _ => {}
        }
    }
    if composed.is_empty() {
        return Ok(Default::default());
    }
    let (mut ws, mut ids, mut statuses, mut ats) = (vec![], vec![], vec![], vec![]);
    let (mut sent, mut delivered, mut read, mut failed) = (vec![], vec![], vec![], vec![]);
    let (mut pids, mut errors) = (vec![], vec![]);
    for ((w, id), c) in composed {
        ws.push(w);
        ids.push(id);
        statuses.push(c.status);
        ats.push(c.at);
        sent.push(c.sent);
        delivered.push(c.delivered);
        read.push(c.read);
        failed.push(c.failed);
        pids.push(c.provider_message_id);
        errors.push(c.error);
    }
    // `o` is the row as the statement found it (its old status); the projector alone writes the table.
    let rows: Vec<(Uuid, Uuid, String, String, String, NaiveDate)> = sqlx::query_as(
        "UPDATE rm_messages m SET status = u.s, updated_at = u.at,
             sent_at = coalesce(u.sent, m.sent_at), delivered_at = coalesce(u.delivered, m.delivered_at),
             read_at = coalesce(u.rd, m.read_at), failed_at = coalesce(u.failed, m.failed_at),
             provider_message_id = coalesce(u.pid, m.provider_message_id), error = coalesce(u.err, m.error)
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
                     $7::timestamptz[], $8::timestamptz[], $9::text[], $10::jsonb[])
                AS u(w, id, s, at, sent, delivered, rd, failed, pid, err),
              rm_messages o
         WHERE m.workspace_id = u.w AND m.message_id = u.id AND o.workspace_id = u.w AND o.message_id = u.id
         RETURNING m.workspace_id, m.message_id, o.status, m.status, m.kind, (m.queued_at AT TIME ZONE 'UTC')::date",
    )
    .bind(&ws)
    .bind(&ids)
    .bind(&statuses)
    .bind(&ats)
    .bind(&sent)
    .bind(&delivered)
    .bind(&read)
    .bind(&failed)
    .bind(&pids)
    .bind(&errors)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = std::collections::HashSet::with_capacity(rows.len());
    for (w, id, old, new, kind, day) in rows {
        found.insert((w, id));
        if old != new {
            *buckets.entry((w, day, kind.clone(), old)).or_default() -= 1;
            *buckets.entry((w, day, kind, new)).or_default() += 1;
        }
    }
    Ok(found)
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
        matches!(event.event, DomainEvent::Message(_))
    }

    /// A run of message events: the queued ones inserted with one statement, the status changes
    /// composed per message and written with one more, the statistics with a third.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut buckets = Buckets::new();
        let queued: Vec<&Applied> = run.iter().copied().filter(|a| is_queued(a)).collect();
        let mut inserted = insert_queued(conn, &queued, &mut buckets).await?.into_iter();
        let changed = update_statuses(conn, run, &mut buckets).await?;
        add_counts(conn, buckets).await?;
        Ok(run
            .iter()
            .map(|a| {
                if is_queued(a) {
                    return inserted.next().unwrap_or_default();
                }
                match status_change(a) {
                    Some(change) if changed.contains(&(a.record.workspace_id, a.aggregate_id())) => vec![change],
                    _ => vec![],
                }
            })
            .collect())
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        match &a.event {
            DomainEvent::Message(_) => self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default()),
            DomainEvent::Conversation(ConversationEvent::InboundReceived { message: Some(m), at, .. }) => {
                insert_inbound(conn, a, m, *at).await
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
                Ok(ids.into_iter().map(|id| Change::upsert("message", id, json!({ "preview": null }))).collect())
            }
            _ => Ok(vec![]),
        }
    }
}
