//! Groups and templates over HTTP.

use blazz_tests::{TestApp, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn group_members_are_added_and_removed_in_bulk(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let mut contacts = vec![];
    for i in 0..5 {
        contacts.push(app.contact(&ws, &format!("+628120000000{i}"), json!({})).await);
    }
    let group = app.post("/v1/groups", &ws.key, json!({"name": "VIP"})).await.expect(201).id("group_id");
    let members = format!("/v1/groups/{group}/members");
    let added = app
        .post(&members, &ws.key, json!({"contact_ids": [contacts[0], contacts[1], contacts[2], contacts[0]]}))
        .await
        .expect(200);
    assert_eq!(added.body["added"], 3);
    let added = app.post(&members, &ws.key, json!({"contact_ids": [contacts[2], contacts[3]]})).await.expect(200);
    assert_eq!(added.body["added"], 1);
    let removed = app
        .post(&format!("{members}/remove"), &ws.key, json!({"contact_ids": [contacts[0], contacts[4]]}))
        .await
        .expect(200);
    assert_eq!(removed.body["removed"], 1);

    // Unknown and deleted contacts are rejected by name, and nothing is added.
    app.delete(&format!("/v1/contacts/{}", contacts[4]), &ws.key).await.expect(200);
    let unknown = uuid::Uuid::now_v7().to_string();
    let bad = app.post(&members, &ws.key, json!({"contact_ids": [contacts[4], unknown]})).await.expect(422);
    let message = bad.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&contacts[4]) && message.contains(&unknown), "{message}");
    app.post(&members, &ws.key, json!({"contact_ids": []})).await.expect(422);
    app.post(&format!("/v1/groups/{}/members", uuid::Uuid::now_v7()), &ws.key, json!({"contact_ids": [contacts[0]]}))
        .await
        .expect(404);

    let types = app.stream_types(&ws, &format!("group-{group}")).await;
    assert_eq!(types, ["group.created", "group.members_added", "group.members_added", "group.members_removed"]);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn templates_are_validated_unique_and_reviewed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let body = json!({
        "name": "order_update", "language": "en", "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today"},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://t.example/{{1}}"}, {"type": "QUICK_REPLY", "text": "Thanks"}]}
        ]
    });
    let id = app.post("/v1/templates", &ws.key, body.clone()).await.expect(201).id("template_id");
    assert_eq!(app.post("/v1/templates", &ws.key, body.clone()).await.expect(409).code(), "template_exists");
    let mut other_language = body.clone();
    other_language["language"] = json!("id");
    app.post("/v1/templates", &ws.key, other_language).await.expect(201);

    for (i, (patch, field)) in [
        (json!({"name": "Bad Name"}), "name"),
        (json!({"language": "english"}), "language"),
        (json!({"category": "SPAM"}), "category"),
        (json!({"components": [{"type": "BODY", "text": "Hi {{1}} and {{first_name}}"}]}), "components"),
        (json!({"components": [{"type": "BODY", "text": "Hi {{2}}"}]}), "components"),
        (json!({"components": [{"type": "FOOTER", "text": "no body"}]}), "components"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = body.clone();
        b["name"] = json!(format!("invalid_{i}"));
        for (k, v) in patch.as_object().expect("object") {
            b[k] = v.clone();
        }
        let a = app.post("/v1/templates", &ws.key, b).await.expect(422);
        assert_eq!(a.body["error"]["details"]["field"], field, "{}", a.body);
    }

    // Reviews come from the operator (or Meta's webhook), not from workspace keys.
    app.post(&format!("/v1/templates/{id}/review"), &ws.key, json!({"workspace_id": ws.id, "status": "APPROVED"}))
        .await
        .expect(401);
    app.post(
        &format!("/v1/templates/{id}/review"),
        OPERATOR_TOKEN,
        json!({"workspace_id": ws.id, "status": "APPROVED"}),
    )
    .await
    .expect(200);
    let same = app
        .post(
            &format!("/v1/templates/{id}/review"),
            OPERATOR_TOKEN,
            json!({"workspace_id": ws.id, "status": "APPROVED"}),
        )
        .await
        .expect(200);
    assert!(same.body["position"].is_null());
    app.post(
        &format!("/v1/templates/{id}/review"),
        OPERATOR_TOKEN,
        json!({"workspace_id": ws.id, "status": "SOMETHING_NEW"}),
    )
    .await
    .expect(200);
    let history = app.get(&format!("/v1/history/streams/template-{id}"), &ws.key).await.expect(200);
    assert_eq!(history.body["events"][2]["payload"]["status"], "SOMETHING_NEW");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn channels_claim_their_provider_number(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (app.workspace().await, app.workspace().await);
    let body = json!({"provider": "meta", "phone_number_id": "106540352242922", "display_phone_number": "+15550783881", "rate_limit_per_second": 1000});
    let id = app.post("/v1/channels", &a.key, body.clone()).await.expect(201).id("channel_id");
    assert_eq!(app.post("/v1/channels", &b.key, body).await.expect(409).code(), "phone_number_id_taken");
    let bad = app
        .post(
            "/v1/channels",
            &a.key,
            json!({"provider": "telegram", "phone_number_id": "1", "display_phone_number": "+15550783882"}),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["error"]["details"]["field"], "provider");
    let too_fast =
        app.patch(&format!("/v1/channels/{id}"), &a.key, json!({"rate_limit_per_second": 5000})).await.expect(422);
    assert_eq!(too_fast.body["error"]["details"]["field"], "rate_limit_per_second");
    app.patch(&format!("/v1/channels/{id}"), &a.key, json!({"rate_limit_per_second": 20})).await.expect(200);
}
