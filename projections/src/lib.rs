//! Read side of Blazz: projectors consume the event log and maintain read models in PostgreSQL,
//! committing their checkpoint in the same transaction as the read-model change, then publish small
//! deltas for live clients.
//!
//! # Layout
//! - [`delta`]: [`delta::Delta`] and the in-process [`delta::Hub`] (broadcast plus a bounded replay
//!   buffer for clients that reconnect).
//! - [`projector`]: the [`projector::Projector`] trait and checkpoints.
//! - [`runner`]: the log feed: reads the log gap-free, woken by LISTEN/NOTIFY with polling as a
//!   fallback, applies each batch to every projector in one transaction; read-your-writes waits.
//! - [`read_models`]: one projector per file.
//! - [`queries`]: reads of the read models with cursor pagination and filters.

pub mod delta;
pub mod projector;
pub mod queries;
pub mod read_models;
pub mod runner;
