//! Which fields of which events are personal, whose they are, and how one is sealed in a payload.
//!
//! A sealed field holds `{"$pii": "<base64 of nonce ‖ ChaCha20-Poly1305 ciphertext>"}` in place of its
//! value; the plaintext is the value's JSON, and the associated data names the contact, the event type
//! and the field, so a sealed value copied to another field, event type or contact does not open. An
//! erased field reads as its [`Blank`], a value its type accepts (so every reader, the domain's
//! decoder included, goes on working) that says nothing.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde_json::{json, Value};
use uuid::Uuid;

/// The key of a sealed field's one-entry object. Attribute keys cannot start with `$`, so no
/// contact attribute is ever mistaken for it.
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
            Subject::Stream => stream_id.strip_prefix("contact-").and_then(|id| Uuid::try_parse(id).ok()),
            Subject::Field(path) => payload.pointer(path)?.as_str().and_then(|id| Uuid::try_parse(id).ok()),
        }
    }
}

/// The sealed text of a field, if it is sealed.
pub fn sealed_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(SEALED)?.as_str(),
        _ => None,
    }
}

/// A contact's data key.
#[derive(Clone)]
pub struct DataKey(ChaCha20Poly1305);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

fn aad(contact: Uuid, event_type: &str, path: &str) -> Vec<u8> {
    [contact.as_bytes(), event_type.as_bytes(), b"\0", path.as_bytes()].concat()
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(ChaCha20Poly1305::new(Key::from_slice(bytes))))
    }

    /// A fresh random key and its bytes (to be sealed and stored).
    pub fn generate() -> (Self, [u8; 32]) {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        (Self(ChaCha20Poly1305::new(Key::from_slice(&k))), k)
    }

    /// `value` sealed as the field `path` of a `event_type` of `contact`.
    pub fn seal(&self, contact: Uuid, event_type: &str, path: &str, value: &Value) -> Value {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let aad = aad(contact, event_type, path);
        // Encryption of an in-memory buffer cannot fail; an empty ciphertext would read as erased.
        let sealed = self.0.encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad }).unwrap_or_default();
        let text = base64::engine::general_purpose::STANDARD.encode([&nonce[..], &sealed].concat());
        json!({ SEALED: text })
    }

    /// The value sealed in `text`; `None` if it does not open (altered, or sealed for another field).
    pub fn open(&self, contact: Uuid, event_type: &str, path: &str, text: &str) -> Option<Value> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = bytes.split_at(12);
        let aad = aad(contact, event_type, path);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad }).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_field_opens_only_as_the_same_field_of_the_same_contact() {
        let (key, _) = DataKey::generate();
        let (other, _) = DataKey::generate();
        let c = Uuid::now_v7();
        let sealed = key.seal(c, "contact.renamed", "/name", &json!("Budi"));
        let text = sealed_text(&sealed).unwrap();
        assert!(!sealed.to_string().contains("Budi"));
        assert_eq!(key.open(c, "contact.renamed", "/name", text), Some(json!("Budi")));
        assert_eq!(key.open(Uuid::now_v7(), "contact.renamed", "/name", text), None);
        assert_eq!(key.open(c, "contact.created", "/name", text), None);
        assert_eq!(key.open(c, "contact.renamed", "/phone", text), None);
        assert_eq!(other.open(c, "contact.renamed", "/name", text), None);
        assert_eq!(key.open(c, "contact.renamed", "/name", "bm90IGEga2V5"), None);
    }

    #[test]
    fn only_a_one_entry_object_under_the_marker_is_sealed() {
        assert!(sealed_text(&json!({ "$pii": "x" })).is_some());
        assert!(sealed_text(&json!({ "$pii": "x", "b": 1 })).is_none());
        assert!(sealed_text(&json!("x")).is_none());
        assert!(sealed_text(&json!({ "segment": "x" })).is_none());
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
