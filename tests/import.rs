//! Bulk contact import over HTTP: JSON and CSV, bad rows reported by line, the rest imported, and
//! 100,000 rows in one request.

use blazz_tests::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn import(app: &TestApp, key: &str, content_type: &str, body: String) -> (u16, Value) {
    let res = app
        .client
        .post(app.server.url("/v1/contacts/import"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    (res.status().as_u16(), res.json().await.expect("json"))
}

async fn contacts_in(app: &TestApp, ws: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1 AND event_type = 'contact.created'")
        .bind(Uuid::parse_str(ws).expect("uuid"))
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn csv_rows_with_errors_are_reported_by_line_and_the_rest_imported(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    app.contact(&ws, "+6281299999999", json!({})).await;
    let csv = "phone,name,city\n\
               +6281200000001,Budi,Bandung\n\
               0812345,Bad Number,Jakarta\n\
               +62 812-0000-0002,Siti,\n\
               +6281200000001,Dup In File,Solo\n\
               +6281299999999,Already There,Medan\n\
               \"+6281200000003\",\"Quoted, Name\",Bogor\n";
    let (status, body) = import(&app, &ws.key, "text/csv", csv.into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], 3);
    assert_eq!(body["failed"], 3);
    let errors: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_u64().unwrap_or(0), e["code"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(errors, [(3, "validation_failed"), (5, "duplicate_in_import"), (6, "phone_taken")]);
    assert_eq!(contacts_in(&app, &ws.id).await, 4);
    let history = app.history(&ws).await;
    let quoted = history.iter().find(|e| e["payload"]["name"] == "Quoted, Name").expect("quoted row imported");
    assert_eq!(quoted["payload"]["attributes"]["city"], "Bogor");
    assert_eq!(quoted["payload"]["phone"], "+6281200000003");

    let (status, body) = import(&app, &ws.key, "text/csv", "name,city\nBudi,Bandung\n".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_csv")));
    let (status, body) = import(&app, &ws.key, "application/xml", "<x/>".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn json_rows_with_errors_are_reported_by_position(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let body = json!([
        {"phone": "+6281200000001", "name": "Budi", "attributes": {"tier": 1}},
        {"phone": 6281200000002_u64},
        "not an object",
        {"phone": "+6281200000004", "attributes": {"bad key!": 1}},
        {"phone": "+6281200000005", "colour": "red"},
        {"phone": "+6281200000006"}
    ]);
    let (status, body) = import(&app, &ws.key, "application/json", body.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["imported"].as_u64(), body["failed"].as_u64()), (Some(2), Some(4)));
    let lines: Vec<u64> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["line"].as_u64().unwrap_or(0)).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    let (status, body) = import(&app, &ws.key, "application/json", "{\"phone\": 1}".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn one_hundred_thousand_rows_in_one_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let mut csv = String::from("phone,name,segment\n");
    for i in 0..100_000u64 {
        csv.push_str(&format!("+62813{i:08},Contact {i},s{}\n", i % 7));
    }
    // Two bad rows among them, at known lines.
    csv.push_str("12,Too Short,s1\n+6281300000007,Duplicate,s1\n");
    let (status, body) = import(&app, &ws.key, "text/csv", csv).await;
    assert_eq!(status, 200, "{}", body["error"]);
    assert_eq!(body["imported"], 100_000);
    let lines: Vec<u64> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["line"].as_u64().unwrap_or(0)).collect();
    assert_eq!(lines, [100_002, 100_003]);
    assert_eq!(contacts_in(&app, &ws.id).await, 100_000);
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM unique_claims WHERE scope = 'contact_phone'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(claims, 100_000);
}
