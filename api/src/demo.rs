//! `blazz up --demo`: a workspace with a sandbox channel (credentials generated), so the whole loop —
//! send, sent, delivered, read, reply — runs with no Meta account; and an inbox: an online agent
//! with a key of its own in a team that assigns the channel's new conversations automatically, so a
//! sandbox reply lands in an open conversation assigned to that agent.

use crate::state::AppState;
use blazz_commands::credentials::{ChannelSecrets, Secret};
use blazz_commands::handlers::channel::ConnectChannel;
use blazz_commands::CommandContext;
use blazz_domain::agent::Availability;
use blazz_domain::channel::ProviderKind;
use blazz_domain::ids::ChannelId;
use blazz_domain::role::Role;
use blazz_domain::team::TeamSettings;
use blazz_domain::values::PhoneNumber;
use uuid::Uuid;

#[derive(Debug)]
pub struct Demo {
    pub workspace_id: Uuid,
    pub channel_id: Uuid,
    pub api_key: String,
    pub agent_id: Uuid,
    /// A key bound to the agent: what the agent's inbox client uses.
    pub agent_key: String,
}

/// What the sandbox recipient answers in the demo when `BLAZZ_SANDBOX_REPLY` is not set.
pub const DEMO_REPLY: &str = "Thanks! Can someone help me with my order?";

pub async fn create(state: &AppState) -> Result<Demo, Box<dyn std::error::Error + Send + Sync>> {
    let ctx = |workspace_id| CommandContext::system(workspace_id, "demo");
    let created = state.commands.create_workspace(&ctx(Uuid::nil()), "Demo".into(), None).await?;
    let workspace_id = created.outcome.workspace_id.as_uuid();
    let api_key = created.outcome.api_key.key.unwrap_or_default();
    let number_id = format!("sandbox-{}", Uuid::new_v4().simple());
    let connect = ConnectChannel {
        provider: ProviderKind::Sandbox,
        phone_number_id: number_id,
        display_phone_number: PhoneNumber::parse("+15550000000")?,
        rate_limit_per_second: None,
    };
    let channel = state.commands.connect_channel(&ctx(workspace_id), connect).await?;
    let channel_id = channel.outcome.channel_id.as_uuid();
    let secrets = ChannelSecrets {
        access_token: Secret::new("sandbox"),
        app_secret: Secret::new(Uuid::new_v4().simple().to_string()),
        verify_token: Secret::new(Uuid::new_v4().simple().to_string()),
    };
    state.credentials.put(workspace_id, channel_id, &secrets).await?;

    let c = &state.commands;
    let owner = ctx(workspace_id);
    let agent = c.create_agent(&owner, "Demo Agent".into(), "agent@demo.example".into(), Role::Agent).await?;
    let agent_id = agent.outcome.agent_id;
    let agent_key = c.issue_api_key(&owner, "Demo Agent".into(), None, Some(agent_id)).await?.outcome.key;
    let agent_key = agent_key.unwrap_or_default();
    c.set_agent_availability(&owner, agent_id, Availability::Online).await?;
    let settings = TeamSettings { name: Some("Support".into()), auto_assign: Some(true), max_open_per_agent: None };
    let team = c.create_team(&owner, settings).await?.outcome.team_id;
    c.change_team_members(&owner, team, vec![agent_id], true).await?;
    c.set_channel_inbox_team(&owner, ChannelId::from_uuid(channel_id), Some(team)).await?;
    Ok(Demo { workspace_id, channel_id, api_key, agent_id: agent_id.as_uuid(), agent_key })
}
