//! Contact group commands. Members must be active contacts of the caller's workspace: an active
//! contact is exactly one that holds its phone claim or its BSUID claim, so two indexed queries
//! check a whole batch.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{GroupMembersAdded, GroupMembersRemoved, GroupWritten};
use crate::service::{scopes, Commands, Plan};
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::contact::Contact;
use blazz_domain::group::{ContactGroup, GroupCommand, GroupEvent};
use blazz_domain::ids::{ContactId, GroupId};
use blazz_domain::role::Action;
use blazz_domain::DomainError;
use std::collections::HashSet;
use uuid::Uuid;

/// How many memberships the events add or remove.
fn members_changed(events: &[GroupEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            GroupEvent::MembersAdded { contacts } | GroupEvent::MembersRemoved { contacts } => contacts.len(),
            GroupEvent::Created { .. } | GroupEvent::Renamed { .. } => 0,
        })
        .sum()
}

impl Commands {
    pub async fn create_group(
        &self,
        ctx: &CommandContext,
        name: String,
    ) -> Result<CommandResult<GroupWritten>, CommandError> {
        require(ctx.role, Action::ManageGroups)?;
        let id = GroupId::from_uuid(Uuid::now_v7());
        self.execute::<ContactGroup, _>(ctx, id.as_uuid(), |g| {
            Ok(Plan::new(g.decide(GroupCommand::Create { name: name.clone() })?, GroupWritten { group_id: id }))
        })
        .await
    }

    pub async fn rename_group(
        &self,
        ctx: &CommandContext,
        id: GroupId,
        name: String,
    ) -> Result<CommandResult<GroupWritten>, CommandError> {
        require(ctx.role, Action::ManageGroups)?;
        self.execute::<ContactGroup, _>(ctx, id.as_uuid(), |g| {
            Ok(Plan::new(g.decide(GroupCommand::Rename { name: name.clone() })?, GroupWritten { group_id: id }))
        })
        .await
    }

    /// Adds contacts; unknown or deleted contact ids reject the whole request, naming them.
    pub async fn add_group_members(
        &self,
        ctx: &CommandContext,
        id: GroupId,
        contacts: Vec<ContactId>,
    ) -> Result<CommandResult<GroupMembersAdded>, CommandError> {
        require(ctx.role, Action::ManageGroups)?;
        self.check_active_contacts(ctx.workspace_id, &contacts).await?;
        self.execute::<ContactGroup, _>(ctx, id.as_uuid(), |g| {
            let events = g.decide(GroupCommand::AddMembers { contacts: contacts.clone() })?;
            let added = members_changed(&events);
            Ok(Plan::new(events, GroupMembersAdded { group_id: id, added }))
        })
        .await
    }

    pub async fn remove_group_members(
        &self,
        ctx: &CommandContext,
        id: GroupId,
        contacts: Vec<ContactId>,
    ) -> Result<CommandResult<GroupMembersRemoved>, CommandError> {
        require(ctx.role, Action::ManageGroups)?;
        self.execute::<ContactGroup, _>(ctx, id.as_uuid(), |g| {
            let events = g.decide(GroupCommand::RemoveMembers { contacts: contacts.clone() })?;
            let removed = members_changed(&events);
            Ok(Plan::new(events, GroupMembersRemoved { group_id: id, removed }))
        })
        .await
    }

    async fn check_active_contacts(&self, workspace: Uuid, contacts: &[ContactId]) -> Result<(), CommandError> {
        let streams: Vec<String> = contacts.iter().map(|c| stream_id::<Contact>(c.as_uuid())).collect();
        // A live contact holds its phone claim, its BSUID claim, or both.
        let mut active: HashSet<String> =
            self.store().owners_with_claim(scopes::CONTACT_PHONE, workspace, &streams).await?.into_iter().collect();
        active.extend(self.store().owners_with_claim(scopes::CONTACT_USER_ID, workspace, &streams).await?);
        let unknown: Vec<String> = contacts
            .iter()
            .zip(&streams)
            .filter(|(_, s)| !active.contains(*s))
            .map(|(c, _)| c.to_string())
            .take(20)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(DomainError::invalid("contact_ids", format!("unknown contacts: {}", unknown.join(", "))).into())
        }
    }
}
