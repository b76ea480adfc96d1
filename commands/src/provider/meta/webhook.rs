//! The body of Meta's webhook POSTs, parsed leniently: what we need is typed, everything else is kept
//! raw (an inbound message of an unknown type is stored as the provider sent it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A whole notification. Entries and their changes are kept raw and read one by one, so that one
/// malformed part cannot make the others unreadable.
#[derive(Debug, Deserialize)]
pub struct Notification {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Value>,
}

/// Longest provider message id (wamid) accepted; Meta's are about 60 characters.
pub const MAX_PROVIDER_ID: usize = 256;

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

/// `value` of a `messages` change.
#[derive(Debug, Deserialize)]
pub struct MessagesValue {
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<WaContact>,
    /// Kept raw: every type is stored, known or not.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Kept raw and read one by one (see [`Status`]).
    #[serde(default)]
    pub statuses: Vec<Value>,
    /// Errors not tied to a message.
    #[serde(default)]
    pub errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub phone_number_id: String,
}

/// A sender as Meta describes it: the phone number (`wa_id`, absent for a user who hides it) and,
/// from 2026, the business-scoped user id (`user_id`).
#[derive(Debug, Deserialize)]
pub struct WaContact {
    #[serde(default)]
    pub profile: Option<Profile>,
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(deserialize_with = "unix_time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub conversation: Option<ConversationInfo>,
    #[serde(default)]
    pub pricing: Option<PricingInfo>,
    #[serde(default)]
    pub errors: Vec<WireError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConversationInfo {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Origin {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PricingInfo {
    #[serde(default)]
    pub billable: Option<bool>,
    #[serde(default)]
    pub pricing_model: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireError {
    pub code: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<WireErrorData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// `value` of a `message_template_status_update` change.
#[derive(Debug, Deserialize)]
pub struct TemplateStatusUpdate {
    pub event: String,
    pub message_template_name: String,
    pub message_template_language: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The parts of an inbound message we read; the whole object is kept as well.
#[derive(Debug)]
pub struct InboundParts {
    /// The sender's phone number (digits), absent for a user who hides it.
    pub from: Option<String>,
    /// The sender's business-scoped user id (`from_user_id`), when Meta sends it.
    pub from_user_id: Option<String>,
    pub id: String,
    pub timestamp: DateTime<Utc>,
    pub kind: String,
    pub text: Option<String>,
    pub context_id: Option<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl InboundParts {
    /// Reads an inbound message object; `None` when it lacks a sender (phone or user id), an id or a time.
    pub fn of(raw: &Value) -> Option<Self> {
        let kind = str_at(raw, &["type"]).unwrap_or("unknown").to_owned();
        let text = match kind.as_str() {
            "text" => str_at(raw, &["text", "body"]),
            "button" => str_at(raw, &["button", "text"]),
            "interactive" => str_at(raw, &["interactive", "button_reply", "title"])
                .or(str_at(raw, &["interactive", "list_reply", "title"])),
            "reaction" => str_at(raw, &["reaction", "emoji"]),
            "image" | "video" | "document" | "sticker" | "audio" => str_at(raw, &[kind.as_str(), "caption"]),
            _ => None,
        };
        let (from, from_user_id) = (str_at(raw, &["from"]), str_at(raw, &["from_user_id"]));
        from.or(from_user_id)?;
        Some(Self {
            from: from.map(str::to_owned),
            from_user_id: from_user_id.map(str::to_owned),
            id: str_at(raw, &["id"])?.to_owned(),
            timestamp: parse_unix(raw.get("timestamp")?)?,
            text: text.map(str::to_owned),
            context_id: str_at(raw, &["context", "id"]).map(str::to_owned),
            kind,
        })
    }
}

impl Status {
    /// Reads one status object of a notification; the error says what is wrong with it.
    pub fn of(raw: &Value) -> Result<Self, String> {
        let status: Self = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
        if status.id.is_empty() || status.id.len() > MAX_PROVIDER_ID {
            return Err(format!("status id must be 1-{MAX_PROVIDER_ID} bytes"));
        }
        Ok(status)
    }
}

fn parse_unix(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0)
}

/// Meta sends Unix seconds as a string; a number is accepted too.
fn unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let v = Value::deserialize(d)?;
    parse_unix(&v).ok_or_else(|| serde::de::Error::custom("timestamp must be Unix seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inbound_parts_of_each_type() {
        let text = json!({"from":"6281234567890","id":"wamid.A","timestamp":"1750857384","type":"text","text":{"body":"Halo"}});
        let p = InboundParts::of(&text).unwrap();
        assert_eq!((p.kind.as_str(), p.text.as_deref()), ("text", Some("Halo")));
        assert_eq!(p.timestamp.timestamp(), 1_750_857_384);
        let button = json!({"from":"1","id":"w","timestamp":1750857384,"type":"interactive",
                            "interactive":{"type":"button_reply","button_reply":{"id":"y","title":"Yes"}},
                            "context":{"from":"2","id":"wamid.OUT"}});
        let p = InboundParts::of(&button).unwrap();
        assert_eq!((p.text.as_deref(), p.context_id.as_deref()), (Some("Yes"), Some("wamid.OUT")));
        let unknown = json!({"from":"1","id":"w","timestamp":"1","type":"hologram","hologram":{}});
        assert_eq!(InboundParts::of(&unknown).unwrap().kind, "hologram");
        assert!(InboundParts::of(&json!({"id":"w","timestamp":"1"})).is_none());
    }

    #[test]
    fn statuses_parse_with_and_without_pricing() {
        let raw: MessagesValue = serde_json::from_value(json!({
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"106"},
            "statuses":[{"id":"wamid.1","status":"failed","timestamp":"1750857384","recipient_id":"62",
                         "errors":[{"code":131026,"title":"Message undeliverable","error_data":{"details":"x"}}]},
                        {"id":"wamid.2","status":"delivered","timestamp":"1750857384","biz_opaque_callback_data":"m",
                         "conversation":{"id":"c","origin":{"type":"marketing"}},
                         "pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}]}))
        .unwrap();
        let statuses: Vec<Status> = raw.statuses.iter().map(|s| Status::of(s).unwrap()).collect();
        assert_eq!(statuses[0].errors[0].code, 131026);
        assert_eq!(statuses[1].pricing.as_ref().unwrap().category.as_deref(), Some("marketing"));
        assert!(raw.messages.is_empty());
    }

    #[test]
    fn a_status_with_an_oversized_id_or_a_bad_time_is_refused_alone() {
        let long = "w".repeat(MAX_PROVIDER_ID + 1);
        assert!(Status::of(&json!({"id": long, "status": "sent", "timestamp": "1"})).is_err());
        assert!(Status::of(&json!({"id": "w", "status": "sent", "timestamp": "soon"})).is_err());
        assert!(Status::of(&json!({"id": "w", "status": "sent", "timestamp": "8210266873199999999"})).is_err());
        assert!(Status::of(&json!({"id": "w", "status": "sent", "timestamp": 1})).is_ok());
    }
}
