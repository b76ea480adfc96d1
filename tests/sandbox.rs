//! The sandbox loop end to end over real HTTP: a message is queued, dispatched to the sandbox, and the
//! sandbox's signed webhooks (to our own ingestion endpoint) take it to read, or to failed with the
//! chosen code; an inbound reply lands in the inbox.

use blazz_commands::provider::sandbox::SandboxScript;
use blazz_tests::{Settings, TestApp, Ws, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;

async fn sandbox_app(pool: PgPool, script: SandboxScript) -> (TestApp, Ws, String, String) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.sandbox = script;
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, _) = app.channel_of(&ws, "sandbox").await;
    app.credentials(&ws, &channel).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    (app, ws, channel, contact)
}

use blazz_tests::quick_sandbox as quick;

async fn send_template(app: &TestApp, ws: &Ws, channel: &str, contact: &str) -> String {
    let template = app.template(ws, "welcome", "UTILITY", "APPROVED").await;
    app.post(
        "/v1/messages",
        &ws.key,
        json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}}),
    )
    .await
    .expect(202)
    .id("message_id")
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_message_goes_from_queued_to_read_and_the_reply_comes_back(pool: PgPool) {
    let script = SandboxScript { reply: Some("Terima kasih!".into()), ..quick() };
    let (app, ws, channel, contact) = sandbox_app(pool, script).await;
    let id = send_template(&app, &ws, &channel, &contact).await;
    let m = app.eventually(&ws, &format!("/v1/messages/{id}"), |m| m["status"] == "read").await;
    assert!(m["provider_message_id"].as_str().unwrap().starts_with("wamid.SANDBOX."));
    assert!(m["delivered_at"].is_string() && m["read_at"].is_string(), "{m}");
    let types = app.stream_types(&ws, &format!("message-{id}")).await;
    assert_eq!(
        types,
        vec![
            "message.queued",
            "message.dispatched",
            "message.sent",
            "message.billed",
            "message.delivered",
            "message.read"
        ]
    );
    // The recipient's reply opens the window: a free-form answer is now allowed.
    let conv = app
        .eventually(&ws, &format!("/v1/conversations?contact_id={contact}"), |c| c["items"][0]["unread_count"] == 1)
        .await;
    assert!(conv["items"][0]["window_expires_at"].is_string());
    app.post(
        "/v1/messages",
        &ws.key,
        json!({"channel_id": channel, "contact_id": contact, "type": "text", "text": {"body": "Sama-sama"}}),
    )
    .await
    .expect(202);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_configured_failure_code_reaches_the_message(pool: PgPool) {
    let (app, ws, channel, contact) = sandbox_app(pool, SandboxScript { fail_with: Some(131026), ..quick() }).await;
    let id = send_template(&app, &ws, &channel, &contact).await;
    let m = app.eventually(&ws, &format!("/v1/messages/{id}"), |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], 131026);
    assert_eq!(m["error"]["class"], "final");
}
