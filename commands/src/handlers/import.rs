//! Bulk contact import. Rows are validated one by one; invalid rows are reported by line and the rest
//! are imported. Each contact is its own stream and phone claim, appended concurrently so the store's
//! group commit packs them into large transactions.

use super::contact::{creation_plan, NewContact};
use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::ImportReport;
use crate::service::Commands;
use crate::store::{AppendError, AppendRequest, ExpectedVersion, IdempotencyWrite};
use blazz_domain::aggregate::stream_id;
use blazz_domain::contact::Contact;
use blazz_domain::ids::ContactId;
use blazz_domain::role::Action;
use blazz_domain::values::{Attributes, PhoneNumber};
use blazz_domain::DomainEvent;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows planned and appended together (their appends in flight at once; the store batches them).
const CHUNK: usize = 1000;
/// Rows planned between two yields to the scheduler.
const YIELD_EVERY: usize = 32;
/// Most rows one import may carry.
pub const MAX_IMPORT_ROWS: usize = 200_000;

/// One row as parsed from JSON or CSV; `line` is what errors refer to.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: usize,
    pub phone: String,
    pub name: Option<String>,
    pub attributes: Attributes,
}

pub use crate::outcome::RowError;

impl Commands {
    /// Imports contacts. `errors` holds rows already rejected while parsing. With an idempotency key,
    /// the report is stored once all rows are written (a crash before that makes a retry report the
    /// already-imported rows as `phone_taken`; nothing is imported twice).
    pub async fn import_contacts(
        &self,
        ctx: &CommandContext,
        rows: Vec<ImportRow>,
        mut errors: Vec<RowError>,
    ) -> Result<CommandResult<ImportReport>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        if let Some(r) = self.replayed(ctx).await? {
            return Ok(r);
        }
        let ws = ctx.workspace_id;
        let mut first_line: HashMap<PhoneNumber, usize> = HashMap::new();
        let (mut imported, mut position) = (0u64, None);
        let mut rows = rows.into_iter().peekable();
        // Chunk by chunk, each in a turn of the workspace's bulk work, resting after it while other
        // workspaces are active (see [`crate::pacing`]).
        while rows.peek().is_some() {
            let turn = self.pacer().turn(ws).await;
            let chunk: Vec<ImportRow> = rows.by_ref().take(CHUNK).collect();
            let requests = self.plan_rows(ctx, chunk, &mut first_line, &mut errors).await?;
            let store = self.store().clone();
            let results: Vec<(usize, Result<Option<i64>, AppendError>)> = stream::iter(requests)
                .map(|(line, request)| {
                    let store = store.clone();
                    async move { (line, store.append(request).await.map(|o| o.position)) }
                })
                .buffer_unordered(CHUNK)
                .collect()
                .await;
            for (line, result) in results {
                match result {
                    Ok(p) => {
                        imported += 1;
                        position = position.max(p);
                    }
                    Err(e) => errors.push(not_imported(line, e)),
                }
            }
            self.pacer().end(turn).await;
        }
        errors.sort_by_key(|e| e.line);
        let report = ImportReport { imported, failed: errors.len(), errors };
        if let Some(idem) = &ctx.idempotency {
            let write = IdempotencyWrite {
                scope: ws,
                key: idem.key.clone(),
                fingerprint: idem.fingerprint.clone(),
                result: crate::service::stored(&report)?,
            };
            self.store().put_idempotency_record(write, position).await?;
        }
        Ok(CommandResult { outcome: report, position, replayed: false })
    }

    /// The appends of one chunk of rows (line and request); invalid rows go to `errors`.
    async fn plan_rows(
        &self,
        ctx: &CommandContext,
        rows: Vec<ImportRow>,
        first_line: &mut HashMap<PhoneNumber, usize>,
        errors: &mut Vec<RowError>,
    ) -> Result<Vec<(usize, AppendRequest)>, CommandError> {
        let ws = ctx.workspace_id;
        let mut requests = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            // Planning is CPU: other requests on this worker get their turn every fraction of a
            // millisecond.
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            let phone = match PhoneNumber::parse(&row.phone) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(RowError::new(row.line, e.code(), e.to_string()));
                    continue;
                }
            };
            if let Some(first) = first_line.get(&phone) {
                errors.push(RowError::new(
                    row.line,
                    "duplicate_in_import",
                    format!("{phone} already appears on line {first}"),
                ));
                continue;
            }
            first_line.insert(phone.clone(), row.line);
            let id = ContactId::from_uuid(Uuid::now_v7());
            let plan = match creation_plan(ws, id, NewContact { phone, name: row.name, attributes: row.attributes }) {
                Ok(p) => p,
                Err(CommandError::Domain(e)) => {
                    errors.push(RowError::new(row.line, e.code(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let events = plan.events.into_iter().map(|e| self.codec().encode(&DomainEvent::from(e))).collect();
            let mut request = AppendRequest::new(
                stream_id::<Contact>(id.as_uuid()),
                ws,
                ExpectedVersion::NoStream,
                events,
                ctx.metadata(),
            );
            request.claims = plan.claims;
            requests.push((row.line, request));
        }
        Ok(requests)
    }
}

/// The row error of a row the store did not take.
fn not_imported(line: usize, e: AppendError) -> RowError {
    match e {
        AppendError::ClaimTaken { owner, .. } => {
            let existing =
                owner.as_deref().and_then(blazz_domain::aggregate::id_of).map(|id| id.to_string()).unwrap_or_default();
            RowError::new(line, "phone_taken", format!("the phone number belongs to contact {existing}"))
        }
        e => RowError::new(line, "not_imported", format!("not imported, retry this row: {e}")),
    }
}
