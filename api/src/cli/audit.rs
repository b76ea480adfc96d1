//! `blazz audit export`: a workspace's events recorded between two times, in the log's gap-free
//! order, as JSON Lines (the history API's shape) or CloudEvents 1.0 JSON, one event a line, for an
//! auditor's own tools.
//!
//! Personal fields show opened (or erased); an event that has them also carries its payload as
//! stored, sealed (`sealed_payload`, CloudEvents `blazzsealeddata`): the form its hash covers, so
//! the export verifies offline and erasure never breaks that.

use super::progress::JobProgress;
use blazz_commands::personal::Vault;
use blazz_commands::store::{EventStore, LogCursor, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::Write;
use uuid::Uuid;

/// Events read per page of the log.
const PAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One event a line, as `GET /v1/history/events` shows it.
    Jsonl,
    /// One CloudEvents 1.0 event a line (structured mode, JSON).
    Cloudevents,
}

/// What to export: one workspace's events recorded in `[from, to]` (either end open).
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub workspace: Uuid,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Selection {
    fn includes(&self, e: &RecordedEvent) -> bool {
        self.from.is_none_or(|f| e.recorded_at >= f) && self.to.is_none_or(|t| e.recorded_at <= t)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes the selected events of `sealed` (a store serving them as stored) to `out`, a line each,
/// their personal fields opened with `vault`'s keys; answers how many. `progress` counts them.
pub async fn export(
    sealed: &dyn EventStore,
    vault: &Vault,
    selection: Selection,
    format: Format,
    out: &mut dyn Write,
    progress: &mut JobProgress,
) -> Result<u64, ExportError> {
    let (mut cursor, mut written) = (LogCursor::START, 0);
    loop {
        let page = sealed.read_log(cursor, PAGE, Some(selection.workspace)).await?;
        if page.events.is_empty() {
            break;
        }
        let mut shown = page.events.clone();
        vault.reveal(&mut shown).await?;
        for (stored, e) in page.events.iter().zip(&shown).filter(|(_, e)| selection.includes(e)) {
            let differs = stored.payload != e.payload;
            let line = match format {
                Format::Jsonl => {
                    let mut line = crate::routes::event_json(e);
                    if differs {
                        line["sealed_payload"] = stored.payload.clone();
                    }
                    line
                }
                Format::Cloudevents => {
                    let mut line = cloud_event(e);
                    if differs {
                        line["blazzsealeddata"] = stored.payload.clone();
                    }
                    line
                }
            };
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        progress.set(written);
        cursor = page.next;
    }
    out.flush()?;
    progress.finish();
    Ok(written)
}

/// An event as a CloudEvent: our fields beyond the standard ones are extension attributes
/// (lowercase letters only, as the specification requires).
fn cloud_event(e: &RecordedEvent) -> Value {
    json!({
        "specversion": "1.0",
        "id": e.event_id,
        "source": format!("/blazz/workspaces/{}", e.workspace_id),
        "type": e.event_type,
        "subject": e.stream_id,
        "time": e.recorded_at,
        "datacontenttype": "application/json",
        "dataschema": format!("urn:blazz:event:{}:v{}", e.event_type, e.schema_version),
        "data": e.payload,
        "blazzposition": e.position,
        "blazzstreamversion": e.stream_version,
        "blazzcorrelationid": e.metadata.correlation_id,
        "blazzcausationid": e.metadata.causation_id,
        "blazzactor": e.metadata.actor,
        "blazzhash": e.hash.map(hex::encode),
        "blazzerased": e.erased,
    })
}
