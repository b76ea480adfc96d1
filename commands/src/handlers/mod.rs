//! Command handlers, one file per aggregate. Each public method of [`crate::Commands`] is one command.

pub mod channel;
pub mod contact;
pub mod group;
pub mod import;
pub mod message;
pub mod template;
pub mod workspace;

use blazz_domain::role::{Action, Role};
use blazz_domain::DomainError;

pub(crate) fn require(role: Role, action: Action) -> Result<(), DomainError> {
    role.require(action)
}
