//! Channel: a WhatsApp sender number on a provider, with its send rate. Credentials are not part of
//! the aggregate: they live encrypted outside the event log.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::TeamId;
use crate::values::{bounded_text, PhoneNumber};
use serde::{Deserialize, Serialize};

/// Default messages per second of a WhatsApp number.
pub const DEFAULT_RATE_LIMIT: u32 = 80;
/// Highest rate a number can be raised to.
pub const MAX_RATE_LIMIT: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The WhatsApp Cloud API.
    Meta,
    /// The built-in simulator.
    Sandbox,
}

impl ProviderKind {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "meta" => Ok(Self::Meta),
            "sandbox" => Ok(Self::Sandbox),
            other => {
                Err(DomainError::invalid("provider", format!("unknown provider {other:?}; expected meta or sandbox")))
            }
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Channel {
    pub connected: bool,
    pub provider: Option<ProviderKind>,
    pub phone_number_id: String,
    pub display_phone_number: Option<PhoneNumber>,
    pub rate_limit_per_second: u32,
    /// Why the channel stopped sending (an authentication or policy error), until resumed.
    pub halted: Option<String>,
    /// The team new conversations of this channel go to.
    pub inbox_team: Option<TeamId>,
}

#[derive(Debug, Clone)]
pub enum ChannelCommand {
    Connect {
        provider: ProviderKind,
        phone_number_id: String,
        display_phone_number: PhoneNumber,
        rate_limit_per_second: Option<u32>,
    },
    SetRateLimit {
        per_second: u32,
    },
    /// Stop sending: the provider refused the channel (authentication or policy).
    Halt {
        reason: String,
        code: i64,
    },
    Resume,
    /// The team new conversations go to (`None`: none); the caller has checked it exists.
    SetInboxTeam {
        team: Option<TeamId>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ChannelEvent {
        #[serde(rename = "channel.connected")]
        Connected {
            provider: ProviderKind,
            phone_number_id: String,
            display_phone_number: PhoneNumber,
            rate_limit_per_second: u32,
        },
        #[serde(rename = "channel.rate_limit_changed")]
        RateLimitChanged { per_second: u32 },
        #[serde(rename = "channel.halted")]
        Halted { reason: String, code: i64 },
        #[serde(rename = "channel.resumed")]
        Resumed,
        #[serde(rename = "channel.inbox_team_set")]
        InboxTeamSet { team_id: Option<TeamId> },
    }
}

fn rate(per_second: u32) -> Result<u32, DomainError> {
    if (1..=MAX_RATE_LIMIT).contains(&per_second) {
        Ok(per_second)
    } else {
        Err(DomainError::invalid("rate_limit_per_second", format!("must be between 1 and {MAX_RATE_LIMIT}")))
    }
}

/// Validates a provider phone number id (Meta's are numeric strings).
pub fn validate_phone_number_id(id: &str) -> Result<String, DomainError> {
    let id = bounded_text("phone_number_id", id, 64)?;
    if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(id)
    } else {
        Err(DomainError::invalid("phone_number_id", "letters, digits, _ and - only"))
    }
}

impl Aggregate for Channel {
    const CATEGORY: &'static str = "channel";
    type Command = ChannelCommand;
    type Event = ChannelEvent;

    fn decide(&self, command: ChannelCommand) -> Result<Vec<ChannelEvent>, DomainError> {
        match command {
            ChannelCommand::Connect { provider, phone_number_id, display_phone_number, rate_limit_per_second } => {
                if self.connected {
                    return Err(DomainError::AlreadyExists("channel"));
                }
                Ok(vec![ChannelEvent::Connected {
                    provider,
                    phone_number_id: validate_phone_number_id(&phone_number_id)?,
                    display_phone_number,
                    rate_limit_per_second: rate(rate_limit_per_second.unwrap_or(DEFAULT_RATE_LIMIT))?,
                }])
            }
            ChannelCommand::SetRateLimit { per_second } => {
                if !self.connected {
                    return Err(DomainError::NotFound("channel"));
                }
                let per_second = rate(per_second)?;
                if per_second == self.rate_limit_per_second {
                    return Ok(vec![]);
                }
                Ok(vec![ChannelEvent::RateLimitChanged { per_second }])
            }
            ChannelCommand::Halt { .. } | ChannelCommand::Resume | ChannelCommand::SetInboxTeam { .. }
                if !self.connected =>
            {
                Err(DomainError::NotFound("channel"))
            }
            ChannelCommand::Halt { reason, code } => Ok(if self.halted.is_some() {
                vec![]
            } else {
                vec![ChannelEvent::Halted { reason: bounded_text("reason", &reason, 500)?, code }]
            }),
            ChannelCommand::Resume => Ok(if self.halted.is_some() { vec![ChannelEvent::Resumed] } else { vec![] }),
            ChannelCommand::SetInboxTeam { team } => {
                Ok(if team == self.inbox_team { vec![] } else { vec![ChannelEvent::InboxTeamSet { team_id: team }] })
            }
        }
    }

    fn evolve(mut self, event: &ChannelEvent) -> Self {
        match event {
            ChannelEvent::Connected { provider, phone_number_id, display_phone_number, rate_limit_per_second } => {
                self.connected = true;
                self.provider = Some(*provider);
                self.phone_number_id = phone_number_id.clone();
                self.display_phone_number = Some(display_phone_number.clone());
                self.rate_limit_per_second = *rate_limit_per_second;
            }
            ChannelEvent::RateLimitChanged { per_second } => self.rate_limit_per_second = *per_second,
            ChannelEvent::Halted { reason, code } => self.halted = Some(format!("{reason} ({code})")),
            ChannelEvent::Resumed => self.halted = None,
            ChannelEvent::InboxTeamSet { team_id } => self.inbox_team = *team_id,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(rate: Option<u32>) -> ChannelCommand {
        ChannelCommand::Connect {
            provider: ProviderKind::Meta,
            phone_number_id: "106540352242922".into(),
            display_phone_number: PhoneNumber::parse("+15550783881").unwrap(),
            rate_limit_per_second: rate,
        }
    }

    #[test]
    fn connect_defaults_to_80_per_second() {
        let events = Channel::default().decide(connect(None)).unwrap();
        assert_eq!(Channel::replay(&events).rate_limit_per_second, 80);
    }

    #[test]
    fn rate_limit_must_be_between_1_and_1000() {
        assert!(Channel::default().decide(connect(Some(1001))).is_err());
        assert!(Channel::default().decide(connect(Some(0))).is_err());
        let ch = Channel::replay(&Channel::default().decide(connect(Some(1000))).unwrap());
        assert!(ch.decide(ChannelCommand::SetRateLimit { per_second: 1000 }).unwrap().is_empty());
        assert_eq!(
            ch.decide(ChannelCommand::SetRateLimit { per_second: 20 }).unwrap(),
            vec![ChannelEvent::RateLimitChanged { per_second: 20 }]
        );
    }

    #[test]
    fn a_halted_channel_stays_halted_until_resumed() {
        let ch = Channel::replay(&Channel::default().decide(connect(None)).unwrap());
        let halt = || ChannelCommand::Halt { reason: "token expired".into(), code: 190 };
        let halted = ch.decide(halt()).unwrap();
        let ch = halted.iter().fold(ch, Channel::evolve);
        assert_eq!(ch.halted.as_deref(), Some("token expired (190)"));
        assert!(ch.decide(halt()).unwrap().is_empty());
        let ch = ch.decide(ChannelCommand::Resume).unwrap().iter().fold(ch, Channel::evolve);
        assert!(ch.halted.is_none());
    }

    #[test]
    fn connecting_twice_is_rejected_and_unknown_channel_is_not_found() {
        let ch = Channel::replay(&Channel::default().decide(connect(None)).unwrap());
        assert_eq!(ch.decide(connect(None)).unwrap_err(), DomainError::AlreadyExists("channel"));
        assert_eq!(
            Channel::default().decide(ChannelCommand::SetRateLimit { per_second: 5 }).unwrap_err(),
            DomainError::NotFound("channel")
        );
    }
}
