//! `rm_campaigns`: each campaign with its lifecycle and the counts of its messages by current status
//! (and failures by error class); `rm_campaign_messages` remembers each campaign message's status so a
//! status change moves it from one count to another.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::campaign::{CampaignEvent, FinalCounts};
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Campaigns;

/// `rm_campaigns` with progress: `rate_per_second` (messages that left the queue per second since the
/// launch) and `eta_seconds` (the messages still queued at that rate; 0 when none are left).
pub const WITH_PROGRESS: &str = "(SELECT c.*, p.rate AS rate_per_second,
        CASE WHEN c.queued = 0 THEN 0 WHEN p.rate > 0 THEN round(c.queued / p.rate) END AS eta_seconds
    FROM rm_campaigns c
    CROSS JOIN LATERAL (SELECT CASE WHEN c.launched_at IS NULL THEN 0
        ELSE round(((c.dispatched + c.unknown + c.sent + c.delivered + c.read + c.failed)
                    / greatest(extract(epoch FROM now() - c.launched_at), 1))::numeric, 1) END AS rate) p)";

/// A campaign's counts and progress as one JSON object (over [`WITH_PROGRESS`] as `t`).
const PROGRESS_JSON: &str =
    "jsonb_build_object('status', status, 'completed_at', completed_at, 'queued', queued, 'dispatched', dispatched,
    'unknown', unknown, 'sent', sent, 'delivered', delivered, 'read', read, 'failed', failed,
    'failed_by_class', failed_by_class, 'skipped', skipped, 'rate_per_second', rate_per_second,
    'eta_seconds', eta_seconds)";

/// The counts and progress of a campaign, as a delta for live clients.
async fn counts(conn: &mut PgConnection, ws: Uuid, campaign: Uuid) -> Result<Vec<Change>, sqlx::Error> {
    let row: Option<serde_json::Value> = sqlx::query_scalar(&format!(
        "SELECT {PROGRESS_JSON} FROM {WITH_PROGRESS} t WHERE workspace_id = $1 AND campaign_id = $2"
    ))
    .bind(ws)
    .bind(campaign)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| vec![Change::upsert("campaign", campaign, r)]).unwrap_or_default())
}

/// Workspace, campaign and progress of every running campaign (for the once-a-second progress ticks:
/// a stalled campaign's rate and ETA change with no event).
pub async fn running(pool: &sqlx::PgPool) -> Result<Vec<(Uuid, Uuid, serde_json::Value)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT workspace_id, campaign_id, {PROGRESS_JSON} FROM {WITH_PROGRESS} t WHERE status = 'running'"
    ))
    .fetch_all(pool)
    .await
}

/// Campaigns to launch now (workspace, campaign): scheduled ones whose time has come, and launches
/// still `launching` after `stalled` (interrupted by a crash, or fanning out elsewhere: a second
/// fan-out queues nothing twice).
pub async fn due_for_launch(
    pool: &sqlx::PgPool,
    stalled: std::time::Duration,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT workspace_id, campaign_id FROM rm_campaigns
         WHERE (status = 'scheduled' AND scheduled_at <= now())
            OR (status = 'launching' AND launched_at < now() - make_interval(secs => $1))",
    )
    .bind(stalled.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Running campaigns whose every message is final (none queued, in flight or waiting for a retry):
/// workspace, campaign and the counts by final status. Their completion is appended from here.
pub async fn finished(pool: &sqlx::PgPool) -> Result<Vec<(Uuid, Uuid, FinalCounts)>, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT workspace_id, campaign_id, sent, delivered, read, failed, unknown FROM rm_campaigns
         WHERE status = 'running' AND queued = 0 AND dispatched = 0 LIMIT 1000",
    )
    .fetch_all(pool)
    .await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(w, c, sent, delivered, read, failed, unknown)| {
            let counts = FinalCounts {
                sent: n(sent),
                delivered: n(delivered),
                read: n(read),
                failed: n(failed),
                unknown: n(unknown),
            };
            (w, c, counts)
        })
        .collect())
}

/// The count columns of `rm_campaigns`, in the status lattice's order: only statuses this projector
/// wrote name columns.
const COLUMNS: [&str; 7] = ["queued", "dispatched", "unknown", "sent", "failed", "delivered", "read"];

fn column(status: &str) -> Option<usize> {
    COLUMNS.iter().position(|c| *c == status)
}

/// The changes a run makes to one campaign's counts.
#[derive(Debug, Default)]
struct Tally {
    workspace: Uuid,
    counts: [i64; 7],
    failed_by_class: BTreeMap<&'static str, i64>,
    /// The time of its last status change in the run (`None`: only messages queued).
    at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Tally {
    async fn write(&self, conn: &mut PgConnection, campaign: Uuid) -> Result<(), sqlx::Error> {
        // Column names come from `COLUMNS`, never from input.
        let set: Vec<String> = COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = {c} + ${}", i + 3)).collect();
        let sql = format!(
            "UPDATE rm_campaigns SET {}, updated_at = coalesce($10, updated_at),
                 failed_by_class = failed_by_class || coalesce((SELECT jsonb_object_agg(k, coalesce((failed_by_class ->> k)::int8, 0) + v::int8)
                                                                FROM jsonb_each_text($11::jsonb) AS x(k, v)), '{{}}'::jsonb)
             WHERE workspace_id = $1 AND campaign_id = $2",
            set.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(self.workspace).bind(campaign);
        for n in self.counts {
            q = q.bind(n);
        }
        q.bind(self.at).bind(json!(self.failed_by_class)).execute(conn).await?;
        Ok(())
    }
}

/// The campaign messages queued in a run: one insert; each campaign counts the new rows.
async fn insert_queued(
    conn: &mut PgConnection,
    run: &[&Applied],
    tallies: &mut BTreeMap<Uuid, Tally>,
) -> Result<(), sqlx::Error> {
    let (mut ids, mut campaigns, mut workspaces) = (vec![], vec![], BTreeMap::new());
    for a in run {
        if let DomainEvent::Message(MessageEvent::Queued { campaign_id: Some(c), .. }) = &a.event {
            ids.push(a.aggregate_id());
            campaigns.push(c.as_uuid());
            workspaces.insert(c.as_uuid(), a.record.workspace_id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO rm_campaign_messages (message_id, campaign_id, status)
         SELECT m, c, 'queued' FROM unnest($1::uuid[], $2::uuid[]) AS t(m, c)
         ON CONFLICT DO NOTHING RETURNING campaign_id",
    )
    .bind(&ids)
    .bind(&campaigns)
    .fetch_all(&mut *conn)
    .await?;
    for c in inserted {
        let t = tallies.entry(c).or_default();
        t.workspace = workspaces.get(&c).copied().unwrap_or_default();
        t.counts[0] += 1;
    }
    Ok(())
}

/// The status changes of a run's campaign messages, in log order, as one event at a time would make
/// them (a repeated status changes no count); writes the new statuses with one statement. Returns,
/// per campaign, the index in `run` of its last event that changed a count.
async fn move_statuses(
    conn: &mut PgConnection,
    run: &[&Applied],
    tallies: &mut BTreeMap<Uuid, Tally>,
) -> Result<BTreeMap<Uuid, usize>, sqlx::Error> {
    // The status an event gives its message and, for a failure, the error's class.
    let status_of = |a: &Applied| match &a.event {
        DomainEvent::Message(e) => super::status_of(e).map(|(status, _)| {
            let class = if let MessageEvent::Failed { error, .. } = e { Some(error.class().as_str()) } else { None };
            (status, class)
        }),
        _ => None,
    };
    let ids: Vec<Uuid> = run.iter().filter(|a| status_of(a).is_some()).map(|a| a.aggregate_id()).collect();
    let mut last = BTreeMap::new();
    if ids.is_empty() {
        return Ok(last);
    }
    let rows: Vec<(Uuid, Uuid, String)> =
        sqlx::query_as("SELECT message_id, campaign_id, status FROM rm_campaign_messages WHERE message_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut current: std::collections::HashMap<Uuid, (Uuid, String)> =
        rows.into_iter().map(|(m, c, s)| (m, (c, s))).collect();
    let mut moved = BTreeMap::new();
    for (i, a) in run.iter().enumerate() {
        let Some((status, class)) = status_of(a) else { continue };
        let Some((campaign, old)) = current.get_mut(&a.aggregate_id()) else { continue };
        let (Some(from), Some(to)) = (column(old), column(status.as_str())) else { continue };
        if from == to {
            continue;
        }
        let t = tallies.entry(*campaign).or_default();
        t.workspace = a.record.workspace_id;
        t.counts[from] -= 1;
        t.counts[to] += 1;
        t.at = Some(a.record.recorded_at);
        if let Some(class) = class {
            *t.failed_by_class.entry(class).or_default() += 1;
        }
        *old = status.as_str().to_owned();
        moved.insert(a.aggregate_id(), status.as_str());
        last.insert(*campaign, i);
    }
    let (ids, statuses): (Vec<Uuid>, Vec<&str>) = moved.into_iter().unzip();
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE rm_campaign_messages m SET status = u.s FROM unnest($1::uuid[], $2::text[]) AS u(id, s)
             WHERE m.message_id = u.id",
        )
        .bind(&ids)
        .bind(&statuses)
        .execute(conn)
        .await?;
    }
    Ok(last)
}

#[async_trait]
impl Projector for Campaigns {
    fn name(&self) -> &'static str {
        "campaigns"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_campaigns", "rm_campaign_messages"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        matches!(event.event, DomainEvent::Message(_))
    }

    /// A run of message events (a launch's fan-out, a dispatcher's sends, webhooks' statuses): one
    /// insert of the campaign messages queued, one read and one write of the others' statuses, and one
    /// count update per campaign. The campaign's delta goes with its last event in the run.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut tallies: BTreeMap<Uuid, Tally> = BTreeMap::new();
        insert_queued(conn, run, &mut tallies).await?;
        let last = move_statuses(conn, run, &mut tallies).await?;
        let mut out = vec![vec![]; run.len()];
        for (campaign, t) in tallies {
            t.write(conn, campaign).await?;
            if let Some(&i) = last.get(&campaign) {
                out[i] = counts(conn, t.workspace, campaign).await?;
            }
        }
        Ok(out)
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let (ws, at) = (a.record.workspace_id, a.record.recorded_at);
        match &a.event {
            DomainEvent::Campaign(e) => {
                let id = a.aggregate_id();
                if let CampaignEvent::Created { name, channel_id, template_id, .. } = e {
                    sqlx::query(
                        "INSERT INTO rm_campaigns (workspace_id, campaign_id, name, channel_id, template_id, status, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, 'draft', $6, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(ws)
                    .bind(id)
                    .bind(name)
                    .bind(channel_id.as_uuid())
                    .bind(template_id.as_uuid())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                    return counts(conn, ws, id).await;
                }
                let (status, scheduled, skipped) = match e {
                    CampaignEvent::Created { .. } => unreachable!("handled above"),
                    CampaignEvent::Scheduled { at } => ("scheduled", Some(*at), None),
                    CampaignEvent::LaunchStarted { .. } => ("launching", None, None),
                    CampaignEvent::Launched { skipped, .. } => ("running", None, Some(json!(skipped))),
                    CampaignEvent::Paused { .. } => ("paused", None, None),
                    // Resolved in SQL below: back to where the pause found it.
                    CampaignEvent::Resumed { .. } => ("resumed", None, None),
                    CampaignEvent::Cancelled { .. } => ("cancelled", None, None),
                    CampaignEvent::Completed { .. } => ("completed", None, None),
                };
                // A launch finishing after a pause or cancel records its counts, not a status.
                let keep = matches!(e, CampaignEvent::Launched { .. });
                sqlx::query(
                    "UPDATE rm_campaigns SET
                         status = CASE WHEN $7 AND status IN ('paused', 'cancelled') THEN status
                             WHEN $3 <> 'resumed' THEN $3
                             WHEN launched_at IS NULL THEN CASE WHEN scheduled_at IS NULL THEN 'draft' ELSE 'scheduled' END
                             WHEN skipped = '{}'::jsonb THEN 'launching' ELSE 'running' END,
                         scheduled_at = coalesce($4, scheduled_at), skipped = coalesce($5, skipped),
                         launched_at = CASE WHEN $3 = 'launching' THEN $6 ELSE launched_at END,
                         completed_at = CASE WHEN $3 = 'completed' THEN $6 ELSE completed_at END, updated_at = $6
                     WHERE workspace_id = $1 AND campaign_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(status)
                .bind(scheduled)
                .bind(skipped)
                .bind(at)
                .bind(keep)
                .execute(&mut *conn)
                .await?;
                counts(conn, ws, id).await
            }
            DomainEvent::Message(_) => self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default()),
            _ => Ok(vec![]),
        }
    }
}

/// Campaigns launching, running or paused in every workspace (the operations page), newest launch
/// first, at most `limit`: name, ids, counts and progress, and `total` (every message of the launch).
pub async fn active(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT {PROGRESS_JSON} || jsonb_build_object('workspace_id', workspace_id, 'campaign_id', campaign_id,
             'name', name, 'launched_at', launched_at,
             'total', queued + dispatched + unknown + sent + delivered + read + failed)
         FROM {WITH_PROGRESS} t WHERE status IN ('launching', 'running', 'paused')
         ORDER BY launched_at DESC NULLS LAST, campaign_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}
