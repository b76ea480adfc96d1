//! ContactGroup: a named set of contacts, changed in bulk.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::ContactId;
use crate::values::bounded_text;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Most contacts one add/remove command may carry.
pub const MAX_MEMBERS_PER_COMMAND: usize = 100_000;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ContactGroup {
    pub created: bool,
    pub name: String,
    pub members: HashSet<ContactId>,
}

#[derive(Debug, Clone)]
pub enum GroupCommand {
    Create {
        name: String,
    },
    Rename {
        name: String,
    },
    /// Contacts to add; the caller has checked they are active contacts of the workspace.
    AddMembers {
        contacts: Vec<ContactId>,
    },
    RemoveMembers {
        contacts: Vec<ContactId>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum GroupEvent {
        #[serde(rename = "group.created")]
        Created { name: String },
        #[serde(rename = "group.renamed")]
        Renamed { name: String },
        #[serde(rename = "group.members_added")]
        MembersAdded { contacts: Vec<ContactId> },
        #[serde(rename = "group.members_removed")]
        MembersRemoved { contacts: Vec<ContactId> },
    }
}

fn batch(contacts: &[ContactId]) -> Result<(), DomainError> {
    if contacts.is_empty() || contacts.len() > MAX_MEMBERS_PER_COMMAND {
        return Err(DomainError::invalid("contact_ids", format!("between 1 and {MAX_MEMBERS_PER_COMMAND} ids")));
    }
    Ok(())
}

/// Keeps the first occurrence of each id for which `keep` holds.
fn distinct(contacts: Vec<ContactId>, keep: impl Fn(&ContactId) -> bool) -> Vec<ContactId> {
    let mut seen = HashSet::with_capacity(contacts.len());
    contacts.into_iter().filter(|c| keep(c) && seen.insert(*c)).collect()
}

impl Aggregate for ContactGroup {
    const CATEGORY: &'static str = "group";
    type Command = GroupCommand;
    type Event = GroupEvent;

    fn decide(&self, command: GroupCommand) -> Result<Vec<GroupEvent>, DomainError> {
        if let GroupCommand::Create { name } = command {
            if self.created {
                return Err(DomainError::AlreadyExists("group"));
            }
            return Ok(vec![GroupEvent::Created { name: bounded_text("name", &name, 200)? }]);
        }
        if !self.created {
            return Err(DomainError::NotFound("group"));
        }
        match command {
            GroupCommand::Create { .. } => unreachable!("handled above"),
            GroupCommand::Rename { name } => {
                let name = bounded_text("name", &name, 200)?;
                Ok(if name == self.name { vec![] } else { vec![GroupEvent::Renamed { name }] })
            }
            GroupCommand::AddMembers { contacts } => {
                batch(&contacts)?;
                let new = distinct(contacts, |c| !self.members.contains(c));
                Ok(if new.is_empty() { vec![] } else { vec![GroupEvent::MembersAdded { contacts: new }] })
            }
            GroupCommand::RemoveMembers { contacts } => {
                batch(&contacts)?;
                let gone = distinct(contacts, |c| self.members.contains(c));
                Ok(if gone.is_empty() { vec![] } else { vec![GroupEvent::MembersRemoved { contacts: gone }] })
            }
        }
    }

    fn evolve(mut self, event: &GroupEvent) -> Self {
        match event {
            GroupEvent::Created { name } => {
                self.created = true;
                self.name = name.clone();
            }
            GroupEvent::Renamed { name } => self.name = name.clone(),
            GroupEvent::MembersAdded { contacts } => self.members.extend(contacts.iter().copied()),
            GroupEvent::MembersRemoved { contacts } => {
                for c in contacts {
                    self.members.remove(c);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn c(n: u128) -> ContactId {
        ContactId::from_uuid(Uuid::from_u128(n))
    }

    fn group() -> ContactGroup {
        ContactGroup::replay(&ContactGroup::default().decide(GroupCommand::Create { name: "VIP".into() }).unwrap())
    }

    #[test]
    fn adding_members_skips_existing_and_duplicate_ids() {
        let g = group();
        let e = g.decide(GroupCommand::AddMembers { contacts: vec![c(1), c(2), c(1)] }).unwrap();
        assert_eq!(e, vec![GroupEvent::MembersAdded { contacts: vec![c(1), c(2)] }]);
        let g = g.evolve(&e[0]);
        let e = g.decide(GroupCommand::AddMembers { contacts: vec![c(2), c(3)] }).unwrap();
        assert_eq!(e, vec![GroupEvent::MembersAdded { contacts: vec![c(3)] }]);
        assert!(g.decide(GroupCommand::AddMembers { contacts: vec![c(1)] }).unwrap().is_empty());
    }

    #[test]
    fn removing_only_removes_members() {
        let g = group().evolve(&GroupEvent::MembersAdded { contacts: vec![c(1), c(2)] });
        let e = g.decide(GroupCommand::RemoveMembers { contacts: vec![c(2), c(9)] }).unwrap();
        assert_eq!(e, vec![GroupEvent::MembersRemoved { contacts: vec![c(2)] }]);
        assert_eq!(g.evolve(&e[0]).members.len(), 1);
    }

    #[test]
    fn empty_batches_and_unknown_groups_are_rejected() {
        assert!(group().decide(GroupCommand::AddMembers { contacts: vec![] }).is_err());
        assert_eq!(
            ContactGroup::default().decide(GroupCommand::AddMembers { contacts: vec![c(1)] }).unwrap_err(),
            DomainError::NotFound("group")
        );
    }
}
