//! The validated parts of a template.

use crate::error::DomainError;
use crate::values::bounded_text;
use serde::{Deserialize, Serialize};

/// A template name as Meta accepts it: 1–512 characters of lowercase letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TemplateName(String);

impl TemplateName {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let ok = !input.is_empty()
            && input.len() <= 512
            && input.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(DomainError::invalid("name", "1-512 characters of lowercase letters, digits and _"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TemplateName {
    type Error = DomainError;
    fn try_from(v: String) -> Result<Self, DomainError> {
        Self::parse(&v)
    }
}
impl From<TemplateName> for String {
    fn from(v: TemplateName) -> Self {
        v.0
    }
}

/// A template language code such as `en`, `id` or `pt_BR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

impl Language {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let (lang, region) = match input.split_once('_') {
            Some((l, r)) => (l, Some(r)),
            None => (input, None),
        };
        let lang_ok = (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_lowercase());
        let region_ok = region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()));
        if lang_ok && region_ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(DomainError::invalid("language", format!("{input:?} is not a language code like en, id or pt_BR")))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Language {
    type Error = DomainError;
    fn try_from(v: String) -> Result<Self, DomainError> {
        Self::parse(&v)
    }
}
impl From<Language> for String {
    fn from(v: Language) -> Self {
        v.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

impl Category {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_uppercase().as_str() {
            "MARKETING" => Ok(Self::Marketing),
            "UTILITY" => Ok(Self::Utility),
            "AUTHENTICATION" => Ok(Self::Authentication),
            _ => Err(DomainError::invalid("category", "MARKETING, UTILITY or AUTHENTICATION")),
        }
    }
}

/// Review status as Meta reports it; statuses we do not know are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ReviewStatus {
    #[default]
    Pending,
    Approved,
    Rejected,
    Flagged,
    Paused,
    Disabled,
    InAppeal,
    Reinstated,
    Other(String),
}

impl ReviewStatus {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" => Self::Pending,
            "APPROVED" => Self::Approved,
            "REJECTED" => Self::Rejected,
            "FLAGGED" => Self::Flagged,
            "PAUSED" => Self::Paused,
            "DISABLED" => Self::Disabled,
            "IN_APPEAL" => Self::InAppeal,
            "REINSTATED" => Self::Reinstated,
            other => Self::Other(other.to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Flagged => "FLAGGED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
            Self::InAppeal => "IN_APPEAL",
            Self::Reinstated => "REINSTATED",
            Self::Other(s) => s,
        }
    }
    /// Approved, flagged (quality warning, still usable) and reinstated templates can be sent.
    pub fn is_sendable(&self) -> bool {
        matches!(self, Self::Approved | Self::Flagged | Self::Reinstated)
    }
}

impl From<String> for ReviewStatus {
    fn from(v: String) -> Self {
        Self::parse(&v)
    }
}
impl From<ReviewStatus> for String {
    fn from(v: ReviewStatus) -> Self {
        v.as_str().to_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderFormat {
    Text,
    Image,
    Video,
    Document,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Button {
    QuickReply { text: String },
    Url { text: String, url: String },
    PhoneNumber { text: String, phone_number: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Component {
    Header {
        format: HeaderFormat,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    Body {
        text: String,
    },
    Footer {
        text: String,
    },
    Buttons {
        buttons: Vec<Button>,
    },
}

/// Checks the component list against WhatsApp's structure and length limits.
pub fn validate_components(components: &[Component]) -> Result<(), DomainError> {
    let count = |pred: fn(&Component) -> bool| components.iter().filter(|c| pred(c)).count();
    if count(|c| matches!(c, Component::Body { .. })) != 1 {
        return Err(DomainError::invalid("components", "exactly one BODY component is required"));
    }
    for (kind, n) in [
        ("HEADER", count(|c| matches!(c, Component::Header { .. }))),
        ("FOOTER", count(|c| matches!(c, Component::Footer { .. }))),
        ("BUTTONS", count(|c| matches!(c, Component::Buttons { .. }))),
    ] {
        if n > 1 {
            return Err(DomainError::invalid("components", format!("at most one {kind} component")));
        }
    }
    for c in components {
        match c {
            Component::Header { format: HeaderFormat::Text, text } => {
                bounded_text("components.header.text", text.as_deref().unwrap_or(""), 60)?;
            }
            Component::Header { text: Some(_), .. } => {
                return Err(DomainError::invalid("components.header.text", "only TEXT headers have text"));
            }
            Component::Header { .. } => {}
            Component::Body { text } => {
                bounded_text("components.body.text", text, 1024)?;
            }
            Component::Footer { text } => {
                bounded_text("components.footer.text", text, 60)?;
            }
            Component::Buttons { buttons } => {
                if buttons.is_empty() || buttons.len() > 10 {
                    return Err(DomainError::invalid("components.buttons", "1 to 10 buttons"));
                }
                for b in buttons {
                    let (Button::QuickReply { text } | Button::Url { text, .. } | Button::PhoneNumber { text, .. }) = b;
                    bounded_text("components.buttons.text", text, 25)?;
                    if let Button::Url { url, .. } = b {
                        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
                            return Err(DomainError::invalid("components.buttons.url", "an http(s) URL"));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_languages_and_categories_are_validated() {
        assert!(TemplateName::parse("promo_oct_2").is_ok());
        assert!(TemplateName::parse("Promo").is_err());
        assert!(Language::parse("pt_BR").is_ok());
        assert!(Language::parse("id").is_ok());
        assert!(Language::parse("english").is_err());
        assert_eq!(Category::parse("marketing"), Ok(Category::Marketing));
    }

    #[test]
    fn a_body_is_required_and_limits_hold() {
        assert!(validate_components(&[Component::Footer { text: "x".into() }]).is_err());
        assert!(validate_components(&[Component::Body { text: "x".repeat(1025) }]).is_err());
        let too_long_button = Component::Buttons { buttons: vec![Button::QuickReply { text: "x".repeat(26) }] };
        assert!(validate_components(&[Component::Body { text: "x".into() }, too_long_button]).is_err());
        assert!(validate_components(&[
            Component::Header { format: HeaderFormat::Image, text: None },
            Component::Body { text: "x".into() }
        ])
        .is_ok());
    }

    #[test]
    fn unknown_review_statuses_are_kept() {
        assert_eq!(ReviewStatus::parse("approved"), ReviewStatus::Approved);
        assert_eq!(ReviewStatus::parse("LIMIT_EXCEEDED").as_str(), "LIMIT_EXCEEDED");
        assert!(!ReviewStatus::Paused.is_sendable());
    }
}
