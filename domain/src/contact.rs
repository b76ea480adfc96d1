//! Contact: a person a workspace talks to. One per phone number per workspace (enforced by a
//! uniqueness claim in the write side, not here).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::values::{
    bounded_text, validate_attribute_key, validate_attribute_value, Attributes, PhoneNumber, MAX_ATTRIBUTES,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an opt-out or opt-in came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// An API call by the workspace.
    Api,
    /// An inbound keyword such as STOP.
    Keyword,
    /// The provider reported that the recipient stopped marketing messages (131050).
    Provider,
    /// A bulk import.
    Import,
}

impl ConsentSource {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "api" => Ok(Self::Api),
            "keyword" => Ok(Self::Keyword),
            "provider" => Ok(Self::Provider),
            "import" => Ok(Self::Import),
            other => Err(DomainError::invalid("source", format!("unknown source {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    pub reason: Option<String>,
    pub source: ConsentSource,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub created: bool,
    pub deleted: bool,
    pub phone: Option<PhoneNumber>,
    pub name: Option<String>,
    pub attributes: Attributes,
    pub opted_out: Option<OptOut>,
}

#[derive(Debug, Clone)]
pub enum ContactCommand {
    Create {
        phone: PhoneNumber,
        name: Option<String>,
        attributes: Attributes,
    },
    Update {
        /// `Some(None)` clears the name.
        name: Option<Option<String>>,
        phone: Option<PhoneNumber>,
        /// Attributes to set; a JSON `null` value removes the attribute.
        attributes: Attributes,
    },
    OptOut {
        reason: Option<String>,
        source: ConsentSource,
        at: DateTime<Utc>,
    },
    OptIn {
        reason: Option<String>,
        source: ConsentSource,
        at: DateTime<Utc>,
    },
    Delete {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContactEvent {
    #[serde(rename = "contact.created")]
    Created { phone: PhoneNumber, name: Option<String>, attributes: Attributes },
    #[serde(rename = "contact.renamed")]
    Renamed { name: Option<String> },
    #[serde(rename = "contact.phone_changed")]
    PhoneChanged { phone: PhoneNumber },
    #[serde(rename = "contact.attributes_changed")]
    AttributesChanged { set: Attributes, removed: Vec<String> },
    #[serde(rename = "contact.opted_out")]
    OptedOut { reason: Option<String>, source: ConsentSource, at: DateTime<Utc> },
    #[serde(rename = "contact.opted_in")]
    OptedIn { reason: Option<String>, source: ConsentSource, at: DateTime<Utc> },
    #[serde(rename = "contact.deleted")]
    Deleted { at: DateTime<Utc> },
}

impl Contact {
    /// Whether the contact exists and is not deleted.
    pub fn is_active(&self) -> bool {
        self.created && !self.deleted
    }
    pub fn is_opted_out(&self) -> bool {
        self.opted_out.is_some()
    }
}

fn name(input: Option<String>) -> Result<Option<String>, DomainError> {
    input.map(|n| bounded_text("name", &n, 256)).transpose()
}

fn reason(input: Option<String>) -> Result<Option<String>, DomainError> {
    input.map(|r| bounded_text("reason", &r, 500)).transpose()
}

/// Validates a full attribute map (no removals allowed, as on create).
pub fn validate_attributes(attributes: &Attributes) -> Result<(), DomainError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(DomainError::invalid("attributes", format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for (k, v) in attributes {
        validate_attribute_key(k)?;
        validate_attribute_value(k, v)?;
    }
    Ok(())
}

impl Aggregate for Contact {
    const CATEGORY: &'static str = "contact";
    type Command = ContactCommand;
    type Event = ContactEvent;

    fn decide(&self, command: ContactCommand) -> Result<Vec<ContactEvent>, DomainError> {
        use ContactCommand::*;
        if let Create { phone, name: n, attributes } = command {
            if self.created {
                return Err(DomainError::AlreadyExists("contact"));
            }
            validate_attributes(&attributes)?;
            return Ok(vec![ContactEvent::Created { phone, name: name(n)?, attributes }]);
        }
        if !self.is_active() {
            return Err(DomainError::NotFound("contact"));
        }
        match command {
            Create { .. } => unreachable!("handled above"),
            Update { name: new_name, phone, attributes } => {
                let mut events = vec![];
                if let Some(n) = new_name {
                    let n = name(n)?;
                    if n != self.name {
                        events.push(ContactEvent::Renamed { name: n });
                    }
                }
                if let Some(p) = phone {
                    if Some(&p) != self.phone.as_ref() {
                        events.push(ContactEvent::PhoneChanged { phone: p });
                    }
                }
                let mut set = Attributes::new();
                let mut removed = vec![];
                for (k, v) in attributes {
                    validate_attribute_key(&k)?;
                    if v.is_null() {
                        if self.attributes.contains_key(&k) {
                            removed.push(k);
                        }
                    } else {
                        validate_attribute_value(&k, &v)?;
                        if self.attributes.get(&k) != Some(&v) {
                            set.insert(k, v);
                        }
                    }
                }
                let resulting = self.attributes.len()
                    + set.keys().filter(|k| !self.attributes.contains_key(*k)).count()
                    - removed.len();
                if resulting > MAX_ATTRIBUTES {
                    return Err(DomainError::invalid("attributes", format!("at most {MAX_ATTRIBUTES} attributes")));
                }
                if !set.is_empty() || !removed.is_empty() {
                    events.push(ContactEvent::AttributesChanged { set, removed });
                }
                Ok(events)
            }
            OptOut { reason: r, source, at } => {
                if self.opted_out.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![ContactEvent::OptedOut { reason: reason(r)?, source, at }])
            }
            OptIn { reason: r, source, at } => {
                if self.opted_out.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![ContactEvent::OptedIn { reason: reason(r)?, source, at }])
            }
            Delete { at } => Ok(vec![ContactEvent::Deleted { at }]),
        }
    }

    fn evolve(mut self, event: &ContactEvent) -> Self {
        match event {
            ContactEvent::Created { phone, name, attributes } => {
                self.created = true;
                self.phone = Some(phone.clone());
                self.name = name.clone();
                self.attributes = attributes.clone();
            }
            ContactEvent::Renamed { name } => self.name = name.clone(),
            ContactEvent::PhoneChanged { phone } => self.phone = Some(phone.clone()),
            ContactEvent::AttributesChanged { set, removed } => {
                for k in removed {
                    self.attributes.remove(k);
                }
                self.attributes.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            ContactEvent::OptedOut { reason, source, at } => {
                self.opted_out = Some(OptOut { reason: reason.clone(), source: *source, at: *at })
            }
            ContactEvent::OptedIn { .. } => self.opted_out = None,
            ContactEvent::Deleted { .. } => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_857_384, 0).unwrap()
    }

    fn budi() -> Contact {
        let mut attributes = Attributes::new();
        attributes.insert("city".into(), json!("Bandung"));
        let events = Contact::default()
            .decide(ContactCommand::Create {
                phone: PhoneNumber::parse("+6281234567890").unwrap(),
                name: Some(" Budi ".into()),
                attributes,
            })
            .unwrap();
        Contact::replay(&events)
    }

    #[test]
    fn create_trims_the_name_and_keeps_attributes() {
        let c = budi();
        assert_eq!(c.name.as_deref(), Some("Budi"));
        assert_eq!(c.attributes["city"], json!("Bandung"));
    }

    #[test]
    fn update_emits_only_what_changed_and_null_removes_an_attribute() {
        let c = budi();
        let mut attrs = Attributes::new();
        attrs.insert("city".into(), serde_json::Value::Null);
        attrs.insert("tier".into(), json!(2));
        let events = c
            .decide(ContactCommand::Update { name: Some(Some("Budi".into())), phone: None, attributes: attrs })
            .unwrap();
        let mut set = Attributes::new();
        set.insert("tier".into(), json!(2));
        assert_eq!(events, vec![ContactEvent::AttributesChanged { set, removed: vec!["city".into()] }]);
        let c = c.evolve(&events[0]);
        assert!(!c.attributes.contains_key("city"));
    }

    #[test]
    fn opt_out_and_in_are_idempotent() {
        let c = budi();
        let out = c
            .decide(ContactCommand::OptOut { reason: Some("asked".into()), source: ConsentSource::Api, at: at() })
            .unwrap();
        assert_eq!(out.len(), 1);
        let c = c.evolve(&out[0]);
        assert!(c.is_opted_out());
        assert!(c
            .decide(ContactCommand::OptOut { reason: None, source: ConsentSource::Keyword, at: at() })
            .unwrap()
            .is_empty());
        let back = c.decide(ContactCommand::OptIn { reason: None, source: ConsentSource::Keyword, at: at() }).unwrap();
        let c = c.evolve(&back[0]);
        assert!(!c.is_opted_out());
        assert!(c
            .decide(ContactCommand::OptIn { reason: None, source: ConsentSource::Api, at: at() })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn deleted_contacts_reject_commands() {
        let c = budi();
        let del = c.decide(ContactCommand::Delete { at: at() }).unwrap();
        let c = c.evolve(&del[0]);
        let err = c.decide(ContactCommand::OptOut { reason: None, source: ConsentSource::Api, at: at() }).unwrap_err();
        assert_eq!(err, DomainError::NotFound("contact"));
        assert_eq!(c.decide(ContactCommand::Delete { at: at() }).unwrap_err(), DomainError::NotFound("contact"));
    }

    #[test]
    fn nested_attribute_values_are_rejected() {
        let mut attributes = Attributes::new();
        attributes.insert("x".into(), json!([1, 2]));
        let err = Contact::default()
            .decide(ContactCommand::Create {
                phone: PhoneNumber::parse("+628123456789").unwrap(),
                name: None,
                attributes,
            })
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }
}
