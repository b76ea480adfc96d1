//! `rm_groups`: groups with member counts.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::group::GroupEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;

#[derive(Debug)]
pub struct Groups;

#[async_trait]
impl Projector for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_groups"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Group(e) = &a.event else {
            return Ok(vec![]);
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        let (sql, changed) = match e {
            GroupEvent::Created { name } => {
                sqlx::query(
                    "INSERT INTO rm_groups (workspace_id, group_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(ws)
                .bind(id)
                .bind(name)
                .bind(at)
                .execute(conn)
                .await?;
                return Ok(vec![Change::upsert("group", id, json!({ "name": name, "member_count": 0 }))]);
            }
            GroupEvent::Renamed { name } => {
                sqlx::query(
                    "UPDATE rm_groups SET name = $4, updated_at = $3 WHERE workspace_id = $1 AND group_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(at)
                .bind(name)
                .execute(conn)
                .await?;
                return Ok(vec![Change::upsert("group", id, json!({ "name": name }))]);
            }
            GroupEvent::MembersAdded { contacts } => ("member_count + $4", contacts.len()),
            GroupEvent::MembersRemoved { contacts } => ("member_count - $4", contacts.len()),
        };
        let count: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE rm_groups SET member_count = {sql}, updated_at = $3 WHERE workspace_id = $1 AND group_id = $2 RETURNING member_count"
        ))
        .bind(ws)
        .bind(id)
        .bind(at)
        .bind(changed as i64)
        .fetch_optional(conn)
        .await?;
        Ok(vec![Change::upsert("group", id, json!({ "member_count": count }))])
    }
}
