//! One stored sample of every event type (tests/fixtures/events.jsonl) read through the codec and
//! written back: each decodes to the type it is stored as and encodes to the same payload, and the
//! samples cover exactly the types the domain declares. A new event type without a sample, or a
//! payload change that would misread stored events, fails here.

use blazz_commands::codec::Codec;
use blazz_domain::event::schema_version_of;
use blazz_domain::DomainEvent;
use serde_json::Value;
use std::collections::BTreeSet;

const SAMPLES: &str = include_str!("fixtures/events.jsonl");

#[test]
fn every_event_type_round_trips_through_the_codec() {
    let codec = Codec::new();
    let mut sampled = BTreeSet::new();
    for (n, line) in SAMPLES.lines().enumerate() {
        let sample: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let (event_type, version, payload) =
            (sample["type"].as_str().unwrap(), sample["version"].as_i64().unwrap() as i32, &sample["payload"]);
        assert!(sampled.insert(event_type.to_owned()), "{event_type} sampled twice");
        assert_eq!(
            schema_version_of(event_type),
            Some(version as u32),
            "{event_type}: samples are of the current version"
        );
        let event = codec
            .decode_parts(event_type, version, payload.clone())
            .unwrap_or_else(|e| panic!("{event_type} does not decode: {e}"));
        assert_eq!(event.event_type(), event_type);
        let stored = codec.encode(&event);
        assert_eq!((stored.event_type.as_str(), stored.schema_version), (event_type, version));
        assert_eq!(&stored.payload, payload, "{event_type} encodes to another payload");
    }
    let declared: Vec<&str> = DomainEvent::types().collect();
    let unique: BTreeSet<&str> = declared.iter().copied().collect();
    assert_eq!(unique.len(), declared.len(), "a type name declared twice: {declared:?}");
    let missing: Vec<&&str> = unique.iter().filter(|t| !sampled.contains(**t)).collect();
    assert!(missing.is_empty(), "event types without a sample in fixtures/events.jsonl: {missing:?}");
    assert_eq!(sampled.len(), unique.len(), "samples of types the domain does not declare");
}

#[test]
fn type_names_are_category_dot_verb_and_unknown_ones_have_no_version() {
    for t in DomainEvent::types() {
        let (category, verb) = t.split_once('.').unwrap_or_else(|| panic!("{t}"));
        assert!(!category.is_empty() && !verb.is_empty() && !verb.contains('.'), "{t}");
        assert!(t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'), "{t}");
    }
    assert_eq!(schema_version_of("contact.exploded"), None);
    assert_eq!(schema_version_of("contact"), None);
}
