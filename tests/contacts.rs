//! Contact commands over HTTP: validation, uniqueness, updates, consent, deletion, and the error format.

use blazz_tests::TestApp;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn contacts_are_created_with_a_normalised_unique_phone(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let created = app
        .post(
            "/v1/contacts",
            &ws.key,
            json!({"phone": "+62 812-3456-7890", "name": " Budi ", "attributes": {"city": "Bandung", "tier": 2}}),
        )
        .await
        .expect(201);
    let id = created.id("contact_id");
    assert!(created.body["position"].as_i64().expect("position") > 0);
    let history = app.get(&format!("/v1/history/streams/contact-{id}"), &ws.key).await.expect(200);
    assert_eq!(history.body["events"][0]["payload"]["phone"], "+6281234567890");
    assert_eq!(history.body["events"][0]["payload"]["name"], "Budi");

    let dup = app.post("/v1/contacts", &ws.key, json!({"phone": "006281234567890"})).await.expect(409);
    assert_eq!(dup.code(), "phone_taken");
    assert_eq!(dup.body["error"]["details"]["existing_id"], id.as_str());
    assert!(dup.body["error"]["message"].as_str().unwrap_or("").contains("+6281234567890"));

    let bad = app.post("/v1/contacts", &ws.key, json!({"phone": "0812345678"})).await.expect(422);
    assert_eq!((bad.code(), bad.body["error"]["details"]["field"].as_str()), ("validation_failed", Some("phone")));
    let bad = app
        .post("/v1/contacts", &ws.key, json!({"phone": "+6281234567899", "attributes": {"x": {"nested": 1}}}))
        .await
        .expect(422);
    assert_eq!(bad.code(), "validation_failed");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn concurrent_creates_of_one_phone_make_exactly_one_contact(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::spawn(pool).await);
    let ws = app.workspace().await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, key) = (app.clone(), ws.key.clone());
            tokio::spawn(async move {
                app.post("/v1/contacts", &key, json!({"phone": "+6281200000001"})).await.status.as_u16()
            })
        })
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn updates_consent_and_deletion(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let id = app.contact(&ws, "+6281234567890", json!({"city": "Bandung"})).await;
    let other = app.contact(&ws, "+6281234567891", json!({})).await;
    let path = format!("/v1/contacts/{id}");

    app.patch(&path, &ws.key, json!({"name": null, "attributes": {"city": null, "tier": "gold"}})).await.expect(200);
    // Changing the phone to one in use is refused; to a free one, allowed, and frees the old one.
    assert_eq!(app.patch(&path, &ws.key, json!({"phone": "+6281234567891"})).await.expect(409).code(), "phone_taken");
    app.patch(&path, &ws.key, json!({"phone": "+6281234567892"})).await.expect(200);
    app.contact(&ws, "+6281234567890", json!({})).await;
    // A no-op update writes nothing.
    let same = app.patch(&path, &ws.key, json!({"phone": "+6281234567892"})).await.expect(200);
    assert!(same.body["position"].is_null());

    app.post(&format!("{path}/opt-out"), &ws.key, json!({"reason": "asked us", "source": "api"})).await.expect(200);
    let again = app.post(&format!("{path}/opt-out"), &ws.key, json!({})).await.expect(200);
    assert!(again.body["position"].is_null(), "opting out twice writes nothing");
    app.post(&format!("{path}/opt-in"), &ws.key, json!({"source": "keyword"})).await.expect(200);
    assert_eq!(
        app.post(&format!("{path}/opt-in"), &ws.key, json!({"source": "telepathy"})).await.expect(422).code(),
        "validation_failed"
    );

    app.delete(&path, &ws.key).await.expect(200);
    app.delete(&path, &ws.key).await.expect(404);
    app.patch(&path, &ws.key, json!({"name": "x"})).await.expect(404);
    // The deleted contact's number can be used again.
    app.contact(&ws, "+6281234567892", json!({})).await;
    assert_eq!(
        app.stream_types(&ws, &format!("contact-{id}")).await,
        [
            "contact.created",
            "contact.renamed",
            "contact.attributes_changed",
            "contact.phone_changed",
            "contact.opted_out",
            "contact.opted_in",
            "contact.deleted"
        ]
    );
    let _ = other;
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn bad_requests_get_a_json_error_with_a_code(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let raw = |body: &'static str, ct: &'static str| {
        let req =
            app.client.post(app.server.url("/v1/contacts")).bearer_auth(&ws.key).header("content-type", ct).body(body);
        async move {
            let res = req.send().await.expect("send");
            (res.status().as_u16(), res.json::<serde_json::Value>().await.expect("json error body"))
        }
    };
    let (s, b) = raw("{not json", "application/json").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (s, b) = raw(r#"{"phone": "+6281234567890"}"#, "text/plain").await;
    assert_eq!((s, b["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
    let (s, b) = raw(r#"{"phone": "+6281234567890", "nmae": "typo"}"#, "application/json").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (s, b) = raw(r#"{"phone": 6281234567890}"#, "application/json").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let huge = format!(r#"{{"phone": "+6281234567890", "name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let res = app
        .client
        .post(app.server.url("/v1/contacts"))
        .bearer_auth(&ws.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 413);
    assert_eq!(res.json::<serde_json::Value>().await.expect("json")["error"]["code"], "payload_too_large");
    let a = app.call(Method::PATCH, "/v1/contacts/not-a-uuid", Some(&ws.key), Some(json!({})), &[]).await.expect(400);
    assert_eq!(a.code(), "invalid_path");
    let a = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&ws.key),
            Some(json!({"phone": "+6281234567890"})),
            &[("idempotency-key", "")],
        )
        .await
        .expect(400);
    assert_eq!(a.code(), "invalid_idempotency_key");
    // Nothing was written by any of these.
    assert!(app.history(&ws).await.iter().all(|e| e["event_type"] != "contact.created"));
}
