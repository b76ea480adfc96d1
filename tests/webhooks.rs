//! Meta's webhook over real HTTP: the verification handshake, signatures, body limits, and every kind
//! of notification turned into events and read models.

use blazz_tests::{notification, provider_time, status, TestApp, Ws, OPERATOR_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

/// A workspace with a Meta channel that has credentials, a contact, and its phone number id.
struct Setup {
    app: TestApp,
    ws: Ws,
    channel: String,
    number: String,
    contact: String,
}

impl Setup {
    async fn new(pool: PgPool) -> Self {
        let app = TestApp::spawn(pool).await;
        let ws = app.workspace().await;
        let (channel, number) = app.channel_of(&ws, "meta").await;
        app.credentials(&ws, &channel).await;
        let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
        Self { app, ws, channel, number, contact }
    }

    /// A marketing template message, queued through the API (templates need no open window).
    async fn queued_message(&self) -> String {
        let template = self.app.template(&self.ws, &format!("promo_{}", rand_suffix()), "MARKETING", "APPROVED").await;
        self.app
            .post(
                "/v1/messages",
                &self.ws.key,
                json!({"channel_id": self.channel, "contact_id": self.contact,
                       "type": "template", "template": {"id": template}}),
            )
            .await
            .expect(202)
            .id("message_id")
    }

    async fn post(&self, value: Value) -> Value {
        self.app.webhook(&self.channel, &notification(&self.number, value)).await.expect(200).body
    }

    async fn message(&self, id: &str, position: &Value) -> Value {
        self.app.get(&format!("/v1/messages/{id}?min_position={position}"), &self.ws.key).await.expect(200).body
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_verification_handshake_answers_the_challenge_only_for_our_token(pool: PgPool) {
    let s = Setup::new(pool).await;
    let path = |token: &str| {
        format!("/v1/webhooks/meta/{}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}", s.channel)
    };
    let res = s.app.client.get(s.app.server.url(&path(&format!("verify-{}", s.channel)))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "1158201444");
    let wrong = s.app.call(Method::GET, &path("guess"), None, None, &[]).await;
    assert_eq!((wrong.status.as_u16(), wrong.code()), (403, "verification_failed"));
    let unknown =
        s.app.call(Method::GET, "/v1/webhooks/meta/00000000-0000-0000-0000-000000000000", None, None, &[]).await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (404, "channel_not_configured"));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_wrong_or_missing_signature_is_refused_and_writes_nothing(pool: PgPool) {
    let s = Setup::new(pool).await;
    let message = s.queued_message().await;
    let body =
        serde_json::to_vec(&notification(&s.number, json!({"statuses": [status(&message, "wamid.X", "sent", 1)]})))
            .unwrap();
    let other_key = blazz_commands::provider::signature::sign("not-the-app-secret", &body);
    let a = s.app.webhook_raw(&s.channel, body.clone(), Some(other_key)).await;
    assert_eq!((a.status.as_u16(), a.code()), (401, "invalid_signature"));
    let a = s.app.webhook_raw(&s.channel, body.clone(), None).await;
    assert_eq!(a.status.as_u16(), 401);
    // A correct signature over different bytes (re-serialised JSON) does not pass either.
    let mut tampered = body.clone();
    tampered.push(b' ');
    let sig = blazz_commands::provider::signature::sign(&format!("secret-{}", s.channel), &body);
    assert_eq!(s.app.webhook_raw(&s.channel, tampered, Some(sig)).await.status.as_u16(), 401);
    assert_eq!(s.app.stream_types(&s.ws, &format!("message-{message}")).await, vec!["message.queued"]);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_oversized_body_is_refused(pool: PgPool) {
    let s = Setup::new(pool).await;
    let big = vec![b' '; 4 * 1024 * 1024];
    let sig = blazz_commands::provider::signature::sign(&format!("secret-{}", s.channel), &big);
    assert_eq!(s.app.webhook_raw(&s.channel, big, Some(sig)).await.status.as_u16(), 413);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn batched_out_of_order_and_duplicated_statuses_move_each_message_forward_once(pool: PgPool) {
    let s = Setup::new(pool).await;
    let (a, b, c) = (s.queued_message().await, s.queued_message().await, s.queued_message().await);
    // One POST, two entries: read before delivered for a, a duplicate sent for b, c failed.
    let failed = {
        let mut f = status(&c, "wamid.C", "failed", 5);
        f["errors"] = json!([{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                              "error_data": {"details": "Recipient is not on WhatsApp"}}]);
        f
    };
    let mut batch = notification(
        &s.number,
        json!({"statuses": [status(&a, "wamid.A", "sent", 1), status(&a, "wamid.A", "read", 3)]}),
    );
    let second = notification(
        &s.number,
        json!({"statuses": [status(&a, "wamid.A", "delivered", 2), status(&b, "wamid.B", "sent", 1),
                            status(&b, "wamid.B", "sent", 1), failed]}),
    );
    batch["entry"].as_array_mut().unwrap().push(second["entry"][0].clone());
    let r = s.app.webhook(&s.channel, &batch).await.expect(200).body;
    assert_eq!((r["statuses"].as_u64(), r["exceptions"].as_u64()), (Some(6), Some(0)), "{r}");

    // Meta redelivers the whole POST: nothing new is written.
    let again = s.app.webhook(&s.channel, &batch).await.expect(200).body;
    assert_eq!(again["absorbed"], 6, "{again}");

    assert_eq!(
        s.app.stream_types(&s.ws, &format!("message-{a}")).await,
        vec!["message.queued", "message.sent", "message.read"],
        "a late delivered after read changes nothing"
    );
    assert_eq!(s.app.stream_types(&s.ws, &format!("message-{b}")).await, vec!["message.queued", "message.sent"]);
    let pos = &r["position"];
    let ma = s.message(&a, pos).await;
    assert_eq!((ma["status"].as_str(), ma["provider_message_id"].as_str()), (Some("read"), Some("wamid.A")));
    let mc = s.message(&c, pos).await;
    assert_eq!(mc["status"], "failed");
    assert_eq!(mc["error"]["code"], 131026);
    assert_eq!(mc["error"]["details"], "Recipient is not on WhatsApp");
    assert_eq!(mc["error"]["class"], "final");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn statuses_find_the_message_by_wamid_and_131050_opts_the_contact_out_of_marketing(pool: PgPool) {
    let s = Setup::new(pool).await;
    let m = s.queued_message().await;
    s.post(json!({"statuses": [status(&m, "wamid.M", "sent", 1)]})).await;
    // Without callback data the wamid recorded on `sent` finds the message.
    let mut failed = status(&m, "wamid.M", "failed", 2);
    failed.as_object_mut().unwrap().remove("biz_opaque_callback_data");
    failed["errors"] = json!([{"code": 131050, "title": "User stopped marketing messages"}]);
    let r = s.post(json!({"statuses": [failed]})).await;
    assert_eq!(s.message(&m, &r["position"]).await["status"], "failed");
    let contact = s.app.get(&format!("/v1/contacts/{}?min_position={}", s.contact, r["position"]), &s.ws.key).await;
    assert_eq!(contact.body["opted_out"], true, "{}", contact.body);
    let types = s.app.stream_types(&s.ws, &format!("contact-{}", s.contact)).await;
    assert_eq!(types.last().map(String::as_str), Some("contact.opted_out"));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn pricing_is_kept_once_per_message_for_usage_metering(pool: PgPool) {
    let s = Setup::new(pool).await;
    let (a, b) = (s.queued_message().await, s.queued_message().await);
    let priced = |id: &str, wamid: &str, st: &str| {
        let mut v = status(id, wamid, st, 0);
        v["conversation"] =
            json!({"id": "conv-1", "expiration_timestamp": "1750943820", "origin": {"type": "marketing"}});
        v["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing"});
        v
    };
    // Pricing arrives on sent and again on delivered: it counts once per message.
    let r = s
        .post(json!({"statuses": [priced(&a, "wamid.A", "sent"), priced(&a, "wamid.A", "delivered"), priced(&b, "wamid.B", "sent")]}))
        .await;
    let types = s.app.stream_types(&s.ws, &format!("message-{a}")).await;
    assert_eq!(types.iter().filter(|t| *t == "message.billed").count(), 1, "{types:?}");
    let usage = s
        .app
        .get(&format!("/v1/usage?from={day}&to={day}&min_position={}", r["position"], day = provider_day()), &s.ws.key)
        .await
        .expect(200)
        .body;
    assert_eq!(
        usage["items"],
        json!([{"channel_id": s.channel, "day": provider_day(), "category": "marketing", "billable": 2, "free": 0}])
    );
}

/// The UTC day of `provider_time(0)`.
fn provider_day() -> String {
    chrono::DateTime::from_timestamp(provider_time(0), 0).expect("a time").date_naive().to_string()
}

fn inbound(id: &str, from: &str, kind: &str, extra: Value) -> Value {
    let mut m = json!({"from": from, "id": id, "timestamp": provider_time(0).to_string(), "type": kind});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn inbound_messages_of_every_type_are_stored_and_open_the_window_for_a_new_contact(pool: PgPool) {
    let s = Setup::new(pool).await;
    let from = "6289900011122";
    let messages = json!([
        inbound("wamid.1", from, "text", json!({"text": {"body": "Halo"}})),
        inbound(
            "wamid.2",
            from,
            "image",
            json!({"image": {"id": "m1", "mime_type": "image/jpeg", "sha256": "x", "caption": "foto"}})
        ),
        inbound(
            "wamid.3",
            from,
            "interactive",
            json!({"interactive": {"type": "button_reply", "button_reply": {"id": "y", "title": "Ya"}}})
        ),
        inbound("wamid.4", from, "button", json!({"button": {"payload": "P", "text": "Stop promo"}})),
        inbound("wamid.5", from, "reaction", json!({"reaction": {"message_id": "wamid.OUT", "emoji": "👍"}})),
        inbound("wamid.6", from, "hologram", json!({"hologram": {"depth": 3}})),
    ]);
    let value = json!({"contacts": [{"profile": {"name": "Siti"}, "wa_id": from}], "messages": messages});
    let r = s.post(value.clone()).await;
    assert_eq!(r["inbound"], 6, "{r}");
    // Redelivered: absorbed.
    assert_eq!(s.post(value).await["absorbed"], 6);

    let contacts = s.app.get(&format!("/v1/contacts?min_position={}", r["position"]), &s.ws.key).await.expect(200).body;
    let siti = contacts["items"].as_array().unwrap().iter().find(|c| c["phone"] == "+6289900011122").cloned();
    let siti = siti.unwrap_or_else(|| panic!("contact created: {contacts}"));
    assert_eq!(siti["name"], "Siti");
    let contact_id = siti["contact_id"].as_str().unwrap().to_owned();

    let conversations = s
        .app
        .get(&format!("/v1/conversations?contact_id={contact_id}&min_position={}", r["position"]), &s.ws.key)
        .await
        .expect(200)
        .body;
    let conv = &conversations["items"][0];
    assert_eq!(conv["unread_count"], 6, "{conversations}");
    let timeline = s
        .app
        .get(
            &format!(
                "/v1/messages?conversation_id={}&min_position={}",
                conv["conversation_id"].as_str().unwrap(),
                r["position"]
            ),
            &s.ws.key,
        )
        .await
        .expect(200)
        .body;
    let mut kinds: Vec<&str> =
        timeline["items"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["button", "hologram", "image", "interactive", "reaction", "text"]);
    // The unknown type is kept raw in the event.
    let history = s.app.history(&s.ws).await;
    let hologram = history.iter().find(|e| e["payload"]["message"]["kind"] == "hologram").expect("stored");
    assert_eq!(hologram["payload"]["message"]["raw"]["hologram"]["depth"], 3);

    // The window is open (the inbound timestamp is old, so renew it with a fresh one first).
    let now = chrono::Utc::now().timestamp().to_string();
    let mut fresh = inbound("wamid.7", from, "text", json!({"text": {"body": "masih di sana?"}}));
    fresh["timestamp"] = json!(now);
    s.post(json!({"messages": [fresh]})).await;
    s.app
        .post(
            "/v1/messages",
            &s.ws.key,
            json!({"channel_id": s.channel, "contact_id": contact_id, "type": "text", "text": {"body": "Ya, kak"}}),
        )
        .await
        .expect(202);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn stop_and_start_keywords_change_consent(pool: PgPool) {
    let s = Setup::new(pool).await;
    let from = "6281234567890";
    let r = s.post(json!({"messages": [inbound("wamid.s", from, "text", json!({"text": {"body": "  stop "}}))]})).await;
    let c = s.app.get(&format!("/v1/contacts/{}?min_position={}", s.contact, r["position"]), &s.ws.key).await;
    assert_eq!(c.body["opted_out"], true, "{}", c.body);
    let r =
        s.post(json!({"messages": [inbound("wamid.b", from, "text", json!({"text": {"body": "Berhenti"}}))]})).await;
    assert_eq!(r["inbound"], 1);
    let r = s.post(json!({"messages": [inbound("wamid.t", from, "text", json!({"text": {"body": "START"}}))]})).await;
    let c = s.app.get(&format!("/v1/contacts/{}?min_position={}", s.contact, r["position"]), &s.ws.key).await;
    assert_eq!(c.body["opted_out"], false, "{}", c.body);
    let types = s.app.stream_types(&s.ws, &format!("contact-{}", s.contact)).await;
    assert_eq!(types, vec!["contact.created", "contact.opted_out", "contact.opted_in"]);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn template_review_updates_change_the_templates_status(pool: PgPool) {
    let s = Setup::new(pool).await;
    let template = s.app.template(&s.ws, "abandoned_cart", "MARKETING", "PENDING").await;
    let update = |event: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "message_template_status_update",
            "value": {"event": event, "message_template_id": 1689556908129835_u64, "message_template_name": "abandoned_cart",
                      "message_template_language": "id", "reason": "NONE", "message_template_category": "MARKETING"}}]}]})
    };
    let r = s.app.webhook(&s.channel, &update("APPROVED")).await.expect(200).body;
    assert_eq!(r["template_updates"], 1);
    let t = s.app.get(&format!("/v1/templates/{template}?min_position={}", r["position"]), &s.ws.key).await.expect(200);
    assert_eq!(t.body["status"], "APPROVED");
    let r = s.app.webhook(&s.channel, &update("PAUSED")).await.expect(200).body;
    let t = s.app.get(&format!("/v1/templates/{template}?min_position={}", r["position"]), &s.ws.key).await.expect(200);
    assert_eq!(t.body["status"], "PAUSED");
    // An event we do not know is stored as it is.
    let r = s.app.webhook(&s.channel, &update("LIMIT_EXCEEDED")).await.expect(200).body;
    let t = s.app.get(&format!("/v1/templates/{template}?min_position={}", r["position"]), &s.ws.key).await.expect(200);
    assert_eq!(t.body["status"], "LIMIT_EXCEEDED");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_unknown_phone_number_id_is_acknowledged_and_recorded_for_operators(pool: PgPool) {
    let s = Setup::new(pool).await;
    let m = s.queued_message().await;
    let body = notification("999000999", json!({"statuses": [status(&m, "wamid.U", "delivered", 1)]}));
    let r = s.app.webhook(&s.channel, &body).await.expect(200).body;
    assert_eq!(r["exceptions"], 1);
    assert_eq!(s.app.stream_types(&s.ws, &format!("message-{m}")).await, vec!["message.queued"]);
    // A status for a message nobody knows is recorded too.
    s.post(json!({"statuses": [status("7a1c1d3e-0000-4000-8000-000000000000", "wamid.Z", "read", 1)]})).await;
    let listed = s.app.get("/v1/operator/webhook-exceptions", OPERATOR_TOKEN).await.expect(200).body;
    let kinds: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["phone_number_id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds, vec![("unroutable", "999000999"), ("unknown_message", s.number.as_str())]);
    let only = s.app.get("/v1/operator/webhook-exceptions?kind=unroutable", OPERATOR_TOKEN).await.expect(200).body;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    // Workspace keys cannot list them.
    assert_eq!(s.app.get("/v1/operator/webhook-exceptions", &s.ws.key).await.status.as_u16(), 401);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn credentials_are_never_returned_and_another_workspace_cannot_set_them(pool: PgPool) {
    let s = Setup::new(pool).await;
    let channel = s.app.get(&format!("/v1/channels/{}", s.channel), &s.ws.key).await;
    let other = s.app.workspace().await;
    let text = channel.body.to_string();
    assert!(!text.contains("secret-") && !text.contains("token-"), "{text}");
    let a = s
        .app
        .call(
            Method::PUT,
            &format!("/v1/channels/{}/credentials", s.channel),
            Some(&other.key),
            Some(json!({"access_token": "x", "app_secret": "y", "verify_token": "z"})),
            &[],
        )
        .await;
    assert_eq!(a.status.as_u16(), 404);
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT sealed FROM channel_credentials").fetch_one(&s.app.pool).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("secret-"), "sealed, not plain");
    let empty = s
        .app
        .call(
            Method::PUT,
            &format!("/v1/channels/{}/credentials", s.channel),
            Some(&s.ws.key),
            Some(json!({"access_token": "", "app_secret": "y", "verify_token": "z"})),
            &[],
        )
        .await;
    assert_eq!(empty.status.as_u16(), 422, "{}", empty.body);
}
