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
use blazz_domain::ids::{AgentId, ChannelId, TeamId};
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

fn id_in(body: &serde_json::Value, pointer: &str) -> Result<Uuid, Box<dyn std::error::Error + Send + Sync>> {
    body.pointer(pointer)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::try_parse(s).ok())
        .ok_or_else(|| format!("missing {pointer} in {body}").into())
}

pub async fn create(state: &AppState) -> Result<Demo, Box<dyn std::error::Error + Send + Sync>> {
    let ctx = |workspace_id| CommandContext::system(workspace_id, "demo");
    let created = state.commands.create_workspace(&ctx(Uuid::nil()), "Demo".into(), None).await?;
    let workspace_id = id_in(&created.body, "/workspace_id")?;
    let api_key = created.body.pointer("/api_key/key").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let number_id = format!("sandbox-{}", Uuid::new_v4().simple());
    let connect = ConnectChannel {
        provider: ProviderKind::Sandbox,
        phone_number_id: number_id,
        display_phone_number: PhoneNumber::parse("+15550000000")?,
        rate_limit_per_second: None,
    };
    let channel = state.commands.connect_channel(&ctx(workspace_id), connect).await?;
    let channel_id = id_in(&channel.body, "/channel_id")?;
    let secrets = ChannelSecrets {
        access_token: Secret::new("sandbox"),
        app_secret: Secret::new(Uuid::new_v4().simple().to_string()),
        verify_token: Secret::new(Uuid::new_v4().simple().to_string()),
    };
    state.credentials.put(workspace_id, channel_id, &secrets).await?;

    let c = &state.commands;
    let owner = ctx(workspace_id);
    let agent = c.create_agent(&owner, "Demo Agent".into(), "agent@demo.example".into(), Role::Agent).await?;
    let agent_id = id_in(&agent.body, "/agent_id")?;
    let agent_key = c.issue_api_key(&owner, "Demo Agent".into(), None, Some(AgentId::from_uuid(agent_id))).await?;
    let agent_key = agent_key.body.pointer("/key").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    c.set_agent_availability(&owner, AgentId::from_uuid(agent_id), Availability::Online).await?;
    let settings = TeamSettings { name: Some("Support".into()), auto_assign: Some(true), max_open_per_agent: None };
    let team = TeamId::from_uuid(id_in(&c.create_team(&owner, settings).await?.body, "/team_id")?);
    c.change_team_members(&owner, team, vec![AgentId::from_uuid(agent_id)], true).await?;
    c.set_channel_inbox_team(&owner, ChannelId::from_uuid(channel_id), Some(team)).await?;
    Ok(Demo { workspace_id, channel_id, api_key, agent_id, agent_key })
}
