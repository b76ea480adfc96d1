//! History for auditors: a stream's events and the workspace's log, paged, with metadata; and
//! everything one request caused, by its correlation id.

use blazz_tests::{sandbox_app, TestApp};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn stream_history_is_paged_by_version_with_metadata(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let id = app.contact(&ws, "+6281234567890", json!({})).await;
    for i in 0..4 {
        app.call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(&ws.key),
            Some(json!({"name": format!("Budi {i}")})),
            &[("x-request-id", "audit-req-42")],
        )
        .await
        .expect(200);
    }
    let page = app.get(&format!("/v1/history/streams/contact-{id}?limit=2"), &ws.key).await.expect(200);
    let versions: Vec<u64> = page.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(page.body["next_from_version"], 3);
    let page = app.get(&format!("/v1/history/streams/contact-{id}?from_version=3&limit=10"), &ws.key).await.expect(200);
    let events = page.body["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    assert!(page.body["next_from_version"].is_null());
    let meta = &events[0]["metadata"];
    assert_eq!(meta["request_id"], "audit-req-42");
    assert!(meta["actor"].as_str().unwrap_or("").starts_with("api_key:"));
    assert!(meta["correlation_id"].is_string());
    // Up to a version: the state at a point in time.
    let page = app.get(&format!("/v1/history/streams/contact-{id}?to_version=2"), &ws.key).await.expect(200);
    assert_eq!(page.body["events"].as_array().map(Vec::len), Some(2));

    app.get("/v1/history/streams/nonsense", &ws.key).await.expect(400);
    app.get(&format!("/v1/history/streams/contact-{}", uuid::Uuid::now_v7()), &ws.key).await.expect(404);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_workspace_log_pages_with_a_cursor_in_log_order(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    for i in 0..7 {
        app.contact(&ws, &format!("+628120000000{i}"), json!({})).await;
    }
    let all = app.history(&ws).await;
    assert_eq!(all.len(), 2 + 7);
    let positions: Vec<i64> = all.iter().map(|e| e["position"].as_i64().unwrap_or(0)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    let first = app.get("/v1/history/events?limit=4", &ws.key).await.expect(200);
    assert_eq!(first.body["events"].as_array().map(Vec::len), Some(4));
    let cursor = first.body["next_cursor"].as_str().expect("cursor");
    let rest = app.get(&format!("/v1/history/events?limit=100&after={cursor}"), &ws.key).await.expect(200);
    assert_eq!(rest.body["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(rest.body["events"][0]["position"], all[4]["position"]);
    assert_eq!(app.get("/v1/history/events?after=garbage", &ws.key).await.expect(400).code(), "invalid_cursor");
    assert_eq!(app.get("/v1/history/events?limit=0", &ws.key).await.expect(400).code(), "invalid_query");
    assert_eq!(app.get("/v1/history/events?limit=-3", &ws.key).await.expect(400).code(), "invalid_query");
}

/// The events of a correlation, all pages.
async fn correlated(app: &TestApp, key: &str, correlation: &str) -> Vec<serde_json::Value> {
    let (mut events, mut after) = (vec![], String::new());
    loop {
        let page =
            app.get(&format!("/v1/history/correlations/{correlation}?limit=3&after={after}"), key).await.expect(200);
        let batch = page.body["events"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            return events;
        }
        after = page.body["next_cursor"].as_str().unwrap_or_default().to_owned();
        events.extend(batch);
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_messages_causal_chain_runs_from_its_request_to_read(pool: PgPool) {
    let (app, ws, channel) = sandbox_app(pool).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    let template = app.template(&ws, "welcome", "UTILITY", "APPROVED").await;
    let body = json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    let sent = app.post("/v1/messages", &ws.key, body).await.expect(202);
    let correlation = sent.headers["x-correlation-id"].to_str().unwrap().to_owned();
    let message = sent.id("message_id");
    app.eventually(&ws, &format!("/v1/messages/{message}"), |m| m["status"] == "read").await;

    // Everything the request caused, in log order: queued by it, dispatched and sent by the
    // dispatcher, delivered and read by the provider's webhooks, each naming an earlier one as cause.
    let events = app_until_read(&app, &ws.key, &correlation).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
    for t in ["message.queued", "message.dispatched", "message.sent", "message.delivered", "message.read"] {
        assert_eq!(types.iter().filter(|x| **x == t).count(), 1, "{t} in {types:?}");
    }
    assert_eq!(types[0], "message.queued");
    assert_eq!(types.last(), Some(&"message.read"), "{types:?}");
    assert!(events.iter().all(|e| e["metadata"]["correlation_id"] == correlation.as_str()));
    assert_eq!(events[0]["metadata"].get("causation_id"), None, "the request itself is the cause");
    for (n, e) in events.iter().enumerate().skip(1) {
        let cause = &e["metadata"]["causation_id"];
        assert!(
            events[..n].iter().any(|earlier| &earlier["event_id"] == cause),
            "{} caused by {cause}",
            e["event_type"]
        );
    }
    let actors: Vec<&str> = events.iter().filter_map(|e| e["metadata"]["actor"].as_str()).collect();
    assert!(
        actors[0].starts_with("api_key:")
            && actors.contains(&"system:dispatcher")
            && actors.contains(&"system:webhook"),
        "{actors:?}"
    );
    // Another workspace sees nothing of it; a malformed id is refused.
    let other = app.workspace().await;
    assert!(correlated(&app, &other.key, &correlation).await.is_empty());
    app.get("/v1/history/correlations/not-a-uuid", &ws.key).await.expect(400);
}

/// A correlation's events once its `message.read` is below the read horizon.
async fn app_until_read(app: &TestApp, key: &str, correlation: &str) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = correlated(app, key, correlation).await;
        if events.iter().any(|e| e["event_type"] == "message.read") {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "message.read never listed: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
