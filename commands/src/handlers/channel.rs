//! Channel commands.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{ChannelHalt, ChannelRate, ChannelTeam, ChannelWritten};
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::channel::{validate_phone_number_id, Channel, ChannelCommand, ProviderKind};
use blazz_domain::ids::{ChannelId, TeamId};
use blazz_domain::role::Action;
use blazz_domain::values::PhoneNumber;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ConnectChannel {
    pub provider: ProviderKind,
    pub phone_number_id: String,
    pub display_phone_number: PhoneNumber,
    pub rate_limit_per_second: Option<u32>,
}

impl Commands {
    /// Connects a sender number. A provider phone number id belongs to one channel system-wide, since
    /// webhooks are routed by it.
    pub async fn connect_channel(
        &self,
        ctx: &CommandContext,
        input: ConnectChannel,
    ) -> Result<CommandResult<ChannelWritten>, CommandError> {
        require(ctx.role, Action::ManageChannels)?;
        let id = ChannelId::from_uuid(Uuid::now_v7());
        let number_id = validate_phone_number_id(&input.phone_number_id)?;
        self.execute::<Channel, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ChannelCommand::Connect {
                provider: input.provider,
                phone_number_id: number_id.clone(),
                display_phone_number: input.display_phone_number.clone(),
                rate_limit_per_second: input.rate_limit_per_second,
            })?;
            let mut plan = Plan::new(events, ChannelWritten { channel_id: id });
            plan.claims.push(Claim {
                scope: scopes::CHANNEL_NUMBER.into(),
                value: number_id.clone(),
                owner: stream_id::<Channel>(id.as_uuid()),
                workspace_id: ctx.workspace_id,
                data: json!({}),
            });
            Ok(plan)
        })
        .await
    }

    pub async fn set_channel_rate_limit(
        &self,
        ctx: &CommandContext,
        id: ChannelId,
        per_second: u32,
    ) -> Result<CommandResult<ChannelRate>, CommandError> {
        require(ctx.role, Action::ManageChannels)?;
        self.execute::<Channel, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ChannelCommand::SetRateLimit { per_second })?;
            Ok(Plan::new(events, ChannelRate { channel_id: id, rate_limit_per_second: per_second }))
        })
        .await
    }

    /// The team new conversations of the channel go to (`None`: none).
    pub async fn set_channel_inbox_team(
        &self,
        ctx: &CommandContext,
        id: ChannelId,
        team: Option<TeamId>,
    ) -> Result<CommandResult<ChannelTeam>, CommandError> {
        require(ctx.role, Action::ManageChannels)?;
        if let Some(t) = team {
            self.check_team(ctx.workspace_id, t).await?;
        }
        self.execute::<Channel, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ChannelCommand::SetInboxTeam { team })?;
            Ok(Plan::new(events, ChannelTeam { channel_id: id, team_id: team }))
        })
        .await
    }

    /// Halts (`halt` with a reason and the provider's code) or resumes a channel.
    pub async fn set_channel_halted(
        &self,
        ctx: &CommandContext,
        id: ChannelId,
        halt: Option<(String, i64)>,
    ) -> Result<CommandResult<ChannelHalt>, CommandError> {
        require(ctx.role, Action::ManageChannels)?;
        self.execute::<Channel, _>(ctx, id.as_uuid(), |c| {
            let command = match halt.clone() {
                Some((reason, code)) => ChannelCommand::Halt { reason, code },
                None => ChannelCommand::Resume,
            };
            let events = c.decide(command)?;
            let halted = events.iter().fold(c.clone(), Channel::evolve).halted;
            Ok(Plan::new(events, ChannelHalt { channel_id: id, halted }))
        })
        .await
    }
}
