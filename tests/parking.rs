//! Parking of events a projection cannot apply: an event the codec cannot read, and a projector that
//! panics, are parked; the projection goes on past them and other workspaces' reads stay consistent.

use async_trait::async_trait;
use blazz_commands::codec::Codec;
use blazz_commands::store::NewEvent;
use blazz_domain::contact::ContactEvent;
use blazz_domain::DomainEvent;
use blazz_projections::delta::{Change, Hub};
use blazz_projections::parked;
use blazz_projections::projector::{Applied, Projector};
use blazz_projections::runner::Runner;
use blazz_tests::{TestApp, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// An event of a known type whose payload is not that type's (as a bug of an old version might have
/// written) is parked by every projection that reads contacts; the next contact and another
/// workspace's writes are read as usual.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_undecodable_event_is_parked_and_the_log_after_it_is_read(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (broken, other) = (app.workspace().await, app.workspace().await);
    let stream = format!("contact-{}", Uuid::now_v7());
    let bogus = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "contact.created".into(),
        schema_version: 1,
        payload: json!({"bogus": [1, 2]}),
    };
    let position = app.append_raw(&broken, &stream, bogus).await;

    let same = app.post("/v1/contacts", &broken.key, json!({"phone": "+6281234500001"})).await.expect(201);
    let id = same.id("contact_id");
    app.get(&format!("/v1/contacts/{id}?min_position={}", same.body["position"]), &broken.key).await.expect(200);
    let theirs = app.post("/v1/contacts", &other.key, json!({"phone": "+6281234500002"})).await.expect(201);
    let id = theirs.id("contact_id");
    app.get(&format!("/v1/contacts/{id}?min_position={}", theirs.body["position"]), &other.key).await.expect(200);

    let parked = app.get("/v1/operator/parked-events", OPERATOR_TOKEN).await.expect(200).body;
    let items: Vec<&Value> = parked["items"].as_array().expect("items").iter().collect();
    assert!(!items.is_empty(), "{parked}");
    for item in &items {
        assert_eq!((item["position"].as_i64(), item["stream_id"].as_str()), (Some(position), Some(stream.as_str())));
        assert!(item["error"].as_str().unwrap_or("").contains("undecodable"), "{item}");
    }
    assert!(items.iter().any(|i| i["projection"] == "contacts"), "{parked}");
}

/// Records the names of the contacts it applies, by position (a batch rolled back and applied again
/// records the same again); panics on the one named "boom".
struct Panicky {
    seen: Arc<Mutex<BTreeMap<i64, String>>>,
}

#[async_trait]
impl Projector for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    async fn apply(&self, _conn: &mut PgConnection, event: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        if let DomainEvent::Contact(ContactEvent::Created { name: Some(name), .. }) = &event.event {
            assert_ne!(name, "boom", "the projector's bug");
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(event.record.position, name.clone());
        }
        Ok(vec![])
    }
}

/// A projector that panics on an event parks it with the panic's message, and its runner goes on with
/// the events after it (in the same and in other workspaces) instead of dying or stopping there.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_panicking_projector_parks_the_event_and_goes_on(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let (ws, other) = (app.workspace().await, app.workspace().await);
    for (w, phone, name) in [
        (&ws, "+6281234500001", "first"),
        (&ws, "+6281234500002", "boom"),
        (&other, "+6281234500003", "theirs"),
        (&ws, "+6281234500004", "last"),
    ] {
        app.post("/v1/contacts", &w.key, json!({"phone": phone, "name": name})).await.expect(201);
    }
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let projectors: Vec<Arc<dyn Projector>> = vec![Arc::new(Panicky { seen: seen.clone() })];
    let runner = Runner::new(pool.clone(), app.commands().store().clone(), Codec::new(), projectors, Hub::new(16));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(runner.run(stopped));
    let names = || seen.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect::<Vec<_>>();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while names().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the runner stopped at the panic: {:?}", names());
        assert!(!running.is_finished(), "the runner died");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    running.await.expect("joined").expect("the runner ends cleanly");

    assert_eq!(names(), ["first", "theirs", "last"]);
    let parked = parked::list(&pool, false, 0, 100).await.expect("list");
    let mine: Vec<_> = parked.iter().filter(|p| p.projection == "panicky").collect();
    assert_eq!(mine.len(), 1, "{parked:?}");
    assert!(mine[0].error.contains("panic") && mine[0].error.contains("the projector's bug"), "{}", mine[0].error);
    assert_eq!(mine[0].workspace_id.to_string(), ws.id);
}
