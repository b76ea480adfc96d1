//! Agent and team commands. An agent's email is claimed per workspace with the agent's creation, so
//! two agents never share one; an agent exists exactly when its claim does, so one indexed query
//! checks a whole batch of team members.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{AgentActivity, AgentAvailability, AgentRole, AgentWritten, TeamMembers, TeamWritten};
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::agent::{email, Agent, AgentCommand, Availability};
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::ids::{AgentId, TeamId};
use blazz_domain::role::{Action, Role};
use blazz_domain::team::{Team, TeamCommand, TeamSettings};
use blazz_domain::DomainError;
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

impl Commands {
    pub async fn create_agent(
        &self,
        ctx: &CommandContext,
        name: String,
        address: String,
        role: Role,
    ) -> Result<CommandResult<AgentWritten>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        let id = AgentId::from_uuid(Uuid::now_v7());
        let ws = ctx.workspace_id;
        self.execute::<Agent, _>(ctx, id.as_uuid(), |a| {
            let events = a.decide(AgentCommand::Create { name: name.clone(), email: address.clone(), role })?;
            let mut plan = Plan::new(events, AgentWritten { agent_id: id });
            plan.claims.push(Claim {
                scope: scopes::AGENT_EMAIL.into(),
                value: format!("{ws}:{}", email(&address)?),
                owner: stream_id::<Agent>(id.as_uuid()),
                workspace_id: ws,
                data: json!({}),
            });
            Ok(plan)
        })
        .await
    }

    pub async fn rename_agent(
        &self,
        ctx: &CommandContext,
        id: AgentId,
        name: String,
    ) -> Result<CommandResult<AgentWritten>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        self.execute::<Agent, _>(ctx, id.as_uuid(), |a| {
            Ok(Plan::new(a.decide(AgentCommand::Rename { name: name.clone() })?, AgentWritten { agent_id: id }))
        })
        .await
    }

    /// An agent sets its own availability; owners and admins set anyone's.
    pub async fn set_agent_availability(
        &self,
        ctx: &CommandContext,
        id: AgentId,
        availability: Availability,
    ) -> Result<CommandResult<AgentAvailability>, CommandError> {
        if ctx.agent_id != Some(id) {
            require(ctx.role, Action::ManageAgents)?;
        }
        self.execute::<Agent, _>(ctx, id.as_uuid(), |a| {
            let events = a.decide(AgentCommand::SetAvailability { availability })?;
            Ok(Plan::new(events, AgentAvailability { agent_id: id, availability }))
        })
        .await
    }

    /// Changes an agent's role; keys bound to the agent take it at once on this node and within the
    /// key cache's time to live on others.
    pub async fn change_agent_role(
        &self,
        ctx: &CommandContext,
        id: AgentId,
        role: Role,
    ) -> Result<CommandResult<AgentRole>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        let result = self
            .execute::<Agent, _>(ctx, id.as_uuid(), |a| {
                Ok(Plan::new(a.decide(AgentCommand::ChangeRole { role })?, AgentRole { agent_id: id, role }))
            })
            .await;
        self.key_cache().forget_agent(id);
        result
    }

    /// Deactivates an agent (`active: false`: offline, no new conversations, its keys refused, its
    /// conversations handed back to their teams by the scheduler) or reactivates it.
    pub async fn set_agent_active(
        &self,
        ctx: &CommandContext,
        id: AgentId,
        active: bool,
    ) -> Result<CommandResult<AgentActivity>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        let result = self
            .execute::<Agent, _>(ctx, id.as_uuid(), |a| {
                let command = if active { AgentCommand::Reactivate } else { AgentCommand::Deactivate };
                Ok(Plan::new(a.decide(command)?, AgentActivity { agent_id: id, active }))
            })
            .await;
        self.key_cache().forget_agent(id);
        result
    }

    /// `Ok` when `agent` is an active agent of `workspace`.
    pub(crate) async fn check_active_agent(&self, workspace: Uuid, agent: AgentId) -> Result<(), CommandError> {
        let a = self.load::<Agent>(workspace, agent.as_uuid()).await?.state;
        match (a.created, a.deactivated) {
            (false, _) => Err(DomainError::invalid("agent_id", format!("unknown agent: {agent}")).into()),
            (true, true) => Err(DomainError::AgentDeactivated.into()),
            (true, false) => Ok(()),
        }
    }

    pub async fn create_team(
        &self,
        ctx: &CommandContext,
        settings: TeamSettings,
    ) -> Result<CommandResult<TeamWritten>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        let id = TeamId::from_uuid(Uuid::now_v7());
        self.execute::<Team, _>(ctx, id.as_uuid(), |t| {
            Ok(Plan::new(t.decide(TeamCommand::Create { settings: settings.clone() })?, TeamWritten { team_id: id }))
        })
        .await
    }

    pub async fn update_team(
        &self,
        ctx: &CommandContext,
        id: TeamId,
        settings: TeamSettings,
    ) -> Result<CommandResult<TeamWritten>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        self.execute::<Team, _>(ctx, id.as_uuid(), |t| {
            Ok(Plan::new(t.decide(TeamCommand::Update { settings: settings.clone() })?, TeamWritten { team_id: id }))
        })
        .await
    }

    /// Adds agents to a team (`add`) or removes them; unknown agent ids reject an addition, naming them.
    pub async fn change_team_members(
        &self,
        ctx: &CommandContext,
        id: TeamId,
        agents: Vec<AgentId>,
        add: bool,
    ) -> Result<CommandResult<TeamMembers>, CommandError> {
        require(ctx.role, Action::ManageAgents)?;
        if add {
            self.check_agents(ctx.workspace_id, &agents).await?;
        }
        self.execute::<Team, _>(ctx, id.as_uuid(), |t| {
            let agents = agents.clone();
            let command = if add { TeamCommand::AddMembers { agents } } else { TeamCommand::RemoveMembers { agents } };
            let events = t.decide(command)?;
            let after = events.iter().fold(t.clone(), Team::evolve);
            Ok(Plan::new(events, TeamMembers { team_id: id, members: after.members.into_iter().collect() }))
        })
        .await
    }

    /// `Ok` when every id is an agent of `workspace`.
    pub(crate) async fn check_agents(&self, workspace: Uuid, agents: &[AgentId]) -> Result<(), CommandError> {
        let streams: Vec<String> = agents.iter().map(|a| stream_id::<Agent>(a.as_uuid())).collect();
        let known: HashSet<String> =
            self.store().owners_with_claim(scopes::AGENT_EMAIL, workspace, &streams).await?.into_iter().collect();
        let unknown: Vec<String> = agents
            .iter()
            .zip(&streams)
            .filter(|(_, s)| !known.contains(*s))
            .map(|(a, _)| a.to_string())
            .take(20)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(DomainError::invalid("agent_ids", format!("unknown agents: {}", unknown.join(", "))).into())
        }
    }

    /// `Ok` when `team` is a team of `workspace`.
    pub(crate) async fn check_team(&self, workspace: Uuid, team: TeamId) -> Result<(), CommandError> {
        if self.load::<Team>(workspace, team.as_uuid()).await?.state.created {
            Ok(())
        } else {
            Err(DomainError::NotFound("team").into())
        }
    }
}
