//! `rm_usage`: usage metering for billing. Each message's first billing report (Meta's `pricing`)
//! counts once, per workspace, channel, UTC day of the report and pricing category.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::NaiveDate;
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct Usage;

/// A bucket of `rm_usage`: workspace, channel, UTC day, pricing category.
type Bucket = (Uuid, Uuid, NaiveDate, String);

#[async_trait]
impl Projector for Usage {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_usage"]
    }

    fn batchable(&self, a: &Applied) -> bool {
        matches!(a.event, DomainEvent::Message(MessageEvent::Billed { .. }))
    }

    /// A run of billing reports: summed per bucket and written with one upsert; each bucket's totals
    /// go to live clients with its last report of the run.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let mut sums: BTreeMap<Bucket, (i64, i64, usize)> = BTreeMap::new();
        for (i, a) in run.iter().enumerate() {
            let DomainEvent::Message(MessageEvent::Billed { channel_id, pricing, at }) = &a.event else { continue };
            let category = pricing.category.as_deref().unwrap_or("unknown").to_owned();
            let s = sums.entry((a.record.workspace_id, channel_id.as_uuid(), at.date_naive(), category)).or_default();
            if pricing.billable {
                s.0 += 1;
            } else {
                s.1 += 1;
            }
            s.2 = i;
        }
        let mut out = vec![vec![]; run.len()];
        if sums.is_empty() {
            return Ok(out);
        }
        let (mut ws, mut channels, mut days, mut categories, mut billable, mut free) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((w, c, d, k), (b, f, _)) in &sums {
            ws.push(*w);
            channels.push(*c);
            days.push(*d);
            categories.push(k.as_str());
            billable.push(*b);
            free.push(*f);
        }
        let rows: Vec<(Uuid, Uuid, NaiveDate, String, i64, i64)> = sqlx::query_as(
            "INSERT INTO rm_usage (workspace_id, channel_id, day, category, billable, free)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::text[], $5::int8[], $6::int8[])
             ON CONFLICT (workspace_id, channel_id, day, category)
             DO UPDATE SET billable = rm_usage.billable + excluded.billable, free = rm_usage.free + excluded.free
             RETURNING workspace_id, channel_id, day, category, billable, free",
        )
        .bind(&ws)
        .bind(&channels)
        .bind(&days)
        .bind(&categories)
        .bind(&billable)
        .bind(&free)
        .fetch_all(conn)
        .await?;
        for (w, c, d, k, b, f) in rows {
            let change = Change::upsert("usage", c, json!({ "day": d, "category": k, "billable": b, "free": f }));
            if let Some(&(_, _, i)) = sums.get(&(w, c, d, k)) {
                out[i].push(change);
            }
        }
        Ok(out)
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        Ok(self.apply_run(conn, &[a]).await?.pop().unwrap_or_default())
    }
}
