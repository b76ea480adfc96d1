//! HTTP limits that keep one client from starving the others:
//! - a **timeout** per request, reading the body included (slow bodies get 408 `request_timeout`);
//! - a **concurrency limit** with load shedding: past it a request is refused at once with 503
//!   `overloaded` and `Retry-After`, never queued (`tower`'s `ConcurrencyLimit` + `LoadShed`);
//! - a **rate per API key** (GCRA, `governor`): past it 429 `rate_limited` with `Retry-After`. The
//!   default comes from configuration; an operator can set another per workspace
//!   (`PUT /v1/operator/workspaces/{id}/rate-limit`, table `workspace_rate_limits`). A client that
//!   ignores `Retry-After` and keeps asking gets its 429s slowly: each is held for [`HOLD`] before it
//!   is answered, up to [`HELD_PER_WORKSPACE`] at a time per workspace (more are answered at once, so
//!   held answers never fill the concurrency limit), which turns a tight retry loop's thousands of
//!   requests per second into a few dozen.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{clock::Clock, DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The limits of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Longest a request may take, reading its body included.
    pub request_timeout: Duration,
    /// Longest a contact import may take (its body is up to 64 MiB).
    pub import_timeout: Duration,
    /// Requests handled at once; more are refused with 503.
    pub max_concurrent: usize,
    /// Requests per second per API key unless the workspace has its own (`None`: unlimited); bursts of
    /// twice that pass.
    pub key_rate: Option<NonZeroU32>,
    /// Longest a WebSocket client may take to accept one message before it is told to resync and
    /// closed.
    pub socket_send_timeout: Duration,
    /// The share of its time bulk work (imports, campaign fan-outs) keeps while other workspaces are
    /// active (see `blazz_commands::pacing`); 1 disables pacing.
    pub bulk_share: f64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            import_timeout: Duration::from_secs(300),
            max_concurrent: 1024,
            key_rate: NonZeroU32::new(1000),
            socket_send_timeout: Duration::from_secs(5),
            bulk_share: blazz_commands::pacing::DEFAULT_SHARE,
        }
    }
}

/// The timeout middleware: the import route gets its own, every other route the request timeout.
pub async fn timeout(State(limits): State<LimitSettings>, req: Request, next: Next) -> Response {
    let limit = if req.uri().path() == "/v1/contacts/import" { limits.import_timeout } else { limits.request_timeout };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s (body included)", limit.as_secs()),
        )
        .into_response(),
    }
}

/// The answer to a request shed by the concurrency limit.
pub async fn overloaded(_: tower::BoxError) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many requests in flight; retry shortly")
        .retry_after(1)
        .into_response()
}

/// How long an answer past the key's rate is held before it is sent.
pub const HOLD: Duration = Duration::from_millis(100);
/// Answers held at once per workspace; past this they are sent at once.
pub const HELD_PER_WORKSPACE: usize = 16;

/// How long a workspace's own rate is remembered before it is read again.
const OVERRIDE_TTL: Duration = Duration::from_secs(5);

/// A key's limiter and the rate it was made with.
type KeyLimiter = (Option<NonZeroU32>, Arc<DefaultDirectRateLimiter>);

/// Per-key request rates.
#[derive(Debug)]
pub struct KeyRates {
    default: Option<NonZeroU32>,
    /// Workspace → its own rate (`None`: the default) and when it was read.
    overrides: Mutex<HashMap<Uuid, (Instant, Option<NonZeroU32>)>>,
    /// Key → the rate its limiter was made with, and the limiter.
    limiters: Mutex<HashMap<Uuid, KeyLimiter>>,
    /// Workspace → the permits for holding its answers past the rate.
    held: Mutex<HashMap<Uuid, Arc<tokio::sync::Semaphore>>>,
}

/// Sets a workspace's own request rate per key (`None`: back to the default). Gateways read it
/// again within their override cache's time to live.
pub async fn set_workspace_rate(pool: &PgPool, workspace: Uuid, rate: Option<i32>) -> Result<(), sqlx::Error> {
    match rate {
        Some(r) => sqlx::query(
            "INSERT INTO workspace_rate_limits (workspace_id, requests_per_second) VALUES ($1, $2)
             ON CONFLICT (workspace_id) DO UPDATE SET requests_per_second = $2, updated_at = now()",
        )
        .bind(workspace)
        .bind(r),
        None => sqlx::query("DELETE FROM workspace_rate_limits WHERE workspace_id = $1").bind(workspace),
    }
    .execute(pool)
    .await?;
    Ok(())
}

impl KeyRates {
    pub fn new(default: Option<NonZeroU32>) -> Self {
        Self { default, overrides: Mutex::default(), limiters: Mutex::default(), held: Mutex::default() }
    }

    async fn rate_of(&self, pool: &PgPool, workspace: Uuid) -> Result<Option<NonZeroU32>, sqlx::Error> {
        if let Some((at, rate)) = lock(&self.overrides).get(&workspace) {
            if at.elapsed() < OVERRIDE_TTL {
                return Ok(rate.or(self.default));
            }
        }
        let own: Option<i32> =
            sqlx::query_scalar("SELECT requests_per_second FROM workspace_rate_limits WHERE workspace_id = $1")
                .bind(workspace)
                .fetch_optional(pool)
                .await?;
        let own = own.and_then(|r| u32::try_from(r).ok()).and_then(NonZeroU32::new);
        lock(&self.overrides).insert(workspace, (Instant::now(), own));
        Ok(own.or(self.default))
    }

    /// Takes one request of `key`'s rate; `Err`: 429 with when to retry.
    pub async fn check(&self, pool: &PgPool, workspace: Uuid, key: Uuid) -> Result<(), ApiError> {
        let Some(rate) = self.rate_of(pool, workspace).await.map_err(|e| ApiError::internal(&e))? else {
            return Ok(());
        };
        let limiter = {
            let mut limiters = lock(&self.limiters);
            match limiters.get(&key) {
                Some((r, l)) if *r == Some(rate) => l.clone(),
                _ => {
                    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
                    let l = Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)));
                    limiters.insert(key, (Some(rate), l.clone()));
                    l
                }
            }
        };
        let Err(not_until) = limiter.check() else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        self.hold(workspace).await;
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this API key may make {rate} requests per second"),
        )
        .retry_after(wait.as_secs_f64().ceil() as u64))
    }

    /// Holds an answer past the rate for [`HOLD`] if fewer than [`HELD_PER_WORKSPACE`] of the
    /// workspace's are held now; returns whether it was held.
    async fn hold(&self, workspace: Uuid) -> bool {
        let permits = {
            let mut held = lock(&self.held);
            if held.len() > 1024 {
                // Workspaces with nothing held.
                held.retain(|_, s| s.available_permits() < HELD_PER_WORKSPACE);
            }
            held.entry(workspace).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(HELD_PER_WORKSPACE))).clone()
        };
        let Ok(_permit) = permits.try_acquire() else {
            return false;
        };
        tokio::time::sleep(HOLD).await;
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_past_the_rate_are_held_up_to_a_bound_per_workspace() {
        let rates = Arc::new(KeyRates::new(None));
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let held: Vec<_> = (0..HELD_PER_WORKSPACE)
            .map(|_| {
                let rates = rates.clone();
                tokio::spawn(async move { rates.hold(a).await })
            })
            .collect();
        while lock(&rates.held).get(&a).is_none_or(|s| s.available_permits() > 0) {
            tokio::task::yield_now().await;
        }
        // A's permits are all taken: its next answer goes at once; B's is held.
        assert!(!rates.hold(a).await);
        let started = tokio::time::Instant::now();
        assert!(rates.hold(b).await);
        assert!(started.elapsed() >= HOLD);
        for h in held {
            assert!(h.await.unwrap());
        }
        // Released: A's answers are held again.
        assert!(rates.hold(a).await);
    }
}
