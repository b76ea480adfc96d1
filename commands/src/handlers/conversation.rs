//! Conversation commands of the inbox: set the status (open, pending, snoozed until a time,
//! resolved), label, assign (by hand and automatically), set the priority, add private notes, reply,
//! and wake snoozed conversations whose time has come.

use super::message::{SendContent, SendMessage};
use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{
    ConversationAssignment, ConversationLabels, ConversationNote, ConversationPriority, ConversationRead,
    ConversationState, ConversationWritten, MessageQueued,
};
use crate::service::{Commands, Plan};
use blazz_domain::aggregate::Aggregate;
use blazz_domain::conversation::{Conversation, ConversationCommand, ConversationEvent, ConversationStatus, Priority};
use blazz_domain::ids::{AgentId, ConversationId, NoteId, TeamId};
use blazz_domain::role::Action;
use blazz_domain::DomainError;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Commands {
    /// Sets a conversation's status; `until` is the end of a snooze (and only of a snooze).
    pub async fn set_conversation_status(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        status: ConversationStatus,
        until: Option<DateTime<Utc>>,
    ) -> Result<CommandResult<ConversationState>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::SetStatus { status, until, now: ctx.now })?;
            let after = events.iter().fold(c.clone(), Conversation::evolve);
            Ok(Plan::new(
                events,
                ConversationState { conversation_id: id, status: after.status, snoozed_until: after.snoozed_until },
            ))
        })
        .await
    }

    /// Marks a conversation read by the caller (its agent, when the key is bound to one).
    pub async fn mark_conversation_read(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
    ) -> Result<CommandResult<ConversationRead>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::MarkRead { now: ctx.now })?;
            Ok(Plan::new(events, ConversationRead { conversation_id: id, unread_count: 0 }))
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
    ) -> Result<CommandResult<ConversationLabels>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::Label { add: add.clone(), remove: remove.clone() })?;
            let after = events.iter().fold(c.clone(), Conversation::evolve);
            Ok(Plan::new(
                events,
                ConversationLabels { conversation_id: id, labels: after.labels.into_iter().collect() },
            ))
        })
        .await
    }

    /// Assigns to an agent and/or a team (`None`: unchanged, `Some(None)`: cleared). Both must exist.
    pub async fn assign_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        agent: Option<Option<AgentId>>,
        team: Option<Option<TeamId>>,
    ) -> Result<CommandResult<ConversationAssignment>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        if let Some(Some(a)) = agent {
            self.check_active_agent(ctx.workspace_id, a).await?;
        }
        if let Some(Some(t)) = team {
            self.check_team(ctx.workspace_id, t).await?;
        }
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            assignment(id, c, ConversationCommand::Assign { agent, team })
        })
        .await
    }

    /// Automatic assignment (the system's command): gives the conversation to `team` and `agent`
    /// unless someone took it meanwhile.
    pub async fn auto_assign_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        team: TeamId,
        agent: Option<AgentId>,
    ) -> Result<CommandResult<ConversationAssignment>, CommandError> {
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            assignment(id, c, ConversationCommand::AutoAssign { team, agent })
        })
        .await
    }

    /// Hands a conversation of a deactivated agent back to its team (the scheduler's command; a
    /// no-op when the conversation has been reassigned since).
    pub async fn release_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        agent: AgentId,
    ) -> Result<CommandResult<ConversationAssignment>, CommandError> {
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            assignment(id, c, ConversationCommand::Release { agent })
        })
        .await
    }

    pub async fn set_conversation_priority(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        priority: Priority,
    ) -> Result<CommandResult<ConversationPriority>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::SetPriority { priority })?;
            Ok(Plan::new(events, ConversationPriority { conversation_id: id, priority }))
        })
        .await
    }

    /// A private note on the conversation, by the caller (never sent to WhatsApp).
    pub async fn add_conversation_note(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        text: String,
    ) -> Result<CommandResult<ConversationNote>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        let note_id = NoteId::from_uuid(Uuid::now_v7());
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::AddNote { note_id, text: text.clone(), now: ctx.now })?;
            Ok(Plan::new(events, ConversationNote { conversation_id: id, note_id }))
        })
        .await
    }

    /// A message to the conversation's contact on its channel, under the same rules as any send
    /// (the 24-hour window, opt-outs, approved templates).
    pub async fn reply_in_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
        content: SendContent,
        reply_to: Option<String>,
    ) -> Result<CommandResult<MessageQueued>, CommandError> {
        require(ctx.role, Action::SendMessages)?;
        let c = self.load::<Conversation>(ctx.workspace_id, id.as_uuid()).await?.state;
        let (Some(channel_id), Some(contact_id)) = (c.channel_id, c.contact_id) else {
            return Err(DomainError::NotFound("conversation").into());
        };
        self.send_message(ctx, SendMessage { channel_id, contact_id, content, reply_to }).await
    }

    /// Reopens a snoozed conversation whose snooze has ended (the system's command; nothing happens
    /// if it is not due, or no longer snoozed).
    pub async fn wake_conversation(
        &self,
        ctx: &CommandContext,
        id: ConversationId,
    ) -> Result<CommandResult<ConversationWritten>, CommandError> {
        self.execute::<Conversation, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ConversationCommand::Wake { now: ctx.now })?;
            Ok(Plan::new(events, ConversationWritten { conversation_id: id }))
        })
        .await
    }
}

/// The plan of an assignment command, answering with the assignment after it.
fn assignment(
    id: ConversationId,
    c: &Conversation,
    command: ConversationCommand,
) -> Result<Plan<ConversationEvent, ConversationAssignment>, CommandError> {
    let events = c.decide(command)?;
    let after = events.iter().fold(c.clone(), Conversation::evolve);
    Ok(Plan::new(
        events,
        ConversationAssignment { conversation_id: id, agent_id: after.agent_id, team_id: after.team_id },
    ))
}
