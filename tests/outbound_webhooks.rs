//! Outbound webhooks over real sockets: a local receiver checks each delivery's Standard Webhooks
//! signature with the specification's own library (`standardwebhooks`, not our code), answers with
//! a scripted status, or holds the request open.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use blazz_api::server::Settings;
use blazz_commands::credentials::Keyring;
use blazz_commands::outbound::deliver::DeliverySettings;
use blazz_tests::outbound::quick_delivery;
use blazz_tests::{TestApp, Ws, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
}

#[derive(Debug, Clone, Default)]
struct Script {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer with, in turn (0: never answer); 200 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
    /// Never answer (until the test ends).
    hang: bool,
}

async fn receive(State(s): State<Script>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    s.got.lock().unwrap().push(Received { id, headers, body, raw });
    let status = s.answers.lock().unwrap().pop_front().unwrap_or(200);
    if s.hang || status == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

/// A receiver on 127.0.0.1; answers its URL.
async fn receiver(script: Script) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(script);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

/// Standard Webhooks verification by the specification's reference library (id, timestamp within
/// its tolerance, any of the `v1,` signatures).
fn verified(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret).and_then(|w| w.verify(&r.raw, &r.headers)).is_ok()
}

async fn app(pool: PgPool, allow_private: bool, timeout: Duration) -> TestApp {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.webhooks = quick_delivery(allow_private, timeout);
    TestApp::spawn_with(pool, settings).await
}

async fn endpoint(app: &TestApp, ws: &Ws, url: &str, types: Value) -> (String, String) {
    let a = app.post("/v1/webhook-endpoints", &ws.key, json!({"url": url, "event_types": types})).await.expect(201);
    (a.id("endpoint_id"), a.body["secret"].as_str().unwrap().to_owned())
}

/// Waits (bounded) until the receiver has `n` requests.
async fn requests(script: &Script, n: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = script.got.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {n} requests arrived", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn events_are_delivered_signed_and_retried_with_the_same_id_until_accepted(pool: PgPool) {
    let app = app(pool, true, Duration::from_secs(5)).await;
    let ws = app.workspace().await;
    let script = Script::default();
    script.answers.lock().unwrap().extend([500, 503]);
    let url = receiver(script.clone()).await;
    let (endpoint_id, secret) = endpoint(&app, &ws, &url, json!(["contact.*"])).await;
    assert!(secret.starts_with("whsec_"));
    let contact = app.contact(&ws, "+6281234567890", json!({"tier": "gold"})).await;

    let got = requests(&script, 3).await;
    for r in &got {
        assert!(verified(&secret, r), "signature of {r:?}");
        assert!(verified(&secret, r) && !verified("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", r));
    }
    assert!(got.iter().all(|r| r.id == got[0].id), "one webhook-id across retries: {got:?}");
    let body = &got[2].body;
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["data"]["stream_id"], format!("contact-{contact}"));
    assert_eq!(body["data"]["payload"]["name"], "Budi", "personal fields go out opened: {body}");

    let page = app.get(&format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"), &ws.key).await.expect(200);
    let delivery = page.body["items"][0].clone();
    let id = delivery["delivery_id"].as_str().unwrap().to_owned();
    let done = app.eventually(&ws, &format!("/v1/webhook-deliveries/{id}"), |d| d["status"] == "delivered").await;
    let codes: Vec<Value> = done["attempt_log"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), json!(503), json!(200)], "{done}");
    assert!(done["attempt_log"][0]["retry_at"].is_string() && done["attempt_log"][2]["retry_at"].is_null());

    // A manual replay sends it once more, with the same id.
    app.post(&format!("/v1/webhook-deliveries/{id}/replay"), &ws.key, json!({})).await.expect(202);
    let again = requests(&script, 4).await;
    assert_eq!(again[3].id, got[0].id);
    assert!(verified(&secret, &again[3]));

    // Another workspace sees none of it.
    let other = app.workspace().await;
    app.get(&format!("/v1/webhook-deliveries/{id}"), &other.key).await.expect(404);
    app.get(&format!("/v1/webhook-endpoints/{endpoint_id}"), &other.key).await.expect(404);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_receiver_answering_410_disables_its_endpoint_and_says_why(pool: PgPool) {
    let app = app(pool, true, Duration::from_secs(5)).await;
    let ws = app.workspace().await;
    let script = Script::default();
    script.answers.lock().unwrap().push_back(410);
    let url = receiver(script.clone()).await;
    let (endpoint_id, _) = endpoint(&app, &ws, &url, json!(["*"])).await;
    app.contact(&ws, "+6281234567891", json!({})).await;
    let shown = app.eventually(&ws, &format!("/v1/webhook-endpoints/{endpoint_id}"), |e| e["enabled"] == false).await;
    assert!(shown["disabled_reason"].as_str().unwrap().contains("410"), "{shown}");
    let history = app.get(&format!("/v1/history/streams/webhook_endpoint-{endpoint_id}"), &ws.key).await.expect(200);
    let types: Vec<&str> =
        history.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["webhook_endpoint.created", "webhook_endpoint.disabled"]);
    // Attempts already in flight when the 410 came may finish; none start once the endpoint is off.
    let sent = requests(&script, 1).await.len();
    assert!(sent <= DeliverySettings::default().per_endpoint, "{sent}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn private_addresses_are_refused_unless_the_operator_allows_them(pool: PgPool) {
    let app = app(pool, false, Duration::from_secs(5)).await;
    let ws = app.workspace().await;
    for url in ["http://127.0.0.1:9/hook", "http://[::1]/hook", "http://169.254.169.254/latest/meta-data"] {
        let a = app.post("/v1/webhook-endpoints", &ws.key, json!({"url": url, "event_types": ["*"]})).await.expect(422);
        assert_eq!(a.code(), "webhook_url_not_public", "{url}");
    }
    for (body, code) in [
        (json!({"url": "ftp://x.example/h", "event_types": ["*"]}), "validation_failed"),
        (json!({"url": "https://x.example/h", "event_types": ["message.exploded"]}), "validation_failed"),
        (json!({"url": "https://x.example/h", "event_types": ["webhook_endpoint.*"]}), "validation_failed"),
    ] {
        let a = app.post("/v1/webhook-endpoints", &ws.key, body).await.expect(422);
        assert_eq!(a.code(), code);
    }
    // A host name is checked where it resolves: localhost is not public, the receiver gets nothing.
    let script = Script::default();
    let url = receiver(script.clone()).await.replace("127.0.0.1", "localhost");
    let (endpoint_id, _) = endpoint(&app, &ws, &url, json!(["contact.created"])).await;
    app.contact(&ws, "+6281234567892", json!({})).await;
    let page = app
        .eventually(&ws, &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"), |p| {
            p["items"][0]["last_error"].as_str().is_some_and(|e| e.contains("not a public address"))
        })
        .await;
    assert_eq!(page["items"][0]["status"], "pending", "{page}");
    assert!(script.got.lock().unwrap().is_empty());
    // Agents may not manage endpoints.
    let agent = app.post("/v1/api-keys", &ws.key, json!({"name": "a", "role": "agent"})).await.expect(201);
    let key = agent.body["key"].as_str().unwrap();
    app.get("/v1/webhook-endpoints", key).await.expect(403);
    let body = json!({"url": "https://x.example/h", "event_types": ["*"]});
    app.post("/v1/webhook-endpoints", key, body).await.expect(403);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_endpoint_that_never_answers_does_not_hold_up_another_workspaces(pool: PgPool) {
    let app = app(pool, true, Duration::from_secs(120)).await;
    let (slow_ws, fast_ws) = (app.workspace().await, app.workspace().await);
    let slow = Script { hang: true, ..Script::default() };
    let fast = Script::default();
    let (slow_url, fast_url) = (receiver(slow.clone()).await, receiver(fast.clone()).await);
    endpoint(&app, &slow_ws, &slow_url, json!(["contact.created"])).await;
    endpoint(&app, &fast_ws, &fast_url, json!(["contact.created"])).await;
    for i in 0..20 {
        app.contact(&slow_ws, &format!("+62812000100{i:02}"), json!({})).await;
    }
    // The slow receiver holds its first requests open (one per conversation key, a few per endpoint).
    requests(&slow, 1).await;
    for i in 0..5 {
        app.contact(&fast_ws, &format!("+62812000200{i:02}"), json!({})).await;
    }
    let got = requests(&fast, 5).await;
    assert_eq!(got.len(), 5);
    let held = slow.got.lock().unwrap().len();
    assert!(held <= DeliverySettings::default().per_endpoint, "{held} requests in flight to one endpoint");
}

/// The deliverer as a process of its own (`blazz-test-deliverer`) over the test's database.
struct DelivererProcess(tokio::process::Child);

impl DelivererProcess {
    async fn start(pool: &PgPool, key: &str) -> Self {
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
        let url = format!("{}/{database}", base.rsplit_once('/').expect("a database URL with a path").0);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_blazz-test-deliverer"))
            .env("DATABASE_URL", url)
            .env("BLAZZ_SECRET_KEY", key)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the deliverer starts");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(30), tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line));
        read.await.expect("the deliverer says it runs").unwrap();
        assert_eq!(line.trim(), "delivering");
        Self(child)
    }

    /// SIGKILL: no shutdown, no last write.
    async fn kill_9(mut self) {
        self.0.kill().await.expect("kill -9");
    }
}

/// A deliverer killed with SIGKILL while an attempt is in flight (after a failed one) loses
/// nothing: a new process retries that delivery once its lease ends, with the same webhook-id, and
/// delivers what was enqueued while no deliverer ran.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_deliverer_killed_mid_retry_loses_nothing(pool: PgPool) {
    let key = Keyring::generate_base64();
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.keys = Keyring::from_base64(&key, &[]).unwrap();
    // No deliverer in this process (dispatch is off); the settings let the receiver's URL in.
    settings.edge.webhooks = quick_delivery(true, Duration::from_secs(1));
    let app = TestApp::spawn_with(pool.clone(), settings).await;
    let ws = app.workspace().await;
    let script = Script::default();
    // The first attempt fails, the retry is held open until its deliverer dies.
    script.answers.lock().unwrap().extend([500, 0]);
    let url = receiver(script.clone()).await;
    let (endpoint_id, secret) = endpoint(&app, &ws, &url, json!(["contact.created"])).await;
    let first = app.contact(&ws, "+6281234567893", json!({})).await;

    let deliverer = DelivererProcess::start(&pool, &key).await;
    let before = requests(&script, 2).await;
    deliverer.kill_9().await;
    let second = app.contact(&ws, "+6281234567894", json!({})).await;
    let page = format!("/v1/webhook-endpoints/{endpoint_id}/deliveries");
    app.eventually(&ws, &page, |p| p["items"].as_array().is_some_and(|i| i.len() == 2)).await;

    let _deliverer = DelivererProcess::start(&pool, &key).await;
    let after = requests(&script, 4).await;
    assert_eq!(after.len(), 4, "one more attempt each, no more: {after:?}");
    assert!(after.iter().all(|r| verified(&secret, r)));
    let ids = |contact: &str| -> Vec<&str> {
        let stream = format!("contact-{contact}");
        after.iter().filter(|r| r.body["data"]["stream_id"] == stream.as_str()).map(|r| r.id.as_str()).collect()
    };
    let (first_ids, second_ids) = (ids(&first), ids(&second));
    assert_eq!(first_ids.len(), 3, "failed, killed in flight, delivered: {after:?}");
    assert!(first_ids.iter().all(|id| *id == first_ids[0]), "one webhook-id across processes: {first_ids:?}");
    assert_eq!(second_ids.len(), 1, "{after:?}");
    assert_eq!(before[0].id, first_ids[0]);

    let done =
        app.eventually(&ws, &page, |p| p["items"].as_array().unwrap().iter().all(|d| d["status"] == "delivered")).await;
    let first_delivery =
        done["items"].as_array().unwrap().iter().find(|d| d["stream_id"] == format!("contact-{first}"));
    let id = first_delivery.expect("the first contact's delivery")["delivery_id"].as_str().unwrap().to_owned();
    let shown = app.get(&format!("/v1/webhook-deliveries/{id}"), &ws.key).await.expect(200).body;
    // The attempt that died with its process left no record; the two that ended did.
    let codes: Vec<Value> = shown["attempt_log"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), json!(200)], "{shown}");
}

/// An attempt that outlasts its timeout is recorded as such and retried.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_attempt_past_its_timeout_is_recorded_and_retried(pool: PgPool) {
    let app = app(pool, true, Duration::from_millis(300)).await;
    let ws = app.workspace().await;
    let script = Script::default();
    // The first request is held open; the retry is answered.
    script.answers.lock().unwrap().push_back(0);
    let url = receiver(script.clone()).await;
    let (endpoint_id, secret) = endpoint(&app, &ws, &url, json!(["contact.created"])).await;
    app.contact(&ws, "+6281234567895", json!({})).await;
    let got = requests(&script, 2).await;
    assert!(verified(&secret, &got[1]) && got[0].id == got[1].id);
    let page = app.get(&format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"), &ws.key).await.expect(200);
    let id = page.body["items"][0]["delivery_id"].as_str().unwrap().to_owned();
    let done = app.eventually(&ws, &format!("/v1/webhook-deliveries/{id}"), |d| d["status"] == "delivered").await;
    let log = done["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{done}");
    assert!(log[0]["error"].as_str().is_some_and(|e| e.contains("timed out after 300 ms")), "{done}");
    assert!(log[0]["status_code"].is_null() && log[1]["status_code"] == 200, "{done}");
}
