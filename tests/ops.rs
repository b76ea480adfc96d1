//! The live operations page in a real headless Chromium: it asks for the operator token, refuses a
//! wrong one, and with the right one shows a running sandbox campaign's progress moving (pushed over
//! its WebSocket), the projections and the channel; a screenshot is kept in target/ops-page.png.
//! Also the overview's JSON for scripts, behind the operator token.

use blazz_tests::browser::Browser;
use blazz_tests::{sandbox_app, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;

const QUEUED: &str = "const td = document.querySelector('#campaigns tr[data-campaign] td.queued');
    return td ? Number(td.textContent) : null;";

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_operations_page_shows_a_running_campaign_moving(pool: PgPool) {
    let (app, ws, channel) = sandbox_app(pool).await;
    // 40 recipients at 4 messages a second: about ten seconds of visible progress.
    app.patch(&format!("/v1/channels/{channel}"), &ws.key, json!({"rate_limit_per_second": 4})).await.expect(200);
    let rows: Vec<Value> =
        (0..40).map(|i| json!({"phone": format!("+628130000{i:04}"), "name": format!("C{i}")})).collect();
    let imported = app.client.post(app.server.url("/v1/contacts/import")).bearer_auth(&ws.key).json(&rows).send().await;
    assert_eq!(imported.expect("import").status(), 200);
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let body = json!({"name": "Promo Juni", "channel_id": channel, "template_id": template, "audience": {"kind": "all"},
                      "variables": {"first_name": {"attribute": "first_name", "default": "Kak"}}});
    let campaign = app.post("/v1/campaigns", &ws.key, body).await.expect(201).id("campaign_id");

    // The JSON overview needs the operator token.
    app.get("/v1/operator/overview", &ws.key).await.expect(401);

    let browser = Browser::start().await;
    // Without a token the page asks for one; a wrong one is refused by the stream.
    browser.goto(&app.server.url("/ops")).await;
    browser.until("return !document.getElementById('login').hidden;", |v| v == true).await;
    browser.goto(&app.server.url("/ops#token=wrong")).await;
    browser
        .until("return document.getElementById('state').textContent;", |v| v == "the operator token is required")
        .await;

    browser.goto(&app.server.url(&format!("/ops#token={OPERATOR_TOKEN}"))).await;
    browser.until("return Number(document.body.dataset.updates || 0);", |v| v.as_i64() >= Some(1)).await;
    let url = browser.eval("return location.href;").await;
    assert!(!url.as_str().unwrap_or_default().contains(OPERATOR_TOKEN), "the token leaves the address bar: {url}");
    app.launch(&ws, &campaign).await;
    // Progress moves: the queued count shown falls while the page stays open, pushed each second.
    let first = browser.until(QUEUED, |v| v.as_i64().is_some_and(|q| q > 0 && q < 40)).await.as_i64().unwrap_or(0);
    browser.until(QUEUED, |v| v.as_i64().is_some_and(|q| q < first)).await;
    let name = browser.eval("return document.querySelector('#campaigns tr[data-campaign] td').textContent;").await;
    assert_eq!(name, "Promo Juni");
    let projections = browser
        .eval(
            "return [...document.querySelectorAll('#projections tbody tr td:first-child')].map(td => td.textContent);",
        )
        .await;
    assert!(projections.as_array().is_some_and(|p| p.iter().any(|n| n == "campaigns")), "{projections}");
    let channel_row =
        browser.eval("return document.querySelector('#channels tbody tr td:last-child').textContent;").await;
    assert_eq!(channel_row, "sending");
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ops-page.png");
    std::fs::write(&target, &png).expect("screenshot written");
    browser.close().await;

    let overview = app.call(reqwest::Method::GET, "/v1/operator/overview", Some(OPERATOR_TOKEN), None, &[]).await;
    let overview = overview.expect(200).body;
    assert!(overview["projections"].as_array().is_some_and(|p| !p.is_empty()), "{overview}");
    assert_eq!(overview["channels"][0]["channel_id"], channel.as_str());
}
