//! Tamper evidence for the log (docs/adr/0008-tamper-evidence.md).
//!
//! - [`chain`]: the content digest, the link to the stream predecessor, the fold of a scope's head.
//! - [`checkpoint`]: the deployment's Ed25519 signer and the signed checkpoints of scope heads.
//! - [`seal`]: the sealer that folds the log into heads and signs checkpoints.
//! - [`verify`]: `audit verify`, recomputing all of it from the stored rows.

pub mod chain;
pub mod checkpoint;
pub mod seal;
pub mod verify;
