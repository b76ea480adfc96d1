//! Workspaces, API keys, roles and isolation between workspaces, over HTTP.

use blazz_tests::{TestApp, OPERATOR_TOKEN};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn creating_a_workspace_needs_the_operator_token_and_returns_an_owner_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = json!({"name": "Toko"});
    let a = app.call(Method::POST, "/v1/workspaces", None, Some(body.clone()), &[]).await.expect(401);
    assert_eq!(a.code(), "unauthorized");
    app.post("/v1/workspaces", "wrong-token", body.clone()).await.expect(401);
    let a =
        app.post("/v1/workspaces", OPERATOR_TOKEN, json!({"name": "Toko", "timezone": "Mars/Base"})).await.expect(422);
    assert_eq!(a.code(), "validation_failed");
    assert_eq!(a.body["error"]["details"]["field"], "timezone");

    let ws = app.workspace().await;
    assert!(ws.key.starts_with("blz_"));
    let me = app.get("/v1/workspace", &ws.key).await.expect(200);
    assert_eq!(me.body["name"], "Toko Budi");
    assert_eq!(me.body["timezone"], "Asia/Jakarta");
    assert_eq!(me.body["api_keys"][0]["role"], "owner");
    // An API key is not an operator token.
    app.post("/v1/workspaces", &ws.key, body).await.expect(401);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn keys_are_issued_by_role_and_revoked_keys_stop_working(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let agent = app.post("/v1/api-keys", &ws.key, json!({"name": "inbox", "role": "agent"})).await.expect(201);
    let agent_key = agent.body["key"].as_str().expect("secret shown once").to_owned();
    let agent_id = agent.id("id");
    let viewer = app.post("/v1/api-keys", &ws.key, json!({"name": "dash", "role": "viewer"})).await.expect(201);
    let viewer_key = viewer.body["key"].as_str().expect("key").to_owned();

    // Agents manage contacts but not keys, templates or channels; viewers only read.
    assert_eq!(
        app.post("/v1/api-keys", &agent_key, json!({"name": "x", "role": "viewer"})).await.expect(403).code(),
        "forbidden"
    );
    app.post("/v1/contacts", &agent_key, json!({"phone": "+6281111111111"})).await.expect(201);
    app.post(
        "/v1/channels",
        &agent_key,
        json!({"provider": "meta", "phone_number_id": "1", "display_phone_number": "+15550000000"}),
    )
    .await
    .expect(403);
    app.post("/v1/contacts", &viewer_key, json!({"phone": "+6281111111112"})).await.expect(403);
    app.get("/v1/workspace", &viewer_key).await.expect(200);
    assert_eq!(
        app.post("/v1/api-keys", &ws.key, json!({"name": "x", "role": "root"})).await.expect(422).code(),
        "validation_failed"
    );

    // The listing never shows secrets.
    let me = app.get("/v1/workspace", &ws.key).await.expect(200);
    assert!(!me.body.to_string().contains(&agent_key[40..]));

    app.delete(&format!("/v1/api-keys/{agent_id}"), &ws.key).await.expect(200);
    assert_eq!(app.get("/v1/workspace", &agent_key).await.expect(401).code(), "unauthorized");
    // The last owner key cannot be revoked.
    let owner_id = me.body["api_keys"].as_array().expect("keys").iter().find(|k| k["role"] == "owner").expect("owner")
        ["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.delete(&format!("/v1/api-keys/{owner_id}"), &ws.key).await.expect(409).code(), "last_owner_key");
    // Tampered keys are rejected.
    let mut tampered = ws.key.clone();
    tampered.replace_range(tampered.len() - 4.., "0000");
    app.get("/v1/workspace", &tampered).await.expect(401);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_key_of_one_workspace_cannot_see_or_change_another(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (app.workspace().await, app.workspace().await);
    let contact = app.contact(&a, "+6281234567890", json!({})).await;
    let channel = app.channel(&a).await;
    let template = app.template(&a, "promo", "MARKETING", "APPROVED").await;
    let group = app.post("/v1/groups", &a.key, json!({"name": "VIP"})).await.expect(201).id("group_id");

    for (method, path, body) in [
        (Method::PATCH, format!("/v1/contacts/{contact}"), Some(json!({"name": "Mallory"}))),
        (Method::DELETE, format!("/v1/contacts/{contact}"), None),
        (Method::POST, format!("/v1/contacts/{contact}/opt-out"), Some(json!({}))),
        (Method::PATCH, format!("/v1/channels/{channel}"), Some(json!({"rate_limit_per_second": 5}))),
        (Method::PATCH, format!("/v1/groups/{group}"), Some(json!({"name": "mine"}))),
        (Method::GET, format!("/v1/history/streams/contact-{contact}"), None),
    ] {
        let ans = app.call(method.clone(), &path, Some(&b.key), body, &[]).await;
        assert_eq!(ans.status.as_u16(), 404, "{method} {path}: {}", ans.body);
    }
    // B cannot use A's contact, channel or template to send, nor add A's contact to its own group.
    let b_channel = app.channel(&b).await;
    let send =
        json!({"channel_id": b_channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    app.post("/v1/messages", &b.key, send).await.expect(404);
    let send = json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    app.post("/v1/messages", &b.key, send).await.expect(404);
    let b_group = app.post("/v1/groups", &b.key, json!({"name": "B"})).await.expect(201).id("group_id");
    app.post(&format!("/v1/groups/{b_group}/members"), &b.key, json!({"contact_ids": [contact]})).await.expect(422);
    // The same phone number is free in another workspace.
    app.contact(&b, "+6281234567890", json!({})).await;
    // And B's history holds none of A's events.
    let history = app.history(&b).await;
    assert!(history.iter().all(|e| !e["stream_id"].as_str().unwrap_or("").contains(&contact)));
    // A's data is untouched.
    assert_eq!(app.stream_types(&a, &format!("contact-{contact}")).await, ["contact.created"]);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_gateway_remembers_verified_keys_briefly_so_a_revocation_elsewhere_takes_effect_within_seconds(pool: PgPool) {
    // Two gateways on one database, as behind a load balancer.
    let (here, there) = (TestApp::spawn(pool.clone()).await, TestApp::spawn(pool).await);
    let ws = here.workspace().await;
    let agent = here.post("/v1/api-keys", &ws.key, json!({"name": "inbox", "role": "agent"})).await.expect(201);
    let (key, id) = (agent.body["key"].as_str().expect("secret").to_owned(), agent.id("id"));

    there.get("/v1/workspace", &key).await.expect(200);
    here.delete(&format!("/v1/api-keys/{id}"), &ws.key).await.expect(200);
    // The revoking gateway forgets the key at once; the other one still has it verified (no database
    // round trip per request) until the cache's time to live (2 s) runs out.
    here.get("/v1/workspace", &key).await.expect(401);
    there.get("/v1/workspace", &key).await.expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while there.get("/v1/workspace", &key).await.status.as_u16() != 401 {
        assert!(std::time::Instant::now() < deadline, "the revoked key still works on the other gateway");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
