//! The Blazz domain: every business rule of the messaging platform, as pure functions.
//!
//! Aggregates follow the decide/evolve shape: `decide(&state, command)` returns the events a command
//! produces (or a [`DomainError`]), `evolve(state, &event)` folds one event into the state. Nothing here
//! performs I/O, reads a clock or draws random numbers: time and ids arrive on the commands.
//!
//! # Layout
//! - [`aggregate`]: the [`Aggregate`] trait every aggregate implements, and stream naming.
//! - [`ids`]: newtype identifiers, one per aggregate.
//! - [`values`]: validated values shared by several aggregates (phone numbers, names, attributes).
//! - [`label`]: labels of conversations and contacts.
//! - [`error`]: [`DomainError`], the reasons a command is rejected, each with a stable code.
//! - [`role`]: API key roles and what each may do.
//! - [`workspace`], [`campaign`], [`channel`], [`contact`], [`group`], [`template`], [`message`], [`conversation`],
//!   [`agent`], [`team`], [`canned`], [`endpoint`] (outbound webhook endpoints), [`automation`] (rules):
//!   one aggregate each (state, commands, events, decide, evolve).
//! - [`provider`]: what a provider's error code means (retry later, final, stop campaign, halt channel).
//! - [`event`]: [`DomainEvent`], the union of all aggregates' events with their stable names and schema
//!   versions.

pub mod agent;
pub mod aggregate;
pub mod automation;
pub mod campaign;
pub mod canned;
pub mod channel;
pub mod contact;
pub mod conversation;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod group;
pub mod ids;
pub mod label;
pub mod message;
pub mod provider;
pub mod role;
pub mod team;
pub mod template;
pub mod values;
pub mod workspace;

pub use aggregate::Aggregate;
pub use error::DomainError;
pub use event::DomainEvent;
