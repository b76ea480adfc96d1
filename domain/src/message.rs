//! Message: one stream per message. Outbound messages move through a status lattice
//! queued → dispatched → sent → delivered → read, or failed; they never move backwards, duplicates and
//! late reports are absorbed, and `read` implies delivered.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::ids::{CampaignId, ChannelId, ContactId, TemplateId};
use crate::provider::{classify, ErrorClass};
use crate::template::{render, Category, Language, RenderInput, RenderedTemplate, Template, TemplateName};
use crate::values::{bounded_text, Bsuid, Destination, PhoneNumber};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Status of an outbound message. The order of variants is the lattice order: delivery evidence
/// (delivered, read) outranks a failure report, which outranks sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    #[default]
    Queued,
    Dispatched,
    /// The attempt's outcome never came back (a crash, a lost answer) and no webhook resolved it:
    /// final unless a later webhook reports what happened. Never resent automatically.
    Unknown,
    Sent,
    Failed,
    Delivered,
    Read,
}

impl MessageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Dispatched => "dispatched",
            Self::Unknown => "unknown",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

/// Media by uploaded id or by public link: exactly one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRef {
    Id(String),
    Link(String),
    /// Ours (`POST /v1/media`): uploaded to the channel's provider when first sent on it.
    Stored(uuid::Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        body: String,
        #[serde(default)]
        preview_url: bool,
    },
    Template {
        template_id: TemplateId,
        name: TemplateName,
        language: Language,
        category: Category,
        rendered: RenderedTemplate,
    },
    Media {
        media_kind: MediaKind,
        media: MediaRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    Interactive {
        body: String,
        buttons: Vec<ReplyButton>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
    },
}

impl MessageContent {
    /// Free-form content may only be sent inside the 24-hour service window.
    pub fn is_free_form(&self) -> bool {
        !matches!(self, Self::Template { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Template { .. } => "template",
            Self::Media { .. } => "media",
            Self::Interactive { .. } => "interactive",
        }
    }

    /// Renders `template` for a recipient into template content; the template must be sendable.
    pub fn from_template(
        template_id: TemplateId,
        template: &Template,
        input: &RenderInput<'_>,
    ) -> Result<Self, DomainError> {
        let (Some(name), Some(language), Some(category)) = (&template.name, &template.language, template.category)
        else {
            return Err(DomainError::NotFound("template"));
        };
        if !template.is_sendable() {
            return Err(DomainError::TemplateNotApproved(template.status.as_str().to_owned()));
        }
        Ok(Self::Template {
            template_id,
            name: name.clone(),
            language: language.clone(),
            category,
            rendered: render::render(template, input)?,
        })
    }

    fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::Text { body, .. } => {
                bounded_text("text.body", body, 4096)?;
            }
            Self::Template { .. } => {}
            Self::Media { media_kind, media, caption, filename } => {
                match media {
                    MediaRef::Id(id) => {
                        bounded_text("media.id", id, 256)?;
                    }
                    MediaRef::Link(link) if link.starts_with("https://") || link.starts_with("http://") => {
                        bounded_text("media.link", link, 2000)?;
                    }
                    MediaRef::Link(_) => return Err(DomainError::invalid("media.link", "an http(s) URL")),
                    MediaRef::Stored(_) => {}
                }
                if let Some(c) = caption {
                    if matches!(media_kind, MediaKind::Audio | MediaKind::Sticker) {
                        return Err(DomainError::invalid("media.caption", "audio and stickers take no caption"));
                    }
                    bounded_text("media.caption", c, 1024)?;
                }
                if let Some(f) = filename {
                    if *media_kind != MediaKind::Document {
                        return Err(DomainError::invalid("media.filename", "only documents have a filename"));
                    }
                    bounded_text("media.filename", f, 240)?;
                }
            }
            Self::Interactive { body, buttons, header, footer } => {
                bounded_text("interactive.body", body, 1024)?;
                if buttons.is_empty() || buttons.len() > 3 {
                    return Err(DomainError::invalid("interactive.buttons", "1 to 3 reply buttons"));
                }
                for (i, b) in buttons.iter().enumerate() {
                    bounded_text("interactive.buttons.title", &b.title, 20)?;
                    bounded_text("interactive.buttons.id", &b.id, 256)?;
                    if buttons[..i].iter().any(|o| o.id == b.id) {
                        return Err(DomainError::invalid("interactive.buttons.id", "button ids must be unique"));
                    }
                }
                if let Some(h) = header {
                    bounded_text("interactive.header", h, 60)?;
                }
                if let Some(f) = footer {
                    bounded_text("interactive.footer", f, 60)?;
                }
            }
        }
        Ok(())
    }
}

/// An error reported by the provider, kept verbatim, with the class it was given when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: i64,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Absent on events recorded before classification was stored; derive it with [`classify`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
}

impl ProviderError {
    /// A provider error, classified by its code.
    pub fn new(code: i64, title: impl Into<String>, details: Option<String>) -> Self {
        Self { code, title: title.into(), details, class: Some(classify(code)) }
    }

    pub fn class(&self) -> ErrorClass {
        self.class.unwrap_or_else(|| classify(self.code))
    }
}

/// What the provider reported about billing for a message (Meta's `pricing` and `conversation`),
/// kept for usage metering.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pricing {
    pub billable: bool,
    /// e.g. marketing, utility, authentication, service (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_origin: Option<String>,
}

/// What the send-time rules need to know about the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientFacts {
    pub opted_out: bool,
    /// Whether the 24-hour service window is open at the time of queueing.
    pub window_open: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub queued: bool,
    pub status: MessageStatus,
    pub channel_id: Option<ChannelId>,
    pub contact_id: Option<ContactId>,
    pub attempts: u32,
    /// A retry is scheduled (after a retry-later error): the next attempt may be made from this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// When the last attempt was recorded.
    pub attempted_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub error: Option<ProviderError>,
    pub billed: bool,
    /// What to send, to whom (a phone number, else a BSUID), in reply to what (from the queueing event).
    pub to: Option<PhoneNumber>,
    pub user_id: Option<Bsuid>,
    pub content: Option<MessageContent>,
    pub reply_to: Option<String>,
    pub campaign_id: Option<CampaignId>,
}

impl Message {
    /// Where the message goes: its phone number (which takes precedence, as at Meta), else its BSUID.
    pub fn destination(&self) -> Option<Destination> {
        match (&self.to, &self.user_id) {
            (Some(p), _) => Some(Destination::Phone(p.clone())),
            (None, Some(u)) => Some(Destination::User(u.clone())),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum StatusUpdate {
    Sent { provider_message_id: String },
    Delivered,
    Read,
    Failed { error: ProviderError },
}

#[derive(Debug, Clone)]
pub enum MessageCommand {
    Queue {
        channel_id: ChannelId,
        contact_id: ContactId,
        to: Destination,
        content: MessageContent,
        recipient: RecipientFacts,
        /// Provider id of the message this one replies to.
        reply_to: Option<String>,
        campaign_id: Option<CampaignId>,
        at: DateTime<Utc>,
    },
    MarkDispatched {
        attempt: u32,
        at: DateTime<Utc>,
    },
    RecordStatus {
        update: StatusUpdate,
        at: DateTime<Utc>,
    },
    /// Gives up waiting for the outcome of an attempt made before `older_than` (policy after a crash).
    MarkOutcomeUnknown {
        older_than: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The attempt failed with a retry-later error (or never reached the provider): try again later.
    ScheduleRetry {
        error: ProviderError,
        not_before: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Keeps the first billing report of a message; later (duplicate) reports change nothing.
    RecordPricing {
        pricing: Pricing,
        at: DateTime<Utc>,
    },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum MessageEvent {
        #[serde(rename = "message.queued")]
        Queued {
            channel_id: ChannelId,
            contact_id: ContactId,
            /// The phone number it goes to; absent for a user known only by BSUID (`user_id`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            to: Option<PhoneNumber>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            user_id: Option<Bsuid>,
            content: MessageContent,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reply_to: Option<String>,
            /// The campaign that queued it, if any.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            campaign_id: Option<CampaignId>,
            at: DateTime<Utc>,
        },
        #[serde(rename = "message.dispatched")]
        Dispatched { attempt: u32, at: DateTime<Utc> },
        #[serde(rename = "message.sent")]
        Sent { provider_message_id: String, at: DateTime<Utc> },
        #[serde(rename = "message.delivered")]
        Delivered { at: DateTime<Utc> },
        #[serde(rename = "message.read")]
        Read { at: DateTime<Utc> },
        #[serde(rename = "message.failed")]
        Failed { error: ProviderError, at: DateTime<Utc> },
        #[serde(rename = "message.outcome_unknown")]
        OutcomeUnknown { attempt: u32, at: DateTime<Utc> },
        #[serde(rename = "message.retry_scheduled")]
        RetryScheduled { attempt: u32, error: ProviderError, not_before: DateTime<Utc>, at: DateTime<Utc> },
        #[serde(rename = "message.billed")]
        Billed { channel_id: ChannelId, pricing: Pricing, at: DateTime<Utc> },
    }
}

impl Aggregate for Message {
    const CATEGORY: &'static str = "message";
    type Command = MessageCommand;
    type Event = MessageEvent;

    fn decide(&self, command: MessageCommand) -> Result<Vec<MessageEvent>, DomainError> {
        match command {
            MessageCommand::Queue { channel_id, contact_id, to, content, recipient, reply_to, campaign_id, at } => {
                if self.queued {
                    return Err(DomainError::AlreadyExists("message"));
                }
                content.validate()?;
                if content.is_free_form() && !recipient.window_open {
                    return Err(DomainError::OutsideServiceWindow);
                }
                if let MessageContent::Template { category: Category::Marketing, .. } = content {
                    if recipient.opted_out {
                        return Err(DomainError::ContactOptedOut);
                    }
                }
                let (to, user_id) = match to {
                    Destination::Phone(p) => (Some(p), None),
                    Destination::User(u) => (None, Some(u)),
                };
                Ok(vec![MessageEvent::Queued {
                    channel_id,
                    contact_id,
                    to,
                    user_id,
                    content,
                    reply_to,
                    campaign_id,
                    at,
                }])
            }
            _ if !self.queued => Err(DomainError::NotFound("message")),
            // The first attempt of a queued message, or the next one of a scheduled retry; anything else
            // (a second dispatcher acting on a stale view) decides to nothing, so nothing is sent twice.
            MessageCommand::MarkDispatched { attempt, at } => {
                let first = self.status == MessageStatus::Queued && self.attempts == 0;
                let retry = self.status == MessageStatus::Dispatched && self.retry_at.is_some();
                let next = (first || retry) && attempt == self.attempts + 1;
                Ok(if next { vec![MessageEvent::Dispatched { attempt, at }] } else { vec![] })
            }
            MessageCommand::MarkOutcomeUnknown { older_than, at } => {
                let stale = self.status == MessageStatus::Dispatched
                    && self.retry_at.is_none()
                    && self.attempted_at.is_some_and(|t| t < older_than);
                Ok(if stale { vec![MessageEvent::OutcomeUnknown { attempt: self.attempts, at }] } else { vec![] })
            }
            MessageCommand::ScheduleRetry { error, not_before, at } => {
                if self.status != MessageStatus::Dispatched || self.retry_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![MessageEvent::RetryScheduled { attempt: self.attempts, error, not_before, at }])
            }
            MessageCommand::RecordStatus { update, at } => {
                let target = match &update {
                    StatusUpdate::Sent { .. } => MessageStatus::Sent,
                    StatusUpdate::Delivered => MessageStatus::Delivered,
                    StatusUpdate::Read => MessageStatus::Read,
                    StatusUpdate::Failed { .. } => MessageStatus::Failed,
                };
                if target <= self.status {
                    return Ok(vec![]);
                }
                Ok(vec![match update {
                    StatusUpdate::Sent { provider_message_id } => MessageEvent::Sent { provider_message_id, at },
                    StatusUpdate::Delivered => MessageEvent::Delivered { at },
                    StatusUpdate::Read => MessageEvent::Read { at },
                    StatusUpdate::Failed { error } => MessageEvent::Failed { error, at },
                }])
            }
            MessageCommand::RecordPricing { pricing, at } => match self.channel_id {
                Some(channel_id) if !self.billed => Ok(vec![MessageEvent::Billed { channel_id, pricing, at }]),
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(mut self, event: &MessageEvent) -> Self {
        match event {
            MessageEvent::Queued { channel_id, contact_id, to, user_id, content, reply_to, campaign_id, .. } => {
                self.campaign_id = *campaign_id;
                self.queued = true;
                self.status = MessageStatus::Queued;
                self.channel_id = Some(*channel_id);
                self.contact_id = Some(*contact_id);
                self.to = to.clone();
                self.user_id = user_id.clone();
                self.content = Some(content.clone());
                self.reply_to = reply_to.clone();
            }
            MessageEvent::Dispatched { attempt, at } => {
                self.attempts = *attempt;
                self.retry_at = None;
                self.attempted_at = Some(*at);
                self.status = self.status.max(MessageStatus::Dispatched);
            }
            MessageEvent::Sent { provider_message_id, .. } => {
                self.provider_message_id = Some(provider_message_id.clone());
                self.status = self.status.max(MessageStatus::Sent);
            }
            MessageEvent::Delivered { .. } => self.status = self.status.max(MessageStatus::Delivered),
            MessageEvent::Read { .. } => self.status = self.status.max(MessageStatus::Read),
            MessageEvent::Failed { error, .. } => {
                self.error = Some(error.clone());
                self.status = self.status.max(MessageStatus::Failed);
            }
            MessageEvent::Billed { .. } => self.billed = true,
            MessageEvent::OutcomeUnknown { .. } => self.status = self.status.max(MessageStatus::Unknown),
            MessageEvent::RetryScheduled { error, not_before, .. } => {
                self.error = Some(error.clone());
                self.retry_at = Some(*not_before);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_857_384 + s, 0).unwrap()
    }

    fn queue(content: MessageContent, recipient: RecipientFacts) -> Result<Vec<MessageEvent>, DomainError> {
        Message::default().decide(MessageCommand::Queue {
            channel_id: ChannelId::from_uuid(Uuid::from_u128(1)),
            contact_id: ContactId::from_uuid(Uuid::from_u128(2)),
            to: Destination::Phone(PhoneNumber::parse("+6281234567890").unwrap()),
            content,
            recipient,
            reply_to: None,
            campaign_id: None,
            at: at(0),
        })
    }

    fn text() -> MessageContent {
        MessageContent::Text { body: "Halo Budi".into(), preview_url: false }
    }

    fn marketing() -> MessageContent {
        MessageContent::Template {
            template_id: TemplateId::from_uuid(Uuid::from_u128(3)),
            name: TemplateName::parse("promo").unwrap(),
            language: Language::parse("id").unwrap(),
            category: Category::Marketing,
            rendered: RenderedTemplate { components: vec![], body_preview: "Promo".into() },
        }
    }

    const OPEN: RecipientFacts = RecipientFacts { opted_out: false, window_open: true };
    const CLOSED: RecipientFacts = RecipientFacts { opted_out: false, window_open: false };

    fn status(events: &[MessageEvent], update: StatusUpdate) -> Vec<MessageEvent> {
        Message::replay(events).decide(MessageCommand::RecordStatus { update, at: at(9) }).unwrap()
    }

    fn queued() -> Vec<MessageEvent> {
        queue(text(), OPEN).unwrap()
    }

    #[test]
    fn free_form_needs_the_service_window_but_templates_do_not() {
        assert_eq!(queue(text(), CLOSED).unwrap_err(), DomainError::OutsideServiceWindow);
        assert_eq!(queue(text(), OPEN).unwrap().len(), 1);
        assert_eq!(queue(marketing(), CLOSED).unwrap().len(), 1);
    }

    #[test]
    fn opted_out_contacts_get_no_marketing_but_do_get_utility() {
        let out = RecipientFacts { opted_out: true, window_open: false };
        assert_eq!(queue(marketing(), out).unwrap_err(), DomainError::ContactOptedOut);
        let MessageContent::Template { template_id, name, language, rendered, .. } = marketing() else {
            unreachable!()
        };
        let utility = MessageContent::Template { template_id, name, language, category: Category::Utility, rendered };
        assert_eq!(queue(utility, out).unwrap().len(), 1);
    }

    #[test]
    fn interactive_allows_three_buttons_of_twenty_characters() {
        let b = |id: &str, title: &str| ReplyButton { id: id.into(), title: title.into() };
        let four = MessageContent::Interactive {
            body: "Pick".into(),
            buttons: vec![b("1", "a"), b("2", "b"), b("3", "c"), b("4", "d")],
            header: None,
            footer: None,
        };
        assert!(queue(four, OPEN).is_err());
        let long = MessageContent::Interactive {
            body: "Pick".into(),
            buttons: vec![b("1", &"x".repeat(21))],
            header: None,
            footer: None,
        };
        assert!(queue(long, OPEN).is_err());
        let ok = MessageContent::Interactive {
            body: "Pick".into(),
            buttons: vec![b("1", "Yes"), b("2", "No")],
            header: None,
            footer: None,
        };
        assert!(queue(ok, OPEN).is_ok());
    }

    #[test]
    fn media_validation() {
        let doc = |filename| MessageContent::Media {
            media_kind: MediaKind::Image,
            media: MediaRef::Link("ftp://x".into()),
            caption: None,
            filename,
        };
        assert!(queue(doc(None), OPEN).is_err());
        let named_image = MessageContent::Media {
            media_kind: MediaKind::Image,
            media: MediaRef::Id("1037543291543636".into()),
            caption: None,
            filename: Some("a.jpg".into()),
        };
        assert!(queue(named_image, OPEN).is_err());
    }

    #[test]
    fn statuses_only_move_forward() {
        let mut events = queued();
        let sent = status(&events, StatusUpdate::Sent { provider_message_id: "wamid.1".into() });
        events.extend(sent);
        let read = status(&events, StatusUpdate::Read);
        assert_eq!(read, vec![MessageEvent::Read { at: at(9) }]);
        events.extend(read);
        assert_eq!(Message::replay(&events).status, MessageStatus::Read);
        // a late delivered, a duplicate read and a late sent change nothing
        assert!(status(&events, StatusUpdate::Delivered).is_empty());
        assert!(status(&events, StatusUpdate::Read).is_empty());
        assert!(status(&events, StatusUpdate::Sent { provider_message_id: "wamid.1".into() }).is_empty());
    }

    #[test]
    fn failed_keeps_the_error_and_delivery_evidence_outranks_it() {
        let mut events = queued();
        let error = ProviderError::new(131026, "Message undeliverable", Some("x".into()));
        assert_eq!(error.class(), ErrorClass::Final);
        let failed = status(&events, StatusUpdate::Failed { error: error.clone() });
        events.extend(failed);
        let m = Message::replay(&events);
        assert_eq!(m.status, MessageStatus::Failed);
        assert_eq!(m.error, Some(error.clone()));
        assert!(status(&events, StatusUpdate::Sent { provider_message_id: "w".into() }).is_empty());
        let delivered = status(&events, StatusUpdate::Delivered);
        assert_eq!(delivered.len(), 1);
        events.extend(delivered);
        assert!(status(&events, StatusUpdate::Failed { error }).is_empty());
    }

    #[test]
    fn the_first_billing_report_is_kept_and_duplicates_absorbed() {
        let mut events = queued();
        let pricing = Pricing { billable: true, category: Some("marketing".into()), ..Pricing::default() };
        let m = Message::replay(&events);
        let billed = m.decide(MessageCommand::RecordPricing { pricing: pricing.clone(), at: at(2) }).unwrap();
        let channel_id = ChannelId::from_uuid(Uuid::from_u128(1));
        assert_eq!(billed, vec![MessageEvent::Billed { channel_id, pricing: pricing.clone(), at: at(2) }]);
        events.extend(billed);
        let again = Message::replay(&events).decide(MessageCommand::RecordPricing { pricing, at: at(3) }).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn a_retry_allows_exactly_one_more_attempt() {
        let mut events = queued();
        events
            .extend(Message::replay(&events).decide(MessageCommand::MarkDispatched { attempt: 1, at: at(1) }).unwrap());
        let m = Message::replay(&events);
        assert!(
            m.decide(MessageCommand::MarkDispatched { attempt: 2, at: at(2) }).unwrap().is_empty(),
            "no retry scheduled"
        );
        let error = ProviderError::new(130429, "throughput", None);
        let retry = m.decide(MessageCommand::ScheduleRetry { error, not_before: at(10), at: at(2) }).unwrap();
        assert_eq!(retry.len(), 1);
        events.extend(retry);
        let m = Message::replay(&events);
        assert_eq!(m.retry_at, Some(at(10)));
        let again = m.decide(MessageCommand::MarkDispatched { attempt: 2, at: at(11) }).unwrap();
        assert_eq!(again.len(), 1);
        events.extend(again);
        let m = Message::replay(&events);
        assert!(m.decide(MessageCommand::MarkDispatched { attempt: 3, at: at(12) }).unwrap().is_empty());
    }

    #[test]
    fn an_attempt_without_outcome_becomes_unknown_and_a_late_webhook_still_applies() {
        let mut events = queued();
        events
            .extend(Message::replay(&events).decide(MessageCommand::MarkDispatched { attempt: 1, at: at(1) }).unwrap());
        let m = Message::replay(&events);
        assert!(
            m.decide(MessageCommand::MarkOutcomeUnknown { older_than: at(1), at: at(5) }).unwrap().is_empty(),
            "too recent"
        );
        let unknown = m.decide(MessageCommand::MarkOutcomeUnknown { older_than: at(2), at: at(5) }).unwrap();
        assert_eq!(unknown, vec![MessageEvent::OutcomeUnknown { attempt: 1, at: at(5) }]);
        events.extend(unknown);
        let m = Message::replay(&events);
        assert_eq!(m.status, MessageStatus::Unknown);
        assert!(m.decide(MessageCommand::MarkDispatched { attempt: 2, at: at(6) }).unwrap().is_empty(), "never resent");
        assert_eq!(status(&events, StatusUpdate::Delivered).len(), 1);
    }

    #[test]
    fn dispatch_attempts_are_counted_once_each() {
        let events = queued();
        let m = Message::replay(&events);
        assert_eq!(m.decide(MessageCommand::MarkDispatched { attempt: 1, at: at(1) }).unwrap().len(), 1);
        assert!(m.decide(MessageCommand::MarkDispatched { attempt: 2, at: at(1) }).unwrap().is_empty());
        assert_eq!(
            Message::default().decide(MessageCommand::MarkDispatched { attempt: 1, at: at(1) }).unwrap_err(),
            DomainError::NotFound("message")
        );
    }
}
