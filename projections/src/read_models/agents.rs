//! `rm_agents` (agents, role, availability, active or not, when each was last given a conversation) and `rm_teams`
//! (teams with members and automatic assignment settings); and what automatic assignment reads of
//! them.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::agent::AgentEvent;
use blazz_domain::conversation::ConversationEvent;
use blazz_domain::ids::AgentId;
use blazz_domain::team::{Candidate, TeamEvent};
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug)]
pub struct Agents;

#[async_trait]
impl Projector for Agents {
    fn name(&self) -> &'static str {
        "agents"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_agents"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let (ws, at) = (a.record.workspace_id, a.record.recorded_at);
        let (id, delta) = match &a.event {
            DomainEvent::Agent(AgentEvent::Created { name, email, role }) => {
                sqlx::query(
                    "INSERT INTO rm_agents (workspace_id, agent_id, name, email, role, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                )
                .bind(ws)
                .bind(a.aggregate_id())
                .bind(name)
                .bind(email)
                .bind(role.as_str())
                .bind(at)
                .execute(conn)
                .await?;
                (a.aggregate_id(), json!({ "name": name, "email": email, "role": role, "availability": "offline" }))
            }
            DomainEvent::Agent(AgentEvent::Renamed { name }) => {
                set(conn, ws, a.aggregate_id(), "name = $3", name, at).await?;
                (a.aggregate_id(), json!({ "name": name }))
            }
            DomainEvent::Agent(AgentEvent::AvailabilityChanged { availability }) => {
                set(conn, ws, a.aggregate_id(), "availability = $3", availability.as_str(), at).await?;
                (a.aggregate_id(), json!({ "availability": availability }))
            }
            DomainEvent::Agent(AgentEvent::RoleChanged { role }) => {
                set(conn, ws, a.aggregate_id(), "role = $3", role.as_str(), at).await?;
                (a.aggregate_id(), json!({ "role": role }))
            }
            DomainEvent::Agent(AgentEvent::Deactivated) => {
                set(conn, ws, a.aggregate_id(), "active = false, availability = $3", "offline", at).await?;
                (a.aggregate_id(), json!({ "active": false, "availability": "offline" }))
            }
            DomainEvent::Agent(AgentEvent::Reactivated) => {
                set(conn, ws, a.aggregate_id(), "active = $3::boolean", "true", at).await?;
                (a.aggregate_id(), json!({ "active": true }))
            }
            // Round-robin order: when an agent was last given a conversation.
            DomainEvent::Conversation(ConversationEvent::Assigned { agent_id: Some(agent), .. }) => {
                sqlx::query(
                    "UPDATE rm_agents SET last_assigned_at = greatest(last_assigned_at, $3) WHERE workspace_id = $1 AND agent_id = $2",
                )
                .bind(ws)
                .bind(agent.as_uuid())
                .bind(at)
                .execute(conn)
                .await?;
                return Ok(vec![]);
            }
            _ => return Ok(vec![]),
        };
        Ok(vec![Change::upsert("agent", id, delta)])
    }
}

async fn set(
    conn: &mut PgConnection,
    ws: Uuid,
    id: Uuid,
    assignment: &str,
    value: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE rm_agents SET {assignment}, updated_at = $4 WHERE workspace_id = $1 AND agent_id = $2"
    ))
    .bind(ws)
    .bind(id)
    .bind(value)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub struct Teams;

#[async_trait]
impl Projector for Teams {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_teams"]
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Team(e) = &a.event else {
            return Ok(vec![]);
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        let delta = match e {
            TeamEvent::Created { name, auto_assign, max_open_per_agent }
            | TeamEvent::Updated { name, auto_assign, max_open_per_agent } => {
                let cap = max_open_per_agent.map(|c| c as i32);
                sqlx::query(
                    "INSERT INTO rm_teams (workspace_id, team_id, name, auto_assign, max_open_per_agent, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (workspace_id, team_id) DO UPDATE SET name = $3, auto_assign = $4,
                         max_open_per_agent = $5, updated_at = $6",
                )
                .bind(ws)
                .bind(id)
                .bind(name)
                .bind(auto_assign)
                .bind(cap)
                .bind(at)
                .execute(conn)
                .await?;
                json!({ "name": name, "auto_assign": auto_assign, "max_open_per_agent": max_open_per_agent })
            }
            TeamEvent::MembersAdded { agents } | TeamEvent::MembersRemoved { agents } => {
                let ids: Vec<Uuid> = agents.iter().map(AgentId::as_uuid).collect();
                let sql = if matches!(e, TeamEvent::MembersAdded { .. }) {
                    "ARRAY(SELECT DISTINCT m FROM unnest(member_ids || $3::uuid[]) AS m ORDER BY m)"
                } else {
                    "ARRAY(SELECT m FROM unnest(member_ids) AS m WHERE m <> ALL($3::uuid[]) ORDER BY m)"
                };
                let members: Option<Vec<Uuid>> = sqlx::query_scalar(&format!(
                    "UPDATE rm_teams SET member_ids = {sql}, updated_at = $4
                     WHERE workspace_id = $1 AND team_id = $2 RETURNING member_ids"
                ))
                .bind(ws)
                .bind(id)
                .bind(&ids)
                .bind(at)
                .fetch_optional(conn)
                .await?;
                json!({ "member_ids": members })
            }
        };
        Ok(vec![Change::upsert("team", id, delta)])
    }
}

/// A conversation waiting for automatic assignment, and the team it goes to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Waiting {
    pub workspace_id: Uuid,
    pub conversation_id: Uuid,
    pub team_id: Uuid,
    /// Whether the team assigns agents itself (otherwise the conversation only joins the team).
    pub auto_assign: bool,
    pub max_open_per_agent: Option<i32>,
}

/// Open conversations without an agent that a team should take: those of an automatically
/// assigning team, and those never assigned whose channel has an inbox team; only conversations
/// the customer wrote in (an outbound message alone, say a campaign's, is nobody's work yet, and
/// its conversation does not exist on the write side). Oldest first, at most
/// `per_workspace` of each workspace (one busy workspace never holds up the others) and `limit` in all.
pub async fn waiting_for_assignment(
    pool: &PgPool,
    per_workspace: i64,
    limit: i64,
) -> Result<Vec<Waiting>, sqlx::Error> {
    sqlx::query_as(
        "SELECT workspace_id, conversation_id, team_id, auto_assign, max_open_per_agent FROM (
             SELECT c.workspace_id, c.conversation_id, t.team_id, t.auto_assign, t.max_open_per_agent,
                    row_number() OVER (PARTITION BY c.workspace_id ORDER BY c.last_message_at, c.conversation_id) AS n,
                    c.last_message_at
             FROM rm_conversations c
             LEFT JOIN rm_channels ch ON ch.workspace_id = c.workspace_id AND ch.channel_id = c.channel_id
             JOIN rm_teams t ON t.workspace_id = c.workspace_id
                 AND t.team_id = CASE WHEN c.routed THEN c.team_id ELSE ch.inbox_team_id END
             WHERE c.agent_id IS NULL AND c.status = 'open' AND c.window_expires_at IS NOT NULL
               AND ((c.routed AND t.auto_assign) OR NOT c.routed)
         ) w WHERE n <= $1 ORDER BY last_message_at, conversation_id LIMIT $2",
    )
    .bind(per_workspace)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Conversations not resolved that a deactivated agent still holds (they go back to their teams),
/// at most `per_workspace` of each workspace and `limit` in all: `(workspace, conversation, agent)`.
pub async fn held_by_deactivated(
    pool: &PgPool,
    per_workspace: i64,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT workspace_id, conversation_id, agent_id FROM (
             SELECT c.workspace_id, c.conversation_id, c.agent_id,
                    row_number() OVER (PARTITION BY c.workspace_id ORDER BY c.conversation_id) AS n
             FROM rm_agents a
             JOIN rm_conversations c ON c.workspace_id = a.workspace_id AND c.agent_id = a.agent_id
             WHERE NOT a.active AND c.status <> 'resolved'
         ) h WHERE n <= $1 LIMIT $2",
    )
    .bind(per_workspace)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The members of a team as automatic assignment sees them: online or not, how many open or
/// pending conversations each holds, and when each was last given one.
pub async fn candidates(pool: &PgPool, workspace: Uuid, team: Uuid) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT a.agent_id, a.availability,
                (SELECT count(*) FROM rm_conversations c WHERE c.workspace_id = a.workspace_id
                     AND c.agent_id = a.agent_id AND c.status IN ('open', 'pending')),
                a.last_assigned_at
         FROM rm_teams t JOIN rm_agents a ON a.workspace_id = t.workspace_id AND a.agent_id = ANY(t.member_ids)
         WHERE t.workspace_id = $1 AND t.team_id = $2 AND a.active",
    )
    .bind(workspace)
    .bind(team)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, availability, open, last)| Candidate {
            agent_id: AgentId::from_uuid(id),
            online: availability == "online",
            open: u32::try_from(open).unwrap_or(u32::MAX),
            last_assigned_at: last,
        })
        .collect())
}
