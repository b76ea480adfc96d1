//! Recipients known by a WhatsApp business-scoped user id (BSUID) over real HTTP, with Meta's 2026
//! webhook shapes (`from_user_id`, `contacts[].user_id`, no `from`/`wa_id` for a user who hides their
//! number) and a fake Graph API: such a user becomes a contact, a phone contact learns its BSUID and
//! is found by it, and replies go out in `recipient` instead of `to`.

use blazz_tests::fake_graph::FakeGraph;
use blazz_tests::{notification, Settings, TestApp, Ws, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;

const SARI: &str = "US.13491208655302741918";
const BUDI: &str = "ID.998877665544";

struct Setup {
    app: TestApp,
    graph: FakeGraph,
    ws: Ws,
    channel: String,
    number: String,
}

impl Setup {
    async fn webhook(&self, contacts: Value, messages: Value) -> i64 {
        let value = json!({"contacts": contacts, "messages": messages});
        let a = self.app.webhook(&self.channel, &notification(&self.number, value)).await.expect(200);
        a.body["position"].as_i64().unwrap_or_default()
    }

    async fn contacts(&self, position: i64) -> Vec<Value> {
        let path = format!("/v1/contacts?min_position={position}");
        self.app.get(&path, &self.ws.key).await.expect(200).body["items"].as_array().unwrap().clone()
    }
}

fn message(id: &str, sender: (&str, &str)) -> Value {
    // A minute ago: the service window is open for the replies.
    let at = (chrono::Utc::now().timestamp() - 60).to_string();
    let mut m = json!({"id": id, "timestamp": at, "type": "text", "text": {"body": "Halo"}});
    m[sender.0] = json!(sender.1);
    m
}

async fn setup(pool: PgPool) -> Setup {
    let graph = FakeGraph::start().await;
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.meta.base_url = graph.url();
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, number) = app.channel_of(&ws, "meta").await;
    app.credentials(&ws, &channel).await;
    app.contact(&ws, "+6281234567890", json!({})).await;
    Setup { app, graph, ws, channel, number }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_user_known_only_by_bsuid_becomes_a_contact_and_is_answered_by_recipient(pool: PgPool) {
    let s = setup(pool).await;
    let contacts = json!([{"profile": {"name": "Sari", "username": "@sari"}, "user_id": SARI}]);
    let position = s.webhook(contacts, json!([message("wamid.S1", ("from_user_id", SARI))])).await;
    let all = s.contacts(position).await;
    let sari = all.iter().find(|c| c["user_id"] == SARI).unwrap_or_else(|| panic!("{all:?}")).clone();
    assert_eq!((sari["phone"].clone(), sari["name"].as_str()), (Value::Null, Some("Sari")), "{sari}");

    // The reply from the conversation goes to the BSUID, in `recipient`, not `to`.
    let path = format!("/v1/conversations?contact_id={}", sari["contact_id"].as_str().unwrap());
    let list = s.app.get(&path, &s.ws.key).await.expect(200).body;
    let conversation = list["items"][0]["conversation_id"].as_str().unwrap().to_owned();
    let reply = json!({"type": "text", "text": {"body": "Halo Sari"}});
    let sent = s.app.post(&format!("/v1/conversations/{conversation}/messages"), &s.ws.key, reply).await.expect(202);
    let path = format!("/v1/messages/{}", sent.id("message_id"));
    s.app.eventually(&s.ws, &path, |m| m["status"] == "sent").await;
    let calls = s.graph.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].body["recipient"].as_str(), calls[0].body.get("to")), (Some(SARI), None), "{}", calls[0].body);
    // Its history names the BSUID, never a phone.
    let history = s.app.get(&format!("/v1/history/streams/message-{}", sent.id("message_id")), &s.ws.key).await;
    let queued = &history.expect(200).body["events"][0]["payload"];
    assert_eq!((queued["user_id"].as_str(), queued.get("to")), (Some(SARI), None), "{queued}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_phone_contact_learns_its_bsuid_and_is_found_by_it_and_bad_ids_are_exceptions(pool: PgPool) {
    let s = setup(pool).await;
    // Budi (a phone contact) writes with both identifiers: no new contact, his BSUID is recorded.
    let both = json!([{"profile": {"name": "Budi"}, "wa_id": "6281234567890", "user_id": BUDI}]);
    let mut m = message("wamid.B1", ("from", "6281234567890"));
    m["from_user_id"] = json!(BUDI);
    let position = s.webhook(both, json!([m])).await;
    let all = s.contacts(position).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0]["phone"].as_str(), all[0]["user_id"].as_str()), (Some("+6281234567890"), Some(BUDI)));
    // Later his number is hidden: the BSUID alone finds him, on the same conversation. A sender id
    // that is no BSUID is an exception; the rest of the notification is applied.
    let messages =
        json!([message("wamid.B2", ("from_user_id", BUDI)), message("wamid.X", ("from_user_id", "bogus id"))]);
    let position = s.webhook(json!([{"user_id": BUDI}]), messages).await;
    assert_eq!(s.contacts(position).await.len(), 1);
    let contact = all[0]["contact_id"].as_str().unwrap();
    let list = s.app.get(&format!("/v1/conversations?contact_id={contact}&min_position={position}"), &s.ws.key).await;
    assert_eq!(list.expect(200).body["items"][0]["unread_count"], 2);
    let exceptions = s.app.get("/v1/operator/webhook-exceptions", OPERATOR_TOKEN).await.expect(200).body;
    let text = exceptions.to_string();
    assert!(text.contains("bogus id") && text.contains("business-scoped"), "{exceptions}");
    // A reply to Budi still goes to his number: the phone takes precedence.
    let reply = json!({"channel_id": s.channel, "contact_id": contact, "type": "text", "text": {"body": "Halo"}});
    let sent = s.app.post("/v1/messages", &s.ws.key, reply).await.expect(202);
    s.app.eventually(&s.ws, &format!("/v1/messages/{}", sent.id("message_id")), |m| m["status"] == "sent").await;
    assert_eq!(s.graph.calls()[0].body["to"], "6281234567890");
}
