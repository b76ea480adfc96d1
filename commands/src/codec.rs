//! The stored form of domain events: `(event_type, schema_version, JSON payload)`.
//!
//! Old payloads are lifted to the current schema by [`Upcaster`]s, one per (type, version) step, before
//! they are deserialised, so the domain only ever sees current events.

use crate::store::{NewEvent, RecordedEvent};
use blazz_domain::event::schema_version_of;
use blazz_domain::DomainEvent;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("no upcaster from {event_type} v{version}")]
    MissingUpcaster { event_type: String, version: i32 },
    #[error("stored {event_type} v{version} is newer than this code understands")]
    FromTheFuture { event_type: String, version: i32 },
    #[error("cannot read {event_type}: {source}")]
    Payload { event_type: String, source: serde_json::Error },
}

/// Lifts one event type's payload from `from_version` to `from_version + 1`.
pub trait Upcaster: Send + Sync {
    fn event_type(&self) -> &str;
    fn source_version(&self) -> i32;
    fn upcast(&self, payload: Value) -> Result<Value, CodecError>;
}

/// Encodes domain events and decodes stored ones, applying upcasters.
#[derive(Clone)]
pub struct Codec {
    upcasters: Vec<Arc<dyn Upcaster>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("upcasters", &self.upcasters.len()).finish()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// A codec with every upcaster of this code's event history.
    pub fn new() -> Self {
        Self { upcasters: vec![Arc::new(AssignedV1)] }
    }

    pub fn with_upcaster(mut self, upcaster: Arc<dyn Upcaster>) -> Self {
        self.upcasters.push(upcaster);
        self
    }

    /// The stored form of `event`, with a fresh event id.
    pub fn encode(&self, event: &DomainEvent) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version() as i32,
            payload: payload_of(event),
        }
    }

    /// Decodes a stored event into the current domain event.
    pub fn decode(&self, stored: &RecordedEvent) -> Result<DomainEvent, CodecError> {
        self.decode_parts(&stored.event_type, stored.schema_version, stored.payload.clone())
    }

    pub fn decode_parts(&self, event_type: &str, version: i32, mut payload: Value) -> Result<DomainEvent, CodecError> {
        let current = schema_version_of(event_type).ok_or_else(|| CodecError::UnknownType(event_type.into()))? as i32;
        if version > current {
            return Err(CodecError::FromTheFuture { event_type: event_type.into(), version });
        }
        let mut v = version;
        while v < current {
            let up = self
                .upcasters
                .iter()
                .find(|u| u.event_type() == event_type && u.source_version() == v)
                .ok_or_else(|| CodecError::MissingUpcaster { event_type: event_type.into(), version: v })?;
            payload = up.upcast(payload)?;
            v += 1;
        }
        if let Value::Object(map) = &mut payload {
            map.insert("type".into(), Value::String(event_type.into()));
        }
        let err = |source| CodecError::Payload { event_type: event_type.into(), source };
        let category = event_type.split_once('.').map(|(c, _)| c).unwrap_or_default();
        Ok(match category {
            "workspace" => DomainEvent::Workspace(serde_json::from_value(payload).map_err(err)?),
            "channel" => DomainEvent::Channel(serde_json::from_value(payload).map_err(err)?),
            "contact" => DomainEvent::Contact(serde_json::from_value(payload).map_err(err)?),
            "group" => DomainEvent::Group(serde_json::from_value(payload).map_err(err)?),
            "template" => DomainEvent::Template(serde_json::from_value(payload).map_err(err)?),
            "message" => DomainEvent::Message(serde_json::from_value(payload).map_err(err)?),
            "conversation" => DomainEvent::Conversation(serde_json::from_value(payload).map_err(err)?),
            "campaign" => DomainEvent::Campaign(serde_json::from_value(payload).map_err(err)?),
            "agent" => DomainEvent::Agent(serde_json::from_value(payload).map_err(err)?),
            "team" => DomainEvent::Team(serde_json::from_value(payload).map_err(err)?),
            "canned_response" => DomainEvent::Canned(serde_json::from_value(payload).map_err(err)?),
            "webhook_endpoint" => DomainEvent::Endpoint(serde_json::from_value(payload).map_err(err)?),
            "automation_rule" => DomainEvent::Rule(serde_json::from_value(payload).map_err(err)?),
            _ => return Err(CodecError::UnknownType(event_type.into())),
        })
    }
}

/// The payload: the event's fields without the `type` tag (the type has its own column).
fn payload_of(event: &DomainEvent) -> Value {
    let value = match event {
        DomainEvent::Workspace(e) => serde_json::to_value(e),
        DomainEvent::Channel(e) => serde_json::to_value(e),
        DomainEvent::Contact(e) => serde_json::to_value(e),
        DomainEvent::Group(e) => serde_json::to_value(e),
        DomainEvent::Template(e) => serde_json::to_value(e),
        DomainEvent::Message(e) => serde_json::to_value(e),
        DomainEvent::Conversation(e) => serde_json::to_value(e),
        DomainEvent::Campaign(e) => serde_json::to_value(e),
        DomainEvent::Agent(e) => serde_json::to_value(e),
        DomainEvent::Team(e) => serde_json::to_value(e),
        DomainEvent::Canned(e) => serde_json::to_value(e),
        DomainEvent::Endpoint(e) => serde_json::to_value(e),
        DomainEvent::Rule(e) => serde_json::to_value(e),
    };
    // Serialising plain data types into a JSON value cannot fail (no maps with non-string keys).
    let mut value = value.unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("type");
    }
    value
}

/// `conversation.assigned` v1 named a free-text `assignee`; v2 names an agent and a team. An
/// assignee that is an agent's id keeps it; any other text cannot name an agent and reads as none.
struct AssignedV1;

impl Upcaster for AssignedV1 {
    fn event_type(&self) -> &str {
        "conversation.assigned"
    }
    fn source_version(&self) -> i32 {
        1
    }
    fn upcast(&self, payload: Value) -> Result<Value, CodecError> {
        let agent = payload.get("assignee").and_then(Value::as_str).and_then(|a| Uuid::try_parse(a).ok());
        Ok(serde_json::json!({ "agent_id": agent, "team_id": null, "reason": "manual" }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blazz_domain::contact::ContactEvent;
    use blazz_domain::values::PhoneNumber;
    use blazz_domain::workspace::WorkspaceEvent;

    fn stored(new: &NewEvent) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            transaction_id: 1,
            stream_id: "contact-x".into(),
            stream_version: 1,
            event_id: new.event_id,
            event_type: new.event_type.clone(),
            schema_version: new.schema_version,
            workspace_id: Uuid::nil(),
            payload: new.payload.clone(),
            metadata: crate::store::EventMetadata {
                correlation_id: Uuid::nil(),
                causation_id: None,
                actor: "t".into(),
                request_id: None,
                agent_id: None,
            },
            recorded_at: chrono::Utc::now(),
            hash: None,
            erased: vec![],
        }
    }

    #[test]
    fn events_round_trip_with_the_type_name_outside_the_payload() {
        let codec = Codec::new();
        let event = DomainEvent::Contact(ContactEvent::Created {
            phone: Some(PhoneNumber::parse("+6281234567890").unwrap()),
            user_id: None,
            name: Some("Budi".into()),
            attributes: Default::default(),
        });
        let new = codec.encode(&event);
        assert_eq!(new.event_type, "contact.created");
        assert_eq!(new.schema_version, 1);
        assert!(new.payload.get("type").is_none());
        assert_eq!(codec.decode(&stored(&new)).unwrap(), event);
    }

    #[test]
    fn a_v1_assignment_reads_as_an_agent_when_it_names_one() {
        use blazz_domain::conversation::{AssignReason, ConversationEvent};
        let id = Uuid::now_v7();
        let codec = Codec::new();
        let read = |assignee: Value| {
            codec.decode_parts("conversation.assigned", 1, serde_json::json!({ "assignee": assignee }))
        };
        let assigned = |agent_id: Option<Uuid>| {
            DomainEvent::Conversation(ConversationEvent::Assigned {
                agent_id: agent_id.map(Into::into),
                team_id: None,
                reason: AssignReason::Manual,
            })
        };
        assert_eq!(read(Value::String(id.to_string())).unwrap(), assigned(Some(id)));
        assert_eq!(read(Value::String("agent-7".into())).unwrap(), assigned(None));
        assert_eq!(read(Value::Null).unwrap(), assigned(None));
    }

    struct RenameV0;
    impl Upcaster for RenameV0 {
        fn event_type(&self) -> &str {
            "workspace.api_key_revoked"
        }
        fn source_version(&self) -> i32 {
            0
        }
        fn upcast(&self, mut payload: Value) -> Result<Value, CodecError> {
            let id = payload.as_object_mut().and_then(|m| m.remove("key")).unwrap_or(Value::Null);
            Ok(serde_json::json!({ "key_id": id }))
        }
    }

    #[test]
    fn old_versions_are_upcast_and_missing_upcasters_are_reported() {
        let id = Uuid::now_v7();
        let old = serde_json::json!({ "key": id });
        let err = Codec::new().decode_parts("workspace.api_key_revoked", 0, old.clone()).unwrap_err();
        assert!(matches!(err, CodecError::MissingUpcaster { .. }));
        let codec = Codec::new().with_upcaster(Arc::new(RenameV0));
        let event = codec.decode_parts("workspace.api_key_revoked", 0, old).unwrap();
        assert_eq!(event, DomainEvent::Workspace(WorkspaceEvent::ApiKeyRevoked { key_id: id.into() }));
        assert!(matches!(
            codec.decode_parts("workspace.api_key_revoked", 2, serde_json::json!({})),
            Err(CodecError::FromTheFuture { .. })
        ));
        assert!(matches!(
            codec.decode_parts("martian.landed", 1, serde_json::json!({})),
            Err(CodecError::UnknownType(_))
        ));
    }
}
