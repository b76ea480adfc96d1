//! Sending one queued message through its channel's provider, in the order that keeps it from ever
//! being sent twice: the attempt (`message.dispatched`, appended at the exact version the dispatcher
//! read) is recorded **before** the provider is called, so of several dispatchers looking at the same
//! message only the one whose append wins calls the provider. The outcome is recorded after the call.
//!
//! An attempt whose outcome never got recorded (a crash during the call, or an answer that never came)
//! stays `dispatched`: it is not resent automatically; a later status webhook (which carries our
//! message id) moves it on, and after [`RetryPolicy::unknown_after`] it is marked unknown (final).
//!
//! - [`policy`]: backoff and attempts for retry-later errors.
//! - [`recent`]: sending channels and running campaigns remembered for a second.
//! - [`slots`]: send slots shared by every dispatcher (channel rate, recipient pace).

mod policy;
mod recent;
pub mod slots;

use crate::context::CommandContext;
use crate::credentials::{ChannelSecrets, CredentialError, CredentialStore};
use crate::error::CommandError;
use crate::outcome::Done;
use crate::provider::{Outbound, Provider, SendError, Sender};
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::campaign::{Campaign, CampaignCommand, CampaignStatus};
use blazz_domain::channel::{Channel, ProviderKind};
use blazz_domain::contact::ConsentSource;
use blazz_domain::ids::MessageId;
use blazz_domain::message::{
    MediaRef, Message, MessageCommand, MessageContent, MessageStatus, ProviderError, StatusUpdate,
};
use blazz_domain::provider::{Backoff, ErrorClass, MARKETING_STOPPED};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

pub use policy::RetryPolicy;
use recent::Recent;

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
    /// A retry-later error: the next attempt is scheduled.
    Retrying { error: ProviderError, not_before: chrono::DateTime<chrono::Utc> },
    /// The provider was called but its answer is unknown; left `dispatched` for webhooks to resolve.
    Unknown(String),
    /// Not ours to send: already dispatched (by another dispatcher, or earlier), or not queued.
    Skipped,
    /// Its campaign is paused or cancelled, or its channel halted: it waits.
    Held,
    /// Its next attempt is scheduled for later.
    NotYet(chrono::DateTime<chrono::Utc>),
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    commands: Commands,
    credentials: CredentialStore,
    providers: Providers,
    policy: RetryPolicy,
    recent: Arc<Recent>,
    uploads: Option<crate::media::MediaUploads>,
}

/// A channel without stored credentials cannot send.
const NO_CREDENTIALS: i64 = -2;
/// The provider could not be reached (our code, not Meta's).
const UNREACHABLE: i64 = -3;

impl Dispatcher {
    pub fn new(commands: Commands, credentials: CredentialStore, providers: Providers) -> Self {
        Self { commands, credentials, providers, policy: RetryPolicy::default(), recent: Arc::default(), uploads: None }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sends our stored media (`MediaRef::Stored`) by uploading it to each channel once.
    pub fn with_uploads(mut self, uploads: crate::media::MediaUploads) -> Self {
        self.uploads = Some(uploads);
        self
    }

    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The crash policy: an attempt older than `unknown_after` whose outcome never came is marked
    /// unknown (not resent). Returns whether it was.
    pub async fn give_up_waiting(&self, workspace: Uuid, message: MessageId) -> Result<bool, CommandError> {
        let ctx = Self::context(workspace);
        let older_than = chrono::Duration::from_std(self.policy.unknown_after)
            .ok()
            .and_then(|d| ctx.now.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let r = self
            .commands
            .execute::<Message, _>(&ctx, message.as_uuid(), |m| {
                Ok(Plan::new(m.decide(MessageCommand::MarkOutcomeUnknown { older_than, at: ctx.now })?, Done {}))
            })
            .await?;
        Ok(r.position.is_some())
    }

    /// The context of the dispatcher's own commands in `workspace`.
    pub fn context(workspace: Uuid) -> CommandContext {
        CommandContext::system(workspace, "dispatcher")
    }

    /// Sends `message` if it is still queued.
    #[tracing::instrument(skip_all, fields(message = %message), err)]
    pub async fn dispatch(&self, workspace: Uuid, message: MessageId) -> Result<Dispatched, CommandError> {
        let c = &self.commands;
        let (loaded, lineage) = c.load_traced::<Message>(workspace, message.as_uuid()).await?;
        // Every event of this attempt follows the message's last event (its request's correlation).
        let ctx = Self::context(workspace).following(lineage);
        let m = loaded.state;
        let (Some(channel_id), Some(to), Some(content)) = (m.channel_id, m.destination(), m.content.clone()) else {
            return Ok(Dispatched::Skipped);
        };
        // Queued, or a scheduled retry that is due.
        match (m.status, m.retry_at) {
            (MessageStatus::Queued, _) => {}
            (MessageStatus::Dispatched, Some(at)) if at <= ctx.now => {}
            (MessageStatus::Dispatched, Some(at)) => return Ok(Dispatched::NotYet(at)),
            _ => return Ok(Dispatched::Skipped),
        }
        // A paused or cancelled campaign's messages wait (the queue projection may not show it yet).
        if let Some(campaign) = m.campaign_id {
            let status = match self.recent.campaign(campaign.as_uuid()) {
                Some(s) => s,
                None => {
                    let s = c.load::<Campaign>(workspace, campaign.as_uuid()).await?.state.status;
                    // Only a sending status is remembered: a resume is seen at once.
                    if let (CampaignStatus::Launching | CampaignStatus::Running, Ok(mut g)) =
                        (s, self.recent.campaigns.lock())
                    {
                        g.insert(campaign.as_uuid(), (std::time::Instant::now(), s));
                    }
                    s
                }
            };
            if !matches!(status, CampaignStatus::Launching | CampaignStatus::Running) {
                return Ok(Dispatched::Held);
            }
        }
        let (channel, secrets) = self.channel(workspace, channel_id.as_uuid()).await?;
        if channel.halted.is_some() {
            return Ok(Dispatched::Held);
        }

        // The attempt is on record before anything leaves; losing this race means someone else sends.
        let attempt = m.attempts + 1;
        let marked = m.decide(MessageCommand::MarkDispatched { attempt, at: ctx.now })?;
        if marked.is_empty() {
            return Ok(Dispatched::Skipped);
        }
        let stream = stream_id::<Message>(message.as_uuid());
        let expected = crate::store::ExpectedVersion::from_current(loaded.version);
        match c.append(&ctx, stream.clone(), expected, Plan::new(marked, Done {})).await {
            Err(CommandError::Conflict(_)) => return Ok(Dispatched::Skipped),
            other => other?,
        };

        let Some(secrets) = secrets else {
            let error = ProviderError::new(NO_CREDENTIALS, "the channel has no credentials", None);
            self.record_failure(&ctx, message, &error).await?;
            return Ok(Dispatched::Failed(error));
        };
        let sender = Sender { channel_id, phone_number_id: channel.phone_number_id.clone() };
        let provider = self.providers.of(channel.provider.unwrap_or(ProviderKind::Meta));
        // Our stored media goes by the id its upload to this channel's provider got (uploaded once).
        let content = match (content, &self.uploads) {
            (MessageContent::Media { media_kind, media: MediaRef::Stored(id), caption, filename }, Some(u)) => {
                match u.provider_id(provider.as_ref(), &sender, &secrets, workspace, id).await {
                    Ok(pid) => Ok(MessageContent::Media { media_kind, media: MediaRef::Id(pid), caption, filename }),
                    Err(e) => Err(e),
                }
            }
            (content, _) => Ok(content),
        };
        let sent = match content {
            Ok(content) => {
                let outbound = Outbound { message_id: message, to, content, reply_to: m.reply_to.clone() };
                provider.send(&sender, &secrets, &outbound).await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(accepted) => {
                let id = accepted.provider_message_id.clone();
                let sent = |m: &Message| -> Result<Plan<blazz_domain::message::MessageEvent, Done>, CommandError> {
                    let update = StatusUpdate::Sent { provider_message_id: id.clone() };
                    let events = m.decide(MessageCommand::RecordStatus { update, at: ctx.now })?;
                    let mut plan = Plan::new(events, Done {});
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
                };
                // Usually nobody wrote in between: append after our attempt, else decide again.
                let mut attempted = m.clone();
                attempted.status = MessageStatus::Dispatched;
                let after_attempt = crate::store::ExpectedVersion::Exact(loaded.version + 1);
                match c.append(&ctx, stream.clone(), after_attempt, sent(&attempted)?).await {
                    Err(CommandError::Conflict(_)) => {
                        c.execute::<Message, _>(&ctx, message.as_uuid(), sent).await?;
                    }
                    other => {
                        other?;
                    }
                }
                Ok(Dispatched::Sent { provider_message_id: accepted.provider_message_id })
            }
            Err(SendError::Rejected(error)) => self.rejected(&ctx, &m, message, attempt, error).await,
            Err(SendError::Unreachable(why)) => {
                // Nothing left: safe to try again, like a transient error.
                let error = ProviderError::new(UNREACHABLE, "provider unreachable", Some(why));
                self.retry_or_fail(&ctx, message, attempt, error, None).await
            }
            Err(e @ SendError::Unknown(_)) => {
                tracing::warn!(error = %e, "provider outcome unknown; left dispatched for webhooks to resolve");
                Ok(Dispatched::Unknown(e.to_string()))
            }
        }
    }

    /// The channel's state and secrets, remembered for a second.
    async fn channel(&self, workspace: Uuid, id: Uuid) -> Result<(Channel, Option<ChannelSecrets>), CommandError> {
        if let Some(hit) = self.recent.channel(id) {
            return Ok(hit);
        }
        let channel = self.commands.load::<Channel>(workspace, id).await?.state;
        let secrets = match self.credentials.get(id).await {
            Ok(Some(stored)) if stored.workspace_id == workspace => Some(stored.secrets),
            Ok(_) => None,
            Err(CredentialError::Database(e)) => return Err(e.into()),
            Err(e) => return Err(crate::store::StoreError::Corrupt(e.to_string()).into()),
        };
        // A halted channel is not remembered: a resume is seen at once.
        if let (None, Ok(mut g)) = (&channel.halted, self.recent.channels.lock()) {
            g.insert(id, (std::time::Instant::now(), channel.clone(), secrets.clone()));
        }
        Ok((channel, secrets))
    }

    /// What a refusal means, by class: retry later, give up, stop the campaign, or halt the channel.
    async fn rejected(
        &self,
        ctx: &CommandContext,
        m: &Message,
        message: MessageId,
        attempt: u32,
        error: ProviderError,
    ) -> Result<Dispatched, CommandError> {
        let c = &self.commands;
        match error.class() {
            ErrorClass::RetryLater => {
                let backoff = blazz_domain::provider::backoff(error.code);
                self.retry_or_fail(ctx, message, attempt, error, backoff).await
            }
            ErrorClass::Final => {
                self.record_failure(ctx, message, &error).await?;
                if let (MARKETING_STOPPED, Some(contact)) = (error.code, m.contact_id) {
                    let reason = Some(format!("provider error {MARKETING_STOPPED}"));
                    c.set_contact_consent(ctx, contact, true, reason, ConsentSource::Provider).await?;
                }
                Ok(Dispatched::Failed(error))
            }
            // The message waits (held) until the campaign resumes or the channel is fixed.
            ErrorClass::StopCampaign => {
                if let Some(campaign) = m.campaign_id {
                    let reason = format!("template paused or disabled (provider error {})", error.code);
                    match c
                        .change_campaign(ctx, campaign, |at| CampaignCommand::Pause { reason: reason.clone(), at })
                        .await
                    {
                        // Cancelled meanwhile: it stays held all the same.
                        Ok(_) | Err(CommandError::Domain(_)) => {}
                        Err(e) => return Err(e),
                    }
                    self.recent.forget(None, Some(campaign.as_uuid()));
                    self.schedule_retry(ctx, message, error.clone(), ctx.now).await?;
                    Ok(Dispatched::Held)
                } else {
                    self.record_failure(ctx, message, &error).await?;
                    Ok(Dispatched::Failed(error))
                }
            }
            ErrorClass::HaltChannel => {
                if let Some(channel) = m.channel_id {
                    let why = (error.title.clone(), error.code);
                    c.set_channel_halted(ctx, channel, Some(why)).await?;
                    self.recent.forget(Some(channel.as_uuid()), None);
                }
                self.schedule_retry(ctx, message, error, ctx.now).await?;
                Ok(Dispatched::Held)
            }
        }
    }

    /// Schedules the next attempt with backoff, or records the failure once attempts run out.
    async fn retry_or_fail(
        &self,
        ctx: &CommandContext,
        message: MessageId,
        attempt: u32,
        error: ProviderError,
        backoff: Option<Backoff>,
    ) -> Result<Dispatched, CommandError> {
        if attempt >= self.policy.max_attempts {
            self.record_failure(ctx, message, &error).await?;
            return Ok(Dispatched::Failed(error));
        }
        let delay = self.policy.delay(attempt, backoff);
        let not_before = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| ctx.now.checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        self.schedule_retry(ctx, message, error.clone(), not_before).await?;
        Ok(Dispatched::Retrying { error, not_before })
    }

    async fn schedule_retry(
        &self,
        ctx: &CommandContext,
        message: MessageId,
        error: ProviderError,
        not_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CommandError> {
        self.commands
            .execute::<Message, _>(ctx, message.as_uuid(), |m| {
                let retry = MessageCommand::ScheduleRetry { error: error.clone(), not_before, at: ctx.now };
                Ok(Plan::new(m.decide(retry)?, Done {}))
            })
            .await?;
        Ok(())
    }

    async fn record_failure(
        &self,
        ctx: &CommandContext,
        message: MessageId,
        error: &ProviderError,
    ) -> Result<(), CommandError> {
        self.commands
            .execute::<Message, _>(ctx, message.as_uuid(), |m| {
                let update = StatusUpdate::Failed { error: error.clone() };
                Ok(Plan::new(m.decide(MessageCommand::RecordStatus { update, at: ctx.now })?, Done {}))
            })
            .await?;
        Ok(())
    }
}
