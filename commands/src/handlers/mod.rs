//! Command handlers, one file per aggregate. Each public method of [`crate::Commands`] is one command.

pub mod agent;
pub mod automation;
pub mod campaign;
pub mod canned;
pub mod channel;
pub mod contact;
pub mod conversation;
pub mod endpoint;
pub mod group;
pub mod import;
pub mod message;
pub mod template;
pub mod webhook;
pub mod workspace;

use blazz_domain::role::{Action, Role};
use blazz_domain::DomainError;

pub(crate) fn require(role: Role, action: Action) -> Result<(), DomainError> {
    role.require(action)
}

/// The events of `stream` within events sorted by (stream, version).
pub(crate) fn of_stream<'a>(
    events: &'a [crate::store::RecordedEvent],
    stream: &str,
) -> &'a [crate::store::RecordedEvent] {
    let start = events.partition_point(|e| e.stream_id.as_str() < stream);
    let end = events.partition_point(|e| e.stream_id.as_str() <= stream);
    &events[start..end]
}
