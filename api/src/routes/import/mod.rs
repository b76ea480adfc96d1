//! `POST /v1/contacts/import`: a JSON array of `{phone, name?, attributes?}` or a CSV file with a header
//! row (`phone` required, `name` optional, every other column an attribute). Invalid rows are reported
//! by line (the CSV line, or the 1-based position in the JSON array) and the rest are imported.
//!
//! The body is parsed as it arrives, on a blocking thread: an import over the row limit is refused once
//! its row past the limit is read, not after the whole body, and memory holds the rows, not the body.

mod body;
mod csv;
mod json;

use super::{command_response, IMPORT_BODY_LIMIT};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{fingerprint_hasher, is_json};
use crate::routes::Written;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use blazz_commands::handlers::import::{ImportRow, RowError, MAX_IMPORT_ROWS};
use blazz_commands::outcome::ImportReport;
use blazz_domain::role::Action;
use body::{BodyReader, Overrun};
use std::io::BufReader;

/// Most bytes one row may take (a row of 100 attributes of 1,024 characters fits).
pub const ROW_LIMIT: usize = 1024 * 1024;

/// Rows read so far, good and bad.
#[derive(Debug, Default)]
pub struct Parsed {
    rows: Vec<ImportRow>,
    errors: Vec<RowError>,
}

impl Parsed {
    fn len(&self) -> usize {
        self.rows.len() + self.errors.len()
    }
}

/// Why parsing stopped before the end of the body.
#[derive(Debug)]
pub enum Stop {
    TooManyRows,
    /// The body or the row on this line passed its limit.
    Overrun(Overrun, usize),
    /// Reading the body failed (the client went away, say).
    Body(String),
    Json(String),
    Csv(String),
}

impl From<Stop> for ApiError {
    fn from(stop: Stop) -> Self {
        let too_large = |code, message: String| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message);
        match stop {
            Stop::TooManyRows | Stop::Overrun(Overrun::Rows, _) => {
                too_large("too_many_rows", format!("at most {MAX_IMPORT_ROWS} rows per import"))
            }
            Stop::Overrun(Overrun::Body, _) => too_large("payload_too_large", "the request body is too large".into()),
            Stop::Overrun(Overrun::Row, line) => {
                too_large("row_too_large", format!("row {line} is over {ROW_LIMIT} bytes"))
            }
            Stop::Body(e) => ApiError::bad_request("invalid_body", format!("cannot read the request body: {e}")),
            Stop::Json(e) => ApiError::bad_request("invalid_json", format!("expected a JSON array of contacts: {e}")),
            Stop::Csv(e) => ApiError::bad_request("invalid_csv", e),
        }
    }
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Csv,
}

/// Parses the body as it streams in; the fingerprint (with an idempotency key) covers the whole body.
async fn parse(req: Request, format: Format, idempotent: bool) -> Result<(Parsed, Option<String>), ApiError> {
    let hasher = idempotent.then(|| fingerprint_hasher(req.method(), req.uri().path()));
    let (to_parser, from_pump) = BodyReader::channel();
    let parser = tokio::task::spawn_blocking(move || {
        let mut reader = BodyReader::new(from_pump, hasher, IMPORT_BODY_LIMIT, ROW_LIMIT);
        let meter = reader.meter();
        let parsed = match format {
            Format::Json => json::rows(BufReader::new(&mut reader), &meter, MAX_IMPORT_ROWS),
            Format::Csv => csv::rows(&mut reader, &meter, MAX_IMPORT_ROWS),
        };
        parsed.map(|p| (p, reader.fingerprint()))
    });
    body::pump(req.into_body(), to_parser).await;
    match parser.await {
        Ok(parsed) => parsed.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

#[utoipa::path(
    post,
    path = "/v1/contacts/import",
    tag = "contacts",
    request_body(content((Vec<Object> = "application/json"), (String = "text/csv")), description = "Rows: a JSON array of `{phone, name?, attributes?}` or CSV with a `phone` column."),
    responses((status = 200, description = "Done.", body = Written<ImportReport>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn import(State(s): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    caller.require(Action::ManageContacts)?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = if is_json(content_type) {
        Format::Json
    } else if content_type.is_some_and(|c| c.starts_with("text/csv")) {
        Format::Csv
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or text/csv",
        ));
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > IMPORT_BODY_LIMIT as u64) {
        return Err(Stop::Overrun(Overrun::Body, 0).into());
    }
    let (parsed, fingerprint) = parse(req, format, caller.meta.idempotency_key.is_some()).await?;
    let ctx = caller.context(fingerprint);
    let result = s.commands.import_contacts(&ctx, parsed.rows, parsed.errors).await?;
    Ok(command_response(StatusCode::OK, result))
}
