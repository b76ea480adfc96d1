//! `dispatch_queue`: messages queued and not yet dispatched, the work list of dispatchers. A message
//! enters it when queued and leaves it at its first attempt or any later status.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Outbox;

/// Where a message stands after a run: waiting (channel, due time), or gone from the queue.
type Membership = Option<(Uuid, DateTime<Utc>)>;

#[async_trait]
impl Projector for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["dispatch_queue"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        matches!(event.event, DomainEvent::Message(_))
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default())
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut last: BTreeMap<(Uuid, Uuid), Membership> = BTreeMap::new();
        for a in run {
            let key = (a.record.workspace_id, a.aggregate_id());
            match &a.event {
                DomainEvent::Message(MessageEvent::Queued { channel_id, at, .. }) => {
                    last.insert(key, Some((channel_id.as_uuid(), *at)));
                }
                DomainEvent::Message(MessageEvent::Billed { .. }) => {}
                DomainEvent::Message(_) => {
                    last.insert(key, None);
                }
                _ => {}
            }
        }
        let (mut iw, mut im, mut ic, mut id) = (vec![], vec![], vec![], vec![]);
        let (mut dw, mut dm) = (vec![], vec![]);
        for ((w, m), membership) in last {
            match membership {
                Some((c, due)) => {
                    iw.push(w);
                    im.push(m);
                    ic.push(c);
                    id.push(due);
                }
                None => {
                    dw.push(w);
                    dm.push(m);
                }
            }
        }
        if !iw.is_empty() {
            sqlx::query(
                "INSERT INTO dispatch_queue (workspace_id, message_id, channel_id, due_at)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[])
                 ON CONFLICT (workspace_id, message_id) DO UPDATE SET due_at = excluded.due_at",
            )
            .bind(&iw)
            .bind(&im)
            .bind(&ic)
            .bind(&id)
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
