//! History for auditors: a stream's events and the workspace's log, paged, with metadata.

use blazz_tests::TestApp;
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
