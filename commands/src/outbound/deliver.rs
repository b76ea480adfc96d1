//! The deliverer: sends due `webhook_deliveries` rows (enqueued by the `webhooks` projector) to their
//! endpoints, signed per Standard Webhooks, at least once.
//!
//! - **Claiming** leases a delivery (its next attempt moves past the attempt's timeout) before the
//!   request, so a deliverer killed mid-attempt leaves it due again once the lease ends; several
//!   deliverers share the work. Only the oldest pending delivery of each (endpoint, ordering key)
//!   is claimable, so one conversation's events arrive in log order.
//! - **Fairness**: an endpoint has at most [`DeliverySettings::per_endpoint`] attempts in flight in
//!   one deliverer, and a claim is ordered by rank within each endpoint: a slow or failing endpoint
//!   holds a few slots, never the deliverer.
//! - **Outcomes**: 2xx delivers; 410 Gone disables the endpoint; 429 and 503 retry after their
//!   `Retry-After`; anything else (and timeouts, refused connections, private addresses) retries on
//!   [`DeliverySettings::schedule`] with jitter, then fails the delivery. An endpoint that has not
//!   succeeded for [`DeliverySettings::disable_after`] is disabled, saying why.
//! - **Payload** `{type, timestamp, data}` is built at each attempt from the event as read through
//!   the personal-data store, so an erased contact's fields go out erased.

use super::guard::{self, GuardedResolver};
use super::secrets::EndpointSecrets;
use super::sign::signature;
use crate::context::{CommandContext, Idempotency};
use crate::store::{EventStore, RecordedEvent};
use crate::Commands;
use blazz_domain::endpoint::EndpointCommand;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Send to private, loopback and link-local addresses too (off by default: SSRF guard).
    pub allow_private: bool,
    /// Time for one attempt, connection to last byte.
    pub timeout: Duration,
    /// How long past `timeout` a claim stays leased: a deliverer killed mid-attempt leaves its
    /// deliveries due again after `timeout + lease_margin`.
    pub lease_margin: Duration,
    /// Delays before the 2nd, 3rd… attempt; after the last, the delivery fails.
    pub schedule: Vec<Duration>,
    /// An endpoint without a success for this long is disabled.
    pub disable_after: Duration,
    /// Attempts in flight in this process.
    pub concurrency: usize,
    /// Attempts in flight per endpoint in this process.
    pub per_endpoint: usize,
    /// How often to look for due deliveries while none are.
    pub poll: Duration,
}

/// The default retry schedule: exponential from 5 s by ×3 up to 10 h, 11 retries, about 34 hours
/// in all (jittered by ±20 % when used).
pub fn default_schedule() -> Vec<Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(5))
        .with_factor(3.0)
        .with_max_delay(Duration::from_secs(10 * 3600))
        .with_max_times(11)
        .build()
        .collect()
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            lease_margin: Duration::from_secs(30),
            schedule: default_schedule(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            concurrency: 64,
            per_endpoint: 4,
            poll: Duration::from_millis(50),
        }
    }
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A claimed delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Claimed {
    delivery_id: Uuid,
    endpoint_id: Uuid,
    workspace_id: Uuid,
    stream_id: String,
    stream_version: i64,
    attempts: i32,
    url: String,
}

/// What one attempt came to.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    latency: Duration,
}

/// Sends deliveries; cheap to clone.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    secrets: EndpointSecrets,
    commands: Commands,
    settings: DeliverySettings,
    client: reqwest::Client,
}

impl Deliverer {
    /// `store` must reveal personal fields (the personal-data store), as every reader does.
    pub fn new(
        pool: PgPool,
        commands: Commands,
        secrets: EndpointSecrets,
        settings: DeliverySettings,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private }))
            .user_agent(concat!("Blazz-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { pool, store: commands.store().clone(), secrets, commands, settings, client })
    }

    /// Delivers until `shutdown`, then finishes the attempts in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let in_flight: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
        let mut tasks = JoinSet::new();
        while !*shutdown.borrow() {
            let free = slots.available_permits();
            let busy: (Vec<Uuid>, Vec<i32>) = {
                let map = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                map.iter().map(|(e, n)| (*e, *n as i32)).unzip()
            };
            let claimed = if free == 0 { Ok(vec![]) } else { self.claim(free, &busy).await };
            let claimed = claimed.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                vec![]
            });
            let idle = claimed.is_empty();
            for d in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                *in_flight.lock().unwrap_or_else(|p| p.into_inner()).entry(d.endpoint_id).or_default() += 1;
                let (me, in_flight) = (self.clone(), in_flight.clone());
                tasks.spawn(async move {
                    let endpoint = d.endpoint_id;
                    if let Err(e) = me.attempt(d).await {
                        tracing::warn!(error = %e, %endpoint, "a webhook attempt could not be recorded; it is retried after its lease");
                    }
                    let mut map = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = map.get_mut(&endpoint) {
                        *n -= 1;
                        if *n == 0 {
                            map.remove(&endpoint);
                        }
                    }
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    _ = shutdown.changed() => {}
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Leases up to `limit` due deliveries, fairly over endpoints, each endpoint up to
    /// `per_endpoint` in flight here counting those in `busy` (endpoints and their attempts in flight).
    async fn claim(&self, limit: usize, busy: &(Vec<Uuid>, Vec<i32>)) -> Result<Vec<Claimed>, sqlx::Error> {
        let lease = chrono::Duration::from_std(self.settings.timeout + self.settings.lease_margin).unwrap_or_default();
        sqlx::query_as(
            "WITH ranked AS (
                SELECT c.delivery_id, row_number() OVER (PARTITION BY e.endpoint_id ORDER BY c.position) AS rank,
                       $3 - COALESCE(f.n, 0) AS room
                FROM webhook_endpoints e
                LEFT JOIN unnest($2::uuid[], $5::int[]) AS f(id, n) ON f.id = e.endpoint_id
                CROSS JOIN LATERAL (
                    SELECT d.delivery_id, d.position FROM webhook_deliveries d
                    WHERE d.endpoint_id = e.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= now()
                      AND d.position = (SELECT min(p.position) FROM webhook_deliveries p
                                        WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key
                                          AND p.status = 'pending')
                    ORDER BY d.position LIMIT $3) c
                WHERE e.enabled AND NOT e.deleted AND COALESCE(f.n, 0) < $3
             ), picked AS (
                SELECT delivery_id FROM ranked WHERE rank <= room ORDER BY rank, random() LIMIT $1
             )
             UPDATE webhook_deliveries d SET next_attempt_at = now() + $4, leased_until = now() + $4
             FROM picked, webhook_endpoints e
             WHERE d.delivery_id = picked.delivery_id AND e.endpoint_id = d.endpoint_id
               AND d.status = 'pending' AND d.next_attempt_at <= now()
             RETURNING d.delivery_id, d.endpoint_id, d.workspace_id, d.stream_id, d.stream_version, d.attempts, e.url",
        )
        .bind(limit as i64)
        .bind(&busy.0)
        .bind(self.settings.per_endpoint as i64)
        .bind(lease)
        .bind(&busy.1)
        .fetch_all(&self.pool)
        .await
    }

    /// One attempt of a claimed delivery, and its record.
    async fn attempt(&self, d: Claimed) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let started_at = Utc::now();
        let version = d.stream_version as u64;
        let event = self.store.read_stream(&d.stream_id, version, Some(version)).await?.into_iter().next();
        let Some(event) = event else {
            let error = format!("event {}@{} is not in the log", d.stream_id, d.stream_version);
            return self.record(&d, started_at, &failure(error, Duration::ZERO)).await;
        };
        let outcome = self.send(&d, &event).await;
        self.record(&d, started_at, &outcome).await
    }

    /// Posts the signed payload; never fails (a failure is the outcome).
    async fn send(&self, d: &Claimed, event: &RecordedEvent) -> Outcome {
        let started = Instant::now();
        if let Err(e) = guard::check_url(&d.url, self.settings.allow_private) {
            return failure(e.to_string(), started.elapsed());
        }
        let secrets = match self.secrets.valid(d.endpoint_id).await {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return failure("the endpoint has no signing secret".into(), started.elapsed()),
            Err(e) => return failure(format!("signing secret: {e}"), started.elapsed()),
        };
        let body = body_of(event).to_string();
        let id = format!("msg_{}", event.event_id.simple());
        let timestamp = Utc::now().timestamp();
        let request = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature(&secrets, &id, timestamp, body.as_bytes()))
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
                // The body is not needed; reading a bounded part lets the connection be reused.
                let _ = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
                Outcome { status: Some(status), error: None, retry_after, latency: started.elapsed() }
            }
            Err(e) => failure(guard::describe(&e, self.settings.timeout), started.elapsed()),
        }
    }

    /// Stores an attempt and what follows from it (in one transaction), then disables the endpoint
    /// if the outcome calls for it.
    async fn record(
        &self,
        d: &Claimed,
        started_at: DateTime<Utc>,
        o: &Outcome,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = Utc::now();
        let ok = o.status.is_some_and(|s| (200..300).contains(&s));
        let gone = o.status == Some(410);
        let error = o.error.clone().or_else(|| (!ok).then(|| format!("HTTP {}", o.status.unwrap_or_default())));
        let attempt = d.attempts as usize + 1;
        // Gone: stays pending, due as soon as the endpoint is enabled again.
        let retry_at = if ok {
            None
        } else if gone {
            Some(now)
        } else if let Some(after) = o.retry_after.filter(|_| matches!(o.status, Some(429 | 503))) {
            Some(now + chrono::Duration::from_std(after.min(MAX_RETRY_AFTER)).unwrap_or_default())
        } else {
            self.settings.schedule.get(attempt - 1).map(|delay| now + jittered(*delay))
        };
        let status = match (ok, retry_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, started_at, latency_ms, status_code, error, retry_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.delivery_id)
        .bind(started_at)
        .bind(o.latency.as_secs_f64() * 1000.0)
        .bind(o.status.map(i32::from))
        .bind(&error)
        .bind(retry_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = COALESCE($3, next_attempt_at),
                    leased_until = NULL, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END, last_error = $4
             WHERE delivery_id = $1",
        )
        .bind(d.delivery_id)
        .bind(status)
        .bind(retry_at)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
        let failing_since: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO webhook_endpoint_health AS h (endpoint_id, failing_since, last_success_at, last_error)
             VALUES ($1, CASE WHEN $2 THEN NULL ELSE now() END, CASE WHEN $2 THEN now() END, $3)
             ON CONFLICT (endpoint_id) DO UPDATE SET
                failing_since = CASE WHEN $2 THEN NULL ELSE COALESCE(h.failing_since, now()) END,
                last_success_at = CASE WHEN $2 THEN now() ELSE h.last_success_at END,
                last_error = COALESCE($3, h.last_error)
             RETURNING failing_since",
        )
        .bind(d.endpoint_id)
        .bind(ok)
        .bind(&error)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;

        let disable_after = chrono::Duration::from_std(self.settings.disable_after).unwrap_or(chrono::Duration::MAX);
        let reason = if gone {
            Some(format!("the receiver answered 410 Gone ({})", d.url))
        } else {
            failing_since.filter(|since| now - *since > disable_after).map(|since| {
                format!(
                    "no successful delivery since {} (last: {})",
                    since.to_rfc3339(),
                    error.as_deref().unwrap_or("?")
                )
            })
        };
        if let Some(reason) = reason {
            self.disable(d, reason).await?;
        }
        Ok(())
    }

    async fn disable(&self, d: &Claimed, reason: String) -> Result<(), crate::CommandError> {
        let mut ctx = CommandContext::system(d.workspace_id, "webhooks");
        // One disabling per failed attempt, however often it is retried.
        ctx.idempotency = Some(Idempotency {
            key: format!("webhook-disable:{}:{}", d.delivery_id, d.attempts),
            fingerprint: "webhooks".into(),
        });
        tracing::warn!(endpoint = %d.endpoint_id, %reason, "disabling a webhook endpoint");
        let now = ctx.now;
        self.commands.change_webhook_endpoint(&ctx, d.endpoint_id, EndpointCommand::Disable { reason, now }).await?;
        Ok(())
    }
}

fn failure(error: String, latency: Duration) -> Outcome {
    Outcome { status: None, error: Some(error), retry_after: None, latency }
}

/// A transport failure in words (timeouts and refused addresses named as such).
/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// `delay` ±20 %.
fn jittered(delay: Duration) -> chrono::Duration {
    let factor = rand::thread_rng().gen_range(0.8..=1.2);
    chrono::Duration::from_std(delay.mul_f64(factor)).unwrap_or(chrono::Duration::MAX)
}

/// The Standard Webhooks payload of an event: its type, when it was recorded, and its data.
pub fn body_of(event: &RecordedEvent) -> Value {
    json!({
        "type": event.event_type,
        "timestamp": event.recorded_at,
        "data": {
            "event_id": event.event_id,
            "workspace_id": event.workspace_id,
            "stream_id": event.stream_id,
            "stream_version": event.stream_version,
            "position": event.position,
            "correlation_id": event.metadata.correlation_id,
            "causation_id": event.metadata.causation_id,
            "erased": event.erased,
            "payload": event.payload,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_more_than_a_day() {
        let s = default_schedule();
        let total: Duration = s.iter().sum();
        assert_eq!(s[0], Duration::from_secs(5));
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert!(total > Duration::from_secs(24 * 3600), "{total:?}");
        assert_eq!(s.last(), Some(&Duration::from_secs(10 * 3600)));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let later = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        assert!(retry_after(&later).is_some_and(|d| d > Duration::from_secs(100)));
        assert_eq!(retry_after("soon"), None);
    }
}
