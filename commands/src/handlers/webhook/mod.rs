//! Webhook ingestion: turns one verified Meta notification (many entries, changes, messages, statuses)
//! into events. Everything is written before the caller answers Meta, and every part is idempotent, so
//! Meta's redeliveries are absorbed:
//! - [`statuses`]: delivery statuses and pricing onto outbound messages (monotonic, batched per message);
//! - [`inbound`]: inbound messages onto conversations (creating the contact if new, opt-out keywords);
//! - template review outcomes onto templates (here).
//!
//! What cannot be routed (an unknown phone number id, message or template) or is not tied to a message
//! (`value.errors`) is returned as an [`Exception`] for operators, never as a failure: Meta would retry
//! it for days. [`exceptions`] stores and lists them.

pub mod exceptions;
mod inbound;
mod statuses;

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::provider::meta::webhook::{Change, MessagesValue, Notification, TemplateStatusUpdate};
use crate::service::{scopes, Commands};
use blazz_domain::aggregate::id_of;
use blazz_domain::ids::{ChannelId, TemplateId};
use blazz_domain::provider::check_timestamp;
use blazz_domain::template::ReviewStatus;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// The channel whose webhook path received the notification (its app secret verified the signature).
#[derive(Debug, Clone, Copy)]
pub struct WebhookTarget {
    pub workspace_id: Uuid,
    pub channel_id: ChannelId,
}

/// Something in a notification that was not turned into events, kept for operators.
#[derive(Debug, Clone)]
pub struct Exception {
    /// `unroutable` (unknown phone number id), `unknown_message`, `unknown_template`, `unknown_status`,
    /// `invalid` (unreadable part) or `provider_error` (`value.errors`).
    pub kind: &'static str,
    pub phone_number_id: Option<String>,
    pub detail: String,
    pub payload: Value,
}

/// What one notification did.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub statuses: usize,
    pub inbound: usize,
    pub template_updates: usize,
    /// Parts that changed nothing because they were already applied (redeliveries, late statuses).
    pub absorbed: usize,
    pub exceptions: Vec<Exception>,
    /// The highest log position written, for read-your-writes.
    pub position: Option<i64>,
}

impl IngestReport {
    fn wrote(&mut self, position: Option<i64>) {
        self.position = self.position.max(position);
    }

    fn exception(
        &mut self,
        kind: &'static str,
        phone_number_id: Option<&str>,
        detail: impl Into<String>,
        payload: Value,
    ) {
        self.exceptions.push(Exception {
            kind,
            phone_number_id: phone_number_id.map(str::to_owned),
            detail: detail.into(),
            payload,
        });
    }
}

/// Whether a failure belongs to the part being applied (the part becomes an exception and the rest
/// of the notification is applied) rather than to storage (the POST fails, so Meta retries it).
pub(crate) fn part_failed(e: &CommandError) -> bool {
    matches!(e, CommandError::Domain(_) | CommandError::Rejected(_) | CommandError::Taken { .. })
}

/// The problem with a part's values that storage would refuse or the rules bound (a NUL anywhere, a
/// timestamp outside the window around now), if any.
pub(crate) fn part_problem(
    raw: &Value,
    at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    if let Some(field) = blazz_domain::values::first_unstorable("", raw) {
        return Some(format!("{field} holds a NUL character (\\u0000)"));
    }
    at.and_then(|at| check_timestamp(at, now).err())
}

impl Commands {
    /// Applies a verified notification addressed to `target`'s webhook path, part by part: each
    /// change, status, inbound message and template update is read and validated on its own; one that
    /// is malformed, out of bounds or refused becomes an [`Exception`] and the others are applied. Only a
    /// storage failure fails the whole notification (the caller answers 5xx and Meta redelivers it;
    /// every part is idempotent).
    #[tracing::instrument(skip_all, fields(channel = %target.channel_id), err)]
    pub async fn ingest_meta_webhook(
        &self,
        target: WebhookTarget,
        notification: Notification,
        request_id: Option<String>,
    ) -> Result<IngestReport, CommandError> {
        let ctx = CommandContext { request_id, ..CommandContext::system(target.workspace_id, "webhook") };
        let mut report = IngestReport::default();
        let mut routes: HashMap<String, Option<ChannelId>> = HashMap::new();
        for entry in notification.entry {
            let changes = match entry.get("changes") {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(changes)) => changes.clone(),
                Some(_) => {
                    report.exception("invalid", None, "entry.changes must be an array", entry);
                    continue;
                }
            };
            for raw in changes {
                let change: Change = match serde_json::from_value(raw.clone()) {
                    Ok(c) => c,
                    Err(e) => {
                        report.exception("invalid", None, format!("unreadable change: {e}"), raw);
                        continue;
                    }
                };
                match change.field.as_str() {
                    "messages" => {
                        self.apply_messages_change(&ctx, &target, change.value, &mut routes, &mut report).await?
                    }
                    "message_template_status_update" => {
                        self.apply_template_update(&ctx, change.value, &mut report).await?;
                    }
                    other => {
                        report.exception("unknown_field", None, format!("field {other:?} is not handled"), change.value)
                    }
                }
            }
        }
        Ok(report)
    }

    async fn apply_messages_change(
        &self,
        ctx: &CommandContext,
        target: &WebhookTarget,
        raw: Value,
        routes: &mut HashMap<String, Option<ChannelId>>,
        report: &mut IngestReport,
    ) -> Result<(), CommandError> {
        let value: MessagesValue = match serde_json::from_value(raw.clone()) {
            Ok(v) => v,
            Err(e) => {
                report.exception("invalid", None, e.to_string(), raw);
                return Ok(());
            }
        };
        let pnid = value.metadata.phone_number_id.clone();
        if blazz_domain::values::unstorable(&pnid).is_some() || pnid.len() > 64 {
            report.exception("invalid", None, "metadata.phone_number_id is not a phone number id", raw);
            return Ok(());
        }
        let channel = match routes.get(&pnid) {
            Some(c) => *c,
            None => {
                let c = self.route(target, &pnid).await?;
                routes.insert(pnid.clone(), c);
                c
            }
        };
        let Some(channel) = channel else {
            report.exception("unroutable", Some(&pnid), "unknown phone number id", raw);
            return Ok(());
        };
        for error in &value.errors {
            report.exception("provider_error", Some(&pnid), "error not tied to a message", error.clone());
        }
        self.apply_statuses(ctx, channel, &pnid, value.statuses, report).await?;
        self.apply_inbound(ctx, channel, &pnid, &value.contacts, value.messages, report).await
    }

    /// The channel of the target's workspace that owns `phone_number_id`.
    async fn route(&self, target: &WebhookTarget, phone_number_id: &str) -> Result<Option<ChannelId>, CommandError> {
        let claim = self.store().claim(scopes::CHANNEL_NUMBER, phone_number_id).await?;
        Ok(claim
            .filter(|c| c.workspace_id == target.workspace_id)
            .and_then(|c| id_of(&c.owner))
            .map(ChannelId::from_uuid))
    }

    async fn apply_template_update(
        &self,
        ctx: &CommandContext,
        value: Value,
        report: &mut IngestReport,
    ) -> Result<(), CommandError> {
        let update: TemplateStatusUpdate = match serde_json::from_value(value.clone()) {
            Ok(u) => u,
            Err(e) => {
                report.exception("invalid", None, e.to_string(), value);
                return Ok(());
            }
        };
        if let Some(problem) = part_problem(&value, None, ctx.now) {
            report.exception("invalid", None, problem, value);
            return Ok(());
        }
        let key = format!("{}:{}:{}", ctx.workspace_id, update.message_template_name, update.message_template_language);
        let Some(template) = self.store().claim(scopes::TEMPLATE_NAME, &key).await?.and_then(|c| id_of(&c.owner))
        else {
            let detail = format!("no template {} ({})", update.message_template_name, update.message_template_language);
            report.exception("unknown_template", None, detail, value);
            return Ok(());
        };
        let status = ReviewStatus::parse(&update.event);
        let r = match self.record_template_review(ctx, TemplateId::from_uuid(template), status, update.reason).await {
            Ok(r) => r,
            Err(e) if part_failed(&e) => {
                report.exception("invalid", None, e.to_string(), value);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        report.template_updates += 1;
        if r.position.is_none() {
            report.absorbed += 1;
        }
        report.wrote(r.position);
        Ok(())
    }
}
