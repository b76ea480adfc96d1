//! Command failures: the domain said no, a uniqueness rule or a concurrent writer got in the way, or
//! the infrastructure failed.

use crate::codec::CodecError;
use crate::store::StoreError;
use blazz_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Another writer changed the aggregate at the same time, repeatedly; the client may retry.
    #[error("{0} was modified concurrently; retry the request")]
    Conflict(String),
    /// A value that must be unique is already used (`code` e.g. `phone_taken`).
    #[error("{message}")]
    Taken { code: &'static str, message: String, existing_id: Option<String> },
    /// The same idempotency key was sent with a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// The database refused to store what this command wrote (a value it cannot hold); the command's
    /// batch-mates were written.
    #[error("the database refused this command's data: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}
