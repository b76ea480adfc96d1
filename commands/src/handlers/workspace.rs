//! Workspace commands: creation (by the operator), API keys, settings, and authentication.

use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::keys::{self, StoredKey};
use crate::service::{scopes, Commands, Plan};
use crate::store::{Claim, ClaimRelease, ExpectedVersion};
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::ids::{ApiKeyId, WorkspaceId};
use blazz_domain::role::Role;
use blazz_domain::workspace::{Workspace, WorkspaceCommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// An authenticated API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: WorkspaceId,
    pub key_id: ApiKeyId,
    pub role: Role,
}

/// What the `api_key` claim keeps next to the key id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyClaimData {
    hash: String,
    role: Role,
}

fn key_claim(workspace: Uuid, key: &keys::GeneratedKey, role: Role) -> Claim {
    Claim {
        scope: scopes::API_KEY.into(),
        value: key.id.to_string(),
        owner: stream_id::<Workspace>(workspace),
        workspace_id: workspace,
        data: serde_json::to_value(KeyClaimData { hash: keys::hash(&key.secret), role }).unwrap_or_default(),
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
    ) -> Result<CommandResult, CommandError> {
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
        let mut plan = Plan::new(events, json!({ "workspace_id": id, "api_key": { "id": key.id, "role": "owner" } }));
        plan.claims.push(key_claim(id, &key, Role::Owner));
        plan.secret_fields = Some(json!({ "api_key": { "id": key.id, "role": "owner", "key": key.secret } }));
        // The events belong to the new workspace; the idempotency key stays in the operator's scope.
        plan.workspace = Some(id);
        self.append(ctx, stream_id::<Workspace>(id), ExpectedVersion::NoStream, plan).await
    }

    pub async fn issue_api_key(
        &self,
        ctx: &CommandContext,
        name: String,
        role: Role,
    ) -> Result<CommandResult, CommandError> {
        let key = keys::generate();
        let ws = ctx.workspace_id;
        self.execute::<Workspace>(ctx, ws, |w| {
            let events =
                w.decide(WorkspaceCommand::IssueApiKey { key_id: key.id, name: name.clone(), role, by: ctx.role })?;
            let mut plan = Plan::new(events, json!({ "id": key.id, "name": name.trim(), "role": role }));
            plan.claims.push(key_claim(ws, &key, role));
            plan.secret_fields = Some(json!({ "key": key.secret }));
            Ok(plan)
        })
        .await
    }

    pub async fn revoke_api_key(&self, ctx: &CommandContext, key_id: ApiKeyId) -> Result<CommandResult, CommandError> {
        let ws = ctx.workspace_id;
        let result = self
            .execute::<Workspace>(ctx, ws, |w| {
                let events = w.decide(WorkspaceCommand::RevokeApiKey { key_id, by: ctx.role })?;
                let mut plan = Plan::new(events, json!({ "id": key_id, "revoked": true }));
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
    ) -> Result<CommandResult, CommandError> {
        let ws = ctx.workspace_id;
        self.execute::<Workspace>(ctx, ws, |w| {
            let c = change.clone();
            let events = w.decide(WorkspaceCommand::UpdateSettings {
                by: ctx.role,
                name: c.name,
                timezone: c.timezone,
                opt_out_keywords: c.opt_out_keywords,
                opt_in_keywords: c.opt_in_keywords,
            })?;
            Ok(Plan::new(events, json!({ "workspace_id": ws })))
        })
        .await
    }

    /// Finds the key by its id (in the key cache, else its claim) and checks the presented secret
    /// against the stored hash in constant time. Revoked keys have no claim and are unknown.
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
                let stored = StoredKey { workspace_id: claim.workspace_id, hash: data.hash, role: data.role };
                self.key_cache().put(key_id, stored.clone());
                stored
            }
        };
        if !keys::verify(presented, &stored.hash) {
            return Ok(None);
        }
        Ok(Some(Principal { workspace_id: WorkspaceId::from_uuid(stored.workspace_id), key_id, role: stored.role }))
    }
}
