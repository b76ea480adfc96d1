//! API key roles and the permission matrix.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The role of an API key within its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Agent,
    Admin,
    Owner,
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    ManageContacts,
    ManageGroups,
    SendMessages,
    ManageTemplates,
    ManageChannels,
    ManageCampaigns,
    ManageKeys,
    ManageWorkspace,
    /// Change a conversation's status, assignment and the like (the inbox).
    WorkConversations,
    /// Create agents and teams, change other agents' availability.
    ManageAgents,
    /// Erase a contact's personal data for good (owners and admins).
    EraseContacts,
    /// Create, change and replay outbound webhook endpoints (owners and admins).
    ManageWebhooks,
    /// Create, enable, disable and delete automation rules (owners and admins).
    ManageAutomation,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "agent" => Ok(Self::Agent),
            "viewer" => Ok(Self::Viewer),
            other => Err(DomainError::invalid(
                "role",
                format!("unknown role {other:?}; expected owner, admin, agent or viewer"),
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Agent => "agent",
            Self::Viewer => "viewer",
        }
    }

    /// Whether this role may perform `action`.
    pub fn allows(&self, action: Action) -> bool {
        use Action::*;
        match self {
            Self::Owner | Self::Admin => true,
            Self::Agent => matches!(action, Read | ManageContacts | ManageGroups | SendMessages | WorkConversations),
            Self::Viewer => matches!(action, Read),
        }
    }

    /// `Ok` when allowed, else a [`DomainError::Forbidden`].
    pub fn require(&self, action: Action) -> Result<(), DomainError> {
        if self.allows(action) {
            Ok(())
        } else {
            Err(DomainError::Forbidden { role: self.as_str().into(), action: format!("{action:?}") })
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_only_reads_and_agent_cannot_manage_keys() {
        assert!(Role::Viewer.allows(Action::Read));
        assert!(!Role::Viewer.allows(Action::SendMessages));
        assert!(!Role::Viewer.allows(Action::WorkConversations));
        assert!(Role::Agent.allows(Action::WorkConversations));
        assert!(Role::Agent.allows(Action::SendMessages));
        assert!(!Role::Agent.allows(Action::ManageKeys));
        assert!(!Role::Agent.allows(Action::ManageTemplates));
        assert!(!Role::Agent.allows(Action::ManageAgents));
        assert!(!Role::Agent.allows(Action::EraseContacts));
        assert!(Role::Admin.allows(Action::EraseContacts));
        assert!(Role::Admin.allows(Action::ManageKeys));
        assert_eq!(Role::parse("agent"), Ok(Role::Agent));
        assert!(Role::parse("root").is_err());
    }
}
