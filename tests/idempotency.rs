//! `Idempotency-Key`: a retried request returns the first answer and writes nothing again.

use blazz_tests::{TestApp, OPERATOR_TOKEN};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;

async fn event_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.pool).await.expect("count")
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_retried_request_returns_the_first_answer_without_writing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let body = json!({"phone": "+6281234567890", "name": "Budi"});
    let key = [("idempotency-key", "create-budi-1")];
    let first = app.call(Method::POST, "/v1/contacts", Some(&ws.key), Some(body.clone()), &key).await.expect(201);
    let events = event_count(&app).await;
    let second = app.call(Method::POST, "/v1/contacts", Some(&ws.key), Some(body.clone()), &key).await.expect(201);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap_or("")), Some("true"));
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(event_count(&app).await, events, "the retry wrote nothing");

    // Same key, different request: refused.
    let other = json!({"phone": "+6281234567891"});
    assert_eq!(
        app.call(Method::POST, "/v1/contacts", Some(&ws.key), Some(other), &key).await.expect(422).code(),
        "idempotency_key_reused"
    );
    // Keys are per workspace: another workspace may use the same key.
    let ws2 = app.workspace().await;
    app.call(Method::POST, "/v1/contacts", Some(&ws2.key), Some(body), &key).await.expect(201);

    // A bodiless command (delete) replays too, instead of answering 404 the second time.
    let id = first.id("contact_id");
    let del = [("idempotency-key", "delete-budi")];
    let d1 = app.call(Method::DELETE, &format!("/v1/contacts/{id}"), Some(&ws.key), None, &del).await.expect(200);
    let d2 = app.call(Method::DELETE, &format!("/v1/contacts/{id}"), Some(&ws.key), None, &del).await.expect(200);
    assert_eq!(d1.body, d2.body);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn concurrent_retries_write_once(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    let ws = app.workspace().await;
    let channel = app.channel(&ws).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let body = json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (app, key, body) = (app.clone(), ws.key.clone(), body.clone());
            tokio::spawn(async move {
                app.call(Method::POST, "/v1/messages", Some(&key), Some(body), &[("idempotency-key", "send-1")]).await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let a = t.await.expect("task").expect(202);
        ids.insert(a.id("message_id"));
    }
    assert_eq!(ids.len(), 1, "every retry got the same message id");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'message.queued'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(queued, 1, "exactly one message was queued");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_retried_workspace_creation_does_not_create_a_second_workspace_or_store_the_secret(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let key = [("idempotency-key", "ws-1")];
    let body = json!({"name": "Toko"});
    let first =
        app.call(Method::POST, "/v1/workspaces", Some(OPERATOR_TOKEN), Some(body.clone()), &key).await.expect(201);
    let second = app.call(Method::POST, "/v1/workspaces", Some(OPERATOR_TOKEN), Some(body), &key).await.expect(201);
    assert_eq!(first.body["workspace_id"], second.body["workspace_id"]);
    assert!(first.body["api_key"]["key"].is_string());
    assert!(second.body["api_key"]["key"].is_null(), "the secret is shown once and never stored");
    let workspaces: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'workspace.created'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(workspaces, 1);
    let secret = first.body["api_key"]["key"].as_str().expect("key");
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM idempotency_keys WHERE result::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM unique_claims WHERE data::text LIKE '%' || $1 || '%')",
    )
    .bind(&secret[37..])
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0, "the key's secret is stored nowhere");
}
