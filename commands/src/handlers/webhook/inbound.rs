//! Inbound messages. Each is stored on the conversation of (channel, contact), opening or renewing the
//! 24-hour window; the contact is found by its business-scoped user id (BSUID) or its phone number,
//! and created if neither is known (a user who hides their number is known by BSUID alone); a phone
//! contact learns its BSUID the first time Meta sends both. The workspace's opt-out and opt-in
//! keywords change the contact's consent. The conversation's append claims `<channel>:<wamid>`, so a
//! redelivered message is absorbed even when two deliveries race.

use super::{part_failed, part_problem, IngestReport};
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::handlers::contact::{phone_claim, user_id_claim};
use crate::outcome::{ContactWritten, ConversationWritten};
use crate::provider::meta::webhook::{InboundParts, WaContact, MAX_PROVIDER_ID};
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::aggregate::{id_of, stream_id, Aggregate};
use blazz_domain::contact::{ConsentSource, Contact, ContactCommand};
use blazz_domain::conversation::{Conversation, ConversationCommand, InboundMessage};
use blazz_domain::ids::{ChannelId, ContactId, ConversationId, MessageId};
use blazz_domain::values::{Bsuid, PhoneNumber};
use blazz_domain::workspace::Workspace;
use serde_json::{json, Value};
use uuid::Uuid;

impl Commands {
    pub(super) async fn apply_inbound(
        &self,
        ctx: &CommandContext,
        channel: ChannelId,
        phone_number_id: &str,
        contacts: &[WaContact],
        messages: Vec<Value>,
        report: &mut IngestReport,
    ) -> Result<(), CommandError> {
        let mut workspace: Option<Workspace> = None;
        for raw in messages {
            let Some(parts) = InboundParts::of(&raw) else {
                report.exception(
                    "invalid",
                    Some(phone_number_id),
                    "inbound message without from, id or timestamp",
                    raw,
                );
                continue;
            };
            let problem = if parts.id.is_empty() || parts.id.len() > MAX_PROVIDER_ID {
                Some(format!("id must be 1-{MAX_PROVIDER_ID} bytes"))
            } else {
                part_problem(&raw, Some(parts.timestamp), ctx.now)
            };
            if let Some(problem) = problem {
                report.exception("invalid", Some(phone_number_id), problem, raw);
                continue;
            }
            let sender = match Sender::of(&parts) {
                Ok(s) => s,
                Err(problem) => {
                    report.exception("invalid", Some(phone_number_id), problem, raw);
                    continue;
                }
            };
            let kept = raw.clone();
            match self.inbound_one(ctx, channel, contacts, parts, sender, raw, &mut workspace, report).await {
                Ok(()) => {}
                Err(e) if part_failed(&e) => report.exception("invalid", Some(phone_number_id), e.to_string(), kept),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One validated inbound message: the contact (created if new), consent keywords, the conversation.
    #[allow(clippy::too_many_arguments)]
    async fn inbound_one(
        &self,
        ctx: &CommandContext,
        channel: ChannelId,
        contacts: &[WaContact],
        parts: InboundParts,
        sender: Sender,
        raw: Value,
        workspace: &mut Option<Workspace>,
        report: &mut IngestReport,
    ) -> Result<(), CommandError> {
        let dedupe_key = format!("{channel}:{}", parts.id);
        if self.store().claim(scopes::INBOUND_MESSAGE, &dedupe_key).await?.is_some() {
            report.absorbed += 1;
            return Ok(());
        }
        let name = contacts
            .iter()
            .find(|c| {
                (parts.from.is_some() && c.wa_id == parts.from)
                    || (parts.from_user_id.is_some() && c.user_id == parts.from_user_id)
            })
            .and_then(|c| c.profile.as_ref()?.name.clone())
            .filter(|n| !n.trim().is_empty());
        let contact = self.contact_for(ctx, &sender, name).await?;

        if let Some(text) = &parts.text {
            let ws = match workspace {
                Some(ws) => ws,
                None => workspace.insert(self.load::<Workspace>(ctx.workspace_id, ctx.workspace_id).await?.state),
            };
            let consent =
                if ws.is_opt_out_keyword(text) { Some(true) } else { ws.is_opt_in_keyword(text).then_some(false) };
            if let Some(opt_out) = consent {
                let reason = Some(format!("inbound keyword {:?}", text.trim()));
                let r = self.set_contact_consent(ctx, contact, opt_out, reason, ConsentSource::Keyword).await?;
                report.wrote(r.position);
            }
        }

        let message = InboundMessage {
            message_id: MessageId::for_inbound(channel, &parts.id),
            channel_id: channel,
            contact_id: contact,
            kind: parts.kind.clone(),
            text: parts.text.clone(),
            context_id: parts.context_id.clone(),
            raw,
        };
        let conversation = ConversationId::for_pair(channel, contact);
        let owner = stream_id::<Conversation>(conversation.as_uuid());
        let recorded = self
            .execute::<Conversation, _>(ctx, conversation.as_uuid(), |c| {
                let events = c.decide(ConversationCommand::RecordInbound {
                    channel_id: channel,
                    contact_id: contact,
                    provider_message_id: parts.id.clone(),
                    message: Some(message.clone()),
                    at: parts.timestamp,
                })?;
                let mut plan = Plan::new(events, ConversationWritten { conversation_id: conversation });
                plan.claims.push(Claim {
                    scope: scopes::INBOUND_MESSAGE.into(),
                    value: dedupe_key.clone(),
                    owner: owner.clone(),
                    workspace_id: ctx.workspace_id,
                    data: json!({}),
                });
                Ok(plan)
            })
            .await;
        match recorded {
            Ok(r) => {
                report.inbound += 1;
                report.wrote(r.position);
            }
            // The same message, delivered twice at once: the other delivery recorded it.
            Err(CommandError::Taken { .. }) => report.absorbed += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The workspace's contact of the sender: by BSUID, else by phone number (learning its BSUID),
    /// created (with the profile name) if there is none.
    async fn contact_for(
        &self,
        ctx: &CommandContext,
        sender: &Sender,
        name: Option<String>,
    ) -> Result<ContactId, CommandError> {
        let ws = ctx.workspace_id;
        let owner_of = |scope: &'static str, value: String| async move {
            Ok::<_, CommandError>(self.store().claim(scope, &value).await?.and_then(|c| id_of(&c.owner)))
        };
        if let Some(user) = &sender.user_id {
            if let Some(id) = owner_of(scopes::CONTACT_USER_ID, format!("{ws}:{user}")).await? {
                return Ok(ContactId::from_uuid(id));
            }
        }
        if let Some(phone) = &sender.phone {
            if let Some(id) = owner_of(scopes::CONTACT_PHONE, format!("{ws}:{phone}")).await? {
                let id = ContactId::from_uuid(id);
                if let Some(user) = &sender.user_id {
                    self.link_user_id(ctx, id, user).await?;
                }
                return Ok(id);
            }
        }
        let id = ContactId::from_uuid(Uuid::now_v7());
        let created = self
            .execute::<Contact, _>(ctx, id.as_uuid(), |_| {
                let create = |name| ContactCommand::Create {
                    phone: sender.phone.clone(),
                    user_id: sender.user_id.clone(),
                    name,
                    attributes: Default::default(),
                };
                // A profile name Meta sends may not fit our rules: keep the contact, drop the name.
                let events = match Contact::default().decide(create(name.clone())) {
                    Ok(events) => events,
                    Err(_) => Contact::default().decide(create(None))?,
                };
                let mut plan = Plan::new(events, ContactWritten { contact_id: id });
                plan.claims.extend(sender.phone.iter().map(|p| phone_claim(ws, id, p)));
                plan.claims.extend(sender.user_id.iter().map(|u| user_id_claim(ws, id, u)));
                Ok(plan)
            })
            .await;
        match created {
            Ok(_) => Ok(id),
            // Created concurrently by another delivery: use that one.
            Err(CommandError::Taken { existing_id: Some(existing), .. }) => Uuid::try_parse(&existing)
                .map(ContactId::from_uuid)
                .map_err(|_| CommandError::Conflict(format!("contact of {sender:?}"))),
            Err(e) => Err(e),
        }
    }

    /// Records the BSUID of a phone contact (claimed, so no second contact takes it); a BSUID that
    /// another contact holds already stays with that one.
    async fn link_user_id(&self, ctx: &CommandContext, id: ContactId, user: &Bsuid) -> Result<(), CommandError> {
        let ws = ctx.workspace_id;
        let linked = self
            .execute::<Contact, _>(ctx, id.as_uuid(), |c| {
                let events = c.decide(ContactCommand::LinkUserId { user_id: user.clone() })?;
                let mut plan = Plan::new(events, ContactWritten { contact_id: id });
                if !plan.events.is_empty() {
                    plan.claims.push(user_id_claim(ws, id, user));
                }
                Ok(plan)
            })
            .await;
        match linked {
            Ok(_) | Err(CommandError::Taken { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Who wrote: a phone number, a BSUID, or both, as validated values.
#[derive(Debug)]
pub(super) struct Sender {
    phone: Option<PhoneNumber>,
    user_id: Option<Bsuid>,
}

impl Sender {
    fn of(parts: &InboundParts) -> Result<Self, String> {
        let phone = parts
            .from
            .as_ref()
            .map(|f| PhoneNumber::parse(&format!("+{f}")).map_err(|_| format!("sender {f:?} is not a number")))
            .transpose()?;
        let user_id = parts
            .from_user_id
            .as_ref()
            .map(|u| Bsuid::parse(u).map_err(|_| format!("sender user id {u:?} is not a business-scoped user id")))
            .transpose()?;
        Ok(Self { phone, user_id })
    }
}
