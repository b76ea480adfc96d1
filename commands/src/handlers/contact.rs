//! Contact commands. The phone number is claimed per workspace in the same transaction as the contact's
//! events, so two contacts can never share one number, even when created concurrently.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{ContactConsent, ContactDeleted, ContactErased, ContactLabels, ContactWritten};
use crate::service::{scopes, Commands, Plan};
use crate::store::{Claim, ClaimRelease, StoreError};
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::contact::{ConsentSource, Contact, ContactCommand, ContactEvent};
use blazz_domain::ids::ContactId;
use blazz_domain::role::Action;
use blazz_domain::values::{Attributes, Bsuid, PhoneNumber};
use blazz_domain::DomainError;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewContact {
    pub phone: PhoneNumber,
    pub name: Option<String>,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default)]
pub struct ContactChange {
    pub name: Option<Option<String>>,
    pub phone: Option<PhoneNumber>,
    pub attributes: Attributes,
}

/// The claim of a contact's BSUID in its workspace (one contact per BSUID).
pub(crate) fn user_id_claim(workspace: Uuid, contact: ContactId, user_id: &Bsuid) -> Claim {
    Claim {
        scope: scopes::CONTACT_USER_ID.into(),
        value: format!("{workspace}:{user_id}"),
        owner: stream_id::<Contact>(contact.as_uuid()),
        workspace_id: workspace,
        data: json!({}),
    }
}

pub(crate) fn phone_claim(workspace: Uuid, contact: ContactId, phone: &PhoneNumber) -> Claim {
    Claim {
        scope: scopes::CONTACT_PHONE.into(),
        value: format!("{workspace}:{phone}"),
        owner: stream_id::<Contact>(contact.as_uuid()),
        workspace_id: workspace,
        data: json!({}),
    }
}

fn phone_release(workspace: Uuid, contact: ContactId, phone: &PhoneNumber) -> ClaimRelease {
    let c = phone_claim(workspace, contact, phone);
    ClaimRelease { scope: c.scope, value: c.value, owner: c.owner }
}

/// Frees the contact's phone number and BSUID (each only if the contact still holds it).
fn identity_releases(workspace: Uuid, id: ContactId, c: &Contact) -> Vec<ClaimRelease> {
    let phone = c.phone.iter().map(|p| phone_release(workspace, id, p));
    let user = c.user_id.iter().map(|u| {
        let claim = user_id_claim(workspace, id, u);
        ClaimRelease { scope: claim.scope, value: claim.value, owner: claim.owner }
    });
    phone.chain(user).collect()
}

/// The plan for creating one contact (shared with the bulk import).
pub(crate) fn creation_plan(
    workspace: Uuid,
    id: ContactId,
    input: NewContact,
) -> Result<Plan<ContactEvent, ContactWritten>, CommandError> {
    let phone = input.phone.clone();
    let events = Contact::default().decide(ContactCommand::Create {
        phone: Some(input.phone),
        user_id: None,
        name: input.name,
        attributes: input.attributes,
    })?;
    let mut plan = Plan::new(events, ContactWritten { contact_id: id });
    plan.claims.push(phone_claim(workspace, id, &phone));
    Ok(plan)
}

impl Commands {
    pub async fn create_contact(
        &self,
        ctx: &CommandContext,
        input: NewContact,
    ) -> Result<CommandResult<ContactWritten>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        let id = ContactId::from_uuid(Uuid::now_v7());
        self.execute::<Contact, _>(ctx, id.as_uuid(), |_| creation_plan(ctx.workspace_id, id, input.clone())).await
    }

    pub async fn update_contact(
        &self,
        ctx: &CommandContext,
        id: ContactId,
        change: ContactChange,
    ) -> Result<CommandResult<ContactWritten>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        let ws = ctx.workspace_id;
        self.execute::<Contact, _>(ctx, id.as_uuid(), |c| {
            let change = change.clone();
            let events = c.decide(ContactCommand::Update {
                name: change.name,
                phone: change.phone,
                attributes: change.attributes,
            })?;
            let mut plan = Plan::new(vec![], ContactWritten { contact_id: id });
            for e in &events {
                if let ContactEvent::PhoneChanged { phone: Some(phone) } = e {
                    plan.claims.push(phone_claim(ws, id, phone));
                    // A contact known only by BSUID had no number to free.
                    if let Some(old) = &c.phone {
                        plan.releases.push(phone_release(ws, id, old));
                    }
                }
            }
            plan.events = events;
            Ok(plan)
        })
        .await
    }

    pub async fn set_contact_consent(
        &self,
        ctx: &CommandContext,
        id: ContactId,
        opt_out: bool,
        reason: Option<String>,
        source: ConsentSource,
    ) -> Result<CommandResult<ContactConsent>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        self.execute::<Contact, _>(ctx, id.as_uuid(), |c| {
            let (reason, at) = (reason.clone(), ctx.now);
            let command = if opt_out {
                ContactCommand::OptOut { reason, source, at }
            } else {
                ContactCommand::OptIn { reason, source, at }
            };
            let events = c.decide(command)?;
            Ok(Plan::new(events, ContactConsent { contact_id: id, opted_out: opt_out }))
        })
        .await
    }

    /// Adds and removes labels of a contact.
    pub async fn label_contact(
        &self,
        ctx: &CommandContext,
        id: ContactId,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<CommandResult<ContactLabels>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        self.execute::<Contact, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ContactCommand::Label { add: add.clone(), remove: remove.clone() })?;
            let after = events.iter().fold(c.clone(), Contact::evolve);
            Ok(Plan::new(events, ContactLabels { contact_id: id, labels: after.labels.into_iter().collect() }))
        })
        .await
    }

    /// Deletes a contact and frees its phone number for a new contact.
    pub async fn delete_contact(
        &self,
        ctx: &CommandContext,
        id: ContactId,
    ) -> Result<CommandResult<ContactDeleted>, CommandError> {
        require(ctx.role, Action::ManageContacts)?;
        let ws = ctx.workspace_id;
        self.execute::<Contact, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ContactCommand::Delete { at: ctx.now })?;
            let mut plan = Plan::new(events, ContactDeleted { contact_id: id, deleted: true });
            plan.releases = identity_releases(ws, id, c);
            Ok(plan)
        })
        .await
    }

    /// Erases a contact's personal data for good (owners and admins): destroys its data key, so
    /// every personal field of its events reads as erased, then appends `contact.erased` and frees
    /// its phone number and BSUID. Erasing an erased contact changes nothing.
    ///
    /// The key goes first: should the append fail, the contact is already unreadable and a retry
    /// appends the event; the log never says "erased" over a key that still opens.
    pub async fn erase_contact(
        &self,
        ctx: &CommandContext,
        id: ContactId,
    ) -> Result<CommandResult<ContactErased>, CommandError> {
        require(ctx.role, Action::EraseContacts)?;
        let vault = self.vault().ok_or_else(|| {
            StoreError::Unavailable("erasure needs a store that seals personal data (PostgreSQL)".into())
        })?;
        let ws = ctx.workspace_id;
        // What it holds is read before its key goes: afterwards its phone reads as erased.
        let before = self.load::<Contact>(ws, id.as_uuid()).await?.state;
        if !before.created {
            return Err(DomainError::NotFound("contact").into());
        }
        if !vault.erase(ws, id.as_uuid()).await? {
            return Err(DomainError::NotFound("contact").into());
        }
        self.execute::<Contact, _>(ctx, id.as_uuid(), |c| {
            let events = c.decide(ContactCommand::Erase { at: ctx.now })?;
            let mut plan = Plan::new(events, ContactErased { contact_id: id, erased: true });
            plan.releases = identity_releases(ws, id, &before);
            Ok(plan)
        })
        .await
    }
}
