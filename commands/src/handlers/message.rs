//! Sending a message, and recording an inbound one (which opens the 24-hour service window).
//!
//! Sending reads the channel, the contact, their conversation and the template (if any) in one round
//! trip, checks the send-time rules in the domain, and writes a new message stream.

use super::{of_stream, require};
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{ConversationWritten, MessageQueued};
use crate::service::{Commands, Plan};
use crate::store::ExpectedVersion;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::channel::Channel;
use blazz_domain::contact::Contact;
use blazz_domain::conversation::{Conversation, ConversationCommand};
use blazz_domain::ids::{ChannelId, ContactId, ConversationId, MessageId, TemplateId};
use blazz_domain::message::{
    MediaKind, MediaRef, Message, MessageCommand, MessageContent, RecipientFacts, ReplyButton,
};
use blazz_domain::role::Action;
use blazz_domain::template::{RenderInput, Template};
use blazz_domain::DomainError;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What to send, as the client describes it.
#[derive(Debug, Clone)]
pub enum SendContent {
    Text {
        body: String,
        preview_url: bool,
    },
    Template {
        template_id: TemplateId,
        variables: BTreeMap<String, String>,
    },
    Media {
        kind: MediaKind,
        media: MediaRef,
        caption: Option<String>,
        filename: Option<String>,
    },
    Interactive {
        body: String,
        buttons: Vec<ReplyButton>,
        header: Option<String>,
        footer: Option<String>,
    },
    /// A workspace's canned response by short code, filled in for the contact (and the agent), sent as text.
    Canned {
        short_code: String,
    },
}

#[derive(Debug, Clone)]
pub struct SendMessage {
    pub channel_id: ChannelId,
    pub contact_id: ContactId,
    pub content: SendContent,
    pub reply_to: Option<String>,
}

impl Commands {
    pub async fn send_message(
        &self,
        ctx: &CommandContext,
        input: SendMessage,
    ) -> Result<CommandResult<MessageQueued>, CommandError> {
        require(ctx.role, Action::SendMessages)?;
        if let Some(r) = self.replayed(ctx).await? {
            return Ok(r);
        }
        let ws = ctx.workspace_id;
        let channel_stream = stream_id::<Channel>(input.channel_id.as_uuid());
        let contact_stream = stream_id::<Contact>(input.contact_id.as_uuid());
        let conversation_stream =
            stream_id::<Conversation>(ConversationId::for_pair(input.channel_id, input.contact_id).as_uuid());
        let template_stream = match &input.content {
            SendContent::Template { template_id, .. } => Some(stream_id::<Template>(template_id.as_uuid())),
            _ => None,
        };
        let mut wanted = vec![channel_stream.clone(), contact_stream.clone(), conversation_stream.clone()];
        wanted.extend(template_stream.clone());
        let mut events = self.store().read_streams(&wanted).await?;
        events.sort_by(|a, b| (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version)));

        let channel = self.fold::<Channel>(ws, of_stream(&events, &channel_stream))?.state;
        if !channel.connected {
            return Err(DomainError::NotFound("channel").into());
        }
        let contact = self.fold::<Contact>(ws, of_stream(&events, &contact_stream))?.state;
        let (Some(to), true) = (contact.destination(), contact.is_active()) else {
            return Err(DomainError::NotFound("contact").into());
        };
        let conversation = self.fold::<Conversation>(ws, of_stream(&events, &conversation_stream))?.state;

        let content = match input.content {
            SendContent::Text { body, preview_url } => MessageContent::Text { body, preview_url },
            SendContent::Canned { short_code } => {
                MessageContent::Text { body: self.canned_text(ctx, &short_code, &contact).await?, preview_url: false }
            }
            SendContent::Media { kind, media, caption, filename } => {
                MessageContent::Media { media_kind: kind, media, caption, filename }
            }
            SendContent::Interactive { body, buttons, header, footer } => {
                MessageContent::Interactive { body, buttons, header, footer }
            }
            SendContent::Template { template_id, variables } => {
                let stream = template_stream.unwrap_or_default();
                let template = self.fold::<Template>(ws, of_stream(&events, &stream))?.state;
                if !template.created {
                    return Err(DomainError::NotFound("template").into());
                }
                let render = RenderInput {
                    explicit: &variables,
                    attributes: &contact.attributes,
                    contact_name: contact.name.as_deref(),
                };
                MessageContent::from_template(template_id, &template, &render)?
            }
        };
        let id = MessageId::from_uuid(Uuid::now_v7());
        let queued = Message::default().decide(MessageCommand::Queue {
            channel_id: input.channel_id,
            contact_id: input.contact_id,
            to,
            content,
            recipient: RecipientFacts {
                opted_out: contact.is_opted_out(),
                window_open: conversation.window_open(ctx.now),
            },
            reply_to: input.reply_to,
            campaign_id: None,
            at: ctx.now,
        })?;
        let plan = Plan::new(queued, MessageQueued { message_id: id, status: "queued".into() });
        self.append(ctx, stream_id::<Message>(id.as_uuid()), ExpectedVersion::NoStream, plan).await
    }

    /// Records an inbound message on the conversation of (channel, contact), opening or renewing the
    /// 24-hour service window. Used by webhook ingestion.
    pub async fn record_inbound(
        &self,
        ctx: &CommandContext,
        channel_id: ChannelId,
        contact_id: ContactId,
        provider_message_id: String,
        at: DateTime<Utc>,
    ) -> Result<CommandResult<ConversationWritten>, CommandError> {
        let id = ConversationId::for_pair(channel_id, contact_id);
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::RecordInbound {
                channel_id,
                contact_id,
                provider_message_id: provider_message_id.clone(),
                message: None,
                at,
            })?;
            Ok(Plan::new(events, ConversationWritten { conversation_id: id }))
        })
        .await
    }
}
