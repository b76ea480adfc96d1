//! Canned responses: short codes for texts agents reply with. The short code is claimed per
//! workspace with the response's creation (one response per code) and released on deletion; a reply
//! finds the response by its code through that claim.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::{CannedCreated, CannedDeleted, CannedWritten};
use crate::service::{scopes, Commands, Plan};
use crate::store::{Claim, ClaimRelease};
use blazz_domain::agent::Agent;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::canned::{render, short_code, CannedCommand, CannedResponse, Fields};
use blazz_domain::contact::Contact;
use blazz_domain::role::Action;
use blazz_domain::DomainError;
use serde_json::json;
use uuid::Uuid;

fn code_claim(workspace: Uuid, id: Uuid, code: &str) -> Claim {
    Claim {
        scope: scopes::CANNED_CODE.into(),
        value: format!("{workspace}:{code}"),
        owner: stream_id::<CannedResponse>(id),
        workspace_id: workspace,
        data: json!({}),
    }
}

impl Commands {
    pub async fn create_canned_response(
        &self,
        ctx: &CommandContext,
        code: String,
        text: String,
    ) -> Result<CommandResult<CannedCreated>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        let id = Uuid::now_v7();
        let ws = ctx.workspace_id;
        self.execute::<CannedResponse, _>(ctx, id, |c| {
            let events = c.decide(CannedCommand::Create { short_code: code.clone(), text: text.clone() })?;
            let mut plan = Plan::new(events, CannedCreated { canned_response_id: id, short_code: short_code(&code)? });
            plan.claims.push(code_claim(ws, id, &short_code(&code)?));
            Ok(plan)
        })
        .await
    }

    pub async fn update_canned_response(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        text: String,
    ) -> Result<CommandResult<CannedWritten>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        self.execute::<CannedResponse, _>(ctx, id, |c| {
            Ok(Plan::new(
                c.decide(CannedCommand::Update { text: text.clone() })?,
                CannedWritten { canned_response_id: id },
            ))
        })
        .await
    }

    pub async fn delete_canned_response(
        &self,
        ctx: &CommandContext,
        id: Uuid,
    ) -> Result<CommandResult<CannedDeleted>, CommandError> {
        require(ctx.role, Action::WorkConversations)?;
        let ws = ctx.workspace_id;
        self.execute::<CannedResponse, _>(ctx, id, |c| {
            let mut plan =
                Plan::new(c.decide(CannedCommand::Delete)?, CannedDeleted { canned_response_id: id, deleted: true });
            let claim = code_claim(ws, id, &c.short_code);
            plan.releases.push(ClaimRelease { scope: claim.scope, value: claim.value, owner: claim.owner });
            Ok(plan)
        })
        .await
    }

    /// The text of the workspace's canned response `code`, filled in for `contact` and the caller's
    /// agent. 404 for an unknown code; 422 `missing_template_variable` for a field without a value.
    pub(crate) async fn canned_text(
        &self,
        ctx: &CommandContext,
        code: &str,
        contact: &Contact,
    ) -> Result<String, CommandError> {
        let ws = ctx.workspace_id;
        let code = short_code(code)?;
        let claim = self.store().claim(scopes::CANNED_CODE, &format!("{ws}:{code}")).await?;
        let id = claim
            .filter(|c| c.workspace_id == ws)
            .and_then(|c| blazz_domain::aggregate::id_of(&c.owner))
            .ok_or(DomainError::NotFound("canned response"))?;
        let canned = self.load::<CannedResponse>(ws, id).await?.state;
        let agent = match ctx.agent_id {
            Some(a) => Some(self.load::<Agent>(ws, a.as_uuid()).await?.state.name),
            None => None,
        };
        let fields = Fields {
            contact_name: contact.name.as_deref(),
            contact_phone: contact.phone.as_ref().map(|p| p.as_str()),
            attributes: &contact.attributes,
            agent_name: agent.as_deref(),
        };
        Ok(render(&canned.text, &fields)?)
    }
}
