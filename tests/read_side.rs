//! Read models over HTTP: a command's effect is visible to a query that passes the command's position
//! (read-your-writes), filters, cursor pagination.

use blazz_domain::ids::{ChannelId, ContactId};
use blazz_tests::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|i| i[field].as_str().unwrap_or("").to_owned()).collect()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_query_with_the_commands_position_sees_its_effect(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let created = app
        .post(
            "/v1/contacts",
            &ws.key,
            json!({"phone": "+6281234567890", "name": "Budi", "attributes": {"city": "Bandung"}}),
        )
        .await
        .expect(201);
    let id = created.id("contact_id");
    let p = created.body["position"].as_i64().expect("position");
    let c = app.get(&format!("/v1/contacts/{id}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!((c.body["phone"].as_str(), c.body["name"].as_str()), (Some("+6281234567890"), Some("Budi")));
    assert_eq!(c.body["attributes"]["city"], "Bandung");

    let p = app.post(&format!("/v1/contacts/{id}/opt-out"), &ws.key, json!({"reason": "STOP"})).await.expect(200).body
        ["position"]
        .as_i64()
        .expect("p");
    let c = app.get(&format!("/v1/contacts/{id}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(c.body["opted_out"], true);
    assert_eq!(c.body["opt_out_source"], "api");

    let p = app.delete(&format!("/v1/contacts/{id}"), &ws.key).await.expect(200).body["position"].as_i64().expect("p");
    app.get(&format!("/v1/contacts/{id}?min_position={p}"), &ws.key).await.expect(404);
    assert_eq!(app.get("/v1/contacts?min_position=999999999", &ws.key).await.expect(400).code(), "unknown_position");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn contacts_filter_by_group_opt_out_and_attribute(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let a = app.contact(&ws, "+6281200000001", json!({"city": "Bandung"})).await;
    let b = app.contact(&ws, "+6281200000002", json!({"city": "Jakarta"})).await;
    let c = app.contact(&ws, "+6281200000003", json!({"city": "Bandung"})).await;
    let group = app.post("/v1/groups", &ws.key, json!({"name": "VIP"})).await.expect(201).id("group_id");
    app.post(&format!("/v1/groups/{group}/members"), &ws.key, json!({"contact_ids": [a, b]})).await.expect(200);
    let p = app.post(&format!("/v1/contacts/{b}/opt-out"), &ws.key, json!({})).await.expect(200).body["position"]
        .as_i64()
        .expect("p");

    let q = |filter: &str| format!("/v1/contacts?min_position={p}&{filter}");
    assert_eq!(
        ids(&app.get(&q(&format!("group_id={group}")), &ws.key).await.expect(200).body, "contact_id"),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        ids(&app.get(&q("opted_out=true"), &ws.key).await.expect(200).body, "contact_id"),
        std::slice::from_ref(&b)
    );
    assert_eq!(
        ids(&app.get(&q("attribute=city:Bandung"), &ws.key).await.expect(200).body, "contact_id"),
        [a.clone(), c]
    );
    let g = app.get(&format!("/v1/groups/{group}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(g.body["member_count"], 2);
    let p = app
        .post(&format!("/v1/groups/{group}/members/remove"), &ws.key, json!({"contact_ids": [a]}))
        .await
        .expect(200)
        .body["position"]
        .as_i64()
        .expect("p");
    let g = app.get(&format!("/v1/groups/{group}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(g.body["member_count"], 1);
    assert_eq!(
        ids(
            &app.get(&format!("/v1/contacts?min_position={p}&group_id={group}"), &ws.key).await.expect(200).body,
            "contact_id"
        ),
        [b]
    );
    assert_eq!(app.get("/v1/contacts?attribute=nocolon", &ws.key).await.expect(400).code(), "invalid_query");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn pages_are_stable_while_rows_are_inserted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let mut all = vec![];
    for i in 0..7 {
        all.push(app.contact(&ws, &format!("+628120000001{i}"), json!({})).await);
    }
    let p = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281200000099"})).await.expect(201);
    all.push(p.id("contact_id"));
    let pos = p.body["position"].as_i64().expect("p");
    let first = app.get(&format!("/v1/contacts?limit=3&min_position={pos}"), &ws.key).await.expect(200);
    let after = first.body["next_after"].as_str().expect("next").to_owned();
    // A contact created between two pages shows up at the end, never shifting the pages.
    let late = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281200000100"})).await.expect(201);
    let pos = late.body["position"].as_i64().expect("p");
    let mut seen = ids(&first.body, "contact_id");
    let mut after = Some(after);
    while let Some(a) = after {
        let page = app.get(&format!("/v1/contacts?limit=3&after={a}&min_position={pos}"), &ws.key).await.expect(200);
        seen.extend(ids(&page.body, "contact_id"));
        after = page.body["next_after"].as_str().map(str::to_owned);
    }
    all.push(late.id("contact_id"));
    assert_eq!(seen, all, "every contact once, in creation order");
    assert_eq!(app.get("/v1/contacts?limit=0", &ws.key).await.expect(400).code(), "invalid_query");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_inbox_timeline_templates_channels_and_daily_stats(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let channel = app.channel(&ws).await;
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let chan = ChannelId::from_uuid(Uuid::parse_str(&channel).expect("uuid"));
    let cont = ContactId::from_uuid(Uuid::parse_str(&contact).expect("uuid"));
    let inbound = app
        .commands()
        .record_inbound(&app.system(&ws), chan, cont, "wamid.in1".into(), chrono::Utc::now())
        .await
        .expect("inbound");
    let p = inbound.position.expect("position");
    let inbox = app.get(&format!("/v1/conversations?unread=true&min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(inbox.body["items"][0]["unread_count"], 1);
    assert!(inbox.body["items"][0]["window_expires_at"].is_string());

    let sent = app
        .post(
            "/v1/messages",
            &ws.key,
            json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}}),
        )
        .await
        .expect(202);
    let (message, p) = (sent.id("message_id"), sent.body["position"].as_i64().expect("p"));
    let m = app.get(&format!("/v1/messages/{message}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!((m.body["status"].as_str(), m.body["kind"].as_str()), (Some("queued"), Some("template")));
    assert_eq!(m.body["preview"], "Halo Budi, diskon 10%");
    let inbox = app.get(&format!("/v1/conversations?min_position={p}"), &ws.key).await.expect(200);
    let conversation = &inbox.body["items"][0];
    assert_eq!(
        (conversation["unread_count"].as_i64(), conversation["last_direction"].as_str()),
        (Some(0), Some("out"))
    );
    assert!(app.get(&format!("/v1/conversations?unread=true&min_position={p}"), &ws.key).await.expect(200).body
        ["items"]
        .as_array()
        .expect("items")
        .is_empty());
    let timeline = app
        .get(
            &format!(
                "/v1/messages?conversation_id={}&status=queued",
                conversation["conversation_id"].as_str().unwrap_or("")
            ),
            &ws.key,
        )
        .await
        .expect(200);
    assert_eq!(ids(&timeline.body, "message_id"), std::slice::from_ref(&message));

    let stats = app.get(&format!("/v1/stats/daily?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(stats.body["items"][0]["status"], "queued");
    assert_eq!(stats.body["items"][0]["messages"], 1);
    let t = app.get(&format!("/v1/templates?status=approved&min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(ids(&t.body, "template_id"), [template]);
    let c = app.get(&format!("/v1/channels?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(c.body["items"][0]["rate_limit_per_second"], 80);
    // Another workspace sees none of it, not even that the position exists.
    let other = app.workspace().await;
    app.get(&format!("/v1/messages/{message}"), &other.key).await.expect(404);
    let foreign = app.get(&format!("/v1/conversations?min_position={p}"), &other.key).await.expect(400);
    assert_eq!(foreign.code(), "unknown_position");
    assert!(app.get("/v1/conversations", &other.key).await.expect(200).body["items"]
        .as_array()
        .expect("items")
        .is_empty());
}
