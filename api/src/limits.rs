//! HTTP limits that keep one client from starving the others:
//! - a **timeout** per request, reading the body included (slow bodies get 408 `request_timeout`);
//! - a **concurrency limit** with load shedding: past it a request is refused at once with 503
//!   `overloaded` and `Retry-After`, never queued (`tower`'s `ConcurrencyLimit` + `LoadShed`);
//! - a **rate per API key** (GCRA, `governor`): past it 429 `rate_limited` with `Retry-After`. The
//!   default comes from configuration; an operator can set another per workspace
//!   (`PUT /v1/operator/workspaces/{id}/rate-limit`, table `workspace_rate_limits`).

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
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            import_timeout: Duration::from_secs(300),
            max_concurrent: 1024,
            key_rate: NonZeroU32::new(1000),
            socket_send_timeout: Duration::from_secs(5),
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
}

impl KeyRates {
    pub fn new(default: Option<NonZeroU32>) -> Self {
        Self { default, overrides: Mutex::default(), limiters: Mutex::default() }
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
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this API key may make {rate} requests per second"),
            )
            .retry_after(wait.as_secs_f64().ceil() as u64)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
