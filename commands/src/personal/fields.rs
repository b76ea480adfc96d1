//! Which fields of which events are personal, whose they are, and how they are sealed in a payload.
//!
//! A stored payload holds each personal field as its [`Blank`] (a value its type accepts that says
//! nothing) and, beside the event's own fields, one entry
//! `"$pii": {"fields": [<JSON pointers>], "sealed": "<base64 of nonce ‖ ChaCha20-Poly1305 ciphertext>"}`
//! whose plaintext is the JSON array of those fields' values, in order. The associated data names the
//! contact, the event type and the fields, so a sealed entry moved to another event type or contact,
//! or with its list of fields changed, does not open. One seal per event, however many fields; and a
//! reader without the keys (or after erasure) reads the event as erased, never as ciphertext.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde_json::{json, Value};
use uuid::Uuid;

/// The key of a payload's sealed entry. No event has a field of that name.
pub const SEALED: &str = "$pii";

/// What an erased field reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    Null,
    Text,
    Object,
    Array,
    /// A media reference to nothing (`{"id": ""}`).
    Media,
}

impl Blank {
    pub fn value(self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Text => Value::String(String::new()),
            Self::Object => json!({}),
            Self::Array => json!([]),
            Self::Media => json!({ "id": "" }),
        }
    }
}

/// Whose data an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The contact whose stream it is (`contact-<id>`).
    Stream,
    /// The contact named by the payload at this JSON pointer.
    Field(&'static str),
}

/// The personal fields of one event type (JSON pointers into its payload).
#[derive(Debug)]
pub struct Personal {
    pub event_type: &'static str,
    pub subject: Subject,
    pub fields: &'static [(&'static str, Blank)],
}

use Blank::{Array, Media, Null, Object, Text};

/// Every event type with personal fields. Free text a business writes about a contact (notes, canned
/// responses) and the provider's ids are not in it; docs/adr/0003-personal-data.md says why.
pub const PERSONAL: &[Personal] = &[
    Personal {
        event_type: "contact.created",
        subject: Subject::Stream,
        fields: &[("/phone", Null), ("/user_id", Null), ("/name", Null), ("/attributes", Object)],
    },
    Personal { event_type: "contact.user_id_linked", subject: Subject::Stream, fields: &[("/user_id", Null)] },
    Personal { event_type: "contact.renamed", subject: Subject::Stream, fields: &[("/name", Null)] },
    Personal { event_type: "contact.phone_changed", subject: Subject::Stream, fields: &[("/phone", Null)] },
    Personal { event_type: "contact.attributes_changed", subject: Subject::Stream, fields: &[("/set", Object)] },
    Personal { event_type: "contact.opted_out", subject: Subject::Stream, fields: &[("/reason", Null)] },
    Personal { event_type: "contact.opted_in", subject: Subject::Stream, fields: &[("/reason", Null)] },
    Personal {
        event_type: "message.queued",
        subject: Subject::Field("/contact_id"),
        fields: &[
            ("/to", Null),
            ("/user_id", Null),
            ("/content/body", Text),
            ("/content/rendered/body_preview", Text),
            ("/content/rendered/components", Array),
            ("/content/media", Media),
            ("/content/caption", Null),
            ("/content/filename", Null),
            ("/content/header", Null),
            ("/content/footer", Null),
        ],
    },
    Personal {
        event_type: "conversation.inbound_received",
        subject: Subject::Field("/message/contact_id"),
        fields: &[("/message/text", Null), ("/message/raw", Null)],
    },
];

/// The personal fields of `event_type`, if it has any.
pub fn of(event_type: &str) -> Option<&'static Personal> {
    PERSONAL.iter().find(|p| p.event_type == event_type)
}

impl Personal {
    /// The contact an event of this type belongs to.
    pub fn subject(&self, stream_id: &str, payload: &Value) -> Option<Uuid> {
        match self.subject {
            Subject::Stream => contact_of_stream(stream_id),
            Subject::Field(path) => payload.pointer(path)?.as_str().and_then(|id| Uuid::try_parse(id).ok()),
        }
    }
}

/// The contact whose stream `stream_id` is (`contact-<id>`).
pub fn contact_of_stream(stream_id: &str) -> Option<Uuid> {
    stream_id.strip_prefix("contact-").and_then(|id| Uuid::try_parse(id).ok())
}

/// A stored payload's sealed entry: its fields and sealed text, if it has one.
pub fn sealed_entry(payload: &Value) -> Option<(Vec<String>, &str)> {
    let entry = payload.get(SEALED)?;
    let fields =
        entry.get("fields")?.as_array()?.iter().map(|f| f.as_str().map(str::to_owned)).collect::<Option<_>>()?;
    Some((fields, entry.get("sealed")?.as_str()?))
}

/// A contact's data key.
#[derive(Clone)]
pub struct DataKey(ChaCha20Poly1305);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

fn aad<S: AsRef<str>>(contact: Uuid, event_type: &str, fields: &[S]) -> Vec<u8> {
    let mut aad = [contact.as_bytes(), event_type.as_bytes()].concat();
    for f in fields {
        aad.push(0);
        aad.extend_from_slice(f.as_ref().as_bytes());
    }
    aad
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(ChaCha20Poly1305::new(Key::from_slice(bytes))))
    }

    /// A fresh random key and its bytes (as contacts got before the key tree, ADR 0009: tests).
    #[cfg(test)]
    pub fn generate() -> (Self, [u8; 32]) {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        (Self(ChaCha20Poly1305::new(Key::from_slice(&k))), k)
    }

    /// The sealed entry of `values`, the fields `fields` of a `event_type` of `contact`.
    pub fn seal(&self, contact: Uuid, event_type: &str, fields: &[&str], values: &[Value]) -> Value {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(values).unwrap_or_default();
        let aad = aad(contact, event_type, fields);
        // Encryption of an in-memory buffer cannot fail; an empty ciphertext would read as erased.
        let sealed = self.0.encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad }).unwrap_or_default();
        let text = base64::engine::general_purpose::STANDARD.encode([&nonce[..], &sealed].concat());
        json!({ "fields": fields, "sealed": text })
    }

    /// The values sealed in `text` for `fields`; `None` if it does not open (altered, or sealed for
    /// another contact, event type or list of fields).
    pub fn open(&self, contact: Uuid, event_type: &str, fields: &[String], text: &str) -> Option<Vec<Value>> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = bytes.split_at(12);
        let aad = aad(contact, event_type, fields);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad }).ok()?;
        let values: Vec<Value> = serde_json::from_slice(&plain).ok()?;
        (values.len() == fields.len()).then_some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_entry_opens_only_for_the_same_contact_type_and_fields() {
        let (key, _) = DataKey::generate();
        let (other, _) = DataKey::generate();
        let c = Uuid::now_v7();
        let fields = ["/name", "/phone"];
        let values = [json!("Budi"), json!("+6281234567890")];
        let payload = json!({ "at": 1, SEALED: key.seal(c, "contact.created", &fields, &values) });
        assert!(!payload.to_string().contains("Budi"));
        let (listed, text) = sealed_entry(&payload).unwrap();
        assert_eq!(listed, fields);
        assert_eq!(key.open(c, "contact.created", &listed, text), Some(values.to_vec()));
        assert_eq!(key.open(Uuid::now_v7(), "contact.created", &listed, text), None);
        assert_eq!(key.open(c, "contact.renamed", &listed, text), None);
        assert_eq!(key.open(c, "contact.created", &listed[..1], text), None);
        assert_eq!(other.open(c, "contact.created", &listed, text), None);
        assert_eq!(key.open(c, "contact.created", &listed, "bm90IGEga2V5"), None);
        assert!(sealed_entry(&json!({ "name": "x" })).is_none());
        assert!(sealed_entry(&json!({ SEALED: "x" })).is_none());
    }

    #[test]
    fn subjects_come_from_the_stream_or_the_payload() {
        let c = Uuid::now_v7();
        let created = of("contact.created").unwrap();
        assert_eq!(created.subject(&format!("contact-{c}"), &json!({})), Some(c));
        let queued = of("message.queued").unwrap();
        assert_eq!(queued.subject("message-x", &json!({ "contact_id": c })), Some(c));
        let inbound = of("conversation.inbound_received").unwrap();
        assert_eq!(inbound.subject("conversation-x", &json!({ "message": { "contact_id": c } })), Some(c));
        assert_eq!(inbound.subject("conversation-x", &json!({})), None);
        assert!(of("message.sent").is_none());
    }
}
