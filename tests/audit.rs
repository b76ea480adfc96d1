//! `blazz audit export`: a workspace's events in log order, exactly as the history shows them, or as
//! CloudEvents; bounded by recording time; never another workspace's.

use blazz_api::cli::audit::{Format, Selection};
use blazz_tests::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn exported(app: &TestApp, selection: Selection, format: Format) -> Vec<Value> {
    let out = blazz_tests::export_of(app, selection, format).await;
    String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// An exported line without the sealed form of its payload (which the history does not show).
fn shown(mut line: Value) -> Value {
    if let Some(o) = line.as_object_mut() {
        o.remove("sealed_payload");
        o.remove("blazzsealeddata");
    }
    line
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_workspaces_events_are_exported_in_log_order_as_the_history_shows_them(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (ws, other) = (app.workspace().await, app.workspace().await);
    for i in 0..3 {
        app.contact(&ws, &format!("+62812000000{i}"), json!({"city": "Bandung"})).await;
        app.contact(&other, &format!("+62812000000{i}"), json!({})).await;
    }
    let id = app.contact(&ws, "+6281200000009", json!({})).await;
    app.patch(&format!("/v1/contacts/{id}"), &ws.key, json!({"name": "Budi"})).await.expect(200);
    let workspace: Uuid = ws.id.parse().expect("id");
    // Every committed event below the read horizon first (another test's transaction may hold it
    // back), so the history and the export see the same log.
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1")
        .bind(workspace)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    blazz_commands::store::conformance::read_whole_log(&**app.commands().store(), Some(workspace), written as usize)
        .await;
    let history = app.get("/v1/history/events?limit=1000", &ws.key).await.expect(200).body["events"].clone();
    let history = history.as_array().expect("events").clone();
    assert_eq!(history.len(), written as usize);
    assert!(history.len() >= 6, "{history:?}");

    // Everything: line for line what the history answers, in the same order.
    let all = exported(&app, Selection { workspace, from: None, to: None }, Format::Jsonl).await;
    assert_eq!(all.iter().cloned().map(shown).collect::<Vec<_>>(), history);
    // Besides, each event with personal fields carries them as stored (sealed): what its hash covers.
    for line in &all {
        let personal = blazz_commands::personal::fields::of(line["event_type"].as_str().unwrap_or("")).is_some();
        assert_eq!(line.get("sealed_payload").is_some(), personal, "{line}");
    }

    // Bounded by recording time: both ends included.
    let time = |e: &Value| e["recorded_at"].as_str().and_then(|t| t.parse().ok()).expect("recorded_at");
    let (from, to) = (time(&history[1]), time(&history[history.len() - 2]));
    let some = exported(&app, Selection { workspace, from: Some(from), to: Some(to) }, Format::Jsonl).await;
    let some: Vec<Value> = some.into_iter().map(shown).collect();
    let expected: Vec<Value> = history.iter().filter(|e| (from..=to).contains(&time(e))).cloned().collect();
    assert_eq!(some, expected);
    assert!(some.len() < history.len() && !some.is_empty());

    // CloudEvents: the same events, with the standard attributes and ours as extensions.
    let cloud = exported(&app, Selection { workspace, from: None, to: None }, Format::Cloudevents).await;
    assert_eq!(cloud.len(), history.len());
    for (c, h) in cloud.iter().zip(&history) {
        assert_eq!((&c["specversion"], &c["id"], &c["type"]), (&json!("1.0"), &h["event_id"], &h["event_type"]));
        assert_eq!((&c["subject"], &c["data"], &c["time"]), (&h["stream_id"], &h["payload"], &h["recorded_at"]));
        assert_eq!(c["source"], format!("/blazz/workspaces/{workspace}"));
        assert_eq!((&c["blazzposition"], &c["blazzcorrelationid"]), (&h["position"], &h["metadata"]["correlation_id"]));
        let names = c.as_object().expect("object").keys();
        assert!(names.clone().all(|k| k.chars().all(|ch| ch.is_ascii_lowercase())), "{c}");
    }
    // Never the other workspace's.
    let theirs: Uuid = other.id.parse().expect("id");
    assert!(all.iter().all(|e| !e.to_string().contains(&theirs.to_string())));
}
