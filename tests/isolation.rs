//! Isolation over real HTTP and PostgreSQL: one workspace's hostile input fails only its own request
//! (or its own webhook part, or its own event), never another workspace's.

use blazz_domain::conversation::ConversationEvent;
use blazz_domain::ids::{ChannelId, ContactId};
use blazz_domain::DomainEvent;
use blazz_tests::{notification, provider_time, status, Settings, TestApp, Ws, OPERATOR_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Every text field of a command refuses a NUL with 422 naming the field; meanwhile another
/// workspace's creates, sent at the same time into the same group-commit batches, all succeed.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_nul_in_any_text_field_is_refused_naming_it_and_fails_no_other_workspace(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (hostile, neighbour) = (app.workspace().await, app.workspace().await);
    let contact = app.contact(&hostile, "+6281200000001", json!({})).await;
    let cases = [
        ("/v1/contacts", json!({"phone": "+6281200000002", "name": "Bu\u{0}di"}), "name"),
        ("/v1/contacts", json!({"phone": "+6281200000003", "attributes": {"city": "x\u{0}"}}), "attributes.city"),
        ("/v1/groups", json!({"name": "VIP\u{0}"}), "name"),
        ("/v1/api-keys", json!({"name": "k\u{0}", "role": "agent"}), "name"),
        (&format!("/v1/contacts/{contact}/opt-out"), json!({"reason": "\u{0}"}), "reason"),
        (
            "/v1/channels",
            json!({"provider": "sandbox", "phone_number_id": "1\u{0}2", "display_phone_number": "+15550783881"}),
            "phone_number_id",
        ),
    ];
    let neighbours = (0..300).map(|i| {
        let app = &app;
        let key = neighbour.key.clone();
        async move { app.post("/v1/contacts", &key, json!({"phone": format!("+6281300{i:05}"), "name": "Siti"})).await }
    });
    let hostile_calls = cases.iter().cycle().take(60).map(|(path, body, _)| app.post(path, &hostile.key, body.clone()));
    let (good, bad) = tokio::join!(futures::future::join_all(neighbours), futures::future::join_all(hostile_calls));
    assert!(
        good.iter().all(|a| a.status == 201),
        "every neighbour create succeeded: {:?}",
        good.iter().find(|a| a.status != 201)
    );
    for (answer, (path, _, field)) in bad.iter().zip(cases.iter().cycle()) {
        assert_eq!(answer.status, 422, "{path}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed", "{path}: {}", answer.body);
        assert_eq!(answer.body["error"]["details"]["field"], *field, "{path}: {}", answer.body);
    }
}

/// A webhook whose parts are partly bad: each bad part becomes an exception with its reason, the good
/// ones are stored, and the answer is 200 (Meta does not retry what can never succeed).
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_webhook_applies_its_good_parts_and_keeps_the_bad_ones_as_exceptions(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let (channel, number) = app.channel_of(&ws, "meta").await;
    app.credentials(&ws, &channel).await;
    let now = provider_time(0).to_string();
    let text = |id: &str, body: &str, ts: &str| json!({"from": "6281234567890", "id": id, "timestamp": ts, "type": "text", "text": {"body": body}});
    let messages = json!([
        text(&"w".repeat(300), "too long an id", &now),
        text("wamid.NUL", "nul \u{0} inside", &now),
        text("wamid.FUTURE", "from the year 2230", "8210266873199"),
        text("wamid.GOOD", "Halo", &now),
    ]);
    let statuses = json!([status(&Uuid::now_v7().to_string(), "wamid.X", "sent", 0), {"id": "wamid.Y", "status": 5}]);
    let body = notification(&number, json!({"messages": messages, "statuses": statuses, "contacts": []}));
    let answer = app.webhook(&channel, &body).await.expect(200);
    assert_eq!(answer.body["inbound"], 1, "{}", answer.body);
    // 3 bad messages, 1 unreadable status, 1 status of an unknown message.
    assert_eq!(answer.body["exceptions"], 5, "{}", answer.body);
    let conversations =
        app.eventually(&ws, "/v1/conversations", |c| c["items"].as_array().is_some_and(|i| i.len() == 1)).await;
    assert_eq!(conversations["items"][0]["unread_count"], 1, "only the good message: {conversations}");
    let exceptions = app.get("/v1/operator/webhook-exceptions?kind=invalid", OPERATOR_TOKEN).await.expect(200).body;
    let details: Vec<&str> =
        exceptions["items"].as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(details.len(), 4, "{details:?}");
    assert!(details.iter().any(|d| d.contains("id must be")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("NUL")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("ahead of our clock")), "{details:?}");
    // Stored as received but for the NUL, which PostgreSQL cannot keep.
    let nul =
        exceptions["items"].as_array().unwrap().iter().find(|e| e["detail"].as_str().unwrap().contains("NUL")).unwrap();
    assert_eq!(nul["payload"]["text"]["body"], "nul \u{fffd} inside");
}

async fn append_raw(app: &TestApp, ws: &Ws, stream: &str, event: DomainEvent) -> i64 {
    app.append_raw(ws, stream, app.commands().codec().encode(&event)).await
}

/// An event the conversations projector cannot apply (a time PostgreSQL cannot store) is parked; the
/// event after it in the same stream waits behind it; every other workspace's reads stay consistent.
/// Operators see both, a retry of the poison fails again, a skip applies the one behind it.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_poison_event_is_parked_and_every_other_workspace_keeps_moving(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (poisoned, other) = (app.workspace().await, app.workspace().await);
    let (channel_id, contact_id) = (ChannelId::from_uuid(Uuid::now_v7()), ContactId::from_uuid(Uuid::now_v7()));
    let stream = format!("conversation-{}", Uuid::now_v7());
    let inbound = |at| {
        DomainEvent::Conversation(ConversationEvent::InboundReceived {
            provider_message_id: "w".into(),
            at,
            message: None,
        })
    };
    append_raw(
        &app,
        &poisoned,
        &stream,
        DomainEvent::Conversation(ConversationEvent::Started { channel_id, contact_id }),
    )
    .await;
    append_raw(&app, &poisoned, &stream, inbound(chrono::DateTime::<chrono::Utc>::MIN_UTC)).await;
    append_raw(&app, &poisoned, &stream, inbound(chrono::Utc::now())).await;

    // The read side goes on: another workspace's write is readable (not 503 not_yet_consistent).
    let created = app.post("/v1/contacts", &other.key, json!({"phone": "+6281234567890"})).await.expect(201);
    let id = created.id("contact_id");
    app.get(&format!("/v1/contacts/{id}?min_position={}", created.body["position"]), &other.key).await.expect(200);

    let parked = app.get("/v1/operator/parked-events", OPERATOR_TOKEN).await.expect(200).body;
    let mine: Vec<&Value> =
        parked["items"].as_array().unwrap().iter().filter(|p| p["projection"] == "conversations").collect();
    assert_eq!(mine.len(), 2, "{parked}");
    assert!(mine[0]["error"].as_str().unwrap().contains("out of range"), "{}", mine[0]);
    assert_eq!(mine[1]["held_by"], mine[0]["id"], "the later event of the stream waits behind the first");
    let first = mine[0]["id"].as_i64().unwrap();

    let retried =
        app.post(&format!("/v1/operator/parked-events/{first}/retry"), OPERATOR_TOKEN, json!({})).await.expect(200);
    assert_eq!(
        (retried.body["applied"].as_i64(), retried.body["still_parked"].as_i64()),
        (Some(0), Some(2)),
        "{}",
        retried.body
    );
    let skipped =
        app.post(&format!("/v1/operator/parked-events/{first}/skip"), OPERATOR_TOKEN, json!({})).await.expect(200);
    assert_eq!(
        (skipped.body["skipped"].as_bool(), skipped.body["applied"].as_i64()),
        (Some(true), Some(1)),
        "{}",
        skipped.body
    );
    let unread: i64 = sqlx::query_scalar("SELECT unread_count FROM rm_conversations WHERE conversation_id = $1")
        .bind(Uuid::parse_str(stream.trim_start_matches("conversation-")).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(unread, 1, "the held event was applied once the poison was skipped");
    let open = app.get("/v1/operator/parked-events", OPERATOR_TOKEN).await.expect(200).body;
    assert!(open["items"].as_array().unwrap().iter().all(|p| p["projection"] != "conversations"), "{open}");
}

/// A taken phone number id of another workspace answers 409 without naming that workspace's channel;
/// a position of another workspace's event reads like an unknown one.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn no_answer_hints_at_another_workspaces_ids_or_positions(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (app.workspace().await, app.workspace().await);
    let body =
        json!({"provider": "sandbox", "phone_number_id": "106540352242922", "display_phone_number": "+15550783881"});
    let created = app.post("/v1/channels", &a.key, body.clone()).await.expect(201);
    let own = app.post("/v1/channels", &a.key, body.clone()).await.expect(409);
    assert_eq!(own.body["error"]["details"]["existing_id"], created.body["channel_id"], "own workspace: named");
    let other = app.post("/v1/channels", &b.key, body).await.expect(409);
    assert_eq!(other.code(), "phone_number_id_taken");
    assert!(other.body["error"].get("details").is_none(), "{}", other.body);

    let position = created.body["position"].as_i64().unwrap();
    let foreign = app.get(&format!("/v1/contacts?min_position={position}"), &b.key).await.expect(400);
    let unknown = app.get("/v1/contacts?min_position=999999999", &b.key).await.expect(400);
    assert_eq!(foreign.body, unknown.body);
}

/// A client's `X-Request-Id` is kept when it is 1-128 visible ASCII characters, else replaced; what
/// the log stores is the id the response carries.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn oversized_request_ids_are_replaced_before_they_reach_the_log(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let huge = "r".repeat(300_000);
    for (sent, kept) in [("req-42", true), (huge.as_str(), false), ("two words", false)] {
        let body = json!({"phone": format!("+62812{:07}", sent.len() % 10_000_000)});
        let answer = app.call(Method::POST, "/v1/contacts", Some(&ws.key), Some(body), &[("x-request-id", sent)]).await;
        let answer = answer.expect(201);
        let echoed = answer.headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(echoed == sent, kept, "{sent:.20}");
        assert!(echoed.len() <= 128);
        let stored: String = sqlx::query_scalar("SELECT metadata->>'request_id' FROM events WHERE position = $1")
            .bind(answer.body["position"].as_i64().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(stored, echoed);
    }
}

/// Past its rate an API key gets 429 with `Retry-After`; another workspace's key is not slowed; an
/// operator can give a workspace a rate of its own.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn each_api_key_has_a_rate_and_a_workspace_can_get_its_own(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.limits.key_rate = std::num::NonZeroU32::new(5);
    let app = TestApp::spawn_with(pool, settings).await;
    let (busy, calm) = (app.workspace().await, app.workspace().await);
    let mut limited = None;
    for _ in 0..40 {
        let a = app.get("/v1/contacts", &busy.key).await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
    }
    let limited = limited.expect("the busy key was limited");
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    app.get("/v1/contacts", &calm.key).await.expect(200);
    app.call(
        Method::PUT,
        &format!("/v1/operator/workspaces/{}/rate-limit", busy.id),
        Some(OPERATOR_TOKEN),
        Some(json!({"requests_per_second": 10_000})),
        &[],
    )
    .await
    .expect(200);
    tokio::time::sleep(Duration::from_secs(6)).await; // the gateway re-reads a workspace's rate every 5 s
    for _ in 0..40 {
        app.get("/v1/contacts", &busy.key).await.expect(200);
    }
}

/// Opens a connection and sends a POST whose body never arrives in full (a slow client).
async fn unfinished_post(app: &TestApp, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(app.server.addr).await.expect("connect");
    let head = format!(
        "POST /v1/contacts HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"phone\":"
    );
    socket.write_all(head.as_bytes()).await.expect("write");
    socket
}

/// A body that trickles in slower than the request timeout gets 408.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_slow_body_times_out_with_408(pool: PgPool) {
    use tokio::io::AsyncReadExt;
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.limits.request_timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let mut socket = unfinished_post(&app, &ws.key).await;
    let mut answer = vec![0u8; 4096];
    let n =
        tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer)).await.expect("answered").expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

/// Past the concurrency limit requests are refused at once with 503 and `Retry-After`, not queued.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn past_the_concurrency_limit_requests_are_shed_with_503(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.limits.max_concurrent = 2;
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    // Two requests whose bodies never finish hold both places (until the 30 s timeout).
    let _held = (unfinished_post(&app, &ws.key).await, unfinished_post(&app, &ws.key).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let a = app.get("/v1/contacts", &ws.key).await;
        if a.status == 503 {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "never shed: {}", a.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shed.code(), "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
}

/// Bulk work (an import) rests between its chunks while another workspace is active, and never when
/// its workspace is alone.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_import_rests_between_chunks_only_while_another_workspace_is_active(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let a = app.workspace().await;
    let rows = |prefix: &str| -> Value {
        (0..2_500).map(|i| json!({"phone": format!("+62{prefix}{i:07}")})).collect::<Vec<_>>().into()
    };
    let alone = app.post("/v1/contacts/import", &a.key, rows("811")).await.expect(200);
    assert_eq!(alone.body["imported"], 2_500);
    assert_eq!(app.commands().pacer().rests(), 0, "alone, an import never rests");
    let b = app.workspace().await;

    // B reads its contacts every 2 ms while A imports again: busy, but inside its key's rate (1,000
    // requests/s by default), so every read must succeed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (client, url, key, stop) =
            (reqwest::Client::new(), app.server.url("/v1/contacts?limit=1"), b.key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answered = 0;
            let mut pace = tokio::time::interval(Duration::from_millis(2));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pace.tick().await;
                let r = client.get(url.clone()).bearer_auth(&key).send().await.expect("B's read");
                assert!(r.status().is_success(), "B's read: {}", r.status());
                answered += 1;
            }
            answered
        })
    };
    // B is active before A's first chunk ends: its first read has been answered.
    app.eventually(&b, "/v1/contacts?limit=1", |_| true).await;
    let contended = app.post("/v1/contacts/import", &a.key, rows("812")).await.expect(200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(busy.await.expect("B's reads") > 0);
    assert_eq!(contended.body["imported"], 2_500, "pacing slows an import, it drops nothing");
    // Three chunks of 1,000, 1,000 and 500 rows: a rest after each while B was active.
    assert!(app.commands().pacer().rests() >= 2, "rests: {}", app.commands().pacer().rests());
}
