//! Read side of Blazz: projectors consume the event log (the catch-up feed on one node, Kafka when
//! scaled out) and maintain read models in PostgreSQL, committing their checkpoint in the same
//! transaction as the read-model change.
//!
//! # Layout
//! The projector runtime, feeds and read models are built by the read-side issue; until then the only
//! reads are the auditor's history endpoints, served directly from the log by `blazz-api`.
