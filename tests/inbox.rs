//! The agents' inbox over HTTP and WebSocket: conversation statuses (open, pending, snoozed,
//! resolved), reopening on inbound messages and when a snooze ends, the status filter, labels on
//! conversations and contacts, and reading a conversation.

use blazz_tests::inbox::setup;
use blazz_tests::{Live, Settings, OPERATOR_TOKEN};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn resolving_then_an_inbound_message_reopens_the_conversation_live(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let (id, _) = s.inbound().await;
    let mut live = Live::connect(&s.app, &s.ws.key, None).await;

    let resolved = s.set(&id, json!({"status": "resolved"})).await.expect(200);
    assert_eq!(resolved.body["status"], "resolved", "{}", resolved.body);
    // The conversation's earlier deltas (it started) may come first.
    let mut delta = live.next_of("conversation").await;
    while delta["type"] == "delta" && delta["changed"].get("status").is_none() {
        delta = live.next_of("conversation").await;
    }
    assert_eq!((delta["id"].as_str(), &delta["changed"]["status"]), (Some(id.as_str()), &json!("resolved")), "{delta}");
    assert_eq!(s.row(&id, &resolved.body["position"]).await["status"], "resolved");
    let filtered = s.app.get("/v1/conversations?status=resolved", &s.ws.key).await.expect(200).body;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1, "{filtered}");
    assert_eq!(s.app.get("/v1/conversations?status=open", &s.ws.key).await.expect(200).body["items"], json!([]));

    // The customer writes again: open, by the inbound message (on record in the log).
    let (_, position) = s.inbound().await;
    assert_eq!(s.row(&id, &json!(position)).await["status"], "open");
    let history = s.app.get(&format!("/v1/history/streams/conversation-{id}"), &s.ws.key).await.expect(200).body;
    let reasons: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "conversation.status_changed")
        .map(|e| e["payload"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["agent", "inbound"]);
    assert!(history["events"][2]["metadata"]["actor"].as_str().unwrap().starts_with("api_key:"), "{history}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn bad_statuses_and_snoozes_are_refused_and_viewers_may_not_change_them(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let (id, _) = s.inbound().await;
    assert_eq!(s.set(&id, json!({"status": "closed"})).await.expect(422).code(), "validation_failed");
    let a = s.set(&id, json!({"status": "snoozed"})).await.expect(422);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("snoozed_until"), "{}", a.body);
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    s.set(&id, json!({"status": "snoozed", "snoozed_until": past})).await.expect(422);
    let later = (Utc::now() + Duration::hours(1)).to_rfc3339();
    s.set(&id, json!({"status": "resolved", "snoozed_until": later})).await.expect(422);
    assert_eq!(s.set(&id, json!({"status": "open", "extra": 1})).await.status.as_u16(), 400);
    assert_eq!(s.app.get("/v1/conversations?status=closed", &s.ws.key).await.expect(422).code(), "validation_failed");
    // Another workspace's conversation does not exist for this key; a viewer may only read.
    let other = s.app.workspace().await;
    let a = s.app.post(&format!("/v1/conversations/{id}/status"), &other.key, json!({"status": "resolved"})).await;
    assert_eq!(a.expect(404).code(), "not_found");
    let viewer = s.key("viewer").await;
    let a = s.app.post(&format!("/v1/conversations/{id}/status"), &viewer, json!({"status": "resolved"})).await;
    assert_eq!(a.expect(403).code(), "forbidden");
    let agent = s.key("agent").await;
    s.app.post(&format!("/v1/conversations/{id}/status"), &agent, json!({"status": "pending"})).await.expect(200);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_snoozed_conversation_reopens_when_its_snooze_ends(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    let s = setup(pool, settings).await;
    let (id, _) = s.inbound().await;
    let until = Utc::now() + Duration::seconds(1);
    let snoozed = s.set(&id, json!({"status": "snoozed", "snoozed_until": until.to_rfc3339()})).await.expect(200);
    let row = s.row(&id, &snoozed.body["position"]).await;
    assert_eq!(row["status"], "snoozed", "{row}");
    assert!(row["snoozed_until"].is_string(), "{row}");
    // The dispatcher's scheduler reopens it once the time has come (it looks every second).
    let list = s
        .app
        .eventually(&s.ws, "/v1/conversations?status=open", |l| l["items"].as_array().is_some_and(|i| i.len() == 1))
        .await;
    assert_eq!(list["items"][0]["snoozed_until"], Value::Null, "{list}");
    assert!(Utc::now() >= until);
    let types = s.app.stream_types(&s.ws, &format!("conversation-{id}")).await;
    assert_eq!(types.iter().filter(|t| *t == "conversation.status_changed").count(), 2, "{types:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn labels_are_added_removed_filtered_and_validated(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let (id, _) = s.inbound().await;
    let path = format!("/v1/conversations/{id}/labels");
    let a = s.app.post(&path, &s.ws.key, json!({"add": ["VIP", "order:123", " vip "]})).await.expect(200);
    assert_eq!(a.body["labels"], json!(["order:123", "vip"]), "{}", a.body);
    assert_eq!(s.row(&id, &a.body["position"]).await["labels"], json!(["order:123", "vip"]));
    let vip = s.app.get("/v1/conversations?label=VIP", &s.ws.key).await.expect(200).body;
    assert_eq!(vip["items"].as_array().unwrap().len(), 1, "{vip}");
    let r = s.app.post(&path, &s.ws.key, json!({"remove": ["vip"]})).await.expect(200);
    assert_eq!(s.row(&id, &r.body["position"]).await["labels"], json!(["order:123"]));
    assert_eq!(s.app.get("/v1/conversations?label=vip", &s.ws.key).await.expect(200).body["items"], json!([]));
    // Odd labels are refused naming the field; another workspace's conversation does not exist.
    let bad = s.app.post(&path, &s.ws.key, json!({"add": ["<b>"]})).await.expect(422);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("labels"), "{}", bad.body);
    s.app.post(&path, &s.ws.key, json!({"add": ["a\u{0}b"]})).await.expect(422);
    let other = s.app.workspace().await;
    s.app.post(&path, &other.key, json!({"add": ["x"]})).await.expect(404);
    let types = s.app.stream_types(&s.ws, &format!("conversation-{id}")).await;
    assert_eq!(types.iter().filter(|t| *t == "conversation.labels_changed").count(), 2, "{types:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn contact_labels_are_added_filtered_live_and_bounded(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let other = s.app.contact(&s.ws, "+6281200000009", json!({})).await;
    let mut live = Live::connect(&s.app, &s.ws.key, None).await;
    let path = format!("/v1/contacts/{}/labels", s.contact);
    let a = s.app.post(&path, &s.ws.key, json!({"add": ["VIP", "Jakarta"]})).await.expect(200);
    assert_eq!(a.body["labels"], json!(["jakarta", "vip"]), "{}", a.body);
    let delta = loop {
        let d = live.next_of("contact").await;
        if d["changed"].get("labels").is_some() {
            break d;
        }
    };
    assert_eq!(
        (delta["id"].as_str(), &delta["changed"]["labels"]),
        (Some(s.contact.to_string().as_str()), &json!(["jakarta", "vip"]))
    );
    let list = |q: String| {
        let app = &s.app;
        let key = s.ws.key.clone();
        async move { app.get(&format!("/v1/contacts?{q}"), &key).await.expect(200).body }
    };
    let vip = list(format!("label=Vip&min_position={}", a.body["position"])).await;
    let ids: Vec<&str> = vip["items"].as_array().unwrap().iter().filter_map(|c| c["contact_id"].as_str()).collect();
    assert_eq!(ids, [s.contact.to_string()], "only the labelled contact, not {other}");
    let r = s.app.post(&path, &s.ws.key, json!({"remove": ["vip"], "add": ["vip"]})).await.expect(200);
    assert_eq!(r.body["labels"], json!(["jakarta"]), "a label in both is removed");
    assert_eq!(list(format!("label=vip&min_position={}", r.body["position"])).await["items"], json!([]));
    // Bad labels, too many, an invalid filter, another workspace's contact, a viewer.
    assert_eq!(s.app.post(&path, &s.ws.key, json!({"add": ["<b>"]})).await.expect(422).code(), "validation_failed");
    let many: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
    s.app.post(&path, &s.ws.key, json!({"add": many})).await.expect(422);
    s.app.get("/v1/contacts?label=%3Cb%3E", &s.ws.key).await.expect(422);
    let unknown = s.app.post(&path, &s.ws.key, json!({"add": ["x"], "colour": "red"})).await;
    assert_eq!(unknown.expect(400).code(), "invalid_json");
    let stranger = s.app.workspace().await;
    s.app.post(&path, &stranger.key, json!({"add": ["x"]})).await.expect(404);
    s.app.post(&path, &s.key("viewer").await, json!({"add": ["x"]})).await.expect(403);
    let types = s.app.stream_types(&s.ws, &format!("contact-{}", s.contact)).await;
    assert_eq!(types.iter().filter(|t| *t == "contact.labels_changed").count(), 2, "{types:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn reading_a_conversation_clears_its_unread_count_and_names_the_reader(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let (id, _) = s.inbound().await;
    let (_, position) = s.inbound().await;
    let assign = format!("/v1/conversations/{id}/assignment");
    s.app.post(&assign, &s.ws.key, json!({"agent_id": sari})).await.expect(200);
    assert_eq!(s.row(&id, &json!(position)).await["unread_count"], 2);
    let mut live = Live::connect(&s.app, &s.ws.key, None).await;

    let read = format!("/v1/conversations/{id}/read");
    let r = s.app.post(&read, &sari_key, json!({})).await.expect(200);
    let row = s.row(&id, &r.body["position"]).await;
    assert_eq!((&row["unread_count"], row["last_read_agent_id"].as_str()), (&json!(0), Some(sari.as_str())), "{row}");
    let delta = loop {
        let d = live.next_of("conversation").await;
        if d["changed"].get("last_read_at").is_some() {
            break d;
        }
    };
    assert_eq!(delta["changed"]["unread_count"], 0);
    let agents = s.app.get(&format!("/v1/agents/{sari}?min_position={}", r.body["position"]), &s.ws.key).await;
    assert_eq!(agents.expect(200).body["unread_conversations"], 0);
    // Nothing new since: no event. A new message counts again, for the agent too.
    assert_eq!(s.app.post(&read, &sari_key, json!({})).await.expect(200).body["position"], Value::Null);
    let (_, position) = s.inbound().await;
    assert_eq!(s.row(&id, &json!(position)).await["unread_count"], 1);
    let agent = s.app.get(&format!("/v1/agents/{sari}"), &s.ws.key).await.expect(200).body;
    assert_eq!(agent["unread_conversations"], 1, "{agent}");
    s.app.post(&read, &s.key("viewer").await, json!({})).await.expect(403);
    let other = s.app.workspace().await;
    s.app.post(&read, &other.key, json!({})).await.expect(404);
}
