//! Automation rules: created whole (a change is a new rule), enabled, disabled, deleted. Their
//! actions are performed by [`crate::automation`].

use super::require;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::outcome::RuleWritten;
use crate::service::{Commands, Plan};
use blazz_domain::aggregate::Aggregate;
use blazz_domain::automation::{AutomationRule, RuleCommand, RuleSpec};
use blazz_domain::role::Action;
use uuid::Uuid;

impl Commands {
    pub async fn create_automation_rule(
        &self,
        ctx: &CommandContext,
        spec: RuleSpec,
    ) -> Result<CommandResult<RuleWritten>, CommandError> {
        self.change_automation_rule(ctx, Uuid::now_v7(), RuleCommand::Create(spec)).await
    }

    /// Enables, disables or deletes a rule of the caller's workspace (and creates one).
    pub async fn change_automation_rule(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: RuleCommand,
    ) -> Result<CommandResult<RuleWritten>, CommandError> {
        require(ctx.role, Action::ManageAutomation)?;
        if let RuleCommand::Create(spec) = &command {
            self.check_rule_targets(ctx.workspace_id, spec).await?;
        }
        self.execute::<AutomationRule, _>(ctx, id, |r| {
            Ok(Plan::new(r.decide(command.clone())?, RuleWritten { rule_id: id }))
        })
        .await
    }

    /// The agents and teams a rule assigns to exist in the workspace.
    async fn check_rule_targets(&self, workspace: Uuid, spec: &RuleSpec) -> Result<(), CommandError> {
        use blazz_domain::automation::RuleAction;
        for action in &spec.actions {
            if let RuleAction::Assign { agent_id, team_id } = action {
                if let Some(a) = agent_id {
                    self.check_active_agent(workspace, *a).await?;
                }
                if let Some(t) = team_id {
                    self.check_team(workspace, *t).await?;
                }
            }
        }
        Ok(())
    }
}
