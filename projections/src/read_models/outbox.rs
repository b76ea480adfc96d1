//! `dispatch_queue`: messages queued and not yet dispatched, the work list of dispatchers. A message
//! enters it when queued and leaves it at its first attempt or any later status. Messages of a paused
//! or cancelled campaign stay in it but are held (`dispatch_held_campaigns`) until it resumes.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::campaign::CampaignEvent;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Outbox;

/// Where a message stands after a run: waiting (channel, due time, campaign), or gone from the queue.
type Membership = Option<(Uuid, DateTime<Utc>, Option<Uuid>)>;

/// Holds (paused, cancelled) or releases (resumed) a campaign's queued messages.
async fn hold(conn: &mut PgConnection, campaign: Uuid, held: bool) -> Result<(), sqlx::Error> {
    let sql = if held {
        "INSERT INTO dispatch_held_campaigns (campaign_id) VALUES ($1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM dispatch_held_campaigns WHERE campaign_id = $1"
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
        &["dispatch_queue", "dispatch_held_campaigns"]
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
            DomainEvent::Message(_) => {
                return self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default())
            }
            _ => {}
        }
        Ok(vec![])
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut last: BTreeMap<(Uuid, Uuid), Membership> = BTreeMap::new();
        for a in run {
            let key = (a.record.workspace_id, a.aggregate_id());
            match &a.event {
                DomainEvent::Message(MessageEvent::Queued { channel_id, at, campaign_id, .. }) => {
                    last.insert(key, Some((channel_id.as_uuid(), *at, campaign_id.map(|c| c.as_uuid()))));
                }
                DomainEvent::Message(MessageEvent::Billed { .. }) => {}
                DomainEvent::Message(_) => {
                    last.insert(key, None);
                }
                _ => {}
            }
        }
        let (mut iw, mut im, mut ic, mut id, mut icampaign) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut dw, mut dm) = (vec![], vec![]);
        for ((w, m), membership) in last {
            match membership {
                Some((c, due, campaign)) => {
                    iw.push(w);
                    im.push(m);
                    ic.push(c);
                    id.push(due);
                    icampaign.push(campaign);
                }
                None => {
                    dw.push(w);
                    dm.push(m);
                }
            }
        }
        if !iw.is_empty() {
            sqlx::query(
                "INSERT INTO dispatch_queue (workspace_id, message_id, channel_id, due_at, campaign_id)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::uuid[])
                 ON CONFLICT (workspace_id, message_id) DO UPDATE SET due_at = excluded.due_at",
            )
            .bind(&iw)
            .bind(&im)
            .bind(&ic)
            .bind(&id)
            .bind(&icampaign)
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
