//! Agent: a person working a workspace's inbox. An agent has a name, an email (unique in the
//! workspace, checked with a claim by the write side), a role (what API keys bound to the agent may
//! do) and an availability that automatic assignment respects. An agent who leaves is deactivated,
//! never deleted (its name stays on the history it wrote): it goes offline, takes no conversations
//! and its keys stop working until it is reactivated.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::role::Role;
use crate::values::bounded_text;
use serde::{Deserialize, Serialize};

/// Whether an agent takes new conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Busy,
    #[default]
    Offline,
}

impl Availability {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Busy => "busy",
            Self::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "online" => Ok(Self::Online),
            "busy" => Ok(Self::Busy),
            "offline" => Ok(Self::Offline),
            other => Err(DomainError::invalid(
                "availability",
                format!("unknown availability {other:?}; expected online, busy or offline"),
            )),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    pub created: bool,
    pub name: String,
    pub email: String,
    pub role: Option<Role>,
    pub availability: Availability,
    pub deactivated: bool,
}

/// An email as stored: trimmed, lowercase, one `@` with text on both sides and a dot in the domain.
pub fn email(input: &str) -> Result<String, DomainError> {
    let e = bounded_text("email", input, 254)?.to_lowercase();
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(e)
    } else {
        Err(DomainError::invalid("email", format!("{e:?} is not an email address")))
    }
}

#[derive(Debug, Clone)]
pub enum AgentCommand {
    Create { name: String, email: String, role: Role },
    Rename { name: String },
    SetAvailability { availability: Availability },
    ChangeRole { role: Role },
    Deactivate,
    Reactivate,
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum AgentEvent {
        #[serde(rename = "agent.created")]
        Created { name: String, email: String, role: Role },
        #[serde(rename = "agent.renamed")]
        Renamed { name: String },
        #[serde(rename = "agent.availability_changed")]
        AvailabilityChanged { availability: Availability },
        #[serde(rename = "agent.role_changed")]
        RoleChanged { role: Role },
        /// The agent is offline from here on, until reactivated.
        #[serde(rename = "agent.deactivated")]
        Deactivated,
        /// Reactivated agents start offline.
        #[serde(rename = "agent.reactivated")]
        Reactivated,
    }
}

fn agent_role(role: Role) -> Result<Role, DomainError> {
    if role == Role::Owner {
        return Err(DomainError::invalid("role", "an agent is an admin, an agent or a viewer"));
    }
    Ok(role)
}

impl Aggregate for Agent {
    const CATEGORY: &'static str = "agent";
    type Command = AgentCommand;
    type Event = AgentEvent;

    fn decide(&self, command: AgentCommand) -> Result<Vec<AgentEvent>, DomainError> {
        match command {
            AgentCommand::Create { name, email: address, role } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("agent"));
                }
                let role = agent_role(role)?;
                Ok(vec![AgentEvent::Created { name: bounded_text("name", &name, 200)?, email: email(&address)?, role }])
            }
            _ if !self.created => Err(DomainError::NotFound("agent")),
            AgentCommand::Rename { name } => {
                let name = bounded_text("name", &name, 200)?;
                Ok(if name == self.name { vec![] } else { vec![AgentEvent::Renamed { name }] })
            }
            AgentCommand::SetAvailability { .. } if self.deactivated => Err(DomainError::AgentDeactivated),
            AgentCommand::SetAvailability { availability } => Ok(if availability == self.availability {
                vec![]
            } else {
                vec![AgentEvent::AvailabilityChanged { availability }]
            }),
            AgentCommand::ChangeRole { role } => {
                let role = agent_role(role)?;
                Ok(if Some(role) == self.role { vec![] } else { vec![AgentEvent::RoleChanged { role }] })
            }
            AgentCommand::Deactivate => Ok(if self.deactivated { vec![] } else { vec![AgentEvent::Deactivated] }),
            AgentCommand::Reactivate => Ok(if self.deactivated { vec![AgentEvent::Reactivated] } else { vec![] }),
        }
    }

    fn evolve(mut self, event: &AgentEvent) -> Self {
        match event {
            AgentEvent::Created { name, email, role } => {
                self.created = true;
                self.name = name.clone();
                self.email = email.clone();
                self.role = Some(*role);
            }
            AgentEvent::Renamed { name } => self.name = name.clone(),
            AgentEvent::AvailabilityChanged { availability } => self.availability = *availability,
            AgentEvent::RoleChanged { role } => self.role = Some(*role),
            AgentEvent::Deactivated => {
                self.deactivated = true;
                self.availability = Availability::Offline;
            }
            AgentEvent::Reactivated => self.deactivated = false,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(role: Role) -> Result<Vec<AgentEvent>, DomainError> {
        Agent::default().decide(AgentCommand::Create { name: " Sari ".into(), email: "Sari@Example.COM".into(), role })
    }

    #[test]
    fn an_agent_starts_offline_with_a_normalised_email_and_never_as_owner() {
        let events = create(Role::Agent).unwrap();
        let a = Agent::replay(&events);
        assert_eq!(
            (a.name.as_str(), a.email.as_str(), a.availability),
            ("Sari", "sari@example.com", Availability::Offline)
        );
        assert!(create(Role::Owner).is_err());
        assert!(a.decide(AgentCommand::Create { name: "x".into(), email: "x@y.z".into(), role: Role::Agent }).is_err());
        for bad in ["", "no-at", "a@b", "a@.b", "@b.c", "a b@c.d", "a@b.c@d.e", "a\u{0}@b.c"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn availability_changes_only_when_different_and_needs_an_agent() {
        let a = Agent::replay(&create(Role::Agent).unwrap());
        let set =
            |a: &Agent, s| a.decide(AgentCommand::SetAvailability { availability: Availability::parse(s).unwrap() });
        let e = set(&a, "online").unwrap();
        assert_eq!(e, vec![AgentEvent::AvailabilityChanged { availability: Availability::Online }]);
        let a = e.iter().fold(a, Agent::evolve);
        assert!(set(&a, "online").unwrap().is_empty());
        assert!(set(&Agent::default(), "busy").is_err());
        assert!(Availability::parse("away").is_err());
    }

    #[test]
    fn a_deactivated_agent_goes_offline_sets_no_availability_and_comes_back_offline() {
        let a = Agent::replay(&create(Role::Agent).unwrap());
        let online = AgentCommand::SetAvailability { availability: Availability::Online };
        let a = a.decide(online.clone()).unwrap().iter().fold(a, Agent::evolve);
        let e = a.decide(AgentCommand::Deactivate).unwrap();
        assert_eq!(e, vec![AgentEvent::Deactivated]);
        let a = e.iter().fold(a, Agent::evolve);
        assert_eq!((a.deactivated, a.availability), (true, Availability::Offline));
        assert!(a.decide(AgentCommand::Deactivate).unwrap().is_empty(), "once");
        assert_eq!(a.decide(online.clone()).unwrap_err(), DomainError::AgentDeactivated);
        // Renaming and changing the role still work (the record stays right).
        assert!(!a.decide(AgentCommand::Rename { name: "Sari W.".into() }).unwrap().is_empty());
        let e = a.decide(AgentCommand::Reactivate).unwrap();
        assert_eq!(e, vec![AgentEvent::Reactivated]);
        let a = e.iter().fold(a, Agent::evolve);
        assert_eq!((a.deactivated, a.availability), (false, Availability::Offline));
        assert!(a.decide(AgentCommand::Reactivate).unwrap().is_empty(), "only when deactivated");
        assert!(!a.decide(online).unwrap().is_empty());
        assert!(Agent::default().decide(AgentCommand::Deactivate).is_err(), "needs an agent");
    }

    #[test]
    fn a_role_changes_when_different_and_never_to_owner() {
        let a = Agent::replay(&create(Role::Agent).unwrap());
        assert!(a.decide(AgentCommand::ChangeRole { role: Role::Agent }).unwrap().is_empty());
        assert!(a.decide(AgentCommand::ChangeRole { role: Role::Owner }).is_err());
        let e = a.decide(AgentCommand::ChangeRole { role: Role::Viewer }).unwrap();
        assert_eq!(e, vec![AgentEvent::RoleChanged { role: Role::Viewer }]);
        assert_eq!(e.iter().fold(a, Agent::evolve).role, Some(Role::Viewer));
    }
}
