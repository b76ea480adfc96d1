//! The hashes that chain the log (migration 0025 and docs/adr/0008-tamper-evidence.md).
//!
//! - An event's **content digest**: SHA-256 of the canonical JSON of
//!   `{event_id, event_type, metadata, payload, schema_version, stream_id, workspace_id}`.
//! - Its **link** (`hash`): SHA-256 of the stream predecessor's link (32 zero bytes at version 1),
//!   the content digest, then stream version, position and recording time (µs since 1970), each as
//!   8 bytes big-endian. PostgreSQL computes it at insert (trigger `events_chain`); [`link`] is the
//!   same computation for the verifier and the sealer of older events.
//! - A scope's **head** (a workspace, or the whole log): [`fold`] of its events' links in log order.
//!
//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
//! `serde_json` escapes them, numbers as `serde_json` prints them, except that -0.0 is written 0.0
//! (PostgreSQL's `jsonb` has no negative zero, so a digest made before storing must equal one made
//! after reading back). `scripts/verify-audit-export.py` implements the same independently.

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub type Hash = [u8; 32];

/// The link of version 1's predecessor, and every head's start.
pub const ZERO: Hash = [0; 32];

/// What an event's content digest covers.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub metadata: &'a Value,
    pub payload: &'a Value,
    pub schema_version: i32,
    pub stream_id: &'a str,
    pub workspace_id: Uuid,
}

/// Where an event stands: what its link covers besides the content digest.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub stream_version: i64,
    pub position: i64,
    pub recorded_at_micros: i64,
}

pub fn content_digest(c: &Content<'_>) -> Hash {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"event_id":""#);
    out.extend_from_slice(c.event_id.hyphenated().to_string().as_bytes());
    out.extend_from_slice(br#"","event_type":"#);
    canonical_string(c.event_type, &mut out);
    out.extend_from_slice(br#","metadata":"#);
    canonical(c.metadata, &mut out);
    out.extend_from_slice(br#","payload":"#);
    canonical(c.payload, &mut out);
    out.extend_from_slice(br#","schema_version":"#);
    out.extend_from_slice(c.schema_version.to_string().as_bytes());
    out.extend_from_slice(br#","stream_id":"#);
    canonical_string(c.stream_id, &mut out);
    out.extend_from_slice(br#","workspace_id":""#);
    out.extend_from_slice(c.workspace_id.hyphenated().to_string().as_bytes());
    out.extend_from_slice(br#""}"#);
    Sha256::digest(&out).into()
}

pub fn link(previous: &Hash, digest: &Hash, place: Place) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(digest);
    h.update(place.stream_version.to_be_bytes());
    h.update(place.position.to_be_bytes());
    h.update(place.recorded_at_micros.to_be_bytes());
    h.finalize().into()
}

/// The next head of a scope after one more event.
pub fn fold(head: &Hash, event_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(head);
    h.update(event_hash);
    h.finalize().into()
}

/// An event row as the sealer and the verifier read it: what its digest and link cover, and the
/// stored digest and link. Select it with [`STORED_COLUMNS`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub position: i64,
    /// The writing transaction's id, as text.
    pub xid_text: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub workspace_id: Uuid,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub content_digest: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
}

/// The columns of [`StoredEvent`] (the transaction id goes out under another name so that
/// `ORDER BY transaction_id` keeps meaning the xid8 column).
pub const STORED_COLUMNS: &str = "position, transaction_id::text AS xid_text, stream_id, stream_version, event_id, \
     event_type, schema_version, workspace_id, payload, metadata, recorded_at, content_digest, hash";

impl StoredEvent {
    pub fn content(&self) -> Content<'_> {
        Content {
            event_id: self.event_id,
            event_type: &self.event_type,
            metadata: &self.metadata,
            payload: &self.payload,
            schema_version: self.schema_version,
            stream_id: &self.stream_id,
            workspace_id: self.workspace_id,
        }
    }

    pub fn place(&self) -> Place {
        Place {
            stream_version: self.stream_version,
            position: self.position,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
        }
    }
}

/// A stored hash column as a [`Hash`] (`None` when absent or not 32 bytes long).
pub fn hash_of(bytes: Option<&[u8]>) -> Option<Hash> {
    bytes.and_then(|b| b.try_into().ok())
}

/// Appends the canonical JSON of `v` to `out`.
pub fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f == 0.0 => out.extend_from_slice(b"0.0"),
            // Written as serde_json writes it (an export's number reads back as the same literal).
            _ => {
                let _ = serde_json::to_writer(&mut *out, n);
            }
        },
        Value::String(s) => canonical_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_string(k, out);
                out.push(b':');
                canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

fn canonical_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping of a string cannot fail on a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &Value) -> String {
        let mut out = vec![];
        canonical(v, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x\"\n\u{1f}é", "aa": -0.0, "c": 1.5e300});
        assert_eq!(text(&v), r#"{"a":"x\"\n\u001fé","aa":0.0,"b":[1,{"a":true,"z":null}],"c":1.5e+300}"#);
    }

    #[test]
    fn a_number_reads_back_from_jsonb_as_it_was_written() {
        // jsonb prints 1e300 as 1 followed by 300 zeros and 1000.0 as 1000.0; serde_json reads both
        // back to the same f64, which prints as before.
        let expanded: Value = serde_json::from_str(&format!("1{}", "0".repeat(300))).unwrap_or_default();
        assert_eq!(text(&expanded), text(&json!(1e300)));
        let kept: Value = serde_json::from_str("1000.0").unwrap_or_default();
        assert_eq!(text(&kept), text(&json!(1000.0)));
    }

    #[test]
    fn the_link_covers_every_part() {
        let place = Place { stream_version: 2, position: 10, recorded_at_micros: 5 };
        let base = link(&ZERO, &[1; 32], place);
        assert_ne!(base, link(&[9; 32], &[1; 32], place));
        assert_ne!(base, link(&ZERO, &[2; 32], place));
        assert_ne!(base, link(&ZERO, &[1; 32], Place { stream_version: 3, ..place }));
        assert_ne!(base, link(&ZERO, &[1; 32], Place { position: 11, ..place }));
        assert_ne!(base, link(&ZERO, &[1; 32], Place { recorded_at_micros: 6, ..place }));
    }
}
