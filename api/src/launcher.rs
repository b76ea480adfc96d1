//! The launcher: runs campaign fan-outs ([`Commands::fan_out`]) in the background, one task per
//! campaign, so a launch request answers as soon as the launch has started (202 `launching`) and a
//! fan-out of any size never meets the request timeout.
//!
//! This process runs a campaign's fan-out once at a time; a second request for it (a repeated launch,
//! the scheduler finding it still `launching`) joins the one running. A fan-out a crash interrupted is
//! started again by the scheduler ([`crate::dispatch::schedule`]); running one twice, even in two
//! processes, queues nothing twice (message ids derive from campaign and contact).

use blazz_commands::{CommandContext, Commands};
use blazz_domain::ids::CampaignId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Launcher {
    commands: Commands,
    running: Arc<Mutex<HashSet<Uuid>>>,
}

/// Forgets a campaign's fan-out when its task ends, however it ends.
struct Running {
    running: Arc<Mutex<HashSet<Uuid>>>,
    campaign: Uuid,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.campaign);
    }
}

impl Launcher {
    pub fn new(commands: Commands) -> Self {
        Self { commands, running: Arc::default() }
    }

    /// Whether this process is fanning `campaign` out now.
    pub fn is_running(&self, campaign: CampaignId) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).contains(&campaign.as_uuid())
    }

    /// Starts the fan-out of a started launch in the background, unless it runs here already.
    /// `ctx` is the launching request's (its correlation goes on every queued message).
    pub fn fan_out(&self, ctx: CommandContext, campaign: CampaignId) {
        let id = campaign.as_uuid();
        if !self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return;
        }
        let guard = Running { running: self.running.clone(), campaign: id };
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match commands.fan_out(&ctx, campaign).await {
                Ok(o) => tracing::info!(%campaign, queued = o.queued, skipped = o.skipped.total(), "campaign launched"),
                // Left `launching`: the scheduler tries again.
                Err(e) => tracing::warn!(%campaign, error = %e, "campaign fan-out stopped; it is retried"),
            }
        });
    }
}
