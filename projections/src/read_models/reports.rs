//! `reports`: the inbox's figures per UTC day, team and agent (conversations opened and resolved,
//! first response and resolution times, messages sent) and campaigns' replies, as read models of the
//! conversation and message events, so they rebuild and audit like everything else.
//!
//! A conversation's *cycle* opens when the customer writes to it while it has none open (its first
//! message, or one after it was resolved) or when someone reopens a resolved one; its first
//! response is the first message sent to the contact on the channel from outside a campaign; it
//! ends when resolved. Times are the events' own (`at` of the command or the provider), so a
//! scripted day reports the same figures whenever it is replayed. A cycle's figures belong to the
//! conversation's latest assignment during it; messages sent belong to the sending agent (the key's)
//! and the conversation's team. A recipient who writes within 24 hours of a campaign's message
//! replied to that campaign (the latest campaign that wrote to the conversation; once per recipient).

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::conversation::{ConversationEvent, ConversationStatus};
use blazz_domain::ids::ConversationId;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Reports;

fn campaign_message(a: &Applied) -> Option<(Uuid, Uuid, DateTime<Utc>)> {
    match &a.event {
        DomainEvent::Message(MessageEvent::Queued { channel_id, contact_id, campaign_id: Some(c), at, .. }) => {
            Some((ConversationId::for_pair(*channel_id, *contact_id).as_uuid(), c.as_uuid(), *at))
        }
        _ => None,
    }
}

/// Campaign messages of a run: the latest per conversation becomes its last campaign.
async fn note_campaigns(conn: &mut PgConnection, run: &[&Applied]) -> Result<(), sqlx::Error> {
    let mut last: HashMap<(Uuid, Uuid), (Uuid, DateTime<Utc>)> = HashMap::new();
    for a in run {
        if let Some((conversation, campaign, at)) = campaign_message(a) {
            last.insert((a.record.workspace_id, conversation), (campaign, at));
        }
    }
    if last.is_empty() {
        return Ok(());
    }
    let (mut ws, mut convs, mut camps, mut ats) = (vec![], vec![], vec![], vec![]);
    for ((w, c), (campaign, at)) in last {
        ws.push(w);
        convs.push(c);
        camps.push(campaign);
        ats.push(at);
    }
    sqlx::query(
        "INSERT INTO rm_report_conversations (workspace_id, conversation_id, last_campaign_id, last_campaign_at)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[])
         ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET
             last_campaign_id = excluded.last_campaign_id, last_campaign_at = excluded.last_campaign_at",
    )
    .bind(&ws)
    .bind(&convs)
    .bind(&camps)
    .bind(&ats)
    .execute(conn)
    .await?;
    Ok(())
}

/// Opens a cycle of the conversation at `at` (named by the opening event's position) unless one is
/// open, with the conversation's assignment. The projector is the tables' only writer, so the check
/// and the insert cannot race (the partial unique index stands guard all the same).
async fn open_cycle(conn: &mut PgConnection, a: &Applied, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_report_cycles (workspace_id, conversation_id, opened_position, opened_at, agent_id, team_id)
         SELECT $1, $2, $3, $4, rc.agent_id, rc.team_id
         FROM (SELECT 1) one LEFT JOIN rm_report_conversations rc ON rc.workspace_id = $1 AND rc.conversation_id = $2
         WHERE NOT EXISTS (SELECT 1 FROM rm_report_cycles
                           WHERE workspace_id = $1 AND conversation_id = $2 AND resolved_at IS NULL)
         ON CONFLICT DO NOTHING",
    )
    .bind(a.record.workspace_id)
    .bind(a.aggregate_id())
    .bind(a.record.position)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn conversation_event(conn: &mut PgConnection, a: &Applied, e: &ConversationEvent) -> Result<(), sqlx::Error> {
    let (ws, id) = (a.record.workspace_id, a.aggregate_id());
    match e {
        ConversationEvent::InboundReceived { at, .. } => {
            sqlx::query(
                "INSERT INTO rm_report_campaign_replies (workspace_id, campaign_id, conversation_id, replied_at)
                 SELECT workspace_id, last_campaign_id, conversation_id, $3 FROM rm_report_conversations
                 WHERE workspace_id = $1 AND conversation_id = $2 AND last_campaign_id IS NOT NULL
                   AND $3 >= last_campaign_at AND $3 <= last_campaign_at + interval '24 hours'
                 ON CONFLICT DO NOTHING",
            )
            .bind(ws)
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            open_cycle(conn, a, *at).await
        }
        ConversationEvent::StatusChanged { status: ConversationStatus::Resolved, at, .. } => {
            sqlx::query(
                "UPDATE rm_report_cycles SET resolved_at = greatest($3, opened_at)
                 WHERE workspace_id = $1 AND conversation_id = $2 AND resolved_at IS NULL",
            )
            .bind(ws)
            .bind(id)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(())
        }
        ConversationEvent::StatusChanged { at, .. } => open_cycle(conn, a, *at).await,
        ConversationEvent::Assigned { agent_id, team_id, .. } => {
            let (agent, team) = (agent_id.map(|a| a.as_uuid()), team_id.map(|t| t.as_uuid()));
            sqlx::query(
                "INSERT INTO rm_report_conversations (workspace_id, conversation_id, agent_id, team_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET agent_id = $3, team_id = $4",
            )
            .bind(ws)
            .bind(id)
            .bind(agent)
            .bind(team)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE rm_report_cycles SET agent_id = $3, team_id = $4
                 WHERE workspace_id = $1 AND conversation_id = $2 AND resolved_at IS NULL",
            )
            .bind(ws)
            .bind(id)
            .bind(agent)
            .bind(team)
            .execute(conn)
            .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Messages sent from the inbox (queued outside a campaign), in log order: each conversation's first
/// of the run is its open cycle's first response (if it has none yet), and each counts as one more
/// message sent by its agent (the key's) and the conversation's team that day. A run holds no
/// assignment (a conversation event ends it), so the team is the same for all of a conversation's.
async fn sent(conn: &mut PgConnection, run: &[&Applied]) -> Result<(), sqlx::Error> {
    let (mut ws, mut convs, mut days, mut agents) = (vec![], vec![], vec![], vec![]);
    let mut first: HashMap<(Uuid, Uuid), DateTime<Utc>> = HashMap::new();
    for a in run {
        let DomainEvent::Message(MessageEvent::Queued { channel_id, contact_id, at, campaign_id: None, .. }) = &a.event
        else {
            continue;
        };
        let conversation = ConversationId::for_pair(*channel_id, *contact_id).as_uuid();
        first.entry((a.record.workspace_id, conversation)).or_insert(*at);
        ws.push(a.record.workspace_id);
        convs.push(conversation);
        days.push(at.date_naive());
        agents.push(a.record.metadata.agent_id);
    }
    if ws.is_empty() {
        return Ok(());
    }
    let (mut fw, mut fc, mut fa) = (vec![], vec![], vec![]);
    for ((w, c), at) in first {
        fw.push(w);
        fc.push(c);
        fa.push(at);
    }
    sqlx::query(
        "UPDATE rm_report_cycles c SET first_response_at = greatest(u.at, c.opened_at)
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS u(w, conv, at)
         WHERE c.workspace_id = u.w AND c.conversation_id = u.conv AND c.resolved_at IS NULL
           AND c.first_response_at IS NULL",
    )
    .bind(&fw)
    .bind(&fc)
    .bind(&fa)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO rm_report_messages (workspace_id, day, agent_id, team_id, sent)
         SELECT u.w, u.d, coalesce(u.a, '00000000-0000-0000-0000-000000000000'::uuid),
                coalesce(rc.team_id, '00000000-0000-0000-0000-000000000000'::uuid), count(*)
         FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::uuid[]) AS u(w, conv, d, a)
         LEFT JOIN rm_report_conversations rc ON rc.workspace_id = u.w AND rc.conversation_id = u.conv
         GROUP BY 1, 2, 3, 4
         ON CONFLICT (workspace_id, day, agent_id, team_id) DO UPDATE SET sent = rm_report_messages.sent + excluded.sent",
    )
    .bind(&ws)
    .bind(&convs)
    .bind(&days)
    .bind(&agents)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Projector for Reports {
    fn name(&self) -> &'static str {
        "reports"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_report_conversations", "rm_report_cycles", "rm_report_messages", "rm_report_campaign_replies"]
    }

    fn batchable(&self, a: &Applied) -> bool {
        matches!(a.event, DomainEvent::Message(MessageEvent::Queued { .. }))
    }

    /// A run of queued messages: campaign messages note their conversation's last campaign; the
    /// others are sent from the inbox.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        note_campaigns(conn, run).await?;
        sent(conn, run).await?;
        Ok(vec![vec![]; run.len()])
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        match &a.event {
            DomainEvent::Conversation(e) => conversation_event(conn, a, e).await?,
            DomainEvent::Message(MessageEvent::Queued { .. }) => {
                self.apply_run(conn, &[a]).await?;
            }
            _ => {}
        }
        Ok(vec![])
    }
}

/// How the inbox report groups its rows (always by day too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Agent,
    Team,
    Workspace,
}

impl GroupBy {
    fn dims(self) -> (&'static str, &'static str) {
        match self {
            Self::Agent => ("team_id, agent_id,", ", team_id, agent_id"),
            Self::Team => ("team_id,", ", team_id"),
            Self::Workspace => ("", ""),
        }
    }
}

/// The inbox report from `from` to `to` (UTC days, inclusive): per day (and team and agent, as
/// `by` says) conversations opened and resolved, median and p90 of first response and resolution
/// times in seconds, and messages sent.
pub async fn inbox(
    pool: &PgPool,
    ws: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    by: GroupBy,
) -> Result<Vec<Value>, sqlx::Error> {
    let (select, group) = by.dims();
    sqlx::query_scalar(&format!(
        "WITH span AS (SELECT $2::date::timestamp AT TIME ZONE 'UTC' AS lo, ($3::date + 1)::timestamp AT TIME ZONE 'UTC' AS hi),
         facts AS (
             SELECT (opened_at AT TIME ZONE 'UTC')::date AS day, team_id, agent_id, 1 AS opened, 0 AS resolved,
                    NULL::float8 AS first_response, NULL::float8 AS resolution, 0 AS sent
             FROM rm_report_cycles, span WHERE workspace_id = $1 AND opened_at >= lo AND opened_at < hi
             UNION ALL
             SELECT (first_response_at AT TIME ZONE 'UTC')::date, team_id, agent_id, 0, 0,
                    extract(epoch FROM first_response_at - opened_at)::float8, NULL, 0
             FROM rm_report_cycles, span WHERE workspace_id = $1 AND first_response_at >= lo AND first_response_at < hi
             UNION ALL
             SELECT (resolved_at AT TIME ZONE 'UTC')::date, team_id, agent_id, 0, 1,
                    NULL, extract(epoch FROM resolved_at - opened_at)::float8, 0
             FROM rm_report_cycles, span WHERE workspace_id = $1 AND resolved_at >= lo AND resolved_at < hi
             UNION ALL
             SELECT day, nullif(team_id, '00000000-0000-0000-0000-000000000000'::uuid), nullif(agent_id, '00000000-0000-0000-0000-000000000000'::uuid), 0, 0, NULL, NULL, sent
             FROM rm_report_messages WHERE workspace_id = $1 AND day BETWEEN $2 AND $3
         )
         SELECT to_jsonb(r) FROM (
             SELECT day, {select}
                    sum(opened)::bigint AS conversations_opened, sum(resolved)::bigint AS conversations_resolved,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response) AS first_response_median_seconds,
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response) AS first_response_p90_seconds,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution) AS resolution_median_seconds,
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution) AS resolution_p90_seconds,
                    sum(sent)::bigint AS messages_sent
             FROM facts GROUP BY day{group} ORDER BY day{group}
         ) r"
    ))
    .bind(ws)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// A campaign's report: its counts, delivery rate (delivered or read, of the messages with an
/// outcome: sent, delivered, read, failed or unknown), read rate (read, of delivered or read),
/// recipients who replied within 24 hours, and their rate (of delivered or read). `None` for an
/// unknown campaign. Rates are `null` while their base is zero.
pub async fn campaign(pool: &PgPool, ws: Uuid, campaign: Uuid) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('campaign_id', c.campaign_id, 'status', c.status, 'sent', c.sent, 'delivered', c.delivered,
                'read', c.read, 'failed', c.failed, 'unknown', c.unknown,
                'delivery_rate', round((c.delivered + c.read)::numeric / nullif(c.sent + c.delivered + c.read + c.failed + c.unknown, 0), 4),
                'read_rate', round(c.read::numeric / nullif(c.delivered + c.read, 0), 4),
                'replies_within_24h', r.replies,
                'reply_rate', round(r.replies::numeric / nullif(c.delivered + c.read, 0), 4))
         FROM rm_campaigns c
         CROSS JOIN LATERAL (SELECT count(*) AS replies FROM rm_report_campaign_replies x
                             WHERE x.workspace_id = c.workspace_id AND x.campaign_id = c.campaign_id) r
         WHERE c.workspace_id = $1 AND c.campaign_id = $2",
    )
    .bind(ws)
    .bind(campaign)
    .fetch_optional(pool)
    .await
}
