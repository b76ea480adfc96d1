//! `blazz up --demo`: a workspace with a sandbox channel (credentials generated), so the whole loop —
//! send, sent, delivered, read, reply — runs with no Meta account.

use crate::state::AppState;
use blazz_commands::credentials::{ChannelSecrets, Secret};
use blazz_commands::handlers::channel::ConnectChannel;
use blazz_commands::CommandContext;
use blazz_domain::channel::ProviderKind;
use blazz_domain::values::PhoneNumber;
use uuid::Uuid;

#[derive(Debug)]
pub struct Demo {
    pub workspace_id: Uuid,
    pub channel_id: Uuid,
    pub api_key: String,
}

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
    Ok(Demo { workspace_id, channel_id, api_key })
}
