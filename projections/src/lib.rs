//! Read side of Blazz: projectors consume the event log and maintain read models in PostgreSQL,
//! committing their checkpoint in the same transaction as the read-model change, then publish small
//! deltas for live clients.
//!
//! # Layout
//! - [`delta`]: [`delta::Delta`] and the in-process [`delta::Hub`] (broadcast plus a bounded replay
//!   buffer for clients that reconnect).
//! - [`error`]: [`error::ProjectionError`], what stops a batch.
//! - [`checkpoints`]: where each projector is in each lane (read and locked by everything below).
//! - [`projector`]: the [`projector::Projector`] trait and checkpoint moves.
//! - [`feed`]: the [`feed::Feed`] trait and the log feed (reads the log gap-free, woken by
//!   LISTEN/NOTIFY with polling as a fallback).
//! - [`kafka`]: the scaled-out path: the relay (log → topic), the Kafka feed (consumer group) and
//!   deltas through a topic to every gateway.
//! - [`runner`]: applies each batch of a feed to every projector with their checkpoints in one
//!   transaction, then publishes the deltas.
//! - [`parked`]: events a projector could not apply, parked so the others go on; list, retry, skip.
//! - [`supervise`]: restarts a long-running task that died, with backoff.
//! - [`progress`]: how far the projectors are; read-your-writes waits on it.
//! - [`read_models`]: one projector per file.
//! - [`queries`]: reads of the read models with cursor pagination and filters.
//! - [`rebuild`]: rebuilding one projection from the log into fresh tables, switched in when caught up.
//! - [`status`]: each projection's position and lag, and the age of the log's read horizon.

pub mod checkpoints;
pub mod delta;
pub mod error;
pub mod feed;
pub mod kafka;
pub mod parked;
pub mod progress;
pub mod projector;
pub mod queries;
pub mod read_models;
pub mod rebuild;
pub mod runner;
pub mod status;
pub mod supervise;
