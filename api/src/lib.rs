//! The Blazz gateway (axum) and everything the `blazz` binary runs.
//!
//! # Layout
//! - [`config`]: configuration from environment variables (secrets redacted in `Debug`).
//! - [`state`]: [`state::AppState`], the shared handles.
//! - [`error`]: [`error::ApiError`], the one error format of the API.
//! - [`extract`]: JSON/path/query extractors with that error format, request id and idempotency key.
//! - [`auth`]: API key and operator authentication as extractors.
//! - [`limits`]: request timeout, concurrency limit with load shedding, per-key request rates.
//! - [`routes`]: one file per resource.
//! - [`server`]: wiring (store, commands, router, middleware) and serving with graceful shutdown.
//! - [`demo`]: the demo workspace with a sandbox channel (`blazz up --demo`).
//! - [`dispatch`]: the dispatcher role's loop over the dispatch queue.
//! - [`ticker`]: once-a-second progress of running campaigns for live clients.
//! - [`embedded`]: the private PostgreSQL cluster `blazz up` runs when no `DATABASE_URL` is given.
//! - [`bench`]: the `blazz bench` load generators.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod launcher;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod server;
pub mod state;
pub mod ticker;
