//! Prometheus metrics at `GET /metrics` (operator token), through the `metrics` facade and
//! `metrics-exporter-prometheus`. Counters and histograms are recorded where things happen (HTTP
//! requests here, appends in the store, projector batches in the runner, dispatch in its loop,
//! webhooks and WebSockets in their routes); gauges of state kept in PostgreSQL (projection lag,
//! parked events, the log's read horizon, the dispatch queue) are read at scrape time. What each
//! series means: docs/operations.md.

use crate::auth::Operator;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Histogram buckets for latencies, in seconds (1 ms to 10 s).
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Histogram buckets for batch sizes, in events.
const EVENTS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// The process's recorder, installed on first use. A process has one (several gateways in one test
/// process share it); if another recorder was installed first, this one still renders, empty.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), EVENTS))
        };
        match builder().and_then(|b| b.install_recorder().map_err(Into::into)) {
            Ok(handle) => {
                spawn_upkeep(handle.clone());
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into its buckets, and
/// `install_recorder` leaves upkeep to its caller: without this, an instance nobody scrapes grows
/// by every request it serves (about 9 MiB a minute at 6,000 sends/s, docs/benchmarks.md). One
/// thread for the process, like the recorder it keeps.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_EVERY);
        handle.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms drain only at scrapes");
    }
}

/// Counts every request by method, matched route (never the raw path: ids would explode the series)
/// and status, with its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("blazz_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("blazz_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    response
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operator",
    responses((status = 200, description = "Prometheus text format (docs/operations.md#metrics).", body = String, content_type = "text/plain")),
    security(("operator" = []))
)]
pub async fn scrape(State(s): State<AppState>, _operator: Operator) -> Result<Response, ApiError> {
    let handle = handle();
    refresh_gauges(&s).await;
    handle.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response())
}

/// Reads the state kept in PostgreSQL into gauges. A failed read leaves the previous values and
/// counts the failure: a scrape never fails on it.
async fn refresh_gauges(s: &AppState) {
    match blazz_projections::status::status(&s.pool, s.kafka_partitions).await {
        Ok(status) => {
            metrics::gauge!("blazz_log_horizon_age_seconds").set(status.horizon_age_seconds);
            for p in status.projections {
                let name = p.projection;
                metrics::gauge!("blazz_projection_lag_events", "projection" => name.clone()).set(p.lag_events as f64);
                metrics::gauge!("blazz_projection_lag_seconds", "projection" => name.clone()).set(p.lag_seconds);
                metrics::gauge!("blazz_projection_parked_events", "projection" => name).set(p.parked as f64);
            }
        }
        Err(e) => refresh_failed("projection status", &e),
    }
    if s.kafka_partitions.is_some() {
        match blazz_projections::kafka::relay::lag(&s.pool).await {
            Ok(topics) => {
                for (topic, events, seconds) in topics {
                    metrics::gauge!("blazz_kafka_relay_lag_events", "topic" => topic.clone()).set(events as f64);
                    metrics::gauge!("blazz_kafka_relay_lag_seconds", "topic" => topic).set(seconds);
                }
            }
            Err(e) => refresh_failed("relay position", &e),
        }
    }
    match blazz_projections::read_models::outbox::depth(&s.pool).await {
        Ok(depth) => {
            metrics::gauge!("blazz_dispatch_queue_depth", "state" => "due").set(depth.due as f64);
            metrics::gauge!("blazz_dispatch_queue_depth", "state" => "waiting").set(depth.waiting as f64);
            metrics::gauge!("blazz_dispatch_queue_depth", "state" => "held").set(depth.held as f64);
        }
        Err(e) => refresh_failed("dispatch queue", &e),
    }
}

/// A gauge's source could not be read: the previous value stays, the failure is logged and counted.
fn refresh_failed(what: &str, e: &sqlx::Error) {
    tracing::warn!(error = %e, "{what} unreadable for /metrics");
    metrics::counter!("blazz_metrics_refresh_failures_total").increment(1);
}
