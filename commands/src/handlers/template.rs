//! Template commands. A name and language pair is unique within a workspace.

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::TemplateReview;
use crate::service::{scopes, Commands, Plan};
use crate::store::Claim;
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::ids::TemplateId;
use blazz_domain::role::Action;
use blazz_domain::template::{Category, Component, Language, ReviewStatus, Template, TemplateCommand, TemplateName};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub name: TemplateName,
    pub language: Language,
    pub category: Category,
    pub components: Vec<Component>,
    pub defaults: BTreeMap<String, String>,
}

impl Commands {
    pub async fn create_template(
        &self,
        ctx: &CommandContext,
        input: NewTemplate,
    ) -> Result<CommandResult<TemplateReview>, CommandError> {
        require(ctx.role, Action::ManageTemplates)?;
        let id = TemplateId::from_uuid(Uuid::now_v7());
        self.execute::<Template, _>(ctx, id.as_uuid(), |t| {
            let i = input.clone();
            let events = t.decide(TemplateCommand::Create {
                name: i.name.clone(),
                language: i.language.clone(),
                category: i.category,
                components: i.components,
                defaults: i.defaults,
            })?;
            let mut plan = Plan::new(events, TemplateReview { template_id: id, status: ReviewStatus::Pending });
            plan.claims.push(Claim {
                scope: scopes::TEMPLATE_NAME.into(),
                value: format!("{}:{}:{}", ctx.workspace_id, i.name.as_str(), i.language.as_str()),
                owner: stream_id::<Template>(id.as_uuid()),
                workspace_id: ctx.workspace_id,
                data: json!({}),
            });
            Ok(plan)
        })
        .await
    }

    /// Records a review outcome (from the provider's webhook, or an operator for sandbox channels).
    pub async fn record_template_review(
        &self,
        ctx: &CommandContext,
        id: TemplateId,
        status: ReviewStatus,
        reason: Option<String>,
    ) -> Result<CommandResult<TemplateReview>, CommandError> {
        self.execute::<Template, _>(ctx, id.as_uuid(), |t| {
            let events = t.decide(TemplateCommand::RecordReview { status: status.clone(), reason: reason.clone() })?;
            Ok(Plan::new(events, TemplateReview { template_id: id, status: status.clone() }))
        })
        .await
    }
}
