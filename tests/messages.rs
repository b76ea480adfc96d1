//! Sending messages over HTTP: the 24-hour window, templates anywhere, opt-out, rendering errors,
//! content validation.

use blazz_domain::ids::{ChannelId, ContactId};
use blazz_tests::{TestApp, Ws};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

struct Setup {
    app: TestApp,
    ws: Ws,
    channel: String,
    contact: String,
}

async fn setup(pool: PgPool) -> Setup {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let channel = app.channel(&ws).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    Setup { app, ws, channel, contact }
}

impl Setup {
    async fn inbound(&self, hours_ago: i64) {
        let at = Utc::now() - Duration::hours(hours_ago);
        let channel = ChannelId::from_uuid(Uuid::parse_str(&self.channel).expect("uuid"));
        let contact = ContactId::from_uuid(Uuid::parse_str(&self.contact).expect("uuid"));
        self.app
            .commands()
            .record_inbound(&self.app.system(&self.ws), channel, contact, format!("wamid.{}", Uuid::now_v7()), at)
            .await
            .expect("inbound");
    }

    async fn send(&self, content: Value) -> blazz_tests::Answer {
        let mut body = json!({"channel_id": self.channel, "contact_id": self.contact});
        for (k, v) in content.as_object().expect("object") {
            body[k] = v.clone();
        }
        self.app.post("/v1/messages", &self.ws.key, body).await
    }
}

fn text() -> Value {
    json!({"type": "text", "text": {"body": "Halo Budi"}})
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn free_form_messages_need_the_24_hour_window(pool: PgPool) {
    let s = setup(pool).await;
    assert_eq!(s.send(text()).await.expect(422).code(), "outside_service_window");
    s.inbound(25).await;
    assert_eq!(s.send(text()).await.expect(422).code(), "outside_service_window");
    s.inbound(23).await;
    let sent = s.send(text()).await.expect(202);
    assert_eq!(sent.body["status"], "queued");
    let id = sent.id("message_id");
    let history = s.app.get(&format!("/v1/history/streams/message-{id}"), &s.ws.key).await.expect(200);
    let queued = &history.body["events"][0];
    assert_eq!(queued["event_type"], "message.queued");
    assert_eq!(queued["payload"]["to"], "+6281234567890");
    assert_eq!(queued["payload"]["content"]["body"], "Halo Budi");
    s.send(json!({"type": "image", "media": {"link": "https://cdn.example/p.jpg", "caption": "Promo"}}))
        .await
        .expect(202);
    s.send(json!({"type": "interactive", "interactive": {"body": "Ok?", "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}]}}))
        .await
        .expect(202);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn templates_go_anywhere_once_approved_and_are_rendered_for_the_contact(pool: PgPool) {
    let s = setup(pool).await;
    let pending = s.app.template(&s.ws, "promo_pending", "MARKETING", "PENDING").await;
    let send = |id: &str, vars: Value| json!({"type": "template", "template": {"id": id, "variables": vars}});
    assert_eq!(s.send(send(&pending, json!({}))).await.expect(422).code(), "template_not_approved");
    let approved = s.app.template(&s.ws, "promo", "MARKETING", "APPROVED").await;
    let id = s.send(send(&approved, json!({"discount": "50%"}))).await.expect(202).id("message_id");
    let history = s.app.get(&format!("/v1/history/streams/message-{id}"), &s.ws.key).await.expect(200);
    let content = &history.body["events"][0]["payload"]["content"];
    assert_eq!(content["kind"], "template");
    assert_eq!(content["rendered"]["body_preview"], "Halo Budi, diskon 50%");
    // The default fills what the request leaves out.
    let id = s.send(send(&approved, json!({}))).await.expect(202).id("message_id");
    let history = s.app.get(&format!("/v1/history/streams/message-{id}"), &s.ws.key).await.expect(200);
    assert_eq!(history.body["events"][0]["payload"]["content"]["rendered"]["body_preview"], "Halo Budi, diskon 10%");
    s.send(send(&Uuid::now_v7().to_string(), json!({}))).await.expect(404);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_variable_nobody_can_fill_is_named(pool: PgPool) {
    let s = setup(pool).await;
    let bare = s.app.contact(&s.ws, "+6281234567891", json!({})).await;
    let t = s.app.template(&s.ws, "promo", "MARKETING", "APPROVED").await;
    let body = json!({"channel_id": s.channel, "contact_id": bare, "type": "template", "template": {"id": t}});
    let a = s.app.post("/v1/messages", &s.ws.key, body).await.expect(422);
    assert_eq!(a.code(), "missing_template_variable");
    assert_eq!(a.body["error"]["details"]["variable"], "first_name");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn opted_out_contacts_get_no_marketing_but_still_get_utility(pool: PgPool) {
    let s = setup(pool).await;
    let marketing = s.app.template(&s.ws, "promo", "MARKETING", "APPROVED").await;
    let utility = s.app.template(&s.ws, "receipt", "UTILITY", "APPROVED").await;
    s.app.post(&format!("/v1/contacts/{}/opt-out", s.contact), &s.ws.key, json!({"reason": "STOP"})).await.expect(200);
    let send = |id: &str| json!({"type": "template", "template": {"id": id}});
    assert_eq!(s.send(send(&marketing)).await.expect(422).code(), "contact_opted_out");
    s.send(send(&utility)).await.expect(202);
    s.app.post(&format!("/v1/contacts/{}/opt-in", s.contact), &s.ws.key, json!({})).await.expect(200);
    s.send(send(&marketing)).await.expect(202);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn invalid_content_and_unknown_recipients_are_rejected(pool: PgPool) {
    let s = setup(pool).await;
    s.inbound(1).await;
    for (content, code) in [
        (json!({"type": "text"}), "validation_failed"),
        (json!({"type": "text", "text": {"body": ""}}), "validation_failed"),
        (json!({"type": "fax", "text": {"body": "x"}}), "validation_failed"),
        (json!({"type": "image", "media": {"id": "1", "link": "https://x"}}), "validation_failed"),
        (json!({"type": "audio", "media": {"id": "1", "caption": "no"}}), "validation_failed"),
        (
            json!({"type": "interactive", "interactive": {"body": "x", "buttons": [{"id": "a", "title": "This title is far too long"}]}}),
            "validation_failed",
        ),
    ] {
        let a = s.send(content.clone()).await;
        assert_eq!((a.status.as_u16(), a.code()), (422, code), "{content}: {}", a.body);
    }
    let other = json!({"channel_id": s.channel, "contact_id": Uuid::now_v7(), "type": "text", "text": {"body": "x"}});
    s.app.post("/v1/messages", &s.ws.key, other).await.expect(404);
    s.app.delete(&format!("/v1/contacts/{}", s.contact), &s.ws.key).await.expect(200);
    s.send(text()).await.expect(404);
}

/// Another gateway (its own state caches) opts the contact out after this one has cached the contact:
/// this gateway must see it on the next send, not act on its cached state.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_change_made_through_another_gateway_is_seen_by_the_next_send(pool: PgPool) {
    use blazz_api::server::{event_store, EdgeSettings};
    use blazz_commands::codec::Codec;
    use blazz_commands::store::postgres::BatchConfig;
    use blazz_commands::Commands;
    use blazz_domain::contact::ConsentSource;

    let s = setup(pool.clone()).await;
    let marketing = s.app.template(&s.ws, "promo", "MARKETING", "APPROVED").await;
    let send = json!({"type": "template", "template": {"id": marketing}});
    s.send(send.clone()).await.expect(202);

    // Another gateway of the deployment: its own store over the same database, the same secret key.
    let store = event_store(&pool, BatchConfig::default(), &EdgeSettings::default().keys);
    let other = Commands::new(Arc::new(store), Codec::new());
    let contact = ContactId::from_uuid(Uuid::parse_str(&s.contact).expect("uuid"));
    other
        .set_contact_consent(&s.app.system(&s.ws), contact, true, Some("STOP".into()), ConsentSource::Keyword)
        .await
        .expect("opt out");
    assert_eq!(s.send(send.clone()).await.expect(422).code(), "contact_opted_out");

    other
        .set_contact_consent(&s.app.system(&s.ws), contact, false, None, ConsentSource::Keyword)
        .await
        .expect("opt in");
    s.send(send).await.expect(202);
}
