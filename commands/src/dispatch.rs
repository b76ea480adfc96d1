//! Sending one queued message through its channel's provider, in the order that keeps it from ever
//! being sent twice: the attempt (`message.dispatched`, appended at the exact version the dispatcher
//! read) is recorded **before** the provider is called, so of several dispatchers looking at the same
//! message only the one whose append wins calls the provider. The outcome is recorded after the call.
//!
//! An attempt whose outcome never got recorded (a crash during the call, or an answer that never came)
//! stays `dispatched`: it is not resent automatically; a later status webhook (which carries our
//! message id) moves it on.

use crate::context::CommandContext;
use crate::credentials::{CredentialError, CredentialStore};
use crate::error::CommandError;
use crate::provider::{Outbound, Provider, SendError, Sender};
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::campaign::{Campaign, CampaignStatus};
use blazz_domain::channel::{Channel, ProviderKind};
use blazz_domain::contact::ConsentSource;
use blazz_domain::ids::MessageId;
use blazz_domain::message::{Message, MessageCommand, MessageStatus, ProviderError, StatusUpdate};
use blazz_domain::provider::MARKETING_STOPPED;
use blazz_domain::role::Role;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// The provider of each kind.
#[derive(Debug, Clone)]
pub struct Providers {
    pub meta: Arc<dyn Provider>,
    pub sandbox: Arc<dyn Provider>,
}

impl Providers {
    fn of(&self, kind: ProviderKind) -> &Arc<dyn Provider> {
        match kind {
            ProviderKind::Meta => &self.meta,
            ProviderKind::Sandbox => &self.sandbox,
        }
    }
}

/// What became of one dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// The provider accepted it.
    Sent { provider_message_id: String },
    /// The provider refused it; the error is recorded on the message.
    Failed(ProviderError),
    /// The provider was called but its answer is unknown; left `dispatched` for webhooks to resolve.
    Unknown(String),
    /// Not ours to send: already dispatched (by another dispatcher, or earlier), or not queued.
    Skipped,
    /// Its campaign is paused or cancelled: it waits.
    Held,
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    commands: Commands,
    credentials: CredentialStore,
    providers: Providers,
}

/// A channel without stored credentials cannot send.
const NO_CREDENTIALS: i64 = -2;

impl Dispatcher {
    pub fn new(commands: Commands, credentials: CredentialStore, providers: Providers) -> Self {
        Self { commands, credentials, providers }
    }

    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    /// The context of the dispatcher's own commands in `workspace`.
    pub fn context(workspace: Uuid) -> CommandContext {
        CommandContext {
            workspace_id: workspace,
            role: Role::Owner,
            actor: "system:dispatcher".into(),
            request_id: None,
            correlation_id: Uuid::now_v7(),
            idempotency: None,
            now: chrono::Utc::now(),
        }
    }

    /// Sends `message` if it is still queued.
    #[tracing::instrument(skip_all, fields(message = %message), err)]
    pub async fn dispatch(&self, workspace: Uuid, message: MessageId) -> Result<Dispatched, CommandError> {
        let ctx = Self::context(workspace);
        let c = &self.commands;
        let loaded = c.load::<Message>(workspace, message.as_uuid()).await?;
        let m = loaded.state;
        let (Some(channel_id), Some(to), Some(content), MessageStatus::Queued) =
            (m.channel_id, m.to.clone(), m.content.clone(), m.status)
        else {
            return Ok(Dispatched::Skipped);
        };
        // A paused or cancelled campaign's messages wait (the queue projection may not show it yet).
        if let Some(campaign) = m.campaign_id {
            let status = c.load::<Campaign>(workspace, campaign.as_uuid()).await?.state.status;
            if !matches!(status, CampaignStatus::Launching | CampaignStatus::Running) {
                return Ok(Dispatched::Held);
            }
        }
        let channel = c.load::<Channel>(workspace, channel_id.as_uuid()).await?.state;

        // The attempt is on record before anything leaves; losing this race means someone else sends.
        let attempt = m.attempts + 1;
        let marked = m.decide(MessageCommand::MarkDispatched { attempt, at: ctx.now })?;
        if marked.is_empty() {
            return Ok(Dispatched::Skipped);
        }
        let stream = stream_id::<Message>(message.as_uuid());
        let expected = crate::store::ExpectedVersion::from_current(loaded.version);
        match c.append(&ctx, stream.clone(), expected, Plan::new(marked, json!({}))).await {
            Err(CommandError::Conflict(_)) => return Ok(Dispatched::Skipped),
            other => other?,
        };

        let secrets = match self.credentials.get(channel_id.as_uuid()).await {
            Ok(Some(stored)) if stored.workspace_id == workspace => stored.secrets,
            Ok(_) => {
                let error = ProviderError::new(NO_CREDENTIALS, "the channel has no credentials", None);
                self.record_failure(&ctx, message, &error).await?;
                return Ok(Dispatched::Failed(error));
            }
            Err(CredentialError::Database(e)) => return Err(e.into()),
            Err(e) => return Err(crate::store::StoreError::Corrupt(e.to_string()).into()),
        };
        let sender = Sender { channel_id, phone_number_id: channel.phone_number_id.clone() };
        let outbound = Outbound { message_id: message, to, content, reply_to: m.reply_to.clone() };
        let provider = channel.provider.unwrap_or(ProviderKind::Meta);
        match self.providers.of(provider).send(&sender, &secrets, &outbound).await {
            Ok(accepted) => {
                let id = accepted.provider_message_id.clone();
                c.execute::<Message>(&ctx, message.as_uuid(), |m| {
                    let update = StatusUpdate::Sent { provider_message_id: id.clone() };
                    let events = m.decide(MessageCommand::RecordStatus { update, at: ctx.now })?;
                    let mut plan = Plan::new(events, json!({}));
                    if m.provider_message_id.is_none() && !plan.events.is_empty() {
                        plan.claims.push(Claim {
                            scope: scopes::PROVIDER_MESSAGE.into(),
                            value: id.clone(),
                            owner: stream.clone(),
                            workspace_id: workspace,
                            data: json!({}),
                        });
                    }
                    Ok(plan)
                })
                .await?;
                Ok(Dispatched::Sent { provider_message_id: accepted.provider_message_id })
            }
            Err(SendError::Rejected(error)) => {
                self.record_failure(&ctx, message, &error).await?;
                if error.code == MARKETING_STOPPED {
                    if let Some(contact) = m.contact_id {
                        let reason = Some(format!("provider error {MARKETING_STOPPED}"));
                        c.set_contact_consent(&ctx, contact, true, reason, ConsentSource::Provider).await?;
                    }
                }
                Ok(Dispatched::Failed(error))
            }
            Err(e @ (SendError::Unreachable(_) | SendError::Unknown(_))) => {
                tracing::warn!(error = %e, "provider outcome unknown; left dispatched for webhooks to resolve");
                Ok(Dispatched::Unknown(e.to_string()))
            }
        }
    }

    async fn record_failure(
        &self,
        ctx: &CommandContext,
        message: MessageId,
        error: &ProviderError,
    ) -> Result<(), CommandError> {
        self.commands
            .execute::<Message>(ctx, message.as_uuid(), |m| {
                let update = StatusUpdate::Failed { error: error.clone() };
                Ok(Plan::new(m.decide(MessageCommand::RecordStatus { update, at: ctx.now })?, json!({})))
            })
            .await?;
        Ok(())
    }
}
