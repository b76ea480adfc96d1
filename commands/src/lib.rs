//! Write side of Blazz: commands are decided by the domain and their events appended to the log.
//!
//! # Layout
//! - [`store`]: the [`store::EventStore`] trait, its PostgreSQL (group commit, gap-free reads) and
//!   in-memory implementations, and the conformance suite both pass.
//! - [`audit`]: tamper evidence: hash chains over the log, signed checkpoints, verification.
//! - [`codec`]: the stored form of domain events, with upcasting of old schema versions.
//! - [`context`]: who issues a command, for which workspace, with which idempotency key.
//! - [`error`]: [`CommandError`], everything a command can fail with.
//! - [`service`]: [`Commands`], the entry point, and the load → decide → append cycle shared by all
//!   handlers (optimistic retry, claims, idempotent replay).
//! - [`keys`]: API key secrets: generation, hashing, constant-time verification.
//! - [`pacing`]: bulk work (imports, fan-outs) rests while other workspaces are active.
//! - [`handlers`]: one file per aggregate's commands, and webhook ingestion.
//! - [`credentials`]: channel secrets, sealed outside the event log.
//! - [`personal`]: personal fields sealed per contact, erasure by destroying the key.
//! - [`outbound`]: outbound webhooks (Standard Webhooks): signing secrets, signatures, the SSRF
//!   guard and the deliverer.
//! - [`automation`]: the worker that performs automation rules' runs (commands with idempotency
//!   keys from rule and event) and the bot's turns.
//! - [`bot`]: the bot hand-off: an OpenAI-compatible chat-completions endpoint answers pending
//!   conversations or hands them to a person.
//! - [`media`]: inbound media fetched from the provider into object storage.
//! - [`dispatch`]: sending one queued message, attempt recorded before the provider call.
//! - [`provider`]: the [`provider::Provider`] trait, the Meta Cloud API client and the sandbox.

pub mod as_of;
pub mod audit;
pub mod automation;
pub mod bot;
pub mod codec;
pub mod context;
pub mod credentials;
pub mod dispatch;
pub mod error;
pub mod handlers;
pub mod keys;
pub mod media;
pub mod outbound;
pub mod outcome;
pub mod pacing;
pub mod personal;
pub mod provider;
pub mod service;
pub mod store;

pub use context::{CommandContext, CommandResult};
pub use error::CommandError;
pub use service::Commands;
