//! Rebuilding a projection from the log gives the same tables as the live projection, and the live
//! projectors keep running through it.

use blazz_commands::codec::Codec;
use blazz_projections::{read_models, rebuild, status};
use blazz_tests::{dump, mixed_workload, TestApp};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn every_projection_rebuilds_to_the_same_tables(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ws = app.workspace().await;
    let p = mixed_workload(&app, &ws).await;
    app.get(&format!("/v1/contacts?min_position={p}"), &ws.key).await.expect(200);

    let store = app.commands().store().clone();
    for projector in read_models::all() {
        let before = dump(&pool, projector.tables()).await;
        let mut reports = 0;
        let done = rebuild::rebuild(&pool, store.clone(), &Codec::new(), projector.clone(), |_| reports += 1)
            .await
            .expect("rebuild");
        assert!(reports >= 1 && done.done >= done.total, "{}: {done:?}", projector.name());
        assert_eq!(dump(&pool, projector.tables()).await, before, "{} rebuilt differently", projector.name());
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn writes_during_a_rebuild_are_all_in_the_switched_in_table(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool.clone()).await);
    let ws = app.workspace().await;
    for i in 0..20 {
        app.contact(&ws, &format!("+62812000000{i:02}"), json!({})).await;
    }
    let writer = {
        let (app, ws) = (app.clone(), ws.clone());
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..30 {
                last = app
                    .post("/v1/contacts", &ws.key, json!({"phone": format!("+62813000000{i:02}")}))
                    .await
                    .expect(201)
                    .body["position"]
                    .as_i64()
                    .expect("p");
            }
            last
        })
    };
    let projector = read_models::by_name("contacts").expect("contacts");
    rebuild::rebuild(&pool, app.commands().store().clone(), &Codec::new(), projector, |_| {}).await.expect("rebuild");
    let last = writer.await.expect("writer");
    let page = app.get(&format!("/v1/contacts?limit=500&min_position={last}"), &ws.key).await.expect(200);
    assert_eq!(
        page.body["items"].as_array().map(Vec::len),
        Some(50),
        "no contact lost or doubled across the switch-over"
    );
    let s = status::status(&pool, None).await.expect("status");
    let contacts = s.projections.iter().find(|p| p.projection == "contacts").expect("contacts status");
    assert_eq!(contacts.lag_events, 0, "caught up: {s:?}");
}

/// A rebuild that ends ahead of the live projection (here: no runner at all) moves the checkpoint, so
/// the runner that starts later does not apply those events a second time.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_rebuild_ahead_of_the_live_projection_is_not_applied_twice(pool: PgPool) {
    use blazz_commands::handlers::contact::NewContact;
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    use blazz_commands::store::{EventStore, LogCursor};
    use blazz_commands::{CommandContext, Commands};
    use blazz_domain::values::PhoneNumber;
    use blazz_projections::delta::Hub;
    use blazz_projections::runner::Runner;

    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()));
    let commands = Commands::new(store.clone(), Codec::new());
    let ctx = CommandContext::system(Uuid::now_v7(), "test");
    let group = commands.create_group(&ctx, "VIP".into()).await.expect("group");
    let group = group.outcome.group_id;
    let mut members = vec![];
    for i in 0..3 {
        let c = NewContact {
            phone: PhoneNumber::parse(&format!("+62812000000{i}")).expect("phone"),
            name: None,
            attributes: Default::default(),
        };
        let r = commands.create_contact(&ctx, c).await.expect("contact");
        members.push(r.outcome.contact_id);
    }
    let last = commands.add_group_members(&ctx, group, members).await.expect("members").position.expect("position");

    // The read horizon is cluster-wide: wait until these 5 events are below it, so the rebuild sees them.
    blazz_commands::store::conformance::read_whole_log(&*store, Some(ctx.workspace_id), 5).await;
    rebuild::rebuild(&pool, store.clone(), &Codec::new(), read_models::by_name("groups").expect("groups"), |_| {})
        .await
        .expect("rebuild");
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT member_count FROM rm_groups").fetch_one(&pool).await.expect("count")
    };
    assert_eq!(count().await, 3);

    let xid: String = sqlx::query_scalar("SELECT transaction_id::text FROM events WHERE position = $1")
        .bind(last)
        .fetch_one(&pool)
        .await
        .expect("xid");
    let target = LogCursor { transaction_id: xid.parse().expect("xid"), position: last };
    let mut runner = Runner::new(pool.clone(), store, Codec::new(), read_models::all(), Hub::new(16));
    let progress = runner.progress();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !progress.current().covers(uuid::Uuid::nil(), target) {
        assert!(tokio::time::Instant::now() < deadline, "runner did not catch up");
        if runner.step().await.expect("step") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    assert_eq!(count().await, 3, "the members were not added a second time");
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_contacts").fetch_one(&pool).await.expect("count");
    assert_eq!(contacts, 3, "the other projections caught up normally");
}

/// The message projectors compose a run's status changes per message (queued, dispatched, sent,
/// delivered and read of one message can all fall in one batch; usage sums a run's billing
/// reports): rebuilt in batches of hundreds, the counts and timelines equal the ones the live
/// projectors built a few events at a time, and no statistics bucket is left with a stray count.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn status_changes_composed_in_runs_count_as_one_at_a_time(pool: PgPool) {
    let (app, ws, channel) = blazz_tests::sandbox_app(pool.clone()).await;
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let rows: Vec<_> =
        (0..60).map(|i| json!({"phone": format!("+6285{i:09}"), "attributes": {"first_name": "Z"}})).collect();
    app.post("/v1/contacts/import", &ws.key, json!(rows)).await.expect(200);
    let body = json!({"name": "c", "channel_id": channel, "template_id": template, "audience": {"kind": "all"}});
    let campaign = app.post("/v1/campaigns", &ws.key, body).await.expect(201).id("campaign_id");
    app.launch(&ws, &campaign).await;
    // Completed (the scheduler appends it once every message is final) and all read: nothing more.
    app.eventually(&ws, &format!("/v1/campaigns/{campaign}"), |c| c["read"] == 60 && c["status"] == "completed").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = status::status(&pool, None).await.expect("status");
        if s.projections.iter().all(|p| p.lag_events == 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "projectors never caught up: {s:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stats: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, messages FROM rm_daily_stats WHERE direction = 'out' AND messages <> 0")
            .fetch_all(&pool)
            .await
            .expect("stats");
    assert_eq!(stats, [("read".to_owned(), 60)]);
    // The sandbox reports every message's pricing once (free, service): one usage bucket.
    let usage: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT category, billable, free FROM rm_usage").fetch_all(&pool).await.expect("usage");
    assert_eq!(usage, [("service".to_owned(), 0, 60)]);

    let store = app.commands().store().clone();
    for name in ["messages", "campaigns", "usage"] {
        let projector = read_models::by_name(name).expect("projector");
        let before = dump(&pool, projector.tables()).await;
        rebuild::rebuild(&pool, store.clone(), &Codec::new(), projector.clone(), |_| {}).await.expect("rebuild");
        assert_eq!(dump(&pool, projector.tables()).await, before, "{name} rebuilt differently");
    }
}
