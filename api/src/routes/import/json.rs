//! A JSON array of `{phone, name?, attributes?}` read element by element from a stream. Nothing but
//! the fields a row can use is kept: a value where a scalar belongs is skipped unread, attributes past
//! the limit are skipped, so memory grows with the rows imported, never with what a hostile body nests.

use super::body::Meter;
use super::{Parsed, Stop};
use blazz_commands::handlers::import::{ImportRow, RowError};
use blazz_domain::values::{Attributes, MAX_ATTRIBUTES};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;
use std::io::Read;

/// Reads rows until the array ends; more than `max_rows` elements stop it (an overrun of rows).
pub fn rows(reader: impl Read, meter: &Meter, max_rows: usize) -> Result<Parsed, Stop> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut parsed = Parsed::default();
    let result = de.deserialize_seq(RowsVisitor { parsed: &mut parsed, meter, max_rows }).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(parsed),
        Err(e) => Err(match meter.overrun() {
            Some(overrun) => Stop::Overrun(overrun, parsed.len() + 1),
            None if e.is_io() => Stop::Body(e.to_string()),
            None => Stop::Json(e.to_string()),
        }),
    }
}

struct RowsVisitor<'a> {
    parsed: &'a mut Parsed,
    meter: &'a Meter,
    max_rows: usize,
}

impl<'de> Visitor<'de> for RowsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of contacts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<RawRow>()? {
            self.meter.row_done();
            let line = self.parsed.len() + 1;
            match row.into_row(line) {
                Ok(row) => self.parsed.rows.push(row),
                Err(message) => self.parsed.errors.push(RowError::new(line, "invalid_row", message)),
            }
            if self.parsed.len() > self.max_rows {
                self.meter.too_many_rows();
                return Err(de::Error::custom("too many rows"));
            }
        }
        Ok(())
    }
}

/// A scalar, or the mark of an array or object that stood in its place (skipped unread).
enum Scalar {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Compound,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        // JSON has no NaN or infinity, so this always holds a number.
        Ok(Number::from_f64(v).map_or(Scalar::Null, Scalar::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Number(_) => "a number",
            Scalar::String(_) => "a string",
            Scalar::Compound => "an array or object",
        }
    }

    /// As an attribute value. A skipped compound becomes an empty array: the domain's attribute check
    /// refuses it with its own message, as it would the full value.
    fn into_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Number(n) => Value::Number(n),
            Scalar::String(s) => Value::String(s),
            Scalar::Compound => Value::Array(Vec::new()),
        }
    }
}

/// `attributes`: at most one entry past the limit is kept, so the domain still reports "too many".
enum RawAttributes {
    Map(Vec<(String, Scalar)>),
    Other(Scalar),
}

impl<'de> Deserialize<'de> for RawAttributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAttributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAttributes, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.len() <= MAX_ATTRIBUTES {
                        entries.push((key, map.next_value::<Scalar>()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RawAttributes::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawAttributes, A::Error> {
                ScalarVisitor.visit_seq(seq).map(RawAttributes::Other)
            }
            fn visit_unit<E>(self) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Scalar::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Scalar::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Scalar::Number(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Scalar::Number(v.into())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Number::from_f64(v).map_or(Scalar::Null, Scalar::Number)))
            }
            fn visit_str<E>(self, _: &str) -> Result<RawAttributes, E> {
                Ok(RawAttributes::Other(Scalar::String(String::new())))
            }
        }
        d.deserialize_any(V)
    }
}

/// One array element as read: an object's known fields, or what stood there instead.
enum RawRow {
    Object { phone: Option<Scalar>, name: Option<Scalar>, attributes: Option<RawAttributes>, unknown: Option<String> },
    NotObject,
}

impl<'de> Deserialize<'de> for RawRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a contact object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRow, A::Error> {
                let (mut phone, mut name, mut attributes, mut unknown) = (None, None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "phone" => phone = Some(map.next_value()?),
                        "name" => name = Some(map.next_value()?),
                        "attributes" => attributes = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            unknown.get_or_insert(key);
                        }
                    }
                }
                Ok(RawRow::Object { phone, name, attributes, unknown })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawRow, A::Error> {
                ScalarVisitor.visit_seq(seq).map(|_| RawRow::NotObject)
            }
            fn visit_unit<E>(self) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawRow, E> {
                Ok(RawRow::NotObject)
            }
        }
        d.deserialize_any(V)
    }
}

impl RawRow {
    fn into_row(self, line: usize) -> Result<ImportRow, String> {
        let RawRow::Object { phone, name, attributes, unknown } = self else {
            return Err("each element must be an object".into());
        };
        let phone = match phone {
            Some(Scalar::String(p)) => p,
            Some(other) => return Err(format!("\"phone\" must be a string, not {}", other.kind())),
            None => return Err("\"phone\" must be a string".into()),
        };
        let name = match name {
            None | Some(Scalar::Null) => None,
            Some(Scalar::String(n)) => Some(n),
            Some(other) => return Err(format!("\"name\" must be a string, not {}", other.kind())),
        };
        let attributes: Attributes = match attributes {
            None | Some(RawAttributes::Other(Scalar::Null)) => Attributes::new(),
            Some(RawAttributes::Map(entries)) => entries.into_iter().map(|(k, v)| (k, v.into_value())).collect(),
            Some(RawAttributes::Other(other)) => {
                return Err(format!("\"attributes\" must be an object, not {}", other.kind()))
            }
        };
        if let Some(extra) = unknown {
            return Err(format!("unknown field {extra:?}"));
        }
        Ok(ImportRow { line, phone, name, attributes })
    }
}
