//! Team: agents sharing an inbox. A team may assign its new conversations automatically:
//! round-robin over its online members, skipping any who already hold `max_open_per_agent` open
//! conversations ([`next_agent`]).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::AgentId;
use crate::values::bounded_text;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most members one team may have.
pub const MAX_MEMBERS: usize = 500;
/// The highest per-agent cap of open conversations.
pub const MAX_OPEN_CAP: u32 = 10_000;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Team {
    pub created: bool,
    pub name: String,
    pub members: BTreeSet<AgentId>,
    pub auto_assign: bool,
    /// `None`: no cap.
    pub max_open_per_agent: Option<u32>,
}

/// A change of a team's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamSettings {
    pub name: Option<String>,
    pub auto_assign: Option<bool>,
    /// `Some(None)` removes the cap.
    pub max_open_per_agent: Option<Option<u32>>,
}

#[derive(Debug, Clone)]
pub enum TeamCommand {
    Create {
        settings: TeamSettings,
    },
    Update {
        settings: TeamSettings,
    },
    /// Agents to add; the caller has checked they are agents of the workspace.
    AddMembers {
        agents: Vec<AgentId>,
    },
    RemoveMembers {
        agents: Vec<AgentId>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum TeamEvent {
        #[serde(rename = "team.created")]
        Created {
            name: String,
            auto_assign: bool,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            max_open_per_agent: Option<u32>,
        },
        /// The settings after the change.
        #[serde(rename = "team.updated")]
        Updated {
            name: String,
            auto_assign: bool,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            max_open_per_agent: Option<u32>,
        },
        #[serde(rename = "team.members_added")]
        MembersAdded { agents: Vec<AgentId> },
        #[serde(rename = "team.members_removed")]
        MembersRemoved { agents: Vec<AgentId> },
    }
}

fn cap(c: Option<u32>) -> Result<Option<u32>, DomainError> {
    match c {
        Some(n) if n == 0 || n > MAX_OPEN_CAP => {
            Err(DomainError::invalid("max_open_per_agent", format!("between 1 and {MAX_OPEN_CAP}, or null for none")))
        }
        c => Ok(c),
    }
}

fn agents_batch(agents: &[AgentId]) -> Result<(), DomainError> {
    if agents.is_empty() || agents.len() > MAX_MEMBERS {
        return Err(DomainError::invalid("agent_ids", format!("between 1 and {MAX_MEMBERS} ids")));
    }
    Ok(())
}

impl Aggregate for Team {
    const CATEGORY: &'static str = "team";
    type Command = TeamCommand;
    type Event = TeamEvent;

    fn decide(&self, command: TeamCommand) -> Result<Vec<TeamEvent>, DomainError> {
        match command {
            TeamCommand::Create { settings } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("team"));
                }
                let name = bounded_text("name", settings.name.as_deref().unwrap_or_default(), 200)?;
                Ok(vec![TeamEvent::Created {
                    name,
                    auto_assign: settings.auto_assign.unwrap_or(false),
                    max_open_per_agent: cap(settings.max_open_per_agent.flatten())?,
                }])
            }
            _ if !self.created => Err(DomainError::NotFound("team")),
            TeamCommand::Update { settings } => {
                let name = settings.name.map(|n| bounded_text("name", &n, 200)).transpose()?;
                let after = (
                    name.unwrap_or_else(|| self.name.clone()),
                    settings.auto_assign.unwrap_or(self.auto_assign),
                    cap(settings.max_open_per_agent.unwrap_or(self.max_open_per_agent))?,
                );
                if after == (self.name.clone(), self.auto_assign, self.max_open_per_agent) {
                    return Ok(vec![]);
                }
                let (name, auto_assign, max_open_per_agent) = after;
                Ok(vec![TeamEvent::Updated { name, auto_assign, max_open_per_agent }])
            }
            TeamCommand::AddMembers { agents } => {
                agents_batch(&agents)?;
                let new: BTreeSet<AgentId> = agents.into_iter().filter(|a| !self.members.contains(a)).collect();
                if self.members.len() + new.len() > MAX_MEMBERS {
                    return Err(DomainError::invalid("agent_ids", format!("a team has at most {MAX_MEMBERS} members")));
                }
                Ok(if new.is_empty() {
                    vec![]
                } else {
                    vec![TeamEvent::MembersAdded { agents: new.into_iter().collect() }]
                })
            }
            TeamCommand::RemoveMembers { agents } => {
                agents_batch(&agents)?;
                let gone: BTreeSet<AgentId> = agents.into_iter().filter(|a| self.members.contains(a)).collect();
                Ok(if gone.is_empty() {
                    vec![]
                } else {
                    vec![TeamEvent::MembersRemoved { agents: gone.into_iter().collect() }]
                })
            }
        }
    }

    fn evolve(mut self, event: &TeamEvent) -> Self {
        match event {
            TeamEvent::Created { name, auto_assign, max_open_per_agent }
            | TeamEvent::Updated { name, auto_assign, max_open_per_agent } => {
                self.created = true;
                self.name = name.clone();
                self.auto_assign = *auto_assign;
                self.max_open_per_agent = *max_open_per_agent;
            }
            TeamEvent::MembersAdded { agents } => self.members.extend(agents.iter().copied()),
            TeamEvent::MembersRemoved { agents } => {
                for a in agents {
                    self.members.remove(a);
                }
            }
        }
        self
    }
}

/// A member as automatic assignment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub agent_id: AgentId,
    pub online: bool,
    /// Conversations assigned to the agent that are open or pending.
    pub open: u32,
    /// When the agent was last given a conversation; `None`: never.
    pub last_assigned_at: Option<DateTime<Utc>>,
}

/// Round-robin: of the online candidates under the cap, the one given a conversation longest ago
/// (never first; ties by id, so the choice is deterministic). `None` when nobody can take one.
pub fn next_agent(candidates: &[Candidate], max_open: Option<u32>) -> Option<AgentId> {
    candidates
        .iter()
        .filter(|c| c.online && max_open.is_none_or(|m| c.open < m))
        .min_by_key(|c| (c.last_assigned_at, c.agent_id))
        .map(|c| c.agent_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn agent(n: u128) -> AgentId {
        AgentId::from_uuid(Uuid::from_u128(n))
    }

    fn team() -> Team {
        let settings = TeamSettings { name: Some("Support".into()), ..Default::default() };
        Team::replay(&Team::default().decide(TeamCommand::Create { settings }).unwrap())
    }

    #[test]
    fn members_are_added_and_removed_once() {
        let t = team();
        let e = t.decide(TeamCommand::AddMembers { agents: vec![agent(1), agent(2), agent(1)] }).unwrap();
        assert_eq!(e, vec![TeamEvent::MembersAdded { agents: vec![agent(1), agent(2)] }]);
        let t = e.iter().fold(t, Team::evolve);
        assert!(t.decide(TeamCommand::AddMembers { agents: vec![agent(2)] }).unwrap().is_empty());
        let e = t.decide(TeamCommand::RemoveMembers { agents: vec![agent(2), agent(3)] }).unwrap();
        assert_eq!(e, vec![TeamEvent::MembersRemoved { agents: vec![agent(2)] }]);
        assert!(t.decide(TeamCommand::AddMembers { agents: vec![] }).is_err());
        assert!(Team::default().decide(TeamCommand::AddMembers { agents: vec![agent(1)] }).is_err());
    }

    #[test]
    fn settings_change_only_what_is_given_and_caps_are_bounded() {
        let t = team();
        assert!(!t.auto_assign);
        let update = |t: &Team, s: TeamSettings| t.decide(TeamCommand::Update { settings: s });
        let e = update(
            &t,
            TeamSettings { auto_assign: Some(true), max_open_per_agent: Some(Some(3)), ..Default::default() },
        )
        .unwrap();
        assert_eq!(
            e,
            vec![TeamEvent::Updated { name: "Support".into(), auto_assign: true, max_open_per_agent: Some(3) }]
        );
        let t = e.iter().fold(t, Team::evolve);
        assert!(update(&t, TeamSettings { auto_assign: Some(true), ..Default::default() }).unwrap().is_empty());
        assert!(update(&t, TeamSettings { max_open_per_agent: Some(Some(0)), ..Default::default() }).is_err());
        let e = update(&t, TeamSettings { max_open_per_agent: Some(None), ..Default::default() }).unwrap();
        assert_eq!(e.iter().fold(t, Team::evolve).max_open_per_agent, None);
        assert!(Team::default().decide(TeamCommand::Create { settings: TeamSettings::default() }).is_err(), "a name");
    }

    fn at(minute: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_750_000_000 + minute * 60, 0)
    }

    #[test]
    fn assignment_goes_round_robin_over_online_agents_under_the_cap() {
        // Given three agents: 1 never assigned, 2 assigned a minute ago, 3 offline.
        let mut team = vec![
            Candidate { agent_id: agent(1), online: true, open: 0, last_assigned_at: None },
            Candidate { agent_id: agent(2), online: true, open: 1, last_assigned_at: at(1) },
            Candidate { agent_id: agent(3), online: false, open: 0, last_assigned_at: None },
        ];
        // When conversations come in one after another, they alternate between 1 and 2.
        let mut picked = vec![];
        for minute in 2..6 {
            let a = next_agent(&team, None).unwrap();
            let c = team.iter_mut().find(|c| c.agent_id == a).unwrap();
            c.open += 1;
            c.last_assigned_at = at(minute);
            picked.push(a);
        }
        assert_eq!(picked, vec![agent(1), agent(2), agent(1), agent(2)]);
        // With a cap of 3, agent 2 (holding 3) is skipped; at the cap both are, and nobody is picked.
        assert_eq!(team.iter().map(|c| c.open).collect::<Vec<_>>(), vec![2, 3, 0]);
        assert_eq!(next_agent(&team, Some(3)), Some(agent(1)));
        team[0].open = 3;
        assert_eq!(next_agent(&team, Some(3)), None);
        assert_eq!(next_agent(&team, Some(4)), Some(agent(1)), "1 was given one longest ago");
        // Nobody online: nobody.
        assert_eq!(next_agent(&[Candidate { online: false, ..team[0].clone() }], None), None);
    }
}
