//! The shape shared by all aggregates.

use crate::error::DomainError;
use uuid::Uuid;

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

/// A stream's id, `<category>-<uuid>`: made for an aggregate instance, or read back from the text the
/// store keeps (claims' owners, recorded events, a history URL). The one place that text is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamId {
    category: std::borrow::Cow<'static, str>,
    id: Uuid,
}

impl StreamId {
    pub fn of<A: Aggregate>(id: Uuid) -> Self {
        Self { category: std::borrow::Cow::Borrowed(A::CATEGORY), id }
    }

    /// `None` unless `text` is a category (not empty, without `-`) and a UUID joined by `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let (category, id) = text.split_once('-')?;
        let id = Uuid::try_parse(id).ok().filter(|_| !category.is_empty())?;
        Some(Self { category: std::borrow::Cow::Owned(category.to_owned()), id })
    }

    pub fn category(&self) -> &str {
        &self.category
    }

    /// The aggregate's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.category, self.id)
    }
}

/// The stream id of an aggregate instance as the store keeps it: `<category>-<uuid>`.
pub fn stream_id<A: Aggregate>(id: Uuid) -> String {
    StreamId::of::<A>(id).to_string()
}

/// The aggregate id in a stored stream id (a claim's owner, say); `None` for other text.
pub fn id_of(stream: &str) -> Option<Uuid> {
    StreamId::parse(stream).map(|s| s.id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;

    #[test]
    fn stream_ids_are_written_and_read_back_in_one_place() {
        let id = Uuid::from_u128(7);
        let s = StreamId::of::<Contact>(id);
        assert_eq!(s.to_string(), format!("contact-{id}"));
        assert_eq!(StreamId::parse(&s.to_string()), Some(s.clone()));
        let canned = StreamId::parse(&format!("canned_response-{id}")).unwrap();
        assert_eq!((canned.category(), canned.id()), ("canned_response", id));
        for bad in ["", "contact", "contact-", "-0000", "contact-nope", &format!("-{id}"), &format!("contact-{id}-x")] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(id_of(&stream_id::<Contact>(id)), Some(id));
    }
}
