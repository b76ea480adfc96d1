//! Why the domain rejects a command. No HTTP and no SQL in here: the gateway maps each variant to a
//! status, and [`DomainError::code`] gives the stable machine-readable code clients match on.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A field failed validation.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The aggregate does not exist (or was deleted).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A create command hit an aggregate that already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The caller's role may not do this.
    #[error("role {role} may not {action}")]
    Forbidden { role: String, action: String },
    /// The last active owner key of a workspace cannot be revoked.
    #[error("the last active owner key cannot be revoked")]
    LastOwnerKey,
    /// A free-form message outside the 24-hour customer service window.
    #[error("the 24-hour service window with this contact is closed; send an approved template")]
    OutsideServiceWindow,
    /// A marketing template to a contact who opted out.
    #[error("the contact opted out of marketing messages")]
    ContactOptedOut,
    /// A template that is not approved for sending.
    #[error("template is not approved (review status {0})")]
    TemplateNotApproved(String),
    /// A template variable that no source could fill.
    #[error("template variable {{{{{0}}}}} has no value")]
    MissingVariable(String),
    /// The channel is not able to send.
    #[error("channel cannot send: {0}")]
    ChannelUnavailable(String),
    /// The command does not apply in the aggregate's current state (e.g. resuming a cancelled campaign).
    #[error("{0}")]
    InvalidState(String),
    /// A campaign audience with nobody in it.
    #[error("the audience is empty")]
    EmptyAudience,
    /// The agent was deactivated: it takes no conversations and sets no availability.
    #[error("the agent is deactivated; reactivate it first")]
    AgentDeactivated,
}

impl DomainError {
    /// Shorthand for a validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "validation_failed",
            Self::NotFound(_) => "not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::Forbidden { .. } => "forbidden",
            Self::LastOwnerKey => "last_owner_key",
            Self::OutsideServiceWindow => "outside_service_window",
            Self::ContactOptedOut => "contact_opted_out",
            Self::TemplateNotApproved(_) => "template_not_approved",
            Self::MissingVariable(_) => "missing_template_variable",
            Self::ChannelUnavailable(_) => "channel_unavailable",
            Self::InvalidState(_) => "invalid_state",
            Self::EmptyAudience => "empty_audience",
            Self::AgentDeactivated => "agent_deactivated",
        }
    }
}
