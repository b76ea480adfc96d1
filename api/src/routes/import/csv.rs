//! CSV with a header row (`phone` required, `name` optional, every other column an attribute), read
//! record by record from a stream.

use super::body::Meter;
use super::{Parsed, Stop};
use blazz_commands::handlers::import::{ImportRow, RowError};
use blazz_domain::values::{Attributes, MAX_ATTRIBUTES};
use serde_json::Value;
use std::io::Read;

/// Most columns a header may have: phone, name and the attributes one contact may carry.
const MAX_COLUMNS: usize = MAX_ATTRIBUTES + 2;

fn stop(e: &csv::Error, meter: &Meter, line: usize) -> Option<Stop> {
    let csv::ErrorKind::Io(io) = e.kind() else { return None };
    Some(match meter.overrun() {
        Some(overrun) => Stop::Overrun(overrun, line),
        None => Stop::Body(io.to_string()),
    })
}

pub fn rows(reader: impl Read, meter: &Meter, max_rows: usize) -> Result<Parsed, Stop> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase()).collect(),
        Err(e) => {
            return Err(stop(&e, meter, 1).unwrap_or_else(|| Stop::Csv(format!("cannot read the header row: {e}"))))
        }
    };
    meter.row_done();
    if headers.len() > MAX_COLUMNS {
        return Err(Stop::Csv(format!("the header row has {} columns, at most {MAX_COLUMNS}", headers.len())));
    }
    let phone_col = headers
        .iter()
        .position(|h| h == "phone")
        .ok_or_else(|| Stop::Csv("the header row needs a \"phone\" column".into()))?;
    let name_col = headers.iter().position(|h| h == "name");
    let mut parsed = Parsed::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() as usize);
                let mut attributes = Attributes::new();
                for (i, value) in record.iter().enumerate() {
                    if i != phone_col && Some(i) != name_col && !value.is_empty() {
                        attributes.insert(headers[i].clone(), Value::String(value.to_owned()));
                    }
                }
                parsed.rows.push(ImportRow {
                    line,
                    phone: record.get(phone_col).unwrap_or_default().to_owned(),
                    name: name_col.and_then(|c| record.get(c)).filter(|n| !n.is_empty()).map(str::to_owned),
                    attributes,
                });
            }
            Err(e) => {
                if let Some(stop) = stop(&e, meter, line) {
                    return Err(stop);
                }
                let line = e.position().map_or(line, |p| p.line() as usize);
                parsed.errors.push(RowError::new(line, "invalid_row", e.to_string()));
            }
        }
        meter.row_done();
        if parsed.len() > max_rows {
            return Err(Stop::TooManyRows);
        }
    }
    Ok(parsed)
}
