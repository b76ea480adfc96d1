//! Delivery statuses. The statuses of one notification are grouped by message; all messages are read
//! in one round trip, each message's statuses decided together (the lattice absorbs duplicates and late
//! reports), and the appends go out concurrently so that group commit writes them in few transactions.
//! A message changed concurrently (another notification about it) is re-decided on fresh state.

use super::{part_failed, part_problem, IngestReport};
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::outcome::Done;
use crate::provider::meta::webhook::Status;
use crate::service::{scopes, Commands, Plan};
use crate::store::{Claim, ExpectedVersion, RecordedEvent};
use blazz_domain::aggregate::{id_of, stream_id, Aggregate};
use blazz_domain::contact::ConsentSource;
use blazz_domain::ids::{ChannelId, MessageId};
use blazz_domain::message::{Message, MessageCommand, MessageEvent, Pricing, ProviderError, StatusUpdate};
use blazz_domain::provider::MARKETING_STOPPED;
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The domain update a webhook status asks for; `None` for a status we do not know.
fn update_of(s: &Status) -> Option<StatusUpdate> {
    Some(match s.status.as_str() {
        "sent" => StatusUpdate::Sent { provider_message_id: s.id.clone() },
        "delivered" => StatusUpdate::Delivered,
        "read" => StatusUpdate::Read,
        "failed" => StatusUpdate::Failed {
            error: s.errors.first().map_or_else(
                || ProviderError::new(-1, "failed without error details", None),
                |e| {
                    let details = e.error_data.as_ref().and_then(|d| d.details.clone()).or(e.message.clone());
                    ProviderError::new(e.code, e.title.clone().unwrap_or_default(), details)
                },
            ),
        },
        _ => return None,
    })
}

fn pricing_of(s: &Status) -> Option<Pricing> {
    let p = s.pricing.as_ref()?;
    let conversation = s.conversation.as_ref();
    Some(Pricing {
        billable: p.billable.unwrap_or(false),
        category: p.category.as_ref().map(|c| c.to_ascii_lowercase()),
        pricing_model: p.pricing_model.clone(),
        pricing_type: p.kind.clone(),
        conversation_id: conversation.and_then(|c| c.id.clone()),
        conversation_origin: conversation.and_then(|c| c.origin.as_ref()).and_then(|o| o.kind.clone()),
    })
}

/// Decides a message's statuses on its state: the events, and the claim of a newly learned wamid.
fn decide(
    stream: &str,
    workspace: Uuid,
    state: &Message,
    statuses: &[Status],
) -> Result<Plan<MessageEvent, Done>, CommandError> {
    let mut state = state.clone();
    let mut events = vec![];
    for s in statuses {
        let mut decided = vec![];
        if let Some(update) = update_of(s) {
            decided.extend(state.decide(MessageCommand::RecordStatus { update, at: s.timestamp })?);
        }
        if let Some(pricing) = pricing_of(s) {
            decided.extend(state.decide(MessageCommand::RecordPricing { pricing, at: s.timestamp })?);
        }
        for e in decided {
            state = state.evolve(&e);
            events.push(e);
        }
    }
    let mut plan = Plan::new(events, Done {});
    for e in &plan.events {
        if let MessageEvent::Sent { provider_message_id, .. } = e {
            plan.claims.push(Claim {
                scope: scopes::PROVIDER_MESSAGE.into(),
                value: provider_message_id.clone(),
                owner: stream.to_owned(),
                workspace_id: workspace,
                data: json!({}),
            });
        }
    }
    Ok(plan)
}

impl Commands {
    /// Our message a status is about: the id we sent as callback data, else the wamid we recorded.
    async fn message_of(&self, s: &Status) -> Result<Option<MessageId>, CommandError> {
        if let Some(id) = s.biz_opaque_callback_data.as_deref().and_then(|d| Uuid::try_parse(d).ok()) {
            return Ok(Some(MessageId::from_uuid(id)));
        }
        let claim = self.store().claim(scopes::PROVIDER_MESSAGE, &s.id).await?;
        Ok(claim.and_then(|c| id_of(&c.owner)).map(MessageId::from_uuid))
    }

    pub(super) async fn apply_statuses(
        &self,
        ctx: &CommandContext,
        channel: ChannelId,
        phone_number_id: &str,
        statuses: Vec<serde_json::Value>,
        report: &mut IngestReport,
    ) -> Result<(), CommandError> {
        let mut by_message: BTreeMap<String, Vec<Status>> = BTreeMap::new();
        for raw in statuses {
            let s = match Status::of(&raw) {
                Ok(s) => s,
                Err(why) => {
                    report.exception("invalid", Some(phone_number_id), format!("unreadable status: {why}"), raw);
                    continue;
                }
            };
            if let Some(problem) = part_problem(&raw, Some(s.timestamp), ctx.now) {
                report.exception("invalid", Some(phone_number_id), problem, raw);
                continue;
            }
            let payload = || serde_json::json!({ "id": s.id, "status": s.status });
            if update_of(&s).is_none() && s.pricing.is_none() {
                report.exception("unknown_status", Some(phone_number_id), format!("status {:?}", s.status), payload());
                continue;
            }
            match self.message_of(&s).await? {
                Some(id) => by_message.entry(stream_id::<Message>(id.as_uuid())).or_default().push(s),
                None => report.exception(
                    "unknown_message",
                    Some(phone_number_id),
                    format!("no message {}", s.id),
                    payload(),
                ),
            }
        }
        if by_message.is_empty() {
            return Ok(());
        }
        let streams: Vec<String> = by_message.keys().cloned().collect();
        let mut stored = self.store().read_streams(&streams).await?;
        stored.sort_by(|a, b| (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version)));

        // Decide every message on the state read above; append all decisions together.
        let (mut plans, mut facts) = (vec![], vec![]);
        for (stream, statuses) in &by_message {
            let events: &[RecordedEvent] = crate::handlers::of_stream(&stored, stream);
            let loaded = match self.fold::<Message>(ctx.workspace_id, events) {
                Ok(l) if l.state.channel_id == Some(channel) => l,
                _ => {
                    for s in statuses {
                        let detail = format!("no message {} on this channel", s.id);
                        report.exception("unknown_message", Some(phone_number_id), detail, json!({ "id": s.id }));
                    }
                    continue;
                }
            };
            let plan = match decide(stream, ctx.workspace_id, &loaded.state, statuses) {
                Ok(plan) => plan,
                Err(e) if part_failed(&e) => {
                    let ids: Vec<&str> = statuses.iter().map(|s| s.id.as_str()).collect();
                    report.exception("invalid", Some(phone_number_id), e.to_string(), json!({ "ids": ids }));
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.statuses += statuses.len();
            if plan.events.is_empty() {
                report.absorbed += statuses.len();
                continue;
            }
            let stops = plan.events.iter().any(stops_marketing);
            // A status follows the message's last event: the chain from its request goes on.
            let plan = plan.following(crate::store::Lineage::of(events));
            plans.push((stream.clone(), ExpectedVersion::from_current(loaded.version), plan));
            facts.push((stream, statuses, loaded.state.contact_id, stops));
        }
        let results = self.append_each(ctx, plans).await;
        for ((stream, statuses, contact, stops), result) in facts.into_iter().zip(results) {
            let result = match result {
                // Another notification about this message won the race: decide again on fresh state.
                Err(CommandError::Conflict(_)) => {
                    let id = id_of(stream).unwrap_or_default();
                    self.execute::<Message, _>(ctx, id, |m| decide(stream, ctx.workspace_id, m, statuses)).await
                }
                other => other,
            };
            let result = match result {
                Ok(r) => r,
                Err(e) if part_failed(&e) => {
                    report.statuses -= statuses.len();
                    let ids: Vec<&str> = statuses.iter().map(|s| s.id.as_str()).collect();
                    report.exception("invalid", Some(phone_number_id), e.to_string(), json!({ "ids": ids }));
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.wrote(result.position);
            if let (true, Some(contact)) = (stops, contact) {
                let reason = Some(format!("provider error {MARKETING_STOPPED}: recipient stopped marketing messages"));
                match self.set_contact_consent(ctx, contact, true, reason, ConsentSource::Provider).await {
                    Ok(r) => report.wrote(r.position),
                    // The contact was deleted meanwhile: nothing to suppress.
                    Err(CommandError::Domain(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// A 131050 failure: the recipient stopped marketing messages.
fn stops_marketing(e: &MessageEvent) -> bool {
    matches!(e, MessageEvent::Failed { error, .. } if error.code == MARKETING_STOPPED)
}
