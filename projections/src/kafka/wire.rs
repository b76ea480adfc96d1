//! The JSON form of the messages on the topics. It is this module's alone, so neither the log's
//! tables nor the domain freeze around it.

use crate::delta::Delta;
use blazz_commands::store::{EventMetadata, LogCursor, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A message of the events topic: one event of the log, with the relay epoch it was published in and
/// the log cursor of the event the relay published before it to the same partition in that epoch
/// (`None`: the epoch's first). The chain lets a consumer see that a message is missing before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub epoch: i64,
    #[serde(default)]
    pub prev: Option<LogCursor>,
    pub position: i64,
    pub transaction_id: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub workspace_id: Uuid,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl EventMessage {
    pub fn new(epoch: i64, prev: Option<LogCursor>, e: &RecordedEvent) -> Self {
        Self {
            epoch,
            prev,
            position: e.position,
            transaction_id: e.transaction_id,
            stream_id: e.stream_id.clone(),
            stream_version: e.stream_version,
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            workspace_id: e.workspace_id,
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
            recorded_at: e.recorded_at,
        }
    }

    /// The epoch, the predecessor and the event.
    pub fn into_record(self) -> (i64, Option<LogCursor>, RecordedEvent) {
        let record = RecordedEvent {
            position: self.position,
            transaction_id: self.transaction_id,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            workspace_id: self.workspace_id,
            payload: self.payload,
            metadata: self.metadata,
            recorded_at: self.recorded_at,
            hash: None,
            erased: vec![],
        };
        (self.epoch, self.prev, record)
    }
}

/// A message of the deltas topic: a [`Delta`] as live clients receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaMessage {
    pub kind: String,
    pub op: String,
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub position: i64,
    pub delta_id: String,
    pub changed: serde_json::Value,
    /// The publishing process (its own gateway delivered the delta already and skips it here).
    #[serde(default)]
    pub origin: Option<Uuid>,
}

impl DeltaMessage {
    pub fn new(d: &Delta, origin: Uuid) -> Self {
        Self {
            origin: Some(origin),
            kind: d.kind.to_string(),
            op: d.op.to_string(),
            id: d.id,
            workspace_id: d.workspace_id,
            position: d.position,
            delta_id: d.delta_id.clone(),
            changed: d.changed.clone(),
        }
    }

    /// The delta (`None` if its id is not a delta id).
    pub fn into_delta(self) -> Option<Delta> {
        let key = Delta::parse_id(&self.delta_id)?;
        Some(Delta {
            kind: self.kind.into(),
            op: self.op.into(),
            id: self.id,
            workspace_id: self.workspace_id,
            position: self.position,
            delta_id: self.delta_id,
            changed: self.changed,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_wire_unchanged() {
        let e = RecordedEvent {
            position: 42,
            transaction_id: u64::MAX - 1,
            stream_id: format!("contact-{}", Uuid::new_v4()),
            stream_version: 3,
            event_id: Uuid::new_v4(),
            event_type: "contact.created".into(),
            schema_version: 1,
            workspace_id: Uuid::new_v4(),
            payload: serde_json::json!({"phone": "+6281234567890"}),
            metadata: EventMetadata {
                correlation_id: Uuid::new_v4(),
                causation_id: Some(Uuid::new_v4()),
                actor: "api_key:k".into(),
                request_id: Some("r1".into()),
                agent_id: None,
            },
            recorded_at: Utc::now(),
            hash: None,
            erased: vec![],
        };
        let prev = Some(LogCursor { transaction_id: 9, position: 41 });
        let bytes = serde_json::to_vec(&EventMessage::new(7, prev, &e)).expect("encode");
        let back: EventMessage = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back.into_record(), (7, prev, e));
    }
}
