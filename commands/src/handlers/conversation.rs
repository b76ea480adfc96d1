//! Conversation commands of the inbox: set the status (open, pending, snoozed until a time,
//! resolved), label, and wake snoozed conversations whose time has come.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::service::{Commands, Plan};
use blazz_domain::aggregate::Aggregate;
use blazz_domain::conversation::{Conversation, ConversationCommand, ConversationStatus};
use blazz_domain::ids::ConversationId;
use blazz_domain::role::Action;
use chrono::{DateTime, Utc};
use serde_json::json;

impl Commands {
    /// Sets a conversation's status; `until` is the end of a snooze (and only of a snooze).
    pub async fn set_conversation_status(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        status: ConversationStatus,
        until: Option<DateTime<Utc>>,
    ) -> Result<CommandResult, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::SetStatus { status, until, now: ctx.now })?;
            let after = events.iter().fold(c.clone(), Conversation::evolve);
            Ok(Plan::new(
                events,
                json!({ "conversation_id": id, "status": after.status, "snoozed_until": after.snoozed_until }),
            ))
        })
        .await
    }

    /// Adds and removes labels of a conversation.
    pub async fn label_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<CommandResult, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::Label { add: add.clone(), remove: remove.clone() })?;
            let after = events.iter().fold(c.clone(), Conversation::evolve);
            Ok(Plan::new(events, json!({ "conversation_id": id, "labels": after.labels })))
        })
        .await
    }

    /// Reopens a snoozed conversation whose snooze has ended (the system's command; nothing happens
    /// if it is not due, or no longer snoozed).
    pub async fn wake_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
    ) -> Result<CommandResult, CommandError> {
        self.execute::<Conversation>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::Wake { now: ctx.now })?;
            Ok(Plan::new(events, json!({ "conversation_id": id })))
        })
        .await
    }
}
