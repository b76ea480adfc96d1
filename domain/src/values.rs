//! Validated values used by several aggregates. Each has a private inner field and a `parse`
//! constructor, so a value of the type is always valid.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A phone number in E.164 form, stored with its leading `+` (e.g. `+6281234567890`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Normalises and validates an international number. Accepts `+62 812-3456-7890`,
    /// `(+62) 812 3456 7890`, `0062812...` and bare digits as WhatsApp sends them (`6281234567890`).
    /// A national number with a trunk `0` has no country code and is rejected.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        let mut digits = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.char_indices() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 || trimmed[..i].chars().all(|p| p == '(') => {}
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => return Err(Self::error(input, "may contain only digits, spaces, -, ., ( ) and a leading +")),
            }
        }
        let digits = digits.strip_prefix("00").map(str::to_owned).unwrap_or(digits);
        if digits.starts_with('0') {
            return Err(Self::error(input, "has no country code (starts with 0)"));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(Self::error(input, "must have 8 to 15 digits including the country code"));
        }
        Ok(Self(format!("+{digits}")))
    }

    fn error(input: &str, why: &str) -> DomainError {
        DomainError::invalid("phone", format!("{input:?} is not an E.164 phone number: it {why}"))
    }

    /// `+6281234567890`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as WhatsApp's `to` and `wa_id` use them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

/// A WhatsApp business-scoped user id (BSUID), as Meta sends it for a user who may hide their phone
/// number: a two-letter country code, a period, and up to 128 letters and digits
/// (`US.13491208655302741918`), or a parent BSUID with `ENT.` after the country (`US.ENT.118…`).
/// Kept exactly as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bsuid(String);

impl Bsuid {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let valid = input.split_once('.').is_some_and(|(country, rest)| {
            let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
            country.len() == 2
                && country.bytes().all(|b| b.is_ascii_uppercase())
                && (1..=128).contains(&rest.len())
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(DomainError::invalid(
                "user_id",
                format!("{input:?} is not a business-scoped user id (like US.13491208655302741918)"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Bsuid {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<Bsuid> for String {
    fn from(b: Bsuid) -> String {
        b.0
    }
}

impl fmt::Display for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a message goes: a phone number, or (for a user known only by it) a BSUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Phone(PhoneNumber),
    User(Bsuid),
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

/// Why `text` cannot be stored, if it cannot: PostgreSQL's `text` and `jsonb` refuse the NUL character
/// (JSON's `\u0000`), and a refused value would fail the write it travels in. Every other Unicode scalar
/// value is storable (JSON's lone surrogates never reach a Rust string).
pub fn unstorable(text: &str) -> Option<&'static str> {
    text.contains('\0').then_some("must not contain the NUL character (\\u0000)")
}

/// Checks that `text` can be stored (see [`unstorable`]), naming `field` if not.
pub fn storable(field: &str, text: &str) -> Result<(), DomainError> {
    match unstorable(text) {
        Some(why) => Err(DomainError::invalid(field, why)),
        None => Ok(()),
    }
}

/// The path (`a.b[2].c`, below `path`) of the first string or object key in `value` that cannot be
/// stored, if any. Used on whole request bodies, webhook parts and encoded event payloads.
pub fn first_unstorable(path: &str, value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => unstorable(s).map(|_| path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| first_unstorable(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let shown = scrubbed(k);
            let here = if path.is_empty() { shown } else { format!("{path}.{shown}") };
            if unstorable(k).is_some() {
                return Some(here);
            }
            first_unstorable(&here, v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// `text` with every NUL replaced by U+FFFD, for keeping hostile input where it is only shown
/// (exception records, logs), never decided on.
pub fn scrubbed(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// [`scrubbed`] for every string and key of a JSON value.
pub fn scrub_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(scrubbed(s)),
        Value::Array(items) => Value::Array(items.iter().map(scrub_json).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (scrubbed(k), scrub_json(v))).collect()),
        other => other.clone(),
    }
}

/// Checks a whole JSON value (see [`first_unstorable`]); the error names the offending field.
pub fn storable_json(path: &str, value: &serde_json::Value) -> Result<(), DomainError> {
    match first_unstorable(path, value) {
        Some(field) => {
            let field = if field.is_empty() { "body".to_owned() } else { field };
            Err(DomainError::invalid(field, "must not contain the NUL character (\\u0000)"))
        }
        None => Ok(()),
    }
}

/// Trims `input` and checks it is non-empty, at most `max` characters and storable.
pub fn bounded_text(field: &str, input: &str, max: usize) -> Result<String, DomainError> {
    storable(field, input)?;
    let t = input.trim();
    if t.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(DomainError::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(t.to_owned())
}

/// A contact's free-form attributes: string keys to scalar JSON values (string, number, boolean).
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// Most attributes one contact may carry.
pub const MAX_ATTRIBUTES: usize = 100;

/// Validates an attribute key: 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_attribute_key(key: &str) -> Result<(), DomainError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!("attributes.{key}"), "keys are 1-64 characters of letters, digits, _ . -"))
    }
}

/// Validates an attribute value: a string (at most 1,024 characters), a number or a boolean.
pub fn validate_attribute_value(key: &str, value: &serde_json::Value) -> Result<(), DomainError> {
    use serde_json::Value;
    match value {
        Value::String(s) if unstorable(s).is_some() => storable(&format!("attributes.{key}"), s),
        Value::String(s) if s.chars().count() <= 1024 => Ok(()),
        Value::String(_) => Err(DomainError::invalid(format!("attributes.{key}"), "at most 1024 characters")),
        Value::Number(_) | Value::Bool(_) => Ok(()),
        _ => Err(DomainError::invalid(format!("attributes.{key}"), "must be a string, number or boolean")),
    }
}

/// Renders a scalar attribute as template text.
pub fn attribute_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An IANA time zone name such as `Asia/Jakarta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(String);

impl TimeZone {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        input
            .trim()
            .parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_owned()))
            .map_err(|_| DomainError::invalid("timezone", format!("{input:?} is not an IANA time zone")))
    }
    pub fn utc() -> Self {
        Self("UTC".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The day and wall-clock time of `at` in this zone.
    pub fn local(&self, at: chrono::DateTime<chrono::Utc>) -> (chrono::Weekday, chrono::NaiveTime) {
        use chrono::Datelike as _;
        let tz: chrono_tz::Tz = self.0.parse().unwrap_or(chrono_tz::UTC);
        let local = at.with_timezone(&tz);
        (local.weekday(), local.time())
    }

    /// A wall-clock time of this zone as UTC (the earlier one when clocks go back); `None` for a time
    /// that does not exist here (skipped when clocks go forward).
    pub fn to_utc(&self, local: chrono::NaiveDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::TimeZone as _;
        let tz: chrono_tz::Tz = self.0.parse().unwrap_or(chrono_tz::UTC);
        tz.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&chrono::Utc))
    }
}

impl TryFrom<String> for TimeZone {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsuids_are_a_country_a_period_and_up_to_128_letters_and_digits() {
        for ok in ["US.13491208655302741918", "BR.1502576394655843", "US.ENT.11815799212886844830", "ID.abcXYZ09"] {
            assert_eq!(Bsuid::parse(ok).unwrap().as_str(), ok);
        }
        let long = format!("US.{}", "1".repeat(129));
        for bad in ["", "US", "US.", "us.123", "USA.123", "US.12-3", "US.ENT.", " US.123", "US.1\u{0}", long.as_str()] {
            assert!(Bsuid::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Bsuid>("\"X.1\"").is_err());
    }

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        for input in
            ["+62 812-3456-7890", "(+62) 812 3456 7890", "006281234567890", "62812 34567890", " +62.812.3456.7890 "]
        {
            assert_eq!(PhoneNumber::parse(input).unwrap().as_str(), "+6281234567890", "{input}");
        }
        assert_eq!(PhoneNumber::parse("+15551234567").unwrap().digits(), "15551234567");
    }

    #[test]
    fn invalid_phone_numbers_are_rejected_with_a_reason() {
        for input in ["", "0812345678", "+1234567", "+1234567890123456", "+62abc12345678", "62+812345678", "12"] {
            let err = PhoneNumber::parse(input).unwrap_err();
            assert_eq!(err.code(), "validation_failed", "{input}");
        }
    }

    #[test]
    fn phone_deserialisation_validates() {
        assert!(serde_json::from_str::<PhoneNumber>("\"+628123456789\"").is_ok());
        assert!(serde_json::from_str::<PhoneNumber>("\"hello\"").is_err());
    }

    #[test]
    fn bounded_text_trims_and_limits() {
        assert_eq!(bounded_text("name", "  Budi ", 10).unwrap(), "Budi");
        assert!(bounded_text("name", "   ", 10).is_err());
        assert!(bounded_text("name", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn text_with_nul_is_refused_naming_the_field() {
        assert!(bounded_text("name", "Bu\0di", 10)
            .is_err_and(|e| e == DomainError::invalid("name", "must not contain the NUL character (\\u0000)")));
        assert!(storable("x", "tab\tand newline\n and emoji 🙂 are fine").is_ok());
        let body = serde_json::json!({"a": [1, {"b": "ok"}, {"c": "x\u{0}"}], "z": "fine"});
        assert_eq!(first_unstorable("", &body).as_deref(), Some("a[2].c"));
        let key = serde_json::json!({"attributes": {"k\u{0}": 1}});
        assert_eq!(first_unstorable("", &key).as_deref(), Some("attributes.k\u{fffd}"));
        assert_eq!(first_unstorable("", &serde_json::json!({"fine": ["yes", 2, null]})), None);
        assert!(storable_json("", &serde_json::json!("\u{0}")).is_err());
        let scrubbed = scrub_json(&serde_json::json!({"k\u{0}": ["a\u{0}b"]}));
        assert_eq!(scrubbed, serde_json::json!({"k\u{fffd}": ["a\u{fffd}b"]}));
        assert_eq!(first_unstorable("", &scrubbed), None);
    }

    #[test]
    fn attributes_accept_scalars_only() {
        assert!(validate_attribute_key("city").is_ok());
        assert!(validate_attribute_key("bad key").is_err());
        assert!(validate_attribute_value("a", &serde_json::json!(3)).is_ok());
        assert!(validate_attribute_value("a", &serde_json::json!({"x": 1})).is_err());
        assert!(validate_attribute_value("a", &serde_json::Value::Null).is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(TimeZone::parse("Asia/Jakarta").unwrap().as_str(), "Asia/Jakarta");
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }
}
