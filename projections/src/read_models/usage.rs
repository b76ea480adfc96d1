//! `rm_usage`: usage metering for billing. Each message's first billing report (Meta's `pricing`)
//! counts once, per workspace, channel, UTC day of the report and pricing category.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;

#[derive(Debug)]
pub struct Usage;

#[async_trait]
impl Projector for Usage {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_usage"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Message(MessageEvent::Billed { channel_id, pricing, at }) = &a.event else {
            return Ok(vec![]);
        };
        let category = pricing.category.as_deref().unwrap_or("unknown");
        let (billable, free) = if pricing.billable { (1i64, 0i64) } else { (0, 1) };
        let row: (i64, i64) = sqlx::query_as(
            "INSERT INTO rm_usage (workspace_id, channel_id, day, category, billable, free) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (workspace_id, channel_id, day, category)
             DO UPDATE SET billable = rm_usage.billable + $5, free = rm_usage.free + $6
             RETURNING billable, free",
        )
        .bind(a.record.workspace_id)
        .bind(channel_id.as_uuid())
        .bind(at.date_naive())
        .bind(category)
        .bind(billable)
        .bind(free)
        .fetch_one(conn)
        .await?;
        Ok(vec![Change::upsert(
            "usage",
            channel_id.as_uuid(),
            json!({ "day": at.date_naive(), "category": category, "billable": row.0, "free": row.1 }),
        )])
    }
}
