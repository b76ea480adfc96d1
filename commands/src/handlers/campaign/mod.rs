//! Campaign commands: create (validated up front), schedule, launch ([`launch`]: the fan-out), pause,
//! resume, cancel, complete.

mod launch;

pub use launch::LaunchOutcome;

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{CampaignCompleted, CampaignState, CampaignWritten};
use crate::service::{Commands, Plan};
use blazz_domain::aggregate::Aggregate;
use blazz_domain::campaign::{Audience, Campaign, CampaignCommand, FinalCounts, VariableMapping};
use blazz_domain::channel::Channel;
use blazz_domain::ids::{CampaignId, ChannelId, GroupId, TemplateId};
use blazz_domain::role::Action;
use blazz_domain::template::{ParameterFormat, Template};
use blazz_domain::DomainError;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub channel_id: ChannelId,
    pub template_id: TemplateId,
    pub audience: Audience,
    pub variables: BTreeMap<String, VariableMapping>,
    pub schedule_at: Option<DateTime<Utc>>,
}

/// A variable is fillable for some recipient if the mapping or the template gives a value, or a
/// contact attribute of its name (named variables) could: a positional variable with neither can never
/// be filled.
fn check_variables(template: &Template, mapping: &BTreeMap<String, VariableMapping>) -> Result<(), DomainError> {
    for v in template.variables() {
        let mapped = mapping.get(&v.key).or_else(|| v.alias().and_then(|a| mapping.get(&a)));
        let fillable = match mapped {
            Some(m) => m.value.is_some() || m.default.is_some() || m.attribute.is_some(),
            None => template.defaults.contains_key(&v.key) || v.format == ParameterFormat::Named,
        };
        if !fillable {
            return Err(DomainError::MissingVariable(v.name));
        }
    }
    Ok(())
}

impl Commands {
    pub async fn create_campaign(
        &self,
        ctx: &CommandContext,
        input: NewCampaign,
    ) -> Result<CommandResult<CampaignWritten>, CommandError> {
        require(ctx.role, Action::ManageCampaigns)?;
        let ws = ctx.workspace_id;
        let channel = self.load::<Channel>(ws, input.channel_id.as_uuid()).await?.state;
        if !channel.connected {
            return Err(DomainError::NotFound("channel").into());
        }
        if let Some(why) = channel.halted {
            return Err(DomainError::ChannelUnavailable(format!("halted: {why}")).into());
        }
        let template = self.load::<Template>(ws, input.template_id.as_uuid()).await?.state;
        if !template.created {
            return Err(DomainError::NotFound("template").into());
        }
        if !template.is_sendable() {
            return Err(DomainError::TemplateNotApproved(template.status.as_str().to_owned()).into());
        }
        check_variables(&template, &input.variables)?;
        if let Audience::Groups { group_ids } = &input.audience {
            self.check_groups(ws, group_ids).await?;
        }
        let id = CampaignId::from_uuid(Uuid::now_v7());
        self.execute::<Campaign, _>(ctx, id.as_uuid(), |c| {
            let i = input.clone();
            let events = c.decide(CampaignCommand::Create {
                name: i.name,
                channel_id: i.channel_id,
                template_id: i.template_id,
                audience: i.audience,
                variables: i.variables,
                schedule_at: i.schedule_at,
                now: ctx.now,
            })?;
            Ok(Plan::new(events, CampaignWritten { campaign_id: id }))
        })
        .await
    }

    /// Every group must exist in the workspace.
    async fn check_groups(&self, ws: Uuid, groups: &[GroupId]) -> Result<(), CommandError> {
        for g in groups {
            let group = self.load::<blazz_domain::group::ContactGroup>(ws, g.as_uuid()).await?.state;
            if !group.created {
                return Err(DomainError::invalid("audience.group_ids", format!("no group {g}")).into());
            }
        }
        Ok(())
    }

    /// Completes a running campaign whose every message is final, with their counts (the system's
    /// command, from the campaigns projection: see `read_models::campaigns::finished`). A campaign
    /// that is not running (paused meanwhile, already completed) is left as it is.
    pub async fn complete_campaign(
        &self,
        ctx: &CommandContext,
        id: CampaignId,
        counts: FinalCounts,
    ) -> Result<CommandResult<CampaignCompleted>, CommandError> {
        require(ctx.role, Action::ManageCampaigns)?;
        self.execute::<Campaign, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(CampaignCommand::Complete { counts, at: ctx.now })?;
            Ok(Plan::new(events, CampaignCompleted { campaign_id: id, counts }))
        })
        .await
    }

    /// Schedules, pauses, resumes or cancels a campaign (`command` built with the context's time).
    pub async fn change_campaign(
        &self,
        ctx: &CommandContext,
        id: CampaignId,
        command: impl Fn(DateTime<Utc>) -> CampaignCommand,
    ) -> Result<CommandResult<CampaignState>, CommandError> {
        require(ctx.role, Action::ManageCampaigns)?;
        self.execute::<Campaign, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(command(ctx.now))?;
            let status = events.iter().fold(c.clone(), Campaign::evolve).status;
            Ok(Plan::new(events, CampaignState { campaign_id: id, status }))
        })
        .await
    }
}
