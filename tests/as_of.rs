//! State as of a past point: a contact's state at several log positions and times, from the history
//! route and from `?as_of=` on the contact query, equals the domain's own replay of the stream's
//! events up to that point; before the stream existed there is no state, and another workspace's
//! stream is not found.

use blazz_commands::codec::Codec;
use blazz_domain::aggregate::Aggregate;
use blazz_domain::contact::{Contact, ContactEvent};
use blazz_tests::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;

/// The contact replayed by the domain from the stored events up to `position`.
async fn replayed(app: &TestApp, stream: &str, position: i64) -> Value {
    let events = app.commands().store().read_stream(stream, 1, None).await.expect("stream");
    let codec = Codec::new();
    let decoded: Vec<ContactEvent> = events
        .iter()
        .filter(|e| e.position <= position)
        .map(|e| ContactEvent::try_from(codec.decode(e).expect("decode")).ok().expect("a contact event"))
        .collect();
    serde_json::to_value(Contact::replay(&decoded)).expect("json")
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_contacts_state_as_of_each_point_is_its_replay_up_to_there(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let created = app
        .post(
            "/v1/contacts",
            &ws.key,
            json!({"phone": "+6281234567890", "name": "Budi",
        "attributes": {"city": "Bandung"}}),
        )
        .await
        .expect(201);
    let id = created.id("contact_id");
    let stream = format!("contact-{id}");
    let mut positions = vec![created.body["position"].as_i64().expect("position")];
    for change in [
        ("PATCH", format!("/v1/contacts/{id}"), json!({"name": "Budi S.", "attributes": {"city": "Jakarta"}})),
        ("POST", format!("/v1/contacts/{id}/opt-out"), json!({"reason": "STOP"})),
        ("POST", format!("/v1/contacts/{id}/labels"), json!({"add": ["vip"]})),
        ("PATCH", format!("/v1/contacts/{id}"), json!({"phone": "+6281234567891"})),
    ] {
        let method = reqwest::Method::from_bytes(change.0.as_bytes()).expect("method");
        let answer = app.call(method, &change.1, Some(&ws.key), Some(change.2), &[]).await.expect(200);
        positions.push(answer.body["position"].as_i64().expect("position"));
    }

    let history = app.get(&format!("/v1/history/streams/{stream}"), &ws.key).await.expect(200).body;
    let recorded: Vec<(i64, String)> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["position"].as_i64().unwrap_or(0), e["recorded_at"].as_str().unwrap_or("").to_owned()))
        .collect();
    // The PATCH of name and attributes wrote two events (in one transaction, so at one time).
    assert_eq!(recorded.len(), 6, "{history}");
    let mut states = vec![];
    for (i, (position, time)) in recorded.iter().enumerate() {
        let expected = replayed(&app, &stream, *position).await;
        let at = app.get(&format!("/v1/history/streams/{stream}/state?at_position={position}"), &ws.key).await;
        let at = at.expect(200).body;
        assert_eq!((&at["state"], at["version"].as_u64()), (&expected, Some(i as u64 + 1)), "at {position}");
        assert_eq!(at["position"], *position);
        // By its time: every event recorded by then (the events of its transaction too).
        let last_then = recorded.iter().filter(|(_, t)| t <= time).map(|(p, _)| *p).max().unwrap_or(0);
        let by_time = format!("/v1/history/streams/{stream}/state?at_time={}", time.replace('+', "%2B"));
        let by_time = app.get(&by_time, &ws.key).await.expect(200).body;
        assert_eq!(by_time["state"], replayed(&app, &stream, last_then).await, "at {time}");
        states.push(expected);
    }
    // Through the contact query, at each command's answer.
    for position in &positions {
        let queried = app.get(&format!("/v1/contacts/{id}?as_of={position}"), &ws.key).await.expect(200).body;
        assert_eq!(queried["state"], replayed(&app, &stream, *position).await, "as_of {position}");
    }
    // Each point differs from the one before: six different states, not one.
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    assert_eq!((&states[0]["name"], &states[0]["attributes"]["city"]), (&json!("Budi"), &json!("Bandung")));
    assert_eq!((&states[1]["name"], &states[1]["attributes"]["city"]), (&json!("Budi S."), &json!("Bandung")));
    assert_eq!(states[2]["attributes"]["city"], "Jakarta");
    assert_eq!(states[5]["phone"], "+6281234567891");

    // Before the stream existed: no state yet. Without a point: the latest.
    let before = format!("/v1/history/streams/{stream}/state?at_position={}", positions[0] - 1);
    let before = app.get(&before, &ws.key).await.expect(200).body;
    assert_eq!((before["version"].as_u64(), &before["state"]), (Some(0), &Value::Null));
    let now = app.get(&format!("/v1/history/streams/{stream}/state"), &ws.key).await.expect(200).body;
    assert_eq!(now["state"], states[5]);

    // Bad points, another workspace, and a stream of no aggregate.
    let both = format!("/v1/history/streams/{stream}/state?at_position=1&at_time=2026-01-01T00:00:00Z");
    assert_eq!(app.get(&both, &ws.key).await.expect(400).code(), "invalid_query");
    assert_eq!(
        app.get(&format!("/v1/contacts/{id}?as_of=yesterday"), &ws.key).await.expect(400).code(),
        "invalid_query"
    );
    let other = app.workspace().await;
    app.get(&format!("/v1/history/streams/{stream}/state"), &other.key).await.expect(404);
    app.get(&format!("/v1/contacts/{id}?as_of={}", positions[4]), &other.key).await.expect(404);
}

/// A long stream: the as-of fold keeps snapshots as it passes every 1,000th version, and answers from
/// them after; each answer, with and without snapshots, is the replay up to its point.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_long_streams_states_from_snapshots_are_its_replay(pool: PgPool) {
    use blazz_commands::as_of::SNAPSHOT_EVERY;
    let app = TestApp::spawn(pool.clone()).await;
    let ws = app.workspace().await;
    let id = app.contact(&ws, "+6281234567890", json!({})).await;
    let stream = format!("contact-{id}");
    let codec = Codec::new();
    let total = 2 * SNAPSHOT_EVERY + 500;
    for n in 2..=total {
        let set = [("visits".to_string(), json!(n))].into_iter().collect();
        let event = ContactEvent::AttributesChanged { set, removed: vec![] };
        app.append_raw(&ws, &stream, codec.encode(&blazz_domain::DomainEvent::Contact(event))).await;
    }
    let events = app.commands().store().read_stream(&stream, 1, None).await.expect("stream");
    assert_eq!(events.len() as u64, total);
    let at = |version: u64| events[version as usize - 1].position;
    let points = [1, SNAPSHOT_EVERY - 1, SNAPSHOT_EVERY, SNAPSHOT_EVERY + 1, 2 * SNAPSHOT_EVERY + 7, total];
    let state = |position: i64| {
        let url = format!("/v1/history/streams/{stream}/state?at_position={position}");
        let (app, key) = (&app, ws.key.clone());
        async move { app.get(&url, &key).await.expect(200).body }
    };
    // The first query at the end folds everything and keeps the snapshots it passes.
    let first = state(at(total)).await;
    assert_eq!(first["state"], replayed(&app, &stream, at(total)).await);
    let kept: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM stream_snapshots WHERE stream_id = $1 ORDER BY version")
            .bind(&stream)
            .fetch_all(&pool)
            .await
            .expect("snapshots");
    assert_eq!(kept, vec![SNAPSHOT_EVERY as i64, 2 * SNAPSHOT_EVERY as i64]);
    for version in points {
        let answer = state(at(version)).await;
        assert_eq!(answer["version"].as_u64(), Some(version));
        assert_eq!(answer["state"], replayed(&app, &stream, at(version)).await, "at version {version}");
        assert_eq!(answer["state"]["attributes"]["visits"], if version == 1 { Value::Null } else { json!(version) });
    }
}
