//! The scaled-out read side against a real Kafka-protocol broker (tansu): the relay publishes the log,
//! projectors consume it in a consumer group, deltas reach every gateway through the deltas topic.
//! Every test checks that each projector applied each event of the log exactly once.

use blazz_api::server::{self, projection_names};
use blazz_commands::codec::Codec;
use blazz_commands::personal::Vault;
use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
use blazz_commands::store::EventStore;
use blazz_projections::delta::{Delta, DeltaSink, Hub};
use blazz_projections::kafka::{ensure_topics, partition_of, KafkaFeed, Relay};
use blazz_projections::projector::{Applied, Projector};
use blazz_projections::{delta::Change, read_models, rebuild, runner::Runner, status};
use blazz_tests::broker::Broker;
use blazz_tests::{dump, mixed_workload, Live, Settings, TestApp, Ws, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// The log as stored, personal fields sealed: what the relay publishes.
fn sealed(pool: &PgPool) -> Arc<dyn EventStore> {
    Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()))
}

/// The app's data keys, for projectors that open what the topic carries sealed.
fn vault(app: &TestApp) -> Vault {
    app.commands().vault().expect("the app seals personal data").clone()
}

fn kafka_settings(broker: &Broker, projectors: bool) -> Settings {
    Settings { projectors, kafka: Some(broker.config()), ..Settings::new(4, Some(OPERATOR_TOKEN.into())) }
}

/// Waits until every projector has applied as many events as the log holds, then asserts that none
/// applied more: each event exactly once.
async fn applied_exactly_once(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await.expect("count");
        let applied: Vec<(String, i64)> = sqlx::query_as(
            "SELECT projection, sum(events_applied)::int8 FROM projection_partition_checkpoints GROUP BY projection",
        )
        .fetch_all(pool)
        .await
        .expect("applied");
        let all_there = applied.len() == projection_names().len() && applied.iter().all(|(_, n)| *n >= total);
        if all_there {
            for (projection, n) in applied {
                assert_eq!(n, total, "{projection} applied {n} events of a log of {total}");
            }
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "projectors did not catch up: {applied:?} of {total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (beyond one query's bounded wait) until the read models have applied `position`.
async fn consistent(app: &TestApp, ws: &Ws, position: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = app.get(&format!("/v1/contacts?min_position={position}"), &ws.key).await;
        if a.status.as_u16() == 200 {
            return;
        }
        assert_eq!(a.code(), "not_yet_consistent", "{}", a.body);
        assert!(tokio::time::Instant::now() < deadline, "position {position} was never reached");
    }
}

async fn contacts_in(app: &TestApp, ws: &Ws) -> usize {
    app.get("/v1/contacts?limit=500", &ws.key).await.expect(200).body["items"].as_array().map_or(0, Vec::len)
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_kafka_feed_builds_the_same_read_models_as_the_log(pool: PgPool) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, true)).await;
    let mut last = vec![];
    for _ in 0..3 {
        let ws = app.workspace().await;
        let p = mixed_workload(&app, &ws).await;
        // Read-your-writes through Kafka: the query waits until its workspace's partition has it.
        let page = app.get(&format!("/v1/contacts?min_position={p}"), &ws.key).await.expect(200);
        assert_eq!(page.body["items"].as_array().map(Vec::len), Some(5), "{}", page.body);
        last.push(ws);
    }
    applied_exactly_once(&pool).await;
    // The log feed (a rebuild reads the log) gives the very same tables.
    let store = app.commands().store().clone();
    for projector in read_models::all() {
        let from_kafka = dump(&pool, projector.tables()).await;
        rebuild::rebuild(&pool, store.clone(), &Codec::new(), projector.clone(), |_| {}).await.expect("rebuild");
        assert_eq!(dump(&pool, projector.tables()).await, from_kafka, "{} differs between the feeds", projector.name());
    }
    // After the rebuild the Kafka feed goes on from the copy's checkpoint: nothing is applied twice.
    let c = app.post("/v1/contacts", &last[0].key, json!({"phone": "+6281299999999"})).await.expect(201);
    consistent(&app, &last[0], c.body["position"].as_i64().expect("p")).await;
    assert_eq!(contacts_in(&app, &last[0]).await, 6);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn deltas_reach_every_gateway_and_only_their_workspace(pool: PgPool) {
    let broker = Broker::start().await;
    let writer = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, true)).await;
    // A second gateway without projectors: its deltas come only from the deltas topic.
    let reader = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let (a, b) = (writer.workspace().await, writer.workspace().await);
    let mut live_a = Live::connect(&reader, &a.key, None).await;
    let mut live_b = Live::connect(&reader, &b.key, None).await;
    // The writing gateway's clients get its projectors' deltas (straight from them: it skips its own on
    // the topic).
    let mut local_a = Live::connect(&writer, &a.key, None).await;
    let created = writer.post("/v1/contacts", &a.key, json!({"phone": "+6281234567890"})).await.expect(201);
    let first_a = live_a.next_of("contact").await;
    assert_eq!(first_a["id"], created.body["contact_id"]);
    assert_eq!(first_a["position"], created.body["position"]);
    assert_eq!(local_a.next_of("contact").await["delta_id"], first_a["delta_id"]);
    let b_contact = writer.post("/v1/contacts", &b.key, json!({"phone": "+6281234567891"})).await.expect(201);
    let d = live_b.next_of("contact").await;
    assert_eq!(d["id"], b_contact.body["contact_id"], "B's first contact delta is B's own: {d}");

    // Resume on the reading gateway: what was missed, in order, then live ones.
    drop(live_a);
    let mut missed = vec![];
    for i in 2..=4 {
        missed.push(writer.contact(&a, &format!("+628120000000{i}"), json!({})).await);
    }
    let mut live_a = Live::connect(&reader, &a.key, first_a["delta_id"].as_str()).await;
    let mut got = vec![];
    for _ in 0..3 {
        got.push(live_a.next_of("contact").await["id"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(got, missed);
    applied_exactly_once(&pool).await;
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_restarted_relay_resumes_where_it_stopped(pool: PgPool) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let kafka = broker.config();
    let (_stop_projectors, projecting) = watch::channel(false);
    let _projectors =
        server::spawn_kafka_projectors(pool.clone(), &kafka, vault(&app), None, projecting).await.expect("projectors");
    let store = sealed(&pool);
    let (stop_relay, relaying) = watch::channel(false);
    let relay = server::spawn_relay(pool.clone(), store.clone(), &kafka, relaying).await.expect("relay");
    let ws = app.workspace().await;
    let p = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281200000001"})).await.expect(201);
    consistent(&app, &ws, p.body["position"].as_i64().expect("p")).await;

    stop_relay.send(true).expect("stop");
    relay.await.expect("relay stops");
    let mut last = 0;
    for i in 2..=6 {
        let c = app.post("/v1/contacts", &ws.key, json!({"phone": format!("+628120000000{i}")})).await.expect(201);
        last = c.body["position"].as_i64().expect("p");
    }
    let not_yet = app.get(&format!("/v1/contacts?min_position={last}"), &ws.key).await.expect(503);
    assert_eq!(not_yet.code(), "not_yet_consistent", "nothing is published while the relay is down");
    // `blazz projections status` counts them as the projections' lag.
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position > $1")
        .bind(p.body["position"].as_i64())
        .fetch_one(&pool)
        .await
        .expect("count");
    let lagging = status::status(&pool, Some(kafka.partitions)).await.expect("status");
    assert_eq!(lagging.projections.len(), projection_names().len());
    for s in &lagging.projections {
        assert_eq!(s.lag_events, unpublished, "{s:?}");
        assert!(s.lag_seconds > 0.0, "{s:?}");
    }

    let (_stop_again, relaying) = watch::channel(false);
    let _relay = server::spawn_relay(pool.clone(), store, &kafka, relaying).await.expect("relay again");
    consistent(&app, &ws, last).await;
    assert_eq!(contacts_in(&app, &ws).await, 6);
    applied_exactly_once(&pool).await;
    let caught_up = status::status(&pool, Some(kafka.partitions)).await.expect("status");
    assert!(caught_up.projections.iter().all(|s| s.lag_events == 0 && s.position >= last), "{caught_up:?}");
}

/// Contacts, but the first batch hangs after writing (the process "dies" mid-batch).
struct HangsMidBatch {
    inner: Arc<dyn Projector>,
    reached: Arc<Notify>,
}

#[async_trait::async_trait]
impl Projector for HangsMidBatch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }
    async fn apply(&self, conn: &mut PgConnection, event: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        self.inner.apply(conn, event).await?;
        self.reached.notify_one();
        std::future::pending().await
    }
}

/// A broker, a gateway without projectors (the test runs its own) and a relay that publishes as long
/// as the returned sender lives.
async fn gateway_and_relay(pool: &PgPool) -> (Broker, TestApp, watch::Sender<bool>) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let (stop, relaying) = watch::channel(false);
    server::spawn_relay(pool.clone(), sealed(pool), &broker.config(), relaying).await.expect("relay");
    (broker, app, stop)
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_projector_killed_mid_batch_applies_the_batch_once_after_restart(pool: PgPool) {
    let (broker, app, _relay) = gateway_and_relay(&pool).await;
    let kafka = broker.config();
    let ws = app.workspace().await;
    for i in 1..=5 {
        app.contact(&ws, &format!("+628120000000{i}"), json!({})).await;
    }

    // A runner whose contacts projector hangs inside its first batch, after writing to its tables.
    let reached = Arc::new(Notify::new());
    let projectors: Vec<Arc<dyn Projector>> = read_models::all()
        .into_iter()
        .map(|p| -> Arc<dyn Projector> {
            if p.name() == "contacts" {
                Arc::new(HangsMidBatch { inner: p, reached: reached.clone() })
            } else {
                p
            }
        })
        .collect();
    let feed = KafkaFeed::new(&kafka).await.expect("feed").revealing(vault(&app));
    let runner = Runner::with_feed(pool.clone(), feed, Codec::new(), projectors, Vec::<Arc<dyn DeltaSink>>::new());
    let (_stop, stopped) = watch::channel(false);
    let doomed = tokio::spawn(runner.run(stopped));
    tokio::time::timeout(Duration::from_secs(60), reached.notified()).await.expect("the batch started");
    doomed.abort();
    let _ = doomed.await;
    let applied: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(events_applied), 0)::int8 FROM projection_partition_checkpoints")
            .fetch_one(&pool)
            .await
            .expect("applied");
    assert_eq!(applied, 0, "the killed batch committed nothing");

    // The restarted projectors get the batch again (no offset was committed) and apply it once.
    let (_stop_projectors, projecting) = watch::channel(false);
    let _projectors =
        server::spawn_kafka_projectors(pool.clone(), &kafka, vault(&app), None, projecting).await.expect("projectors");
    let c = app.post("/v1/contacts", &ws.key, json!({"phone": "+6281200000006"})).await.expect(201);
    consistent(&app, &ws, c.body["position"].as_i64().expect("p")).await;
    assert_eq!(contacts_in(&app, &ws).await, 6);
    applied_exactly_once(&pool).await;
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn redelivered_events_are_not_applied_again(pool: PgPool) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, true)).await;
    let ws = app.workspace().await;
    let p = mixed_workload(&app, &ws).await;
    consistent(&app, &ws, p).await;
    applied_exactly_once(&pool).await;
    let tables: Vec<&str> = read_models::all().iter().flat_map(|p| p.tables().iter().copied()).collect();
    let before = dump(&pool, &tables).await;

    // A consumer in a new group is handed the whole topic again.
    let kafka = blazz_projections::kafka::KafkaConfig { group: "another-group".into(), ..broker.config() };
    let feed = KafkaFeed::new(&kafka).await.expect("feed").revealing(vault(&app));
    let mut runner = Runner::with_feed(pool.clone(), feed, Codec::new(), read_models::all(), vec![]);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.expect("count");
    let mut delivered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while delivered < total as usize {
        assert!(tokio::time::Instant::now() < deadline, "redelivered only {delivered} of {total}");
        delivered += runner.step().await.expect("step");
    }
    assert_eq!(dump(&pool, &tables).await, before, "a redelivery changed the read models");
    applied_exactly_once(&pool).await;
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_broker_that_comes_back_empty_is_refilled_from_the_log(pool: PgPool) {
    let mut broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, true)).await;
    let ws = app.workspace().await;
    let p = mixed_workload(&app, &ws).await;
    consistent(&app, &ws, p).await;

    broker.restart_empty().await;
    let mut last = 0;
    for i in 1..=4 {
        last = app.post("/v1/contacts", &ws.key, json!({"phone": format!("+628130000000{i}")})).await.expect(201).body
            ["position"]
            .as_i64()
            .expect("p");
    }
    consistent(&app, &ws, last).await;
    assert_eq!(contacts_in(&app, &ws).await, 9);
    let republished: i32 =
        sqlx::query_scalar("SELECT republished FROM kafka_relay").fetch_one(&pool).await.expect("relay row");
    assert!(republished >= 1, "the relay noticed the empty broker");
    applied_exactly_once(&pool).await;
}

/// Steps the relay until it has published the whole log.
/// Steps the relay until its cursor has passed every event of the log (a step reads only below the
/// oldest transaction still running, so one that publishes nothing may still have stopped short).
async fn publish_all(relay: &mut Relay, pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match relay.step().await {
            Ok(0) => {
                let behind: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM events e WHERE NOT EXISTS (SELECT 1 FROM kafka_relay r
                         WHERE (r.transaction_id, r.position) >= (e.transaction_id, e.position)))",
                )
                .fetch_one(pool)
                .await
                .expect("relay cursor");
                if !behind {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("relay step failed, again: {e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "the relay never caught up");
    }
}

/// Steps the runner until every projector has applied as many events as the log holds.
async fn apply_all(runner: &mut Runner<KafkaFeed>, pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        runner.step().await.expect("step");
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT projection FROM projection_partition_checkpoints GROUP BY projection
                                   HAVING sum(events_applied) < (SELECT count(*) FROM events)) AS b",
        )
        .fetch_one(pool)
        .await
        .expect("behind");
        let started: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT projection) FROM projection_partition_checkpoints")
                .fetch_one(pool)
                .await
                .expect("started");
        if behind == 0 && started == projection_names().len() as i64 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the projectors never caught up");
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn messages_published_into_an_emptied_topic_wait_for_the_ones_it_lost(pool: PgPool) {
    let mut broker = Broker::start().await;
    // The gateway only: the test steps the relay and the projectors itself.
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let kafka = broker.config();
    let mut relay = Relay::new(pool.clone(), sealed(&pool), kafka.clone(), projection_names()).await.expect("relay");
    let feed = KafkaFeed::new(&kafka).await.expect("feed").revealing(vault(&app));
    let mut runner = Runner::with_feed(pool.clone(), feed, Codec::new(), read_models::all(), vec![]);
    let ws = app.workspace().await;
    let phone = |i: i32| format!("+628120000000{i}");

    // 1 and 2: published and applied. 3 and 4: published, then lost with the broker before any
    // projector applied them.
    for i in 1..=2 {
        app.contact(&ws, &phone(i), json!({})).await;
    }
    publish_all(&mut relay, &pool).await;
    apply_all(&mut runner, &pool).await;
    for i in 3..=4 {
        app.contact(&ws, &phone(i), json!({})).await;
    }
    publish_all(&mut relay, &pool).await;
    broker.restart_empty().await;
    // Someone (another process starting) recreates the topics before the relay looks.
    ensure_topics(&kafka).await.expect("topics");

    // 5 and 6 go into the emptied topic, chained after 4; the relay then sees the broker lost data.
    for i in 5..=6 {
        app.contact(&ws, &phone(i), json!({})).await;
    }
    publish_all(&mut relay, &pool).await;
    let republished: i32 =
        sqlx::query_scalar("SELECT republished FROM kafka_relay").fetch_one(&pool).await.expect("relay row");
    assert_eq!(republished, 1, "the relay noticed the emptied topic");

    // The projectors leave 5 and 6 until 3 and 4 are back, and apply each once.
    apply_all(&mut runner, &pool).await;
    applied_exactly_once(&pool).await;
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_contacts WHERE workspace_id = $1::uuid")
        .bind(&ws.id)
        .fetch_one(&pool)
        .await
        .expect("contacts");
    assert_eq!(contacts, 6);
}

/// A broker that came back empty and was refilled up to the relay's floors by someone else (here raw
/// messages; in life, the stored half of a publication that timed out) has watermarks that look whole.
/// A relay starting on it checks the messages below its floors, finds them foreign and republishes.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_relay_starting_on_a_topic_refilled_past_its_floors_republishes(pool: PgPool) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let kafka = broker.config();
    let mut relay = Relay::new(pool.clone(), sealed(&pool), kafka.clone(), projection_names()).await.expect("relay");
    let ws = app.workspace().await;
    for i in 1..=3 {
        app.contact(&ws, &format!("+62812000001{i}"), json!({})).await;
    }
    publish_all(&mut relay, &pool).await;
    drop(relay);
    let partition = partition_of(Uuid::parse_str(&ws.id).expect("workspace id"), kafka.partitions);
    let floor: i64 = sqlx::query_scalar("SELECT next_offset FROM kafka_relay_partitions WHERE partition = $1")
        .bind(partition)
        .fetch_one(&pool)
        .await
        .expect("floor");
    assert!(floor > 0, "the relay published to the workspace's partition");

    broker.restart_empty().await;
    ensure_topics(&kafka).await.expect("topics");
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &kafka.brokers).create().expect("producer");
    let topic = kafka.events_topic();
    for i in 0..floor + 2 {
        let body = format!("not the relay's {i}");
        let record = FutureRecord::<str, str>::to(&topic).partition(partition).payload(&body);
        producer.send(record, Duration::from_secs(10)).await.expect("raw message delivered");
    }

    let mut relay = Relay::new(pool.clone(), sealed(&pool), kafka.clone(), projection_names()).await.expect("relay");
    assert!(!relay.verify().await.expect("verify"), "the watermarks alone look whole: the case this test is about");
    publish_all(&mut relay, &pool).await;
    let republished: i32 =
        sqlx::query_scalar("SELECT republished FROM kafka_relay").fetch_one(&pool).await.expect("relay row");
    assert_eq!(republished, 1, "the relay found the refilled partition");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_busy_topic_is_not_mistaken_for_a_lost_one(pool: PgPool) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, false)).await;
    let mut relay = Relay::new(pool.clone(), sealed(&pool), broker.config(), projection_names()).await.expect("relay");
    let ws = app.workspace().await;
    // Many events of one workspace in one step: one partition, multi-message produce requests (tansu
    // reports a high watermark behind such a request).
    let rows: Vec<serde_json::Value> = (0..300).map(|i| json!({"phone": format!("+62813{i:08}")})).collect();
    app.post("/v1/contacts/import", &ws.key, json!(rows)).await.expect(200);
    publish_all(&mut relay, &pool).await;
    for _ in 0..3 {
        assert!(!relay.verify().await.expect("verify"), "the relay took a busy topic for a lost one");
    }
    let republished: i32 =
        sqlx::query_scalar("SELECT republished FROM kafka_relay").fetch_one(&pool).await.expect("relay row");
    assert_eq!(republished, 0);
}

/// The workspaces whose deltas a hub delivered, from a subscription taken before its projectors started.
struct Delivered(tokio::sync::broadcast::Receiver<Arc<Delta>>, BTreeSet<Uuid>);

impl Delivered {
    fn from(hub: &Hub) -> Self {
        Self(hub.subscribe_all(), BTreeSet::new())
    }

    fn workspaces(&mut self) -> &BTreeSet<Uuid> {
        while let Ok(d) = self.0.try_recv() {
            self.1.insert(d.workspace_id);
        }
        &self.1
    }
}

/// One contact per workspace; waits until the read models have each of them.
async fn a_contact_each(app: &TestApp, workspaces: &[Ws], round: usize) {
    for (i, ws) in workspaces.iter().enumerate() {
        let phone = format!("+62813{round:04}{i:04}");
        let p = app.post("/v1/contacts", &ws.key, json!({ "phone": phone })).await.expect(201).body["position"]
            .as_i64()
            .expect("position");
        consistent(app, ws, p).await;
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn projector_processes_share_the_partitions_and_one_takes_over_when_the_other_stops(pool: PgPool) {
    let (broker, app, _relay) = gateway_and_relay(&pool).await;
    let kafka = broker.config();
    // Two `blazz project` processes in one consumer group; each hands its deltas to a hub of its own, so
    // the test sees which one applied what.
    let (hub_a, hub_b) = (Hub::new(100_000), Hub::new(100_000));
    let (mut from_a, mut from_b) = (Delivered::from(&hub_a), Delivered::from(&hub_b));
    let (stop_a, a_running) = watch::channel(false);
    let (a, _) = server::spawn_kafka_projectors(pool.clone(), &kafka, vault(&app), Some(hub_a.clone()), a_running)
        .await
        .expect("a");
    let (_stop_b, b_running) = watch::channel(false);
    let _b = server::spawn_kafka_projectors(pool.clone(), &kafka, vault(&app), Some(hub_b.clone()), b_running)
        .await
        .expect("b");

    // A workspace on every partition.
    let mut workspaces = vec![];
    let mut partitions = BTreeSet::new();
    while partitions.len() < kafka.partitions as usize {
        let ws = app.workspace().await;
        partitions.insert(partition_of(ws.id.parse().expect("workspace id"), kafka.partitions));
        workspaces.push(ws);
    }
    // Until the group has settled with both members holding partitions, one may have applied all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    loop {
        round += 1;
        a_contact_each(&app, &workspaces, round).await;
        if !from_a.workspaces().is_empty() && !from_b.workspaces().is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "one projector process never got a partition");
    }
    applied_exactly_once(&pool).await;
    // Settled: each workspace's partition belongs to exactly one of them, so all of a workspace's
    // events go to the same one (processes that each read everything would split them).
    let (mut round_a, mut round_b) = (Delivered::from(&hub_a), Delivered::from(&hub_b));
    for _ in 0..5 {
        round += 1;
        a_contact_each(&app, &workspaces, round).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while round_a.workspaces().len() + round_b.workspaces().len() < workspaces.len() {
        assert!(tokio::time::Instant::now() < deadline, "every workspace's contact reached a hub");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let both: Vec<_> = round_a.workspaces().intersection(round_b.workspaces()).copied().collect();
    assert!(both.is_empty(), "workspaces applied by both processes: {both:?}");

    // One process stops: the other takes over its partitions and applies what comes next.
    stop_a.send(true).expect("stop a");
    a.await.expect("a stops");
    let mut from_b_now = Delivered::from(&hub_b);
    round += 1;
    a_contact_each(&app, &workspaces, round).await;
    // (Deltas go out just after the batch commits: give the last one a moment.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while from_b_now.workspaces().len() < workspaces.len() {
        assert!(tokio::time::Instant::now() < deadline, "b applies every workspace now, a's too");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    applied_exactly_once(&pool).await;
}

/// The first `contact.created` of `stream` a consumer of its own (group `group`) reads from the topic.
async fn created_on_topic(kafka: &blazz_projections::kafka::KafkaConfig, vault: Option<Vault>, stream: &str) -> Value {
    use blazz_projections::feed::Feed;
    let config =
        blazz_projections::kafka::KafkaConfig { group: format!("auditor-{}", Uuid::now_v7()), ..kafka.clone() };
    let mut feed = KafkaFeed::new(&config).await.expect("feed");
    if let Some(v) = vault {
        feed = feed.revealing(v);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let batch = feed.next_batch(&Default::default()).await.expect("batch");
        if let Some(e) = batch.iter().find(|e| e.record.stream_id == stream && e.record.event_type == "contact.created")
        {
            return json!({"payload": e.record.payload, "erased": e.record.erased});
        }
        feed.committed().await.expect("commit");
        assert!(tokio::time::Instant::now() < deadline, "{stream} never came on the topic");
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_topic_carries_personal_data_sealed_and_consumers_see_it_erased_after_erasure(pool: PgPool) {
    let broker = Broker::start().await;
    let app = TestApp::spawn_with(pool.clone(), kafka_settings(&broker, true)).await;
    let kafka = broker.config();
    let ws = app.workspace().await;
    let c =
        app.post("/v1/contacts", &ws.key, json!({"phone": "+6281234567890", "name": "Wulan Sari"})).await.expect(201);
    let id = c.id("contact_id");
    // The projectors behind Kafka opened it.
    let shown = app.get(&format!("/v1/contacts/{id}?min_position={}", c.body["position"]), &ws.key).await.expect(200);
    assert_eq!(shown.body["name"], "Wulan Sari");
    // What the topic itself holds: sealed.
    let stream = format!("contact-{id}");
    let raw = created_on_topic(&kafka, None, &stream).await;
    assert_eq!(raw["payload"]["$pii"]["fields"], json!(["/phone", "/name", "/attributes"]), "{raw}");
    assert_eq!(raw["payload"]["name"], Value::Null, "{raw}");
    assert!(!raw.to_string().contains("Wulan") && !raw.to_string().contains("6281234567890"), "{raw}");

    let erased = app.post(&format!("/v1/contacts/{id}/erase"), &ws.key, json!({})).await.expect(200);
    let gone = app.get(&format!("/v1/contacts/{id}?min_position={}", erased.body["position"]), &ws.key).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    // A consumer reading the topic afresh (a new projector, a rebuild over Kafka) finds it erased.
    let later = created_on_topic(&kafka, Some(vault(&app)), &stream).await;
    assert_eq!(later["payload"]["name"], serde_json::Value::Null);
    assert_eq!(later["erased"], json!(["/phone", "/name", "/attributes"]));
    applied_exactly_once(&pool).await;
}
