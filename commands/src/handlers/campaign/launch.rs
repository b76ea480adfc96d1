//! Launching a campaign, in two steps. [`Commands::start_launch`] (the request) checks what can be
//! checked at once (state, template, channel, a non-empty audience) and appends `campaign.launch_started`.
//! [`Commands::fan_out`] (a background job, see the gateway's launcher) then freezes the audience and
//! queues one message per eligible recipient chunk by chunk (each chunk one group append, never one
//! giant transaction), resting between chunks while other workspaces are active ([`crate::pacing`]),
//! and ends with `campaign.launched` and the counts.
//!
//! Message ids derive from campaign and contact: a fan-out interrupted by a crash runs again and only
//! queues what is missing.

use super::super::of_stream;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{CampaignLaunched, CampaignState, MessageQueued};
use crate::service::{scopes, Commands, Plan};
use crate::store::ExpectedVersion;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::campaign::{Audience, Campaign, CampaignCommand, CampaignStatus, Skipped};
use blazz_domain::channel::Channel;
use blazz_domain::contact::Contact;
use blazz_domain::group::ContactGroup;
use blazz_domain::ids::{CampaignId, ContactId};
use blazz_domain::message::{Message, MessageCommand, MessageContent, MessageEvent, RecipientFacts};
use blazz_domain::role::Action;
use blazz_domain::template::{RenderInput, Template};
use blazz_domain::DomainError;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// Recipients read, rendered and queued together (one read round trip, one group append).
const CHUNK: usize = 500;
/// Recipients rendered between two yields to the scheduler.
const YIELD_EVERY: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LaunchOutcome {
    pub queued: u64,
    pub skipped: Skipped,
}

type Queued = (String, ExpectedVersion, Plan<MessageEvent, MessageQueued>);

/// What a launch needs, loaded and checked.
struct Ready {
    campaign: Campaign,
    template: Template,
    recipients: Vec<ContactId>,
    duplicate: u64,
}

impl Commands {
    /// The audience's contact ids, deduplicated, and how many duplicates were dropped.
    async fn audience(&self, ws: Uuid, audience: &Audience) -> Result<(Vec<ContactId>, u64), CommandError> {
        let named: Vec<ContactId> = match audience {
            Audience::Contacts { contact_ids } => contact_ids.clone(),
            Audience::AllContacts => {
                // Every live contact holds its phone claim, its BSUID claim, or both (counted once).
                let mut owners = self.store().claim_owners(scopes::CONTACT_PHONE, ws).await?;
                let by_phone: HashSet<String> = owners.iter().cloned().collect();
                let users = self.store().claim_owners(scopes::CONTACT_USER_ID, ws).await?;
                owners.extend(users.into_iter().filter(|o| !by_phone.contains(o)));
                owners.iter().filter_map(|o| blazz_domain::aggregate::id_of(o)).map(ContactId::from_uuid).collect()
            }
            Audience::Groups { group_ids } => {
                let streams: Vec<String> = group_ids.iter().map(|g| stream_id::<ContactGroup>(g.as_uuid())).collect();
                let mut events = self.store().read_streams(&streams).await?;
                events.sort_by(|a, b| (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version)));
                let mut all = vec![];
                for s in &streams {
                    let group = self.fold::<ContactGroup>(ws, of_stream(&events, s))?.state;
                    let mut members: Vec<ContactId> = group.members.into_iter().collect();
                    members.sort();
                    all.extend(members);
                }
                all
            }
        };
        let mut seen = HashSet::with_capacity(named.len());
        let unique: Vec<ContactId> = named.iter().copied().filter(|c| seen.insert(*c)).collect();
        let duplicates = (named.len() - unique.len()) as u64;
        Ok((unique, duplicates))
    }

    /// Renders one queued message per eligible recipient of one chunk.
    async fn fan_out_plans(
        &self,
        ctx: &CommandContext,
        id: CampaignId,
        campaign: &Campaign,
        template: &Template,
        recipients: &[ContactId],
        skipped: &mut Skipped,
    ) -> Result<Vec<Queued>, CommandError> {
        let ws = ctx.workspace_id;
        let (channel_id, template_id) = (
            campaign.channel_id.ok_or(DomainError::NotFound("campaign"))?,
            campaign.template_id.ok_or(DomainError::NotFound("campaign"))?,
        );
        let mut plans = Vec::with_capacity(recipients.len());
        let streams: Vec<String> = recipients.iter().map(|c| stream_id::<Contact>(c.as_uuid())).collect();
        let mut events = self.store().read_streams(&streams).await?;
        events.sort_by(|a, b| (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version)));
        {
            for (i, (contact_id, stream)) in recipients.iter().zip(&streams).enumerate() {
                // Rendering is CPU: other requests on this worker get their turn.
                if i % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
                let contact = match self.fold::<Contact>(ws, of_stream(&events, stream)) {
                    Ok(c) if c.state.is_active() => c.state,
                    _ => {
                        skipped.unknown += 1;
                        continue;
                    }
                };
                let Some(to) = contact.destination() else {
                    skipped.unknown += 1;
                    continue;
                };
                if contact.is_opted_out() {
                    skipped.opted_out += 1;
                    continue;
                }
                let explicit: BTreeMap<String, String> = campaign
                    .variables
                    .iter()
                    .filter_map(|(k, m)| m.resolve(&contact.attributes).map(|v| (k.clone(), v)))
                    .collect();
                let input = RenderInput {
                    explicit: &explicit,
                    attributes: &contact.attributes,
                    contact_name: contact.name.as_deref(),
                };
                let content = match MessageContent::from_template(template_id, template, &input) {
                    Ok(c) => c,
                    Err(DomainError::MissingVariable(_)) => {
                        skipped.missing_variable += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let message = Campaign::message_id(id.as_uuid(), *contact_id);
                let events = Message::default().decide(MessageCommand::Queue {
                    channel_id,
                    contact_id: *contact_id,
                    to,
                    content,
                    recipient: RecipientFacts { opted_out: false, window_open: false },
                    reply_to: None,
                    campaign_id: Some(id),
                    at: ctx.now,
                })?;
                plans.push((
                    stream_id::<Message>(message.as_uuid()),
                    ExpectedVersion::NoStream,
                    Plan::new(events, MessageQueued { message_id: message, status: "queued".into() }),
                ));
            }
        }
        Ok(plans)
    }

    /// Loads what a launch needs and refuses one that cannot run: a template no longer sendable, a
    /// channel gone, an empty audience (the state is checked by the caller).
    async fn ready(&self, ws: Uuid, id: CampaignId) -> Result<Ready, CommandError> {
        let campaign = self.load::<Campaign>(ws, id.as_uuid()).await?.state;
        let template_id = campaign.template_id.ok_or(DomainError::NotFound("campaign"))?;
        let template = self.load::<Template>(ws, template_id.as_uuid()).await?.state;
        if !template.is_sendable() {
            return Err(DomainError::TemplateNotApproved(template.status.as_str().to_owned()).into());
        }
        let channel_id = campaign.channel_id.ok_or(DomainError::NotFound("campaign"))?;
        if !self.load::<Channel>(ws, channel_id.as_uuid()).await?.state.connected {
            return Err(DomainError::NotFound("channel").into());
        }
        let audience = campaign.audience.clone().ok_or(DomainError::NotFound("campaign"))?;
        let (recipients, duplicate) = self.audience(ws, &audience).await?;
        if recipients.is_empty() {
            return Err(DomainError::EmptyAudience.into());
        }
        Ok(Ready { campaign, template, recipients, duplicate })
    }

    /// Starts a launch (also resumes one a crash interrupted): checks it can run and appends
    /// `campaign.launch_started`; the fan-out ([`Self::fan_out`]) runs after, in the background.
    #[tracing::instrument(skip_all, fields(campaign = %id), err)]
    pub async fn start_launch(
        &self,
        ctx: &CommandContext,
        id: CampaignId,
    ) -> Result<CommandResult<CampaignState>, CommandError> {
        super::super::require(ctx.role, Action::ManageCampaigns)?;
        if let Some(r) = self.replayed(ctx).await? {
            return Ok(r);
        }
        let ws = ctx.workspace_id;
        let campaign = self.load::<Campaign>(ws, id.as_uuid()).await?.state;
        // Refused here, before any work, if the state does not allow a launch.
        campaign.decide(CampaignCommand::StartLaunch { at: ctx.now })?;
        self.ready(ws, id).await?;
        self.execute::<Campaign, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(CampaignCommand::StartLaunch { at: ctx.now })?;
            let status = events.iter().fold(c.clone(), Campaign::evolve).status;
            Ok(Plan::new(events, CampaignState { campaign_id: id, status }))
        })
        .await
    }

    /// Queues the messages of a started launch and records its counts (`campaign.launched`). Runs
    /// again safely: what an earlier run queued is counted, not queued twice. A campaign whose launch
    /// has not started, or has finished, is left alone.
    #[tracing::instrument(skip_all, fields(campaign = %id), err)]
    pub async fn fan_out(&self, ctx: &CommandContext, id: CampaignId) -> Result<LaunchOutcome, CommandError> {
        let ws = ctx.workspace_id;
        let (loaded, lineage) = self.load_traced::<Campaign>(ws, id.as_uuid()).await?;
        let current = loaded.state;
        // The messages and the launch's counts follow the launch (its request's correlation).
        let ctx = &ctx.clone().following(lineage);
        if !current.fan_out_pending || current.status == CampaignStatus::Cancelled {
            return Ok(LaunchOutcome { queued: current.queued, skipped: current.skipped });
        }
        let Ready { campaign, template, recipients, duplicate } = self.ready(ws, id).await?;
        let mut skipped = Skipped { duplicate, ..Skipped::default() };
        let mut queued = 0u64;
        for (n, chunk) in recipients.chunks(CHUNK).enumerate() {
            let turn = self.pacer().turn(ws).await;
            // Cancelled meanwhile: nothing more is queued; the counts so far go on record.
            if n > 0 && self.load::<Campaign>(ws, id.as_uuid()).await?.state.status == CampaignStatus::Cancelled {
                break;
            }
            let plans = self.fan_out_plans(ctx, id, &campaign, &template, chunk, &mut skipped).await?;
            for r in self.append_each(ctx, plans).await {
                match r {
                    // Queued by an earlier, interrupted run.
                    Ok(_) | Err(CommandError::Conflict(_)) => queued += 1,
                    Err(e) => return Err(e),
                }
            }
            self.pacer().end(turn).await;
        }
        let outcome = LaunchOutcome { queued, skipped };
        self.execute::<Campaign, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(CampaignCommand::FinishLaunch { queued, skipped, at: ctx.now })?;
            Ok(Plan::new(events, CampaignLaunched { campaign_id: id, queued, skipped }))
        })
        .await?;
        Ok(outcome)
    }
}
