//! Workspace: a tenant, its settings and its API keys (roles only; key secrets never enter the domain).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::{AgentId, ApiKeyId};
use crate::role::{Action, Role};
use crate::values::{bounded_text, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default inbound keywords that opt a contact out (matched case- and whitespace-insensitively).
pub const DEFAULT_OPT_OUT_KEYWORDS: [&str; 3] = ["STOP", "BERHENTI", "UNSUBSCRIBE"];
/// Default inbound keywords that opt a contact back in.
pub const DEFAULT_OPT_IN_KEYWORDS: [&str; 1] = ["START"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub name: String,
    pub role: Role,
    pub revoked: bool,
    /// The agent the key acts as.
    pub agent_id: Option<AgentId>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Workspace {
    pub created: bool,
    pub name: String,
    pub timezone: Option<TimeZone>,
    pub keys: BTreeMap<ApiKeyId, ApiKeyInfo>,
    pub opt_out_keywords: Vec<String>,
    pub opt_in_keywords: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum WorkspaceCommand {
    Create {
        name: String,
        timezone: Option<String>,
        owner_key: ApiKeyId,
        owner_key_name: String,
    },
    /// `agent_id`: the agent the key acts as; the caller has checked it exists and that `role` is
    /// the agent's.
    IssueApiKey {
        key_id: ApiKeyId,
        name: String,
        role: Role,
        by: Role,
        agent_id: Option<AgentId>,
    },
    RevokeApiKey {
        key_id: ApiKeyId,
        by: Role,
    },
    UpdateSettings {
        by: Role,
        name: Option<String>,
        timezone: Option<String>,
        opt_out_keywords: Option<Vec<String>>,
        opt_in_keywords: Option<Vec<String>>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum WorkspaceEvent {
        #[serde(rename = "workspace.created")]
        Created { name: String, timezone: TimeZone },
        #[serde(rename = "workspace.api_key_issued")]
        ApiKeyIssued {
            key_id: ApiKeyId,
            name: String,
            role: Role,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            agent_id: Option<AgentId>,
        },
        #[serde(rename = "workspace.api_key_revoked")]
        ApiKeyRevoked { key_id: ApiKeyId },
        #[serde(rename = "workspace.settings_updated")]
        SettingsUpdated {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            timezone: Option<TimeZone>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            opt_out_keywords: Option<Vec<String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            opt_in_keywords: Option<Vec<String>>,
        },
    }
}

impl Workspace {
    fn active_owner_keys(&self) -> usize {
        self.keys.values().filter(|k| k.role == Role::Owner && !k.revoked).count()
    }

    /// Whether `text` (an inbound message) is an opt-out keyword of this workspace.
    pub fn is_opt_out_keyword(&self, text: &str) -> bool {
        keyword_matches(&self.opt_out_keywords, text)
    }

    /// Whether `text` (an inbound message) is an opt-in keyword of this workspace.
    pub fn is_opt_in_keyword(&self, text: &str) -> bool {
        keyword_matches(&self.opt_in_keywords, text)
    }
}

fn normalise_keyword(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase()
}

fn keyword_matches(list: &[String], text: &str) -> bool {
    let t = normalise_keyword(text);
    !t.is_empty() && list.contains(&t)
}

fn keywords(field: &str, list: Vec<String>) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for k in list {
        let n = normalise_keyword(&k);
        if n.is_empty() || n.chars().count() > 32 {
            return Err(DomainError::invalid(field, "keywords are 1-32 characters"));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.len() > 50 {
        return Err(DomainError::invalid(field, "at most 50 keywords"));
    }
    Ok(out)
}

fn key_name(name: &str) -> Result<String, DomainError> {
    bounded_text("name", name, 100)
}

impl Aggregate for Workspace {
    const CATEGORY: &'static str = "workspace";
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;

    fn decide(&self, command: WorkspaceCommand) -> Result<Vec<WorkspaceEvent>, DomainError> {
        use WorkspaceCommand::*;
        if !self.created && !matches!(command, Create { .. }) {
            return Err(DomainError::NotFound("workspace"));
        }
        match command {
            Create { name, timezone, owner_key, owner_key_name } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("workspace"));
                }
                let timezone = match timezone {
                    Some(tz) => TimeZone::parse(&tz)?,
                    None => TimeZone::utc(),
                };
                Ok(vec![
                    WorkspaceEvent::Created { name: bounded_text("name", &name, 200)?, timezone },
                    WorkspaceEvent::ApiKeyIssued {
                        key_id: owner_key,
                        name: key_name(&owner_key_name)?,
                        role: Role::Owner,
                        agent_id: None,
                    },
                ])
            }
            IssueApiKey { key_id, name, role, by, agent_id } => {
                by.require(Action::ManageKeys)?;
                if role == Role::Owner && by != Role::Owner {
                    return Err(DomainError::Forbidden { role: by.as_str().into(), action: "issue owner keys".into() });
                }
                if self.keys.contains_key(&key_id) {
                    return Err(DomainError::AlreadyExists("api key"));
                }
                Ok(vec![WorkspaceEvent::ApiKeyIssued { key_id, name: key_name(&name)?, role, agent_id }])
            }
            RevokeApiKey { key_id, by } => {
                by.require(Action::ManageKeys)?;
                let key = self.keys.get(&key_id).ok_or(DomainError::NotFound("api key"))?;
                if key.revoked {
                    return Ok(vec![]);
                }
                if key.role == Role::Owner {
                    if by != Role::Owner {
                        return Err(DomainError::Forbidden {
                            role: by.as_str().into(),
                            action: "revoke owner keys".into(),
                        });
                    }
                    if self.active_owner_keys() == 1 {
                        return Err(DomainError::LastOwnerKey);
                    }
                }
                Ok(vec![WorkspaceEvent::ApiKeyRevoked { key_id }])
            }
            UpdateSettings { by, name, timezone, opt_out_keywords, opt_in_keywords } => {
                by.require(Action::ManageWorkspace)?;
                let name = name.map(|n| bounded_text("name", &n, 200)).transpose()?.filter(|n| *n != self.name);
                let timezone =
                    timezone.map(|t| TimeZone::parse(&t)).transpose()?.filter(|t| Some(t) != self.timezone.as_ref());
                let opt_out_keywords = opt_out_keywords
                    .map(|k| keywords("opt_out_keywords", k))
                    .transpose()?
                    .filter(|k| *k != self.opt_out_keywords);
                let opt_in_keywords = opt_in_keywords
                    .map(|k| keywords("opt_in_keywords", k))
                    .transpose()?
                    .filter(|k| *k != self.opt_in_keywords);
                if name.is_none() && timezone.is_none() && opt_out_keywords.is_none() && opt_in_keywords.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![WorkspaceEvent::SettingsUpdated { name, timezone, opt_out_keywords, opt_in_keywords }])
            }
        }
    }

    fn evolve(mut self, event: &WorkspaceEvent) -> Self {
        match event {
            WorkspaceEvent::Created { name, timezone } => {
                self.created = true;
                self.name = name.clone();
                self.timezone = Some(timezone.clone());
                self.opt_out_keywords = DEFAULT_OPT_OUT_KEYWORDS.iter().map(|s| s.to_string()).collect();
                self.opt_in_keywords = DEFAULT_OPT_IN_KEYWORDS.iter().map(|s| s.to_string()).collect();
            }
            WorkspaceEvent::ApiKeyIssued { key_id, name, role, agent_id } => {
                self.keys.insert(
                    *key_id,
                    ApiKeyInfo { name: name.clone(), role: *role, revoked: false, agent_id: *agent_id },
                );
            }
            WorkspaceEvent::ApiKeyRevoked { key_id } => {
                if let Some(k) = self.keys.get_mut(key_id) {
                    k.revoked = true;
                }
            }
            WorkspaceEvent::SettingsUpdated { name, timezone, opt_out_keywords, opt_in_keywords } => {
                if let Some(n) = name {
                    self.name = n.clone();
                }
                if let Some(t) = timezone {
                    self.timezone = Some(t.clone());
                }
                if let Some(k) = opt_out_keywords {
                    self.opt_out_keywords = k.clone();
                }
                if let Some(k) = opt_in_keywords {
                    self.opt_in_keywords = k.clone();
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

    fn key(n: u128) -> ApiKeyId {
        ApiKeyId::from_uuid(Uuid::from_u128(n))
    }

    fn created() -> Workspace {
        let events = Workspace::default()
            .decide(WorkspaceCommand::Create {
                name: "Toko Budi".into(),
                timezone: Some("Asia/Jakarta".into()),
                owner_key: key(1),
                owner_key_name: "first owner".into(),
            })
            .unwrap();
        Workspace::replay(&events)
    }

    #[test]
    fn create_issues_the_first_owner_key() {
        let ws = created();
        assert_eq!(ws.keys[&key(1)].role, Role::Owner);
        assert_eq!(ws.timezone.unwrap().as_str(), "Asia/Jakarta");
    }

    #[test]
    fn create_twice_is_rejected() {
        let err = created()
            .decide(WorkspaceCommand::Create {
                name: "x".into(),
                timezone: None,
                owner_key: key(9),
                owner_key_name: "k".into(),
            })
            .unwrap_err();
        assert_eq!(err, DomainError::AlreadyExists("workspace"));
    }

    #[test]
    fn admin_cannot_issue_owner_keys_but_owner_can() {
        let ws = created();
        let cmd = |by| WorkspaceCommand::IssueApiKey {
            key_id: key(2),
            name: "ops".into(),
            role: Role::Owner,
            by,
            agent_id: None,
        };
        assert_eq!(ws.decide(cmd(Role::Admin)).unwrap_err().code(), "forbidden");
        assert_eq!(ws.decide(cmd(Role::Owner)).unwrap().len(), 1);
        let agent = WorkspaceCommand::IssueApiKey {
            key_id: key(3),
            name: "a".into(),
            role: Role::Viewer,
            by: Role::Agent,
            agent_id: None,
        };
        assert_eq!(ws.decide(agent).unwrap_err().code(), "forbidden");
    }

    #[test]
    fn last_owner_key_cannot_be_revoked_and_revoking_twice_is_a_no_op() {
        let ws = created();
        assert_eq!(
            ws.decide(WorkspaceCommand::RevokeApiKey { key_id: key(1), by: Role::Owner }),
            Err(DomainError::LastOwnerKey)
        );
        let ws = ws.evolve(&WorkspaceEvent::ApiKeyIssued {
            key_id: key(2),
            name: "agent".into(),
            role: Role::Agent,
            agent_id: None,
        });
        let events = ws.decide(WorkspaceCommand::RevokeApiKey { key_id: key(2), by: Role::Admin }).unwrap();
        assert_eq!(events, vec![WorkspaceEvent::ApiKeyRevoked { key_id: key(2) }]);
        let ws = ws.evolve(&events[0]);
        assert!(ws.decide(WorkspaceCommand::RevokeApiKey { key_id: key(2), by: Role::Admin }).unwrap().is_empty());
        assert_eq!(
            ws.decide(WorkspaceCommand::RevokeApiKey { key_id: key(77), by: Role::Admin }),
            Err(DomainError::NotFound("api key"))
        );
    }

    #[test]
    fn opt_out_keywords_match_case_and_whitespace_insensitively_and_are_configurable() {
        let ws = created();
        assert!(ws.is_opt_out_keyword("  stop "));
        assert!(ws.is_opt_out_keyword("Berhenti"));
        assert!(!ws.is_opt_out_keyword("please stop"));
        assert!(ws.is_opt_in_keyword("start"));
        let events = ws
            .decide(WorkspaceCommand::UpdateSettings {
                by: Role::Admin,
                name: None,
                timezone: None,
                opt_out_keywords: Some(vec!["stop  promo".into()]),
                opt_in_keywords: None,
            })
            .unwrap();
        let ws = ws.evolve(&events[0]);
        assert!(ws.is_opt_out_keyword("STOP PROMO"));
        assert!(!ws.is_opt_out_keyword("stop"));
    }

    #[test]
    fn unchanged_settings_produce_no_event() {
        let ws = created();
        let events = ws
            .decide(WorkspaceCommand::UpdateSettings {
                by: Role::Owner,
                name: Some("Toko Budi".into()),
                timezone: Some("Asia/Jakarta".into()),
                opt_out_keywords: None,
                opt_in_keywords: None,
            })
            .unwrap();
        assert!(events.is_empty());
    }
}
