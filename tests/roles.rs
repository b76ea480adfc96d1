//! `blazz serve` and `blazz project` as separate processes: a gateway without projectors follows the
//! stored checkpoints for read-your-writes, and says so when they are behind.

use blazz_commands::codec::Codec;
use blazz_projections::delta::Hub;
use blazz_projections::read_models;
use blazz_projections::runner::Runner;
use blazz_tests::{Settings, TestApp, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_gateway_without_projectors_waits_for_the_projector_role(pool: PgPool) {
    let settings = Settings { projectors: false, ..Settings::new(4, Some(OPERATOR_TOKEN.into())) };
    let app = TestApp::spawn_with(pool.clone(), settings).await;
    let ws = app.workspace().await;
    let created = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281234567890"})).await.expect(201);
    let (id, p) = (created.id("contact_id"), created.body["position"].as_i64().expect("position"));

    // No projector runs yet: after the bounded wait, a clear "not yet consistent".
    let a = app.get(&format!("/v1/contacts/{id}?min_position={p}"), &ws.key).await.expect(503);
    assert_eq!(a.code(), "not_yet_consistent");

    // The projector role starts (as `blazz project` would, in another process).
    let runner = Runner::new(pool, app.commands().store().clone(), Codec::new(), read_models::all(), Hub::new(16));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    let c = app.get(&format!("/v1/contacts/{id}?min_position={p}"), &ws.key).await.expect(200);
    assert_eq!(c.body["phone"], "+6281234567890");
    let _ = stop.send(true);
    task.await.expect("join").expect("runner");
}
