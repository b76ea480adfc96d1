//! `blazz import contacts FILE`: a CSV file (header row: `phone`, `name`, other columns attributes)
//! or a JSON array of `{phone, name?, attributes?}` sent to a gateway's `POST /v1/contacts/import`
//! in chunks, with progress. Files past one import's row limit go through; row errors come back with
//! the file's own line numbers (CSV) or 1-based positions (JSON). A chunk that fails to arrive (the
//! network, a 5xx) is sent again: rows already imported then report `phone_taken`, never a second
//! contact (the phone's claim is unique).

use super::progress::JobProgress;
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Rows per request.
pub const CHUNK_ROWS: usize = 5_000;

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub imported: u64,
    pub failed: u64,
    /// `{line, code, message}` of each row not imported, with the file's line numbers.
    pub errors: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}")]
    Format(String),
    #[error("the gateway refused the import ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("the gateway did not answer: {0}")]
    Unreachable(String),
}

/// One request's rows: the body and, per row, its line (CSV) or position (JSON) in the file.
struct Chunk {
    content_type: &'static str,
    body: Vec<u8>,
    /// The file line of the chunk's line `n` (`n` as the gateway reports it, from 1).
    lines: Vec<usize>,
    rows: usize,
}

/// Imports `file` through the gateway at `url` with the workspace key `key`, `chunk_rows` rows per
/// request, reporting rows done to `progress`.
pub async fn contacts(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    file: &Path,
    chunk_rows: usize,
    progress: &mut JobProgress,
) -> Result<Summary, ImportError> {
    let text = std::fs::read(file).map_err(|e| ImportError::Read(file.display().to_string(), e))?;
    let chunks = match file.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv_chunks(&text, chunk_rows.max(1))?,
        Some("json") => json_chunks(&text, chunk_rows.max(1))?,
        _ => return Err(ImportError::Format("the file must end in .csv or .json".into())),
    };
    let mut summary = Summary { rows: chunks.iter().map(|c| c.rows).sum(), ..Summary::default() };
    progress.set_total(summary.rows as u64);
    progress.set(0);
    let endpoint = format!("{}/v1/contacts/import", url.trim_end_matches('/'));
    let mut done = 0;
    for chunk in chunks {
        let answer = send(client, &endpoint, key, &chunk).await?;
        summary.imported += answer["imported"].as_u64().unwrap_or(0);
        summary.failed += answer["failed"].as_u64().unwrap_or(0);
        for mut e in answer["errors"].as_array().cloned().unwrap_or_default() {
            let line = e["line"].as_u64().and_then(|l| chunk.lines.get(l as usize).copied());
            e["line"] = line.map_or(Value::Null, Value::from);
            summary.errors.push(e);
        }
        done += chunk.rows;
        progress.set(done as u64);
    }
    progress.finish();
    Ok(summary)
}

/// Sends one chunk; a network error or a 5xx is tried again with backoff (4 tries in all).
async fn send(client: &reqwest::Client, endpoint: &str, key: &str, chunk: &Chunk) -> Result<Value, ImportError> {
    let mut waits = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(3).build();
    loop {
        let sent = client
            .post(endpoint)
            .bearer_auth(key)
            .header(reqwest::header::CONTENT_TYPE, chunk.content_type)
            .body(chunk.body.clone())
            .send()
            .await;
        let retry = match sent {
            Ok(res) if res.status().is_success() => {
                return res.json().await.map_err(|e| ImportError::Unreachable(e.to_string()));
            }
            Ok(res) if res.status().is_server_error() => format!("{}", res.status()),
            Ok(res) => {
                let status = res.status().as_u16();
                return Err(ImportError::Refused { status, body: res.text().await.unwrap_or_default() });
            }
            Err(e) => e.to_string(),
        };
        match waits.next() {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(ImportError::Unreachable(retry)),
        }
    }
}

/// CSV rows in chunks, each with the header; a row's line is where it starts in the file.
fn csv_chunks(text: &[u8], chunk_rows: usize) -> Result<Vec<Chunk>, ImportError> {
    let bad = |e: csv::Error| ImportError::Format(format!("not a CSV file: {e}"));
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let header = reader.byte_headers().map_err(bad)?.clone();
    let mut records = vec![];
    for record in reader.byte_records() {
        let record = record.map_err(bad)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        records.push((line, record));
    }
    let mut chunks = vec![];
    for part in records.chunks(chunk_rows) {
        let mut writer = csv::Writer::from_writer(vec![]);
        writer.write_byte_record(&header).map_err(bad)?;
        // The gateway counts lines from the header (line 1); a row may span several lines.
        let mut lines = vec![0, 0];
        for (line, record) in part {
            writer.flush().map_err(|e| ImportError::Format(e.to_string()))?;
            let start = writer.get_ref().iter().filter(|b| **b == b'\n').count() + 1;
            lines.resize(start + 1, 0);
            lines[start] = *line;
            writer.write_byte_record(record).map_err(bad)?;
        }
        let body = writer.into_inner().map_err(|e| ImportError::Format(e.to_string()))?;
        chunks.push(Chunk { content_type: "text/csv", body, lines, rows: part.len() });
    }
    Ok(chunks)
}

/// JSON rows in chunks; a row's "line" is its 1-based position in the file's array.
fn json_chunks(text: &[u8], chunk_rows: usize) -> Result<Vec<Chunk>, ImportError> {
    let rows: Vec<Value> = serde_json::from_slice(text)
        .map_err(|e| ImportError::Format(format!("expected a JSON array of contacts: {e}")))?;
    let mut chunks = vec![];
    for (n, part) in rows.chunks(chunk_rows).enumerate() {
        let first = n * chunk_rows;
        let lines = std::iter::once(0).chain((1..=part.len()).map(|i| first + i)).collect();
        let body = serde_json::to_vec(part).map_err(|e| ImportError::Format(e.to_string()))?;
        chunks.push(Chunk { content_type: "application/json", body, lines, rows: part.len() });
    }
    Ok(chunks)
}
