//! The shape shared by all aggregates.

use crate::error::DomainError;

/// An event-sourced aggregate: all business logic lives in `decide`, none in `evolve`.
pub trait Aggregate: Default + Sized {
    /// Stream category, the `<category>` of the stream id `<category>-<uuid>`.
    const CATEGORY: &'static str;
    type Command;
    type Event;

    /// Decides which events a command produces against the current state. An empty vector means the
    /// command is already satisfied (idempotent no-op), not an error.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// Folds one event into the state. Never fails and never validates: events are facts.
    fn evolve(self, event: &Self::Event) -> Self;

    /// Folds a sequence of events from the default state.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

/// The stream id of an aggregate instance: `<category>-<uuid>`.
pub fn stream_id<A: Aggregate>(id: uuid::Uuid) -> String {
    format!("{}-{}", A::CATEGORY, id)
}
