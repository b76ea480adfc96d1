//! Automation rules over real sockets: inbound messages come in as signed Meta webhooks, replies go
//! out through the dispatcher to the fake Graph API.

use blazz_tests::automation::setup;
use chrono::{Timelike, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A keyword rule answers and labels once per matching message, never for other texts, and a run
/// performed again (as after a crash) acts no second time: its commands carry idempotency keys.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_keyword_rule_replies_and_labels_exactly_once(pool: PgPool) {
    let s = setup(pool).await;
    let rule = s
        .rule(json!({"name": "Prices", "trigger": "inbound_message",
                     "conditions": [{"kind": "keyword", "any": ["harga", "price"]}],
                     "actions": [{"kind": "reply_text", "text": "Harga mulai 10rb"}, {"kind": "add_label", "label": "Pricing"}]}))
        .await;
    s.inbound("6281234500001", "Halo").await;
    s.inbound("6281234500001", "berapa HARGA-nya?").await;
    assert_eq!(s.sent_to("6281234500001", 1).await, ["Harga mulai 10rb"]);
    let runs = s.runs(&rule, 1).await;
    assert_eq!(runs.len(), 1, "the greeting matched nothing: {runs:?}");
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["results"], json!([{"kind": "reply_text", "ok": true}, {"kind": "add_label", "ok": true}]));
    let conversation = runs[0]["conversation_id"].as_str().unwrap().to_owned();
    let list = s.app.eventually(&s.ws, "/v1/conversations?label=pricing", |l| l["items"][0].is_object()).await;
    assert_eq!(list["items"][0]["conversation_id"], conversation.as_str());

    // The same run once more: the worker answers from the first commands' records.
    sqlx::query("UPDATE automation_runs SET status = 'pending', next_attempt_at = now() WHERE run_id = $1::uuid")
        .bind(runs[0]["run_id"].as_str().unwrap())
        .execute(&s.app.pool)
        .await
        .unwrap();
    s.settled().await;
    let again = s.runs(&rule, 1).await;
    assert_eq!((again[0]["status"].as_str(), again[0]["attempts"].as_i64()), (Some("done"), Some(2)), "{again:?}");
    let messages = s.app.get(&format!("/v1/messages?conversation_id={conversation}"), &s.ws.key).await.expect(200);
    let outbound: Vec<&Value> =
        messages.body["items"].as_array().unwrap().iter().filter(|m| m["direction"] == "out").collect();
    assert_eq!(outbound.len(), 1, "{}", messages.body);
    assert_eq!(s.graph.calls().len(), 1);
    // The reply names the inbound message as its cause, in the request's correlation.
    let stream = format!("/v1/history/streams/message-{}", outbound[0]["message_id"].as_str().unwrap());
    let queued = s.app.get(&stream, &s.ws.key).await.expect(200).body["events"][0].clone();
    assert_eq!(queued["metadata"]["actor"], "system:automation", "{queued}");
    assert!(queued["metadata"]["causation_id"].is_string(), "{queued}");
}

/// The built-ins: a welcome on a contact's first message only, and an away message outside
/// business hours in the workspace's time zone, at most once an hour per conversation.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn welcome_and_away_presets_answer_first_and_out_of_hours_messages_at_their_rate(pool: PgPool) {
    let s = setup(pool).await;
    // Hours around now in UTC: inside them if the zone were ignored, outside them in Jakarta (UTC+7).
    s.app.patch("/v1/workspace", &s.ws.key, json!({"timezone": "Asia/Jakarta"})).await.expect(200);
    let hour = |h: i64| format!("{:02}:00:00", (i64::from(Utc::now().hour()) + h).rem_euclid(24));
    let days = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    let presets = "/v1/automation-rules/presets";
    let away =
        json!({"preset": "away_message", "text": "Kami buka besok", "days": days, "from": hour(-1), "to": hour(2)});
    let away = s.app.post(presets, &s.ws.key, away).await.expect(201).id("rule_id");
    let welcome = json!({"preset": "welcome", "text": "Selamat datang!"});
    let welcome = s.app.post(presets, &s.ws.key, welcome).await.expect(201).id("rule_id");

    s.inbound("6281234500002", "Halo").await;
    let mut first = s.sent_to("6281234500002", 2).await;
    first.sort();
    assert_eq!(first, ["Kami buka besok", "Selamat datang!"]);
    s.inbound("6281234500002", "Halo lagi").await;
    s.inbound("6281234500002", "Ada orang?").await;
    s.settled().await;
    assert_eq!(s.sent_to("6281234500002", 2).await.len(), 2, "no second welcome, no second away message this hour");
    assert_eq!(s.runs(&welcome, 1).await.len(), 1);
    assert_eq!(s.runs(&away, 1).await.len(), 1);

    // A disabled rule enqueues nothing.
    let off = s.app.patch(&format!("/v1/automation-rules/{welcome}"), &s.ws.key, json!({"enabled": false})).await;
    let path = format!("/v1/automation-rules/{welcome}?min_position={}", off.expect(200).body["position"]);
    let shown = s.app.get(&path, &s.ws.key).await.expect(200).body;
    assert_eq!(shown["enabled"], false);
    s.inbound("6281234500003", "Halo").await;
    assert_eq!(s.sent_to("6281234500003", 1).await, ["Kami buka besok"]);
    s.settled().await;
    assert_eq!(s.runs(&welcome, 1).await.len(), 1);
}

/// A rule reacting to failures never reacts to the failure of its own message.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_rule_on_failed_messages_does_not_loop_on_its_own(pool: PgPool) {
    let s = setup(pool).await;
    let rule = s
        .rule(json!({"name": "Retry by text", "trigger": "message_failed",
                     "actions": [{"kind": "reply_text", "text": "Maaf, coba lagi"}, {"kind": "add_label", "label": "failed"}],
                     "max_per_conversation_per_hour": 100}))
        .await;
    s.inbound("6281234500004", "Halo").await;
    // Every send to this contact fails for good (131026: undeliverable).
    s.graph.reply_to("6281234500004", blazz_tests::fake_graph::Reply::error(131026));
    let list = s.app.eventually(&s.ws, "/v1/conversations", |l| l["items"][0].is_object()).await;
    let conversation = list["items"][0]["conversation_id"].as_str().unwrap().to_owned();
    let body = json!({"type": "text", "text": {"body": "Pesanan Anda siap"}});
    s.app.post(&format!("/v1/conversations/{conversation}/messages"), &s.ws.key, body).await.expect(202);
    let runs = s.runs(&rule, 1).await;
    assert_eq!(runs[0]["results"][0], json!({"kind": "reply_text", "ok": true}), "{runs:?}");
    // The rule's reply is sent (and fails too), and nothing follows.
    assert_eq!(s.sent_to("6281234500004", 2).await.len(), 2);
    s.settled().await;
    assert_eq!(s.runs(&rule, 1).await.len(), 1, "its own failure started nothing");
    assert_eq!(s.graph.calls().len(), 2);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn bad_rules_are_refused_and_rules_belong_to_their_workspace_and_its_admins(pool: PgPool) {
    let s = setup(pool).await;
    let base = json!({"name": "r", "trigger": "inbound_message", "actions": [{"kind": "opt_out"}]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for body in [
        with("conditions", json!([{"kind": "regex", "pattern": "(unclosed"}])),
        with("actions", json!([])),
        with("actions", json!([{"kind": "assign", "agent_id": uuid::Uuid::now_v7()}])),
        with("max_per_conversation_per_hour", json!(0)),
        with("name", json!("a\u{0}b")),
    ] {
        let a = s.app.post("/v1/automation-rules", &s.ws.key, body.clone()).await.expect(422);
        assert_eq!(a.code(), "validation_failed", "{body}");
    }
    for body in [with("trigger", json!("sunrise")), with("conditions", json!([{"kind": "mood"}]))] {
        s.app.post("/v1/automation-rules", &s.ws.key, body).await.expect(400);
    }
    let rule = s.rule(base.clone()).await;
    let agent = s.app.post("/v1/api-keys", &s.ws.key, json!({"name": "a", "role": "agent"})).await.expect(201);
    let key = agent.body["key"].as_str().unwrap();
    s.app.get("/v1/automation-rules", key).await.expect(403);
    s.app.post("/v1/automation-rules", key, base).await.expect(403);
    let other = s.app.workspace().await;
    s.app.get(&format!("/v1/automation-rules/{rule}"), &other.key).await.expect(404);
    s.app.get(&format!("/v1/automation-rules/{rule}/runs"), &other.key).await.expect(404);
    s.app.delete(&format!("/v1/automation-rules/{rule}"), &other.key).await.expect(404);
    s.app.delete(&format!("/v1/automation-rules/{rule}"), &s.ws.key).await.expect(200);
    s.app.eventually(&s.ws, "/v1/automation-rules", |l| l["items"].as_array().unwrap().is_empty()).await;
}

/// A reply to a campaign's message starts `campaign_reply` rules; a message in another conversation
/// does not.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_reply_to_a_campaign_starts_campaign_reply_rules(pool: PgPool) {
    let s = setup(pool).await;
    let rule = s
        .rule(json!({"name": "Campaign replies", "trigger": "campaign_reply",
                     "actions": [{"kind": "add_label", "label": "campaign-reply"}]}))
        .await;
    let template = s.app.template(&s.ws, "promo", "MARKETING", "APPROVED").await;
    s.app.contact(&s.ws, "+6281234500040", json!({})).await;
    let body = json!({"name": "Promo", "channel_id": s.channel, "template_id": template, "audience": {"kind": "all"},
                      "variables": {"first_name": {"attribute": "first_name", "default": "Kak"}}});
    let campaign = s.app.post("/v1/campaigns", &s.ws.key, body).await.expect(201).id("campaign_id");
    s.app.launch(&s.ws, &campaign).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s.graph.calls().iter().any(|c| c.body["to"] == "6281234500040") {
        assert!(tokio::time::Instant::now() < deadline, "the campaign's message was never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.settled().await;
    s.inbound("6281234500041", "Halo").await;
    s.inbound("6281234500040", "Mau pesan").await;
    let runs = s.runs(&rule, 1).await;
    s.settled().await;
    assert_eq!(s.runs(&rule, 1).await.len(), 1, "only the campaign's contact replied to it: {runs:?}");
    let labelled =
        s.app.eventually(&s.ws, "/v1/conversations?label=campaign-reply", |l| l["items"][0].is_object()).await;
    assert_eq!(labelled["items"].as_array().unwrap().len(), 1);
    assert_eq!(labelled["items"][0]["conversation_id"], runs[0]["conversation_id"]);
}
