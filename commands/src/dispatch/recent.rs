//! What a dispatcher remembers for a second: sending channels and running campaigns.

use crate::credentials::ChannelSecrets;
use blazz_domain::campaign::CampaignStatus;
use blazz_domain::channel::Channel;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// A channel's state and secrets, and when they were read.
pub(super) type RecentChannel = (std::time::Instant, Channel, Option<ChannelSecrets>);

/// How long a channel's state and secrets and a campaign's status are remembered.
const REMEMBER: std::time::Duration = std::time::Duration::from_secs(1);

/// Sending channels (state and secrets) and running campaigns, remembered for [`REMEMBER`]: a
/// dispatcher sending 1,000 messages a second reads each once a second instead of once per message.
/// A halt or pause decided by this dispatcher clears the entry at once; one decided elsewhere (an API
/// call, another dispatcher) is seen within that second. Halted channels and held campaigns are not
/// remembered, so resuming takes effect at once.
#[derive(Debug, Default)]
pub(super) struct Recent {
    pub(super) channels: Mutex<HashMap<Uuid, RecentChannel>>,
    pub(super) campaigns: Mutex<HashMap<Uuid, (std::time::Instant, CampaignStatus)>>,
}

impl Recent {
    pub(super) fn channel(&self, id: Uuid) -> Option<(Channel, Option<ChannelSecrets>)> {
        let g = self.channels.lock().ok()?;
        g.get(&id).filter(|(at, _, _)| at.elapsed() < REMEMBER).map(|(_, c, s)| (c.clone(), s.clone()))
    }

    pub(super) fn campaign(&self, id: Uuid) -> Option<CampaignStatus> {
        let g = self.campaigns.lock().ok()?;
        g.get(&id).filter(|(at, _)| at.elapsed() < REMEMBER).map(|(_, s)| *s)
    }

    pub(super) fn forget(&self, channel: Option<Uuid>, campaign: Option<Uuid>) {
        if let (Some(id), Ok(mut g)) = (channel, self.channels.lock()) {
            g.remove(&id);
        }
        if let (Some(id), Ok(mut g)) = (campaign, self.campaigns.lock()) {
            g.remove(&id);
        }
    }
}
