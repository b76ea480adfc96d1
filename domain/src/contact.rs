//! Contact: a person a workspace talks to, known by a phone number, a WhatsApp business-scoped user
//! id (BSUID, for users who hide their number) or both. One per phone number and one per BSUID per
//! workspace (enforced by uniqueness claims in the write side, not here).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::values::{
    bounded_text, validate_attribute_key, validate_attribute_value, Attributes, Bsuid, Destination, PhoneNumber,
    MAX_ATTRIBUTES,
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

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    pub created: bool,
    pub deleted: bool,
    /// Erased (`contact.erased`): its personal data is gone for good; it is deleted as well.
    #[serde(default)]
    pub erased: bool,
    pub phone: Option<PhoneNumber>,
    /// The WhatsApp business-scoped user id, once known.
    pub user_id: Option<Bsuid>,
    pub name: Option<String>,
    pub attributes: Attributes,
    pub opted_out: Option<OptOut>,
    pub labels: crate::label::Labels,
}

#[derive(Debug, Clone)]
pub enum ContactCommand {
    /// At least one of phone and user id.
    Create {
        phone: Option<PhoneNumber>,
        user_id: Option<Bsuid>,
        name: Option<String>,
        attributes: Attributes,
    },
    /// The contact's BSUID, learnt from a webhook (nothing happens when it is already known).
    LinkUserId {
        user_id: Bsuid,
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
    /// Erases the contact's personal data (deleted or not); nothing happens when it already is.
    Erase {
        at: DateTime<Utc>,
    },
    /// Adds and removes labels (a label in both is removed).
    Label {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ContactEvent {
        #[serde(rename = "contact.created")]
        Created {
            /// Absent for a user known only by BSUID.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            phone: Option<PhoneNumber>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            user_id: Option<Bsuid>,
            name: Option<String>,
            attributes: Attributes,
        },
        /// `user_id` reads as `null` once the contact is erased.
        #[serde(rename = "contact.user_id_linked")]
        UserIdLinked { user_id: Option<Bsuid> },
        #[serde(rename = "contact.renamed")]
        Renamed { name: Option<String> },
        /// `phone` reads as `null` once the contact is erased.
        #[serde(rename = "contact.phone_changed")]
        PhoneChanged { phone: Option<PhoneNumber> },
        #[serde(rename = "contact.attributes_changed")]
        AttributesChanged { set: Attributes, removed: Vec<String> },
        #[serde(rename = "contact.opted_out")]
        OptedOut { reason: Option<String>, source: ConsentSource, at: DateTime<Utc> },
        #[serde(rename = "contact.opted_in")]
        OptedIn { reason: Option<String>, source: ConsentSource, at: DateTime<Utc> },
        #[serde(rename = "contact.deleted")]
        Deleted { at: DateTime<Utc> },
        #[serde(rename = "contact.labels_changed")]
        LabelsChanged { added: Vec<String>, removed: Vec<String> },
        /// The contact's data key was destroyed: its personal fields read as erased everywhere.
        #[serde(rename = "contact.erased")]
        Erased { at: DateTime<Utc> },
    }
}

impl Contact {
    /// Whether the contact exists and is not deleted.
    pub fn is_active(&self) -> bool {
        self.created && !self.deleted
    }
    pub fn is_opted_out(&self) -> bool {
        self.opted_out.is_some()
    }

    /// Where messages to the contact go: the phone number when known, else the BSUID.
    pub fn destination(&self) -> Option<Destination> {
        match (&self.phone, &self.user_id) {
            (Some(p), _) => Some(Destination::Phone(p.clone())),
            (None, Some(u)) => Some(Destination::User(u.clone())),
            (None, None) => None,
        }
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
        if let Create { phone, user_id, name: n, attributes } = command {
            if self.created {
                return Err(DomainError::AlreadyExists("contact"));
            }
            if phone.is_none() && user_id.is_none() {
                return Err(DomainError::invalid("phone", "a contact needs a phone number or a user id"));
            }
            validate_attributes(&attributes)?;
            return Ok(vec![ContactEvent::Created { phone, user_id, name: name(n)?, attributes }]);
        }
        if let Erase { at } = command {
            return match (self.created, self.erased) {
                (false, _) => Err(DomainError::NotFound("contact")),
                (true, true) => Ok(vec![]),
                (true, false) => Ok(vec![ContactEvent::Erased { at }]),
            };
        }
        if !self.is_active() {
            return Err(DomainError::NotFound("contact"));
        }
        match command {
            Create { .. } | Erase { .. } => unreachable!("handled above"),
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
                        events.push(ContactEvent::PhoneChanged { phone: Some(p) });
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
            LinkUserId { user_id } => Ok(if self.user_id.is_some() {
                vec![]
            } else {
                vec![ContactEvent::UserIdLinked { user_id: Some(user_id) }]
            }),
            Label { add, remove } => {
                let (added, removed) = crate::label::change(&self.labels, &add, &remove, "contact")?;
                Ok(if added.is_empty() && removed.is_empty() {
                    vec![]
                } else {
                    vec![ContactEvent::LabelsChanged { added, removed }]
                })
            }
        }
    }

    fn evolve(mut self, event: &ContactEvent) -> Self {
        match event {
            ContactEvent::Created { phone, user_id, name, attributes } => {
                self.created = true;
                self.phone = phone.clone();
                self.user_id = user_id.clone();
                self.name = name.clone();
                self.attributes = attributes.clone();
            }
            ContactEvent::Renamed { name } => self.name = name.clone(),
            ContactEvent::PhoneChanged { phone } => self.phone = phone.clone(),
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
            ContactEvent::Erased { .. } => {
                self = Contact { created: true, deleted: true, erased: true, ..Contact::default() };
            }
            ContactEvent::UserIdLinked { user_id } => self.user_id = user_id.clone(),
            ContactEvent::LabelsChanged { added, removed } => crate::label::apply(&mut self.labels, added, removed),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_contact_is_known_by_phone_by_user_id_or_both_and_messages_prefer_the_phone() {
        let user = Bsuid::parse("US.13491208655302741918").unwrap();
        let create = |phone: Option<&str>, user_id: Option<Bsuid>| {
            Contact::default().decide(ContactCommand::Create {
                phone: phone.map(|p| PhoneNumber::parse(p).unwrap()),
                user_id,
                name: None,
                attributes: Default::default(),
            })
        };
        assert!(create(None, None).is_err(), "one of them");
        let by_user = Contact::replay(&create(None, Some(user.clone())).unwrap());
        assert_eq!(by_user.destination(), Some(Destination::User(user.clone())));
        let by_phone = Contact::replay(&create(Some("+6281234567890"), None).unwrap());
        // Learning the BSUID of a phone contact: once; the phone stays where messages go.
        let linked = by_phone.decide(ContactCommand::LinkUserId { user_id: user.clone() }).unwrap();
        assert_eq!(linked, vec![ContactEvent::UserIdLinked { user_id: Some(user.clone()) }]);
        let both = linked.iter().fold(by_phone, Contact::evolve);
        assert!(both.decide(ContactCommand::LinkUserId { user_id: user.clone() }).unwrap().is_empty());
        assert!(matches!(both.destination(), Some(Destination::Phone(_))));
        // A stored contact.created of before BSUIDs (phone only) still reads.
        let old: ContactEvent = serde_json::from_value(
            json!({"type": "contact.created", "phone": "+6281234567890", "name": null, "attributes": {}}),
        )
        .unwrap();
        assert!(matches!(old, ContactEvent::Created { phone: Some(_), user_id: None, .. }));
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_857_384, 0).unwrap()
    }

    fn budi() -> Contact {
        let mut attributes = Attributes::new();
        attributes.insert("city".into(), json!("Bandung"));
        let events = Contact::default()
            .decide(ContactCommand::Create {
                phone: Some(PhoneNumber::parse("+6281234567890").unwrap()),
                user_id: None,
                name: Some(" Budi ".into()),
                attributes,
            })
            .unwrap();
        Contact::replay(&events)
    }

    #[test]
    fn erasure_blanks_the_contact_once_deleted_or_not_and_stops_every_other_command() {
        let deleted = budi().evolve(&ContactEvent::Deleted { at: at() });
        for c in [budi(), deleted] {
            let events = c.decide(ContactCommand::Erase { at: at() }).unwrap();
            assert_eq!(events, vec![ContactEvent::Erased { at: at() }]);
            let erased = events.iter().fold(c, Contact::evolve);
            assert!(erased.erased && erased.deleted && erased.created);
            assert_eq!((erased.phone.clone(), erased.name.clone()), (None, None));
            assert!(erased.attributes.is_empty());
            assert!(erased.decide(ContactCommand::Erase { at: at() }).unwrap().is_empty(), "once");
            let rename =
                ContactCommand::Update { name: Some(Some("X".into())), phone: None, attributes: Attributes::new() };
            assert_eq!(erased.decide(rename), Err(DomainError::NotFound("contact")));
        }
        assert_eq!(
            Contact::default().decide(ContactCommand::Erase { at: at() }),
            Err(DomainError::NotFound("contact"))
        );
        // An erased phone change (its phone sealed and gone) reads as no phone.
        let e: ContactEvent = serde_json::from_value(json!({"type": "contact.phone_changed", "phone": null})).unwrap();
        assert_eq!(e, ContactEvent::PhoneChanged { phone: None });
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
    fn labels_change_once_and_a_deleted_contact_takes_none() {
        let c = budi();
        let label = |c: &Contact, add: &[&str], remove: &[&str]| {
            c.decide(ContactCommand::Label {
                add: add.iter().map(|s| s.to_string()).collect(),
                remove: remove.iter().map(|s| s.to_string()).collect(),
            })
        };
        let e = label(&c, &["VIP", "Jakarta"], &[]).unwrap();
        assert_eq!(
            e,
            vec![ContactEvent::LabelsChanged { added: vec!["jakarta".into(), "vip".into()], removed: vec![] }]
        );
        let c = e.iter().fold(c, Contact::evolve);
        assert!(label(&c, &["vip"], &[]).unwrap().is_empty(), "already there");
        let c = label(&c, &[], &["jakarta"]).unwrap().iter().fold(c, Contact::evolve);
        assert_eq!(c.labels.iter().collect::<Vec<_>>(), ["vip"]);
        let deleted = c.decide(ContactCommand::Delete { at: at() }).unwrap().iter().fold(c, Contact::evolve);
        assert_eq!(label(&deleted, &["x"], &[]).unwrap_err(), DomainError::NotFound("contact"));
    }

    #[test]
    fn nested_attribute_values_are_rejected() {
        let mut attributes = Attributes::new();
        attributes.insert("x".into(), json!([1, 2]));
        let err = Contact::default()
            .decide(ContactCommand::Create {
                phone: Some(PhoneNumber::parse("+628123456789").unwrap()),
                user_id: None,
                name: None,
                attributes,
            })
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }
}
