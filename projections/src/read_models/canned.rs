//! `rm_canned_responses`: a workspace's canned responses (deleted ones are gone).

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::canned::CannedEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;

#[derive(Debug)]
pub struct CannedResponses;

#[async_trait]
impl Projector for CannedResponses {
    fn name(&self) -> &'static str {
        "canned_responses"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_canned_responses"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Canned(e) = &a.event else {
            return Ok(vec![]);
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        let change = match e {
            CannedEvent::Created { short_code, text } => {
                sqlx::query(
                    "INSERT INTO rm_canned_responses (workspace_id, canned_response_id, short_code, text, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
                )
                .bind(ws)
                .bind(id)
                .bind(short_code)
                .bind(text)
                .bind(at)
                .execute(conn)
                .await?;
                Change::upsert("canned_response", id, json!({ "short_code": short_code, "text": text }))
            }
            CannedEvent::Updated { text } => {
                sqlx::query(
                    "UPDATE rm_canned_responses SET text = $3, updated_at = $4 WHERE workspace_id = $1 AND canned_response_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(text)
                .bind(at)
                .execute(conn)
                .await?;
                Change::upsert("canned_response", id, json!({ "text": text }))
            }
            CannedEvent::Deleted => {
                sqlx::query("DELETE FROM rm_canned_responses WHERE workspace_id = $1 AND canned_response_id = $2")
                    .bind(ws)
                    .bind(id)
                    .execute(conn)
                    .await?;
                Change::delete("canned_response", id)
            }
        };
        Ok(vec![change])
    }
}
