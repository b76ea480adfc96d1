//! `rm_templates` (templates with review status) and `rm_channels`.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::channel::ChannelEvent;
use blazz_domain::template::TemplateEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;

#[derive(Debug)]
pub struct Templates;

#[async_trait]
impl Projector for Templates {
    fn name(&self) -> &'static str {
        "templates"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_templates"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Template(e) = &a.event else {
            return Ok(vec![]);
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        match e {
            TemplateEvent::Created { name, language, category, components, .. } => {
                sqlx::query(
                    "INSERT INTO rm_templates (workspace_id, template_id, name, language, category, status, components, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $7) ON CONFLICT DO NOTHING",
                )
                .bind(ws)
                .bind(id)
                .bind(name.as_str())
                .bind(language.as_str())
                .bind(super::tag(category))
                .bind(json!(components))
                .bind(at)
                .execute(conn)
                .await?;
                Ok(vec![Change::upsert(
                    "template",
                    id,
                    json!({ "name": name, "language": language, "category": category, "status": "PENDING" }),
                )])
            }
            TemplateEvent::ReviewStatusChanged { status, reason } => {
                sqlx::query(
                    "UPDATE rm_templates SET status = $4, status_reason = $5, updated_at = $3 WHERE workspace_id = $1 AND template_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(at)
                .bind(status.as_str())
                .bind(reason)
                .execute(conn)
                .await?;
                Ok(vec![Change::upsert("template", id, json!({ "status": status, "status_reason": reason }))])
            }
        }
    }
}

#[derive(Debug)]
pub struct Channels;

#[async_trait]
impl Projector for Channels {
    fn name(&self) -> &'static str {
        "channels"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_channels"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Channel(e) = &a.event else {
            return Ok(vec![]);
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        match e {
            ChannelEvent::Connected { provider, phone_number_id, display_phone_number, rate_limit_per_second } => {
                sqlx::query(
                    "INSERT INTO rm_channels (workspace_id, channel_id, provider, phone_number_id, display_phone_number, rate_limit_per_second, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
                )
                .bind(ws)
                .bind(id)
                .bind(super::tag(provider))
                .bind(phone_number_id)
                .bind(display_phone_number.as_str())
                .bind(*rate_limit_per_second as i32)
                .bind(at)
                .execute(conn)
                .await?;
                Ok(vec![Change::upsert(
                    "channel",
                    id,
                    json!({ "provider": provider, "phone_number_id": phone_number_id, "display_phone_number": display_phone_number, "rate_limit_per_second": rate_limit_per_second }),
                )])
            }
            ChannelEvent::RateLimitChanged { per_second } => {
                sqlx::query("UPDATE rm_channels SET rate_limit_per_second = $4, updated_at = $3 WHERE workspace_id = $1 AND channel_id = $2")
                    .bind(ws)
                    .bind(id)
                    .bind(at)
                    .bind(*per_second as i32)
                    .execute(conn)
                    .await?;
                Ok(vec![Change::upsert("channel", id, json!({ "rate_limit_per_second": per_second }))])
            }
            ChannelEvent::Halted { .. } | ChannelEvent::Resumed => {
                let halted = match e {
                    ChannelEvent::Halted { reason, code } => Some(format!("{reason} ({code})")),
                    _ => None,
                };
                sqlx::query(
                    "UPDATE rm_channels SET halted = $4, updated_at = $3 WHERE workspace_id = $1 AND channel_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(at)
                .bind(&halted)
                .execute(conn)
                .await?;
                Ok(vec![Change::upsert("channel", id, json!({ "halted": halted }))])
            }
            ChannelEvent::InboxTeamSet { team_id } => {
                sqlx::query(
                    "UPDATE rm_channels SET inbox_team_id = $4, updated_at = $3 WHERE workspace_id = $1 AND channel_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(at)
                .bind(team_id.map(|t| t.as_uuid()))
                .execute(conn)
                .await?;
                Ok(vec![Change::upsert("channel", id, json!({ "inbox_team_id": team_id }))])
            }
        }
    }
}
