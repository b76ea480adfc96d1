//! `GET /metrics` over a real socket: the operator token guards it, and after a little work of every
//! kind (requests, appends, projector batches, a sandbox send with its webhooks, a WebSocket) each
//! family of series is there, by matched route rather than raw path, with histograms in buckets.

use blazz_tests::{sandbox_app, Live, TestApp, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;

/// The value of the sample `series` (name with its labels, as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(app: &TestApp, token: &str) -> (u16, String) {
    let res = app.client.get(app.server.url("/metrics")).bearer_auth(token).send().await.expect("scrape");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn metrics_count_requests_by_route_and_show_appends_projections_dispatch_and_sockets(pool: PgPool) {
    let (app, ws, channel) = sandbox_app(pool).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    // A message through the sandbox: dispatched, then its statuses come back as signed webhooks.
    let template = app.template(&ws, "welcome", "UTILITY", "APPROVED").await;
    let body = json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    let message = app.post("/v1/messages", &ws.key, body).await.expect(202).id("message_id");
    app.eventually(&ws, &format!("/v1/messages/{message}"), |m| m["status"] == "read").await;
    let position = app.post(&format!("/v1/contacts/{contact}/labels"), &ws.key, json!({"add": ["vip"]})).await;
    let position = position.expect(200).body["position"].clone();
    app.get(&format!("/v1/contacts/{contact}?min_position={position}"), &ws.key).await.expect(200);
    app.get(&format!("/v1/contacts/{}", uuid::Uuid::now_v7()), &ws.key).await.expect(404);
    let _live = Live::connect(&app, &ws.key, None).await;

    // Only the operator scrapes: a workspace key is not enough.
    assert_eq!(scrape(&app, &ws.key).await.0, 401);
    let (status, text) = scrape(&app, OPERATOR_TOKEN).await;
    assert_eq!(status, 200, "{text}");

    // Requests by matched route and status, never by raw path.
    let route = |method: &str, route: &str, status: u16| {
        format!("blazz_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}")
    };
    assert_eq!(sample(&text, &route("POST", "/v1/contacts/{id}/labels", 200)), Some(1.0), "{text}");
    assert!(sample(&text, &route("GET", "/v1/contacts/{id}", 200)).is_some_and(|n| n >= 1.0));
    assert_eq!(sample(&text, &route("GET", "/v1/contacts/{id}", 404)), Some(1.0));
    assert!(!text.contains(&contact), "no ids in series");
    assert!(text.contains("blazz_http_request_duration_seconds_bucket{"), "latency histogram in buckets");
    // Appends, projector batches, projection lag and parked events, the horizon, the queue, sockets.
    for family in [
        "blazz_append_batch_events_bucket",
        "blazz_append_batch_seconds_bucket",
        "blazz_append_batches_total{outcome=\"written\"}",
        "blazz_projection_batch_seconds_bucket",
        "blazz_projection_lag_events{projection=\"contacts\"}",
        "blazz_projection_parked_events{projection=\"contacts\"}",
        "blazz_log_horizon_age_seconds",
        "blazz_dispatch_queue_depth{state=\"due\"}",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    assert_eq!(sample(&text, "blazz_websocket_subscribers"), Some(1.0), "{text}");
    let sent = format!("blazz_dispatch_total{{channel=\"{channel}\",outcome=\"sent\",class=\"\"}}");
    assert_eq!(sample(&text, &sent), Some(1.0), "{text}");
    let statuses = sample(&text, "blazz_webhook_parts_total{outcome=\"status\",kind=\"\"}");
    assert!(statuses.is_some_and(|n| n >= 3.0), "sent, delivered and read came back: {statuses:?}");
    assert_eq!(sample(&text, "blazz_projection_parked_events{projection=\"contacts\"}"), Some(0.0));
}

/// Histogram samples stay in the recorder until upkeep folds them into buckets; an instance nobody
/// scrapes would grow by every request (docs/benchmarks.md, memory of `blazz up`). The gateway's
/// recorder runs upkeep on a thread of its own.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_metrics_recorder_drains_histograms_without_scrapes(pool: PgPool) {
    let _app = TestApp::spawn(pool).await;
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("threads of this process")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(threads.iter().any(|t| t == "metrics-upkeep"), "no upkeep thread among {threads:?}");
}
