//! `dispatch_queue`: messages waiting to be sent, the work list of dispatchers. A message enters it when
//! queued, is not due while an attempt is under way, is due again when a retry is scheduled, and
//! leaves it when it reaches an outcome (sent, failed, delivered, read). Messages of a paused or
//! cancelled campaign, or of a halted channel, stay but are held (`dispatch_held`) until resumed.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::campaign::CampaignEvent;
use blazz_domain::channel::ChannelEvent;
use blazz_domain::contact::ContactEvent;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Outbox;

/// What a message's queue row becomes: inserted (channel, due time, campaign), given a new due time,
/// or deleted (the message reached an outcome). A due time of `None` is never: an attempt is under way.
/// The `i64` is the stream version of the last event the row reflects (see `due`).
enum Row {
    /// Channel, due time, campaign, recipient, version.
    Insert(Uuid, Option<DateTime<Utc>>, Option<Uuid>, Uuid, i64),
    Due(Option<DateTime<Utc>>, i64),
    Delete,
}

/// Holds (paused, cancelled, halted) or releases (resumed) the queued messages of a campaign or a
/// channel (`dispatch_held` holds both kinds of id: they are UUIDs that never collide).
async fn hold(conn: &mut PgConnection, campaign: Uuid, held: bool) -> Result<(), sqlx::Error> {
    let sql = if held {
        "INSERT INTO dispatch_held (held_id) VALUES ($1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM dispatch_held WHERE held_id = $1"
    };
    sqlx::query(sql).bind(campaign).execute(conn).await?;
    Ok(())
}

#[async_trait]
impl Projector for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["dispatch_queue", "dispatch_held"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        matches!(event.event, DomainEvent::Message(_))
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        match &a.event {
            DomainEvent::Campaign(CampaignEvent::Paused { .. } | CampaignEvent::Cancelled { .. }) => {
                hold(conn, a.aggregate_id(), true).await?
            }
            DomainEvent::Campaign(CampaignEvent::Resumed { .. }) => hold(conn, a.aggregate_id(), false).await?,
            DomainEvent::Channel(ChannelEvent::Halted { .. }) => hold(conn, a.aggregate_id(), true).await?,
            DomainEvent::Channel(ChannelEvent::Resumed) => hold(conn, a.aggregate_id(), false).await?,
            // Its queued messages have no recipient left (it reads as erased): never sent, and not
            // left at the head of the queue for dispatchers to pick and skip.
            DomainEvent::Contact(ContactEvent::Erased { .. }) => {
                sqlx::query("DELETE FROM dispatch_queue WHERE workspace_id = $1 AND contact_id = $2")
                    .bind(a.record.workspace_id)
                    .bind(a.aggregate_id())
                    .execute(conn)
                    .await?;
            }
            DomainEvent::Message(_) => {
                return self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default())
            }
            _ => {}
        }
        Ok(vec![])
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        // What each message's row becomes after the run, composed in log order.
        let mut last: BTreeMap<(Uuid, Uuid), Row> = BTreeMap::new();
        for a in run {
            let key = (a.record.workspace_id, a.aggregate_id());
            let DomainEvent::Message(e) = &a.event else { continue };
            let version = i64::try_from(a.record.stream_version).unwrap_or(i64::MAX);
            let due = match e {
                MessageEvent::Queued { channel_id, contact_id, at, campaign_id, .. } => {
                    let campaign = campaign_id.map(|c| c.as_uuid());
                    let row = Row::Insert(channel_id.as_uuid(), Some(*at), campaign, contact_id.as_uuid(), version);
                    last.insert(key, row);
                    continue;
                }
                MessageEvent::Billed { .. } => continue,
                // An attempt is under way: not due until a retry is scheduled.
                MessageEvent::Dispatched { .. } => None,
                MessageEvent::RetryScheduled { not_before, .. } => Some(*not_before),
                _ => {
                    last.insert(key, Row::Delete);
                    continue;
                }
            };
            let row = match last.remove(&key) {
                Some(Row::Insert(c, _, campaign, contact, _)) => Row::Insert(c, due, campaign, contact, version),
                Some(Row::Delete) => Row::Delete,
                _ => Row::Due(due, version),
            };
            last.insert(key, row);
        }
        let (mut iw, mut im, mut ic, mut id, mut icampaign, mut icontact, mut iv) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut uw, mut um, mut ud, mut uv) = (vec![], vec![], vec![], vec![]);
        let (mut dw, mut dm) = (vec![], vec![]);
        for ((w, m), row) in last {
            match row {
                Row::Insert(c, due, campaign, contact, version) => {
                    iw.push(w);
                    im.push(m);
                    ic.push(c);
                    id.push(due);
                    icampaign.push(campaign);
                    icontact.push(contact);
                    iv.push(version);
                }
                Row::Due(due, version) => {
                    uw.push(w);
                    um.push(m);
                    ud.push(due);
                    uv.push(version);
                }
                Row::Delete => {
                    dw.push(w);
                    dm.push(m);
                }
            }
        }
        if !iw.is_empty() {
            sqlx::query(
                "INSERT INTO dispatch_queue (workspace_id, message_id, channel_id, due_at, campaign_id, contact_id, version)
                 SELECT w, m, c, coalesce(d, 'infinity'), k, r, v
                 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::uuid[], $6::uuid[], $7::int8[])
                   AS t(w, m, c, d, k, r, v)
                 ON CONFLICT (workspace_id, message_id) DO UPDATE SET due_at = excluded.due_at, version = excluded.version",
            )
            .bind(&iw)
            .bind(&im)
            .bind(&ic)
            .bind(&id)
            .bind(&icampaign)
            .bind(&icontact)
            .bind(&iv)
            .execute(&mut *conn)
            .await?;
        }
        if !uw.is_empty() {
            sqlx::query(
                "UPDATE dispatch_queue q SET due_at = coalesce(u.d, 'infinity'), version = u.v
                 FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int8[]) AS u(w, m, d, v)
                 WHERE q.workspace_id = u.w AND q.message_id = u.m",
            )
            .bind(&uw)
            .bind(&um)
            .bind(&ud)
            .bind(&uv)
            .execute(&mut *conn)
            .await?;
        }
        if !dw.is_empty() {
            sqlx::query(
                "DELETE FROM dispatch_queue q USING unnest($1::uuid[], $2::uuid[]) AS d(w, m)
                 WHERE q.workspace_id = d.w AND q.message_id = d.m",
            )
            .bind(&dw)
            .bind(&dm)
            .execute(conn)
            .await?;
        }
        // The queue is internal: no deltas for live clients.
        Ok(vec![vec![]; run.len()])
    }
}

/// How many messages wait in the dispatch queue: due now, scheduled later (or under way), held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Depth {
    pub due: i64,
    pub waiting: i64,
    pub held: i64,
}

/// Queue rows with whether a paused campaign or a halted channel holds them (`held`).
const WITH_HELD: &str =
    "(SELECT q.*, EXISTS (SELECT 1 FROM dispatch_held h WHERE h.held_id IN (q.campaign_id, q.channel_id)) AS held
    FROM dispatch_queue q)";

pub async fn depth(pool: &PgPool) -> Result<Depth, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE NOT held AND due_at <= now()) AS due,
                count(*) FILTER (WHERE NOT held AND (due_at IS NULL OR due_at > now())) AS waiting,
                count(*) FILTER (WHERE held) AS held
         FROM {WITH_HELD} d"
    ))
    .fetch_one(pool)
    .await
}

/// Every channel (the operations page) with its rate limit, halt, and the messages of its queue due
/// now and held, busiest first, at most `limit`.
pub async fn channels(pool: &PgPool, limit: i64) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT jsonb_build_object('workspace_id', c.workspace_id, 'channel_id', c.channel_id, 'provider', c.provider,
                    'display_phone_number', c.display_phone_number, 'rate_limit_per_second', c.rate_limit_per_second,
                    'halted', c.halted, 'due', coalesce(q.due, 0), 'held', coalesce(q.held, 0))
         FROM rm_channels c
         LEFT JOIN LATERAL (
             SELECT count(*) FILTER (WHERE NOT held AND due_at <= now()) AS due, count(*) FILTER (WHERE held) AS held
             FROM {WITH_HELD} x WHERE x.workspace_id = c.workspace_id AND x.channel_id = c.channel_id
         ) q ON true
         ORDER BY coalesce(q.due, 0) + coalesce(q.held, 0) DESC, c.channel_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A message due for sending, with its channel's rate and, for a campaign message, the recipient
/// to pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Due {
    pub workspace_id: Uuid,
    pub message_id: Uuid,
    pub channel_id: Uuid,
    pub rate: i32,
    pub pace_contact: Option<Uuid>,
}

/// Up to `limit` messages due now, fairly across channels: every channel's due messages are looked
/// up on their own (a second's worth at most) and taken round-robin (every channel's first, then
/// every channel's second, …), so a backlog on one channel or workspace never delays another's next
/// message by more than a round. Leaves out held messages, campaign messages whose recipient's pace
/// slot is still running, `except` (a dispatcher's own short memory), and stale rows: a message with
/// a later event than its row reflects (dispatched or sent, not yet projected) is not due, however
/// far the projectors lag (one index probe per candidate on `events_stream_version_key`;
/// `message.billed` never changes a row). `except` is tested as a hashed subplan
/// (`NOT IN (SELECT unnest(…))`), not `<> ALL($2)`, which compares every row with every id.
///
/// Each channel's turn must be a walk of `dispatch_queue_channel_due` in due order that stops at its
/// limit. The planner takes it only while it believes most rows pass the probes; with statistics
/// from when the queue was small (a backlog grows far faster than autovacuum re-analyses it) or an
/// empty, never-analysed `dispatch_held`, it read and probed every queued row of the channel and
/// sorted them instead: 255 ms per poll with 105,000 messages queued (`pg_stat_statements` under the
/// send benchmark), against ~1 ms for the walk. So the poll runs with sorting and bitmap scans ruled
/// out for its transaction: the ordered index walk is then the only plan left for that part (the
/// outer sorts of the turns stay; they are over a second's worth of rows).
pub async fn due(pool: &PgPool, limit: i64, except: &[Uuid]) -> Result<Vec<Due>, sqlx::Error> {
    let mut tx = walking(pool).await?;
    let due = sqlx::query_as(DUE).bind(limit).bind(except).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(due)
}

/// The plan of [`due`] as it runs now, from `EXPLAIN (ANALYZE, FORMAT JSON)`: for operators who
/// wonder why a poll is slow, and for the test that holds the walk in place.
pub async fn explain_due(pool: &PgPool, limit: i64, except: &[Uuid]) -> Result<serde_json::Value, sqlx::Error> {
    let mut tx = walking(pool).await?;
    let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {DUE}");
    let plan = sqlx::query_scalar(&explain).bind(limit).bind(except).fetch_one(&mut *tx).await?;
    tx.rollback().await?;
    Ok(plan)
}

/// A transaction in which the planner can only walk the queue's index in order (see [`due`]).
async fn walking(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

const DUE: &str = "SELECT workspace_id, message_id, channel_id, rate, pace_contact FROM (
         SELECT q.*, row_number() OVER (PARTITION BY q.channel_id ORDER BY q.due_at) AS turn
         FROM rm_channels c
         CROSS JOIN LATERAL (
             SELECT q.workspace_id, q.message_id, q.channel_id, c.rate_limit_per_second AS rate,
                    CASE WHEN q.campaign_id IS NOT NULL THEN q.contact_id END AS pace_contact, q.due_at
             FROM dispatch_queue q
             WHERE q.channel_id = c.channel_id AND q.workspace_id = c.workspace_id AND q.due_at <= now()
               AND q.message_id NOT IN (SELECT unnest($2::uuid[]))
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = 'message-' || q.message_id
                               AND e.stream_version > q.version AND e.event_type <> 'message.billed')
               AND NOT EXISTS (SELECT 1 FROM dispatch_held h WHERE h.held_id IN (q.campaign_id, q.channel_id))
               AND NOT (q.campaign_id IS NOT NULL AND EXISTS (SELECT 1 FROM dispatch_pace p
                        WHERE p.channel_id = q.channel_id AND p.contact_id = q.contact_id AND p.next_at > now()))
             ORDER BY q.due_at LIMIT greatest(c.rate_limit_per_second, 1)
         ) q
     ) fair ORDER BY turn, due_at LIMIT $1";
