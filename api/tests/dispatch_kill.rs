//! `blazz dispatch` killed with SIGKILL in the middle of a campaign and started again: every recipient
//! ends in exactly one final state, and no message reaches the provider twice. Needs DATABASE_URL
//! (`scripts/test` provides it); the provider is a local fake Graph API that counts calls.

use axum::extract::State;
use axum::Json;
use blazz_api::server::{connect_and_migrate, Running, Settings};
use blazz_commands::credentials::Keyring;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Calls = Arc<Mutex<HashMap<String, usize>>>;

/// Accepts every send after 30 ms, counting calls per message id (our callback data).
async fn fake_graph() -> (String, Calls) {
    async fn send(State(calls): State<Calls>, Json(body): Json<Value>) -> Json<Value> {
        let id = body["biz_opaque_callback_data"].as_str().unwrap_or("").to_owned();
        *calls.lock().unwrap().entry(id.clone()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Json(json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.K.{id}")}]}))
    }
    let calls: Calls = Arc::default();
    let app = axum::Router::new().route("/{v}/{number}/messages", axum::routing::post(send)).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn dispatcher(db: &str, key: &str, graph: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_blazz"))
        .arg("dispatch")
        .env("DATABASE_URL", db)
        .env("BLAZZ_SECRET_KEY", key)
        .env("BLAZZ_META_BASE_URL", graph)
        .env("BLAZZ_UNKNOWN_AFTER_SECS", "1")
        .env("BLAZZ_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("blazz dispatch starts")
}

async fn post(client: &reqwest::Client, url: String, bearer: &str, body: Value) -> Value {
    let res = client.post(url).bearer_auth(bearer).json(&body).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_campaign_then_restart_loses_no_recipient_and_calls_none_twice() {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test sets it)");
    let name = format!("blazz_kill_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let db = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("DATABASE_URL has no database name"),
    };
    let pool = connect_and_migrate(&db, 8).await.unwrap();
    let key = Keyring::generate_base64();
    let mut settings = Settings::new(4, Some("op".into()));
    settings.edge.keys = Keyring::from_base64(&key, &[]).unwrap();
    let server = Running::start(pool.clone(), settings).await.unwrap();
    let (graph, calls) = fake_graph().await;
    let client = reqwest::Client::new();

    let ws = post(&client, server.url("/v1/workspaces"), "op", json!({"name": "kill"})).await;
    let k = ws["api_key"]["key"].as_str().unwrap().to_owned();
    let channel = post(
        &client,
        server.url("/v1/channels"),
        &k,
        json!({"provider": "meta", "phone_number_id": "777000777", "display_phone_number": "+15550000001", "rate_limit_per_second": 100}),
    )
    .await["channel_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = json!({"access_token": "t", "app_secret": "s", "verify_token": "v"});
    client
        .put(server.url(&format!("/v1/channels/{channel}/credentials")))
        .bearer_auth(&k)
        .json(&creds)
        .send()
        .await
        .unwrap();
    let rows: Vec<Value> = (0..200).map(|i| json!({"phone": format!("+6287{:09}", i)})).collect();
    post(&client, server.url("/v1/contacts/import"), &k, Value::Array(rows)).await;
    let template = post(
        &client,
        server.url("/v1/templates"),
        &k,
        json!({"name": "hi", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi"}]}),
    )
    .await["template_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let review = json!({"workspace_id": ws["workspace_id"], "status": "APPROVED"});
    post(&client, server.url(&format!("/v1/templates/{template}/review")), "op", review).await;
    let campaign = post(
        &client,
        server.url("/v1/campaigns"),
        &k,
        json!({"name": "c", "channel_id": channel, "template_id": template, "audience": {"kind": "all"}}),
    )
    .await["campaign_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = post(&client, server.url(&format!("/v1/campaigns/{campaign}/launch")), &k, json!({})).await;
    assert_eq!(started["status"], "launching");
    // The fan-out runs in the background: wait (bounded) for its counts.
    let deadline = Instant::now() + Duration::from_secs(60);
    let launched = loop {
        let history: Value = client
            .get(server.url(&format!("/v1/history/streams/campaign-{campaign}")))
            .bearer_auth(&k)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = history["events"].as_array().cloned().unwrap_or_default();
        if let Some(e) = events.into_iter().find(|e| e["event_type"] == "campaign.launched") {
            break e["payload"].clone();
        }
        assert!(Instant::now() < deadline, "the fan-out did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(launched["queued"], 200);

    // Kill the dispatcher while sends are in flight (each takes 30 ms at the fake).
    let mut child = dispatcher(&db, &key, &graph);
    let deadline = Instant::now() + Duration::from_secs(60);
    while calls.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "the dispatcher did not start sending");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let at_kill = calls.lock().unwrap().len();
    assert!(at_kill < 200, "killed mid-campaign ({at_kill} of 200 sent)");

    let mut child = dispatcher(&db, &key, &graph);
    let finals = loop {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM rm_messages WHERE workspace_id = $1::text::uuid GROUP BY status",
        )
        .bind(ws["workspace_id"].as_str().unwrap())
        .fetch_all(&pool)
        .await
        .unwrap();
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let done = ["sent", "unknown", "failed"].iter().map(|s| counts.get(*s).copied().unwrap_or(0)).sum::<i64>();
        if done == 200 {
            break counts;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "not every recipient reached a final state: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let calls = calls.lock().unwrap().clone();
    eprintln!("killed after {at_kill} calls; final: {finals:?}; {} messages called", calls.len());
    assert!(calls.values().all(|n| *n == 1), "a message reached the provider twice");
    let sent = finals.get("sent").copied().unwrap_or(0);
    let unknown = finals.get("unknown").copied().unwrap_or(0);
    assert_eq!(finals.get("failed"), None, "{finals:?}");
    assert!(sent as usize <= calls.len() && calls.len() as i64 <= sent + unknown, "{finals:?}, {} called", calls.len());
    server.stop().await.unwrap();
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
}
