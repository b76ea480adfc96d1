//! Workspace commands: creation (by the operator), API keys, settings, and authentication.

use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::keys::{self, StoredKey};
use crate::outcome::{ApiKeyIssued, ApiKeyRevoked, IssuedKey, WorkspaceCreated, WorkspaceWritten};
use crate::service::{scopes, Commands, Plan};
use crate::store::{Claim, ClaimRelease, ExpectedVersion};
use blazz_domain::agent::Agent;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::ids::{AgentId, ApiKeyId, WorkspaceId};
use blazz_domain::role::Role;
use blazz_domain::workspace::{Workspace, WorkspaceCommand};
use blazz_domain::DomainError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An authenticated API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: WorkspaceId,
    pub key_id: ApiKeyId,
    pub role: Role,
    /// The agent the key acts as.
    pub agent_id: Option<AgentId>,
    /// False when that agent is deactivated (the gateway refuses the key).
    pub agent_active: bool,
}

/// What the `api_key` claim keeps next to the key id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyClaimData {
    hash: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_id: Option<AgentId>,
}

fn key_claim(workspace: Uuid, key: &keys::GeneratedKey, role: Role, agent_id: Option<AgentId>) -> Claim {
    Claim {
        scope: scopes::API_KEY.into(),
        value: key.id.to_string(),
        owner: stream_id::<Workspace>(workspace),
        workspace_id: workspace,
        data: serde_json::to_value(KeyClaimData { hash: keys::hash(&key.secret), role, agent_id }).unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub opt_out_keywords: Option<Vec<String>>,
    pub opt_in_keywords: Option<Vec<String>>,
}

impl Commands {
    /// Creates a workspace with its first owner key. `ctx.workspace_id` is the nil id (operator scope);
    /// the new workspace id is generated here.
    pub async fn create_workspace(
        &self,
        ctx: &CommandContext,
        name: String,
        timezone: Option<String>,
    ) -> Result<CommandResult<WorkspaceCreated>, CommandError> {
        if let Some(r) = self.replayed(ctx).await? {
            return Ok(r);
        }
        let id = Uuid::now_v7();
        let key = keys::generate();
        let events = Workspace::default().decide(WorkspaceCommand::Create {
            name,
            timezone,
            owner_key: key.id,
            owner_key_name: "owner".into(),
        })?;
        let api_key = IssuedKey { id: key.id, role: Role::Owner, key: Some(key.secret.clone()) };
        let mut plan = Plan::new(events, WorkspaceCreated { workspace_id: WorkspaceId::from_uuid(id), api_key });
        plan.claims.push(key_claim(id, &key, Role::Owner, None));
        // The events belong to the new workspace; the idempotency key stays in the operator's scope.
        plan.workspace = Some(id);
        self.append(ctx, stream_id::<Workspace>(id), ExpectedVersion::NoStream, plan).await
    }

    /// Issues a key of `role`, or one bound to `agent` that acts as that agent with the agent's role
    /// (`role`, when given too, must be the agent's).
    pub async fn issue_api_key(
        &self,
        ctx: &CommandContext,
        name: String,
        role: Option<Role>,
        agent: Option<AgentId>,
    ) -> Result<CommandResult<ApiKeyIssued>, CommandError> {
        let role = match (agent, role) {
            (Some(a), role) => {
                let agent = self.load::<Agent>(ctx.workspace_id, a.as_uuid()).await?.state;
                if agent.deactivated {
                    return Err(DomainError::AgentDeactivated.into());
                }
                let agent_role = agent.role.ok_or(DomainError::NotFound("agent"))?;
                if role.is_some_and(|r| r != agent_role) {
                    return Err(DomainError::invalid(
                        "role",
                        format!("a key bound to this agent has its role, {agent_role}"),
                    )
                    .into());
                }
                agent_role
            }
            (None, Some(role)) => role,
            (None, None) => {
                return Err(DomainError::invalid("role", "a role, or an agent_id whose role the key takes").into())
            }
        };
        let key = keys::generate();
        let ws = ctx.workspace_id;
        self.execute::<Workspace, _>(ctx, ws, |w| {
            let events = w.decide(WorkspaceCommand::IssueApiKey {
                key_id: key.id,
                name: name.clone(),
                role,
                by: ctx.role,
                agent_id: agent,
            })?;
            let issued = ApiKeyIssued {
                id: key.id,
                name: name.trim().into(),
                role,
                agent_id: agent,
                key: Some(key.secret.clone()),
            };
            let mut plan = Plan::new(events, issued);
            plan.claims.push(key_claim(ws, &key, role, agent));
            Ok(plan)
        })
        .await
    }

    pub async fn revoke_api_key(
        &self,
        ctx: &CommandContext,
        key_id: ApiKeyId,
    ) -> Result<CommandResult<ApiKeyRevoked>, CommandError> {
        let ws = ctx.workspace_id;
        let result = self
            .execute::<Workspace, _>(ctx, ws, |w| {
                let events = w.decide(WorkspaceCommand::RevokeApiKey { key_id, by: ctx.role })?;
                let mut plan = Plan::new(events, ApiKeyRevoked { id: key_id, revoked: true });
                plan.releases.push(ClaimRelease {
                    scope: scopes::API_KEY.into(),
                    value: key_id.to_string(),
                    owner: stream_id::<Workspace>(ws),
                });
                Ok(plan)
            })
            .await;
        self.key_cache().forget(key_id);
        result
    }

    pub async fn update_workspace_settings(
        &self,
        ctx: &CommandContext,
        change: SettingsChange,
    ) -> Result<CommandResult<WorkspaceWritten>, CommandError> {
        let ws = ctx.workspace_id;
        self.execute::<Workspace, _>(ctx, ws, |w| {
            let c = change.clone();
            let events = w.decide(WorkspaceCommand::UpdateSettings {
                by: ctx.role,
                name: c.name,
                timezone: c.timezone,
                opt_out_keywords: c.opt_out_keywords,
                opt_in_keywords: c.opt_in_keywords,
            })?;
            Ok(Plan::new(events, WorkspaceWritten { workspace_id: WorkspaceId::from_uuid(ws) }))
        })
        .await
    }

    /// Finds the key by its id (in the key cache, else its claim) and checks the presented secret
    /// against the stored hash in constant time. Revoked keys have no claim and are unknown. A key
    /// bound to an agent takes the agent's current role and activity (one more read on a cache miss).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, CommandError> {
        let Some(key_id) = keys::key_id(presented) else {
            return Ok(None);
        };
        let stored = match self.key_cache().get(key_id) {
            Some(stored) => stored,
            None => {
                let Some(claim) = self.store().claim(scopes::API_KEY, &key_id.to_string()).await? else {
                    return Ok(None);
                };
                let Ok(data) = serde_json::from_value::<KeyClaimData>(claim.data) else {
                    return Ok(None);
                };
                // A bound key acts with its agent's current role and only while the agent is active.
                let (mut role, mut agent_active) = (data.role, true);
                if let Some(agent) = data.agent_id {
                    let a = self.load::<Agent>(claim.workspace_id, agent.as_uuid()).await?.state;
                    role = a.role.unwrap_or(role);
                    agent_active = !a.deactivated;
                }
                let stored = StoredKey {
                    workspace_id: claim.workspace_id,
                    hash: data.hash,
                    role,
                    agent_id: data.agent_id,
                    agent_active,
                };
                self.key_cache().put(key_id, stored.clone());
                stored
            }
        };
        if !keys::verify(presented, &stored.hash) {
            return Ok(None);
        }
        Ok(Some(Principal {
            workspace_id: WorkspaceId::from_uuid(stored.workspace_id),
            key_id,
            role: stored.role,
            agent_id: stored.agent_id,
            agent_active: stored.agent_active,
        }))
    }
}
