//! The OpenAPI document: served at /openapi.json exactly as committed in docs/openapi.json (so a
//! change of the API shows in review), every operation in it routed, every route in it, and a
//! property-based run of schemathesis against it over a real socket: no 5xx, every answer's status,
//! content type and body as the document says.

use blazz_tests::{sandbox_app, TestApp, OPERATOR_TOKEN};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use std::process::Command;

/// Where docs/openapi.json is, from the tests crate.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
const REGENERATE: &str = "regenerate it: cargo run -p blazz-api -- openapi > docs/openapi.json";

/// Operations callable without a key or token (the webhook has its own signature).
const PUBLIC: [&str; 5] =
    ["/healthz", "/ops", "/v1/operator/stream", "/v1/webhooks/meta/{channel_id}", "/openapi.json"];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn served(app: &TestApp) -> Value {
    let answer = app.client.get(app.server.url("/openapi.json")).send().await.expect("openapi.json");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    answer.json().await.expect("json")
}

/// Every (method, path) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_served_document_is_the_committed_one_and_describes_every_route(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let doc = served(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, serde_json::to_value(blazz_api::openapi::document()).expect("document"));
    let committed: Value = std::fs::read_to_string(COMMITTED)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| panic!("docs/openapi.json is missing or not JSON; {REGENERATE}"));
    assert!(committed == doc, "docs/openapi.json differs from the served document; {REGENERATE}");

    let ops = operations(&doc);
    assert!(ops.len() >= 80, "only {} operations", ops.len());
    for (method, path, op) in &ops {
        let name = format!("{} {path}", method.to_uppercase());
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name} has no tag");
        let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
        assert!(statuses.iter().any(|s| s.starts_with('2') || *s == "101"), "{name} has no success answer");
        for error in ["400", "401", "404", "429", "503"] {
            assert!(statuses.iter().any(|s| *s == error), "{name} does not document {error}");
        }
        if !PUBLIC.contains(&path.as_str()) {
            let security = op["security"].as_array().unwrap_or_else(|| panic!("{name} names no roles"));
            assert!(!security.is_empty(), "{name} names no roles");
        }
        // The operation is routed: the router's own 404 (no such route) and 405 (no such method)
        // have no JSON error body; ours do.
        let concrete = path
            .replace("{stream_id}", "contact-00000000-0000-0000-0000-000000000000")
            .replace("{channel_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{id}", if path.contains("parked-events") { "0" } else { "00000000-0000-0000-0000-000000000000" });
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let answer = app.client.request(method, app.server.url(&concrete)).send().await.expect("request");
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status != 405, "{name} is in the document but not routed for its method");
        assert!(status != 404 || body["error"]["code"].is_string(), "{name} is in the document but not routed");
    }
    // And the discrimination above works: a route that does not exist is the router's bare 404.
    let missing = app.client.get(app.server.url("/v1/no-such-route")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.is_err(), "the router's own 404 has no JSON body");
}

/// No 5xx, and every answer's status, content type and body as documented.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// schemathesis from the test command's install (scripts/test), or `schemathesis` on the PATH.
fn schemathesis() -> String {
    std::env::var("BLAZZ_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

/// Operations that take the operator token.
const OPERATOR_PATHS: &str = r"^/(metrics|v1/operator/.*|v1/workspaces|v1/templates/\{id\}/review)$";

/// Runs schemathesis over the served document with `token`, on the operations `filter` selects
/// (`--include-path-regex` or `--exclude-path-regex` and a pattern); panics with its report on a
/// failure.
async fn schemathesis_run(app: &TestApp, who: &str, token: &str, filter: [&str; 2]) {
    let examples = std::env::var("BLAZZ_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "12".into());
    let seed = std::env::var("BLAZZ_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let (url, auth) = (app.server.url("/openapi.json"), format!("Authorization: Bearer {token}"));
    let filter = filter.map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis())
            .args(["run", &url, "--header", &auth, "--max-examples", &examples, "--seed", &seed])
            .args(["--checks", CHECKS, "--workers", "1", "--no-color"])
            .args(["--suppress-health-check", "all", "--generation-database", "none"])
            .args(filter)
            // Its reports and caches go to the test's scratch directory.
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("{} does not run ({e}); scripts/test installs it", schemathesis()));
    let out = format!("{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "schemathesis found failures:\n{out}");
    // It did test: the summary counts the cases it generated, every one passed.
    assert!(out.contains(" generated, ") && out.contains(" passed"), "no test ran:\n{out}");
    // Its summary, for the log of the run.
    let summary: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Test Phases:"))
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Warnings") && !l.contains('⚠'))
        .take(12)
        .collect();
    eprintln!("schemathesis as {who}:\n{}", summary.join("\n"));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document(pool: PgPool) {
    // A workspace with a sandbox channel, a contact and a template: operations on real resources too.
    let (app, ws, _channel) = sandbox_app(pool).await;
    app.contact(&ws, "+6281200000001", serde_json::json!({"first_name": "Budi"})).await;
    app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    schemathesis_run(&app, "a workspace owner", &ws.key, ["--exclude-path-regex", OPERATOR_PATHS]).await;
    schemathesis_run(&app, "the operator", OPERATOR_TOKEN, ["--include-path-regex", OPERATOR_PATHS]).await;
}
