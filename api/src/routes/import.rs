//! `POST /v1/contacts/import`: a JSON array of `{phone, name?, attributes?}` or a CSV file with a header
//! row (`phone` required, `name` optional, every other column an attribute). Invalid rows are reported
//! by line (the CSV line, or the 1-based position in the JSON array) and the rest are imported.

use super::command_response;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{body_bytes, fingerprint, is_json};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use blazz_commands::handlers::import::{ImportRow, RowError, MAX_IMPORT_ROWS};
use blazz_domain::role::Action;
use blazz_domain::values::Attributes;
use serde_json::Value;

fn json_rows(bytes: &[u8]) -> Result<(Vec<ImportRow>, Vec<RowError>), ApiError> {
    let items: Vec<Value> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("expected a JSON array of contacts: {e}")))?;
    let (mut rows, mut errors) = (Vec::with_capacity(items.len()), vec![]);
    for (i, item) in items.into_iter().enumerate() {
        let line = i + 1;
        let Value::Object(mut obj) = item else {
            errors.push(RowError::new(line, "invalid_row", "each element must be an object"));
            continue;
        };
        let phone = match obj.remove("phone") {
            Some(Value::String(p)) => p,
            _ => {
                errors.push(RowError::new(line, "invalid_row", "\"phone\" must be a string"));
                continue;
            }
        };
        let name = match obj.remove("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(n),
            Some(_) => {
                errors.push(RowError::new(line, "invalid_row", "\"name\" must be a string"));
                continue;
            }
        };
        let attributes: Attributes = match obj.remove("attributes") {
            None | Some(Value::Null) => Attributes::new(),
            Some(Value::Object(m)) => m.into_iter().collect(),
            Some(_) => {
                errors.push(RowError::new(line, "invalid_row", "\"attributes\" must be an object"));
                continue;
            }
        };
        if let Some(extra) = obj.keys().next() {
            errors.push(RowError::new(line, "invalid_row", format!("unknown field {extra:?}")));
            continue;
        }
        rows.push(ImportRow { line, phone, name, attributes });
    }
    Ok((rows, errors))
}

fn csv_rows(bytes: &[u8]) -> Result<(Vec<ImportRow>, Vec<RowError>), ApiError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::bad_request("invalid_csv", format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let phone_col = headers
        .iter()
        .position(|h| h == "phone")
        .ok_or_else(|| ApiError::bad_request("invalid_csv", "the header row needs a \"phone\" column"))?;
    let name_col = headers.iter().position(|h| h == "name");
    let (mut rows, mut errors) = (vec![], vec![]);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                errors.push(RowError::new(line, "invalid_row", e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let mut attributes = Attributes::new();
        for (i, value) in record.iter().enumerate() {
            if i != phone_col && Some(i) != name_col && !value.is_empty() {
                attributes.insert(headers[i].clone(), Value::String(value.to_owned()));
            }
        }
        rows.push(ImportRow {
            line,
            phone: record.get(phone_col).unwrap_or_default().to_owned(),
            name: name_col.and_then(|c| record.get(c)).filter(|n| !n.is_empty()).map(str::to_owned),
            attributes,
        });
    }
    Ok((rows, errors))
}

pub async fn import(State(s): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    caller.require(Action::ManageContacts)?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let fp_path = req.uri().path().to_owned();
    let method = req.method().clone();
    let bytes = body_bytes(req, &s).await?;
    let (rows, errors) = if is_json(content_type.as_deref()) {
        json_rows(&bytes)?
    } else if content_type.as_deref().is_some_and(|c| c.starts_with("text/csv")) {
        csv_rows(&bytes)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or text/csv",
        ));
    };
    if rows.len() + errors.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!("at most {MAX_IMPORT_ROWS} rows per import"),
        ));
    }
    let ctx = caller.context(caller.meta.idempotency_key.as_ref().map(|_| fingerprint(&method, &fp_path, &bytes)));
    let result = s.commands.import_contacts(&ctx, rows, errors).await?;
    Ok(command_response(StatusCode::OK, result))
}
