//! Outbound webhook endpoints. The signing secret is stored (sealed, outside the log) before the
//! event that makes the endpoint exist, so the deliverer never finds an endpoint without one; a
//! request answered from its idempotency record gets no new secret (the first answer had it).

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::credentials::{CredentialError, Secret};
use crate::error::CommandError;
use crate::outbound::secrets::{self, EndpointSecrets};
use crate::outcome::EndpointWritten;
use crate::service::{Commands, Plan};
use crate::store::StoreError;
use blazz_domain::aggregate::Aggregate;
use blazz_domain::endpoint::{EndpointCommand, WebhookEndpoint};
use blazz_domain::role::Action;
use blazz_domain::DomainError;
use uuid::Uuid;

/// A sealed-secret store's failure as a command's (storage, or a secret that cannot be opened).
pub(crate) fn stored(e: CredentialError) -> CommandError {
    match e {
        CredentialError::Database(e) => StoreError::Database(e).into(),
        other => StoreError::Corrupt(other.to_string()).into(),
    }
}

impl Commands {
    /// Creates an endpoint; returns its secret too, unless this is a repeated request.
    pub async fn create_webhook_endpoint(
        &self,
        ctx: &CommandContext,
        secrets: &EndpointSecrets,
        url: String,
        event_types: Vec<String>,
        description: Option<String>,
    ) -> Result<(CommandResult<EndpointWritten>, Option<Secret>), CommandError> {
        require(ctx.role, Action::ManageWebhooks)?;
        let id = Uuid::now_v7();
        let secret = secrets::generate();
        secrets.put(ctx.workspace_id, id, &secret).await.map_err(stored)?;
        let result = self.change_endpoint(ctx, id, EndpointCommand::Create { url, event_types, description }).await;
        let fresh = matches!(&result, Ok(r) if !r.replayed && r.outcome.endpoint_id == id);
        if !fresh {
            secrets.remove(id).await.map_err(stored)?;
        }
        Ok((result?, fresh.then_some(secret)))
    }

    /// A new signing secret; the previous one signs beside it for a day.
    pub async fn rotate_webhook_secret(
        &self,
        ctx: &CommandContext,
        secrets: &EndpointSecrets,
        id: Uuid,
    ) -> Result<(CommandResult<EndpointWritten>, Option<Secret>), CommandError> {
        require(ctx.role, Action::ManageWebhooks)?;
        let endpoint = self.load::<WebhookEndpoint>(ctx.workspace_id, id).await?.state;
        if !endpoint.created || endpoint.deleted {
            return Err(DomainError::NotFound("webhook endpoint").into());
        }
        if let Some(record) = self.replayed::<EndpointWritten>(ctx).await? {
            return Ok((record, None));
        }
        let secret = secrets::generate();
        secrets.put(ctx.workspace_id, id, &secret).await.map_err(stored)?;
        let result = self.change_endpoint(ctx, id, EndpointCommand::RotateSecret { now: ctx.now }).await?;
        Ok((result, Some(secret)))
    }

    /// Updates, disables, enables or deletes an endpoint of the caller's workspace.
    pub async fn change_webhook_endpoint(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: EndpointCommand,
    ) -> Result<CommandResult<EndpointWritten>, CommandError> {
        require(ctx.role, Action::ManageWebhooks)?;
        if matches!(command, EndpointCommand::Create { .. } | EndpointCommand::RotateSecret { .. }) {
            return Err(
                DomainError::invalid("command", "endpoints are created and rotated by their own commands").into()
            );
        }
        self.change_endpoint(ctx, id, command).await
    }

    async fn change_endpoint(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: EndpointCommand,
    ) -> Result<CommandResult<EndpointWritten>, CommandError> {
        self.execute::<WebhookEndpoint, _>(ctx, id, |e| {
            Ok(Plan::new(e.decide(command.clone())?, EndpointWritten { endpoint_id: id }))
        })
        .await
    }
}
