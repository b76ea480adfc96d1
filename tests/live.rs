//! Deltas over WebSocket: only the caller's workspace, in order, resume without gaps or duplicates,
//! resync when the client is too far behind.

use blazz_tests::{Live, Settings, TestApp, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn deltas_reach_only_the_workspace_they_belong_to(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (app.workspace().await, app.workspace().await);
    let mut live_a = Live::connect(&app, &a.key, None).await;
    let mut live_b = Live::connect(&app, &b.key, None).await;
    let created =
        app.post("/v1/contacts", &a.key, json!({"phone": "+6281234567890", "name": "Budi"})).await.expect(201);
    let d = live_a.next_of("contact").await;
    assert_eq!((d["type"].as_str(), d["op"].as_str()), (Some("delta"), Some("upsert")));
    assert_eq!(d["id"], created.body["contact_id"]);
    assert_eq!(d["position"], created.body["position"]);
    assert_eq!(d["changed"]["phone"], "+6281234567890");
    // B's first delta is B's own contact: A's never reached it.
    let b_contact = app.post("/v1/contacts", &b.key, json!({"phone": "+6281234567891"})).await.expect(201);
    let d = live_b.next().await;
    assert_eq!(d["id"], b_contact.body["contact_id"], "{d}");
    assert_eq!(d["workspace_id"].as_str(), Some(b.id.as_str()));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_reconnecting_client_gets_what_it_missed_without_gaps_or_duplicates(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let mut live = Live::connect(&app, &ws.key, None).await;
    app.contact(&ws, "+6281200000001", json!({})).await;
    let first = live.next_of("contact").await;
    drop(live);
    let mut missed = vec![];
    for i in 2..=4 {
        missed.push(app.contact(&ws, &format!("+628120000000{i}"), json!({})).await);
    }
    let mut live = Live::connect(&app, &ws.key, first["delta_id"].as_str()).await;
    let mut got = vec![];
    for _ in 0..3 {
        got.push(live.next_of("contact").await["id"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(got, missed, "the missed deltas, in order");
    let after = app.contact(&ws, "+6281200000005", json!({})).await;
    assert_eq!(live.next_of("contact").await["id"].as_str(), Some(after.as_str()), "then live ones, no duplicate");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_client_too_far_behind_is_told_to_resync(pool: PgPool) {
    let app =
        TestApp::spawn_with(pool, Settings { delta_buffer: 4, ..Settings::new(4, Some(OPERATOR_TOKEN.into())) }).await;
    let ws = app.workspace().await;
    let mut live = Live::connect(&app, &ws.key, None).await;
    app.contact(&ws, "+6281200000001", json!({})).await;
    let first = live.next_of("contact").await;
    drop(live);
    // More deltas than the buffer holds.
    for i in 2..=9 {
        app.contact(&ws, &format!("+628120000000{i}"), json!({})).await;
    }
    let last = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281200000010"})).await.expect(201);
    let p = last.body["position"].as_i64().expect("p");
    app.get(&format!("/v1/contacts?min_position={p}"), &ws.key).await.expect(200);
    let mut live = Live::connect(&app, &ws.key, first["delta_id"].as_str()).await;
    assert_eq!(live.next().await["type"], "resync");
    assert_eq!(
        app.call(reqwest::Method::GET, "/v1/stream?after=nonsense", Some(&ws.key), None, &[]).await.status.as_u16(),
        400
    );
}

/// A socket opened with a key that is then revoked is closed (within the recheck interval and the key
/// cache's lifetime); a socket of another key of the workspace stays open.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_revoked_keys_socket_is_closed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let issued = app.post("/v1/api-keys", &ws.key, json!({"name": "screen", "role": "viewer"})).await.expect(201);
    let (id, key) = (issued.id("id"), issued.body["key"].as_str().expect("key").to_owned());
    let mut revoked = Live::connect(&app, &key, None).await;
    let mut kept = Live::connect(&app, &ws.key, None).await;
    assert!(!revoked.closed_within(Duration::from_millis(1500)).await, "open while the key is valid");
    app.delete(&format!("/v1/api-keys/{id}"), &ws.key).await.expect(200);
    assert!(revoked.closed_within(Duration::from_secs(5)).await, "closed after the revocation");
    assert!(!kept.closed_within(Duration::from_millis(1500)).await, "the owner's socket stays open");
}

/// Waits (bounded) until `workspace` has `n` live subscribers on the gateway.
async fn subscribers_become(app: &TestApp, workspace: &str, n: usize, within: Duration) -> bool {
    let workspace = uuid::Uuid::parse_str(workspace).expect("uuid");
    let deadline = tokio::time::Instant::now() + within;
    while app.server.state.hub.subscribers(workspace) != n {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A subscriber that stops reading is dropped once a message has waited past the send timeout: the
/// gateway does not hold its socket and unsent deltas for good. A reader of another workspace stays.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_subscriber_that_stops_reading_is_dropped_after_the_send_timeout(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.limits.socket_send_timeout = Duration::from_secs(1);
    // Room for every delta of the import: the subscriber must not be dropped for falling behind.
    settings.delta_buffer = 100_000;
    let app = TestApp::spawn_with(pool, settings).await;
    let (ws, other) = (app.workspace().await, app.workspace().await);
    let mut stalled = Live::connect_small(&app, &ws.key).await;
    let mut reading = Live::connect(&app, &other.key, None).await;
    assert!(subscribers_become(&app, &ws.id, 1, Duration::from_secs(10)).await);
    // 40,000 contact deltas: megabytes more than the socket buffers hold.
    let mut csv = String::from("phone,name\n");
    for i in 0..40_000u64 {
        csv.push_str(&format!("+62815{i:08},Contact number {i}\n"));
    }
    let res = app
        .client
        .post(app.server.url("/v1/contacts/import"))
        .bearer_auth(&ws.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert!(
        subscribers_become(&app, &ws.id, 0, Duration::from_secs(120)).await,
        "the stalled subscriber is still held"
    );
    // Once it reads again it gets what was already on its way, then the end of the socket.
    assert!(stalled.closed_within(Duration::from_secs(60)).await);
    let contact = app.post("/v1/contacts", &other.key, json!({"phone": "+6281699999999"})).await.expect(201);
    assert_eq!(reading.next_of("contact").await["id"], contact.body["contact_id"]);
}
