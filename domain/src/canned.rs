//! CannedResponse: a workspace's short code for a text agents reply with (`/thanks` → "Thank you,
//! {{contact.name}}!"). Fields: `{{contact.name}}`, `{{contact.phone}}`, `{{contact.<attribute>}}`
//! and `{{agent.name}}`, filled in when the reply is sent ([`render`]). The short code is unique in
//! its workspace (a claim on the write side).

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::values::{attribute_text, bounded_text, Attributes};
use serde::{Deserialize, Serialize};

/// The longest text of a canned response (a WhatsApp text body is at most 4096 characters).
pub const MAX_TEXT_CHARS: usize = 4096;

/// A short code as stored: lowercase, 1–32 letters, digits, `-` or `_`.
pub fn short_code(input: &str) -> Result<String, DomainError> {
    let c = bounded_text("short_code", input.trim().trim_start_matches('/'), 32)?.to_lowercase();
    if c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_')) {
        Ok(c)
    } else {
        Err(DomainError::invalid("short_code", "letters, digits, '-' and '_' only"))
    }
}

/// The fields of the `{{contact.…}}` and `{{agent.…}}` placeholders.
fn field_names(text: &str) -> Result<Vec<String>, DomainError> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| DomainError::invalid("text", "an unclosed {{"))?;
        let name = after[..end].trim();
        let known = match name.split_once('.') {
            Some(("contact", f)) => {
                !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }
            Some(("agent", "name")) => true,
            _ => false,
        };
        if !known {
            return Err(DomainError::invalid(
                "text",
                format!("{{{{{name}}}}}: use {{{{contact.name}}}}, {{{{contact.phone}}}}, {{{{contact.<attribute>}}}} or {{{{agent.name}}}}"),
            ));
        }
        out.push(name.to_owned());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// What a reply's placeholders are filled from.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub contact_name: Option<&'a str>,
    /// `None` for a contact known only by BSUID.
    pub contact_phone: Option<&'a str>,
    pub attributes: &'a Attributes,
    pub agent_name: Option<&'a str>,
}

/// The text with every placeholder filled; a field without a value is
/// [`DomainError::MissingVariable`] (the reply is not sent half-filled).
pub fn render(text: &str, fields: &Fields<'_>) -> Result<String, DomainError> {
    let mut out = text.to_owned();
    for name in field_names(text)? {
        let value = match name.as_str() {
            "contact.name" => fields.contact_name.map(str::to_owned),
            "contact.phone" => fields.contact_phone.map(str::to_owned),
            "agent.name" => fields.agent_name.map(str::to_owned),
            other => other.strip_prefix("contact.").and_then(|k| fields.attributes.get(k)).and_then(attribute_text),
        };
        let value = value.ok_or_else(|| DomainError::MissingVariable(name.clone()))?;
        // Replaces every spelling of the placeholder (with or without inner spaces) at once.
        out = replace_placeholder(&out, &name, &value);
    }
    Ok(out)
}

fn replace_placeholder(text: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if after[..end].trim() == name => {
                out.push_str(&rest[..start]);
                out.push_str(value);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CannedResponse {
    pub created: bool,
    pub deleted: bool,
    pub short_code: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub enum CannedCommand {
    Create { short_code: String, text: String },
    Update { text: String },
    Delete,
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum CannedEvent {
        #[serde(rename = "canned_response.created")]
        Created { short_code: String, text: String },
        #[serde(rename = "canned_response.updated")]
        Updated { text: String },
        #[serde(rename = "canned_response.deleted")]
        Deleted,
    }
}

fn text(input: &str) -> Result<String, DomainError> {
    let t = bounded_text("text", input, MAX_TEXT_CHARS)?;
    field_names(&t)?;
    Ok(t)
}

impl Aggregate for CannedResponse {
    const CATEGORY: &'static str = "canned_response";
    type Command = CannedCommand;
    type Event = CannedEvent;

    fn decide(&self, command: CannedCommand) -> Result<Vec<CannedEvent>, DomainError> {
        match command {
            CannedCommand::Create { short_code: code, text: t } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("canned response"));
                }
                Ok(vec![CannedEvent::Created { short_code: short_code(&code)?, text: text(&t)? }])
            }
            _ if !self.created || self.deleted => Err(DomainError::NotFound("canned response")),
            CannedCommand::Update { text: t } => {
                let t = text(&t)?;
                Ok(if t == self.text { vec![] } else { vec![CannedEvent::Updated { text: t }] })
            }
            CannedCommand::Delete => Ok(vec![CannedEvent::Deleted]),
        }
    }

    fn evolve(mut self, event: &CannedEvent) -> Self {
        match event {
            CannedEvent::Created { short_code, text } => {
                self.created = true;
                self.short_code = short_code.clone();
                self.text = text.clone();
            }
            CannedEvent::Updated { text } => self.text = text.clone(),
            CannedEvent::Deleted => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_from_the_contact_and_the_agent_or_the_reply_is_refused() {
        let attributes: Attributes = [("order_id".to_owned(), json!(1042)), ("city".to_owned(), json!("Solo"))].into();
        let fields = Fields {
            contact_name: Some("Budi"),
            contact_phone: Some("+6281234567890"),
            attributes: &attributes,
            agent_name: Some("Sari"),
        };
        let text = "Hi {{contact.name}}, order {{ contact.order_id }} ({{contact.order_id}}) ships to {{contact.city}}. — {{agent.name}}";
        assert_eq!(render(text, &fields).unwrap(), "Hi Budi, order 1042 (1042) ships to Solo. — Sari");
        assert_eq!(render("{{contact.phone}}", &fields).unwrap(), "+6281234567890");
        let nameless = Fields { contact_name: None, ..fields };
        assert_eq!(render("Hi {{contact.name}}", &nameless), Err(DomainError::MissingVariable("contact.name".into())));
        assert!(matches!(render("{{contact.tier}}", &fields), Err(DomainError::MissingVariable(_))));
        assert_eq!(render("no fields {{", &fields).map_err(|e| e.code()), Err("validation_failed"));
    }

    #[test]
    fn short_codes_are_normalised_and_texts_checked_at_creation() {
        let create = |code: &str, text: &str| {
            CannedResponse::default().decide(CannedCommand::Create { short_code: code.into(), text: text.into() })
        };
        assert_eq!(
            create(" /Thanks ", "Thank you {{contact.name}}").unwrap(),
            vec![CannedEvent::Created { short_code: "thanks".into(), text: "Thank you {{contact.name}}".into() }]
        );
        assert!(create("two words", "x").is_err());
        assert!(create("ok", "{{order.total}}").is_err(), "an unknown placeholder");
        assert!(create("ok", "").is_err());
        assert!(create("ok", &"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        let c = CannedResponse::replay(&create("ok", "Fine").unwrap());
        assert!(c.decide(CannedCommand::Update { text: "Fine".into() }).unwrap().is_empty());
        let gone = c.decide(CannedCommand::Delete).unwrap().iter().fold(c, CannedResponse::evolve);
        assert!(gone.decide(CannedCommand::Update { text: "x".into() }).is_err());
    }
}
