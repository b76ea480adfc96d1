//! The behaviour every [`EventStore`] must show. Each check takes a fresh, empty store and panics with
//! a message on the first deviation; `tests/` runs them against PostgreSQL and the in-memory store.

use super::*;
use std::collections::HashSet;
use std::sync::Arc;

fn meta() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: "system:conformance".into(),
        request_id: None,
        agent_id: None,
    }
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "test.happened".into(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n }),
    }
}

fn request(stream: &str, ws: Uuid, expected: ExpectedVersion, count: u64) -> AppendRequest {
    AppendRequest::new(stream.into(), ws, expected, (1..=count).map(event).collect(), meta())
}

/// Reads the log until `expected` events arrived. The read horizon is the oldest running transaction
/// of the whole database cluster, so other sessions' open transactions can hold it back for a moment:
/// an empty page means "not yet", and the wait for the rest is bounded.
pub async fn read_whole_log(store: &dyn EventStore, workspace: Option<Uuid>, expected: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut cursor = LogCursor::START;
    let mut all = vec![];
    while all.len() < expected {
        let page = store.read_log(cursor, 97, workspace).await.expect("read_log");
        if page.events.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "log stalled at {} of {expected} events", all.len());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        }
        assert!(page.next > cursor, "cursor must advance");
        cursor = page.next;
        all.extend(page.events);
    }
    // Nothing beyond what was written.
    assert!(
        store.read_log(cursor, 97, workspace).await.expect("read_log").events.is_empty(),
        "more events than written"
    );
    all
}

/// Appended events come back from the stream in order with their metadata; a stream can be read up
/// to a version.
pub async fn append_and_read_stream(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let r = request("test-a", ws, ExpectedVersion::NoStream, 3);
    let out = store.append(r.clone()).await.expect("append");
    assert_eq!(out.stream_version, 3);
    let events = store.read_stream("test-a", 1, None).await.expect("read");
    assert_eq!(events.len(), 3);
    assert_eq!(events.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events[2].position, out.position.expect("position"));
    assert!(events.windows(2).all(|w| w[0].position < w[1].position), "positions follow versions");
    assert_eq!(events[0].metadata, r.metadata);
    assert_eq!(events[0].payload, r.events[0].payload);
    assert_eq!(events[0].workspace_id, ws);
    assert_eq!(store.read_stream("test-a", 1, Some(2)).await.expect("read").len(), 2);
    assert_eq!(store.read_stream("test-a", 3, None).await.expect("read").len(), 1);
    assert!(store.read_stream("test-none", 1, None).await.expect("read").is_empty());
    let both = store.read_streams(&["test-a".into(), "test-none".into()]).await.expect("read_streams");
    assert_eq!(both.len(), 3);
}

/// No-stream, exact and any expectations are enforced with a typed conflict.
pub async fn expected_versions_are_enforced(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    store.append(request("test-b", ws, ExpectedVersion::NoStream, 2)).await.expect("first");
    let conflict = |r: Result<AppendOutcome, AppendError>| matches!(r, Err(AppendError::Conflict { .. }));
    assert!(conflict(store.append(request("test-b", ws, ExpectedVersion::NoStream, 1)).await), "no-stream on existing");
    assert!(conflict(store.append(request("test-b", ws, ExpectedVersion::Exact(1), 1)).await), "stale version");
    assert!(
        conflict(store.append(request("test-b", ws, ExpectedVersion::Exact(5), 1)).await),
        "version from the future"
    );
    assert!(
        conflict(store.append(request("test-c", ws, ExpectedVersion::Exact(1), 1)).await),
        "exact on missing stream"
    );
    let out = store.append(request("test-b", ws, ExpectedVersion::Exact(2), 1)).await.expect("exact");
    assert_eq!(out.stream_version, 3);
    let out = store.append(request("test-b", ws, ExpectedVersion::Any, 2)).await.expect("any");
    assert_eq!(out.stream_version, 5);
    let versions: Vec<u64> =
        store.read_stream("test-b", 1, None).await.expect("read").iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5], "failed appends left nothing behind");
}

/// Many writers race on one stream, each reading the version and appending at it: exactly one wins
/// each version, the stream stays contiguous, and every winner's event is the one stored.
pub async fn concurrent_writers_on_one_stream(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let mut tasks = vec![];
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = vec![];
            for _ in 0..15 {
                let current = store.read_stream("test-race", 1, None).await.expect("read").len() as u64;
                let r = request("test-race", ws, ExpectedVersion::from_current(current), 1);
                let id = r.events[0].event_id;
                match store.append(r).await {
                    Ok(out) => wins.push((out.stream_version, id)),
                    Err(AppendError::Conflict { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            wins
        }));
    }
    let mut wins = vec![];
    for t in tasks {
        wins.extend(t.await.expect("task"));
    }
    let stored = store.read_stream("test-race", 1, None).await.expect("read");
    assert!(!wins.is_empty());
    assert_eq!(stored.len(), wins.len(), "one stored event per successful append");
    let versions: HashSet<u64> = wins.iter().map(|w| w.0).collect();
    assert_eq!(versions.len(), wins.len(), "no version won twice");
    for (version, id) in &wins {
        assert_eq!(stored[(*version - 1) as usize].event_id, *id, "the winner of version {version} is stored");
    }
    assert!(stored.iter().enumerate().all(|(i, e)| e.stream_version == i as u64 + 1), "contiguous versions");
}

/// Appends expecting `Any` never fail for a lost race: many of them at once on one stream, alone and
/// in groups, all go in, at contiguous versions.
pub async fn racing_any_appends_all_go_in(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let mut tasks = vec![];
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..5 {
                let any = || request("test-any", ws, ExpectedVersion::Any, 1);
                let outcomes = if i % 2 == 0 {
                    vec![store.append(any()).await]
                } else {
                    store.append_all(vec![any(), any()]).await
                };
                for o in outcomes {
                    o.expect("an Any append lost a race and failed");
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut appended = 0;
    for t in tasks {
        appended += t.await.expect("task");
    }
    let stored = store.read_stream("test-any", 1, None).await.expect("read");
    assert_eq!(stored.len(), appended, "every Any append stored once");
    assert!(stored.iter().enumerate().all(|(i, e)| e.stream_version == i as u64 + 1), "contiguous versions");
}

/// After concurrent appends on many streams, reading the log returns every event exactly once, in
/// (transaction, position) order, and a workspace filter returns only that workspace's events.
pub async fn log_read_is_complete_and_ordered(store: Arc<dyn EventStore>) {
    let (ws1, ws2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tasks = vec![];
    for i in 0..64u64 {
        let store = store.clone();
        let ws = if i % 2 == 0 { ws1 } else { ws2 };
        tasks.push(tokio::spawn(async move {
            store
                .append(request(&format!("test-log{i}"), ws, ExpectedVersion::NoStream, 1 + i % 3))
                .await
                .expect("append")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let expected: u64 = (0..64u64).map(|i| 1 + i % 3).sum();
    let all = read_whole_log(&*store, None, expected as usize).await;
    assert_eq!(all.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), all.len(), "no duplicates");
    assert!(all.windows(2).all(|w| LogCursor::of(&w[0]) < LogCursor::of(&w[1])), "log order");
    let count1 = all.iter().filter(|e| e.workspace_id == ws1).count();
    let only1 = read_whole_log(&*store, Some(ws1), count1).await;
    assert!(count1 > 0 && only1.iter().all(|e| e.workspace_id == ws1));
    let only2 = read_whole_log(&*store, Some(ws2), all.len() - count1).await;
    assert!(only2.iter().all(|e| e.workspace_id == ws2));
}

/// The idempotency record is written with the events; a second command with the same key writes
/// nothing and is told the key is used.
pub async fn idempotency_is_atomic_with_events(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let mut first = request("test-i1", ws, ExpectedVersion::NoStream, 1);
    first.idempotency = Some(IdempotencyWrite {
        scope: ws,
        key: "k1".into(),
        fingerprint: "f".into(),
        result: serde_json::json!({"id": 1}),
    });
    let out = store.append(first).await.expect("first");
    let rec = store.idempotency_record(ws, "k1").await.expect("get").expect("stored");
    assert_eq!(rec.result, serde_json::json!({"id": 1}));
    assert_eq!(rec.position, out.position);
    let mut second = request("test-i2", ws, ExpectedVersion::NoStream, 1);
    second.idempotency = Some(IdempotencyWrite {
        scope: ws,
        key: "k1".into(),
        fingerprint: "f".into(),
        result: serde_json::json!({"id": 2}),
    });
    assert!(matches!(store.append(second).await, Err(AppendError::IdempotencyKeyUsed { .. })));
    assert!(store.read_stream("test-i2", 1, None).await.expect("read").is_empty(), "loser wrote nothing");
    assert!(store.idempotency_record(Uuid::now_v7(), "k1").await.expect("get").is_none(), "keys are per workspace");
    // A failed command does not consume its key.
    let mut conflicting = request("test-i1", ws, ExpectedVersion::NoStream, 1);
    conflicting.idempotency =
        Some(IdempotencyWrite { scope: ws, key: "k2".into(), fingerprint: "f".into(), result: serde_json::json!({}) });
    assert!(store.append(conflicting).await.is_err());
    assert!(store.idempotency_record(ws, "k2").await.expect("get").is_none());
    let w = IdempotencyWrite { scope: ws, key: "k3".into(), fingerprint: "f".into(), result: serde_json::json!({}) };
    assert!(store.put_idempotency_record(w.clone(), None).await.expect("put"));
    assert!(!store.put_idempotency_record(w, None).await.expect("put"));
}

fn claim(owner: &str, ws: Uuid, value: &str) -> Claim {
    Claim {
        scope: "test_phone".into(),
        value: value.into(),
        owner: owner.into(),
        workspace_id: ws,
        data: serde_json::json!({"k": owner}),
    }
}

/// Claims are exclusive, kept with their data, and free again once released.
pub async fn claims_are_exclusive_until_released(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let mut a = request("test-ca", ws, ExpectedVersion::NoStream, 1);
    a.claims.push(claim("test-ca", ws, "+62811"));
    store.append(a).await.expect("a");
    let mut b = request("test-cb", ws, ExpectedVersion::NoStream, 1);
    b.claims.push(claim("test-cb", ws, "+62811"));
    match store.append(b.clone()).await {
        Err(AppendError::ClaimTaken { owner, .. }) => assert_eq!(owner.as_deref(), Some("test-ca")),
        other => panic!("expected ClaimTaken, got {other:?}"),
    }
    assert!(store.read_stream("test-cb", 1, None).await.expect("read").is_empty());
    let held = store.claim("test_phone", "+62811").await.expect("claim").expect("held");
    assert_eq!(held.data, serde_json::json!({"k": "test-ca"}));
    assert_eq!(
        store.owners_with_claim("test_phone", ws, &["test-ca".into(), "test-cb".into()]).await.expect("owners"),
        ["test-ca"]
    );
    assert!(store
        .owners_with_claim("test_phone", Uuid::now_v7(), &["test-ca".into()])
        .await
        .expect("owners")
        .is_empty());
    // Another workspace learns that the value is taken, not by whom.
    let other = Uuid::now_v7();
    let mut c = request("test-cc", other, ExpectedVersion::NoStream, 1);
    c.claims.push(claim("test-cc", other, "+62811"));
    match store.append(c).await {
        Err(AppendError::ClaimTaken { owner, .. }) => assert_eq!(owner, None, "the holder of another workspace"),
        other => panic!("expected ClaimTaken, got {other:?}"),
    }
    let mut release = request("test-ca", ws, ExpectedVersion::Exact(1), 1);
    release.releases.push(ClaimRelease { scope: "test_phone".into(), value: "+62811".into(), owner: "test-ca".into() });
    store.append(release).await.expect("release");
    store.append(b).await.expect("claim after release");
}

/// Many commands race for one value: exactly one gets it, and the losers' failures do not free it.
pub async fn racing_claims_have_one_winner(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("test-race{i}");
                let mut r = request(&stream, ws, ExpectedVersion::NoStream, 1);
                r.claims.push(claim(&stream, ws, "+62877"));
                store.append(r).await.map(|_| stream)
            })
        })
        .collect();
    let mut winners = vec![];
    for t in tasks {
        match t.await.expect("task") {
            Ok(stream) => winners.push(stream),
            Err(AppendError::ClaimTaken { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let held = store.claim("test_phone", "+62877").await.expect("claim").expect("the winner still holds the claim");
    assert_eq!(held.owner, winners[0]);
    let mut late = request("test-late", ws, ExpectedVersion::NoStream, 1);
    late.claims.push(claim("test-late", ws, "+62877"));
    assert!(matches!(store.append(late).await, Err(AppendError::ClaimTaken { .. })), "a later claim still fails");
}

/// A command that fails (stale version, taken claim, duplicate event id on its second event) does not
/// fail the commands appended concurrently with it, and leaves nothing of itself behind.
pub async fn failures_do_not_fail_batch_mates(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    store.append(request("test-taken", ws, ExpectedVersion::NoStream, 1)).await.expect("setup");
    let mut holder = request("test-holder", ws, ExpectedVersion::NoStream, 1);
    holder.claims.push(claim("test-holder", ws, "+62899"));
    store.append(holder).await.expect("setup claim");
    let existing_id = store.read_stream("test-taken", 1, None).await.expect("read")[0].event_id;

    let mut tasks = vec![];
    for i in 0..120u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = match i % 6 {
                0 => request("test-taken", ws, ExpectedVersion::NoStream, 1),
                1 => {
                    let mut r = request(&format!("test-bad{i}"), ws, ExpectedVersion::NoStream, 1);
                    r.claims.push(claim(&format!("test-bad{i}"), ws, "+62899"));
                    r
                }
                2 => {
                    let mut r = request(&format!("test-bad{i}"), ws, ExpectedVersion::NoStream, 2);
                    r.events[1].event_id = existing_id;
                    r
                }
                _ => request(&format!("test-good{i}"), ws, ExpectedVersion::NoStream, 2),
            };
            (i, store.append(r).await)
        }));
    }
    for t in tasks {
        let (i, result) = t.await.expect("task");
        match i % 6 {
            0 => assert!(matches!(result, Err(AppendError::Conflict { .. })), "{i}: {result:?}"),
            1 => assert!(matches!(result, Err(AppendError::ClaimTaken { .. })), "{i}: {result:?}"),
            2 => assert!(matches!(result, Err(AppendError::Conflict { .. })), "{i}: {result:?}"),
            _ => assert_eq!(result.expect("good append").stream_version, 2),
        }
    }
    let all = read_whole_log(&*store, Some(ws), 2 + 60 * 2).await;
    assert!(all.iter().all(|e| !e.stream_id.starts_with("test-bad")), "partial writes were undone");
}

/// `append_all` answers each request on its own, in order: a stale version or a taken claim fails only
/// its request; the others are written.
pub async fn append_all_answers_each_request(store: Arc<dyn EventStore>) {
    let ws = Uuid::now_v7();
    store.append(request("test-existing", ws, ExpectedVersion::NoStream, 1)).await.expect("setup");
    let mut taken = request("test-claimer", ws, ExpectedVersion::NoStream, 1);
    taken.claims.push(claim("test-claimer", ws, "+62811"));
    store.append(taken).await.expect("setup claim");
    let mut claiming = request("test-second-claimer", ws, ExpectedVersion::NoStream, 1);
    claiming.claims.push(claim("test-second-claimer", ws, "+62811"));
    let results = store
        .append_all(vec![
            request("test-a", ws, ExpectedVersion::NoStream, 2),
            request("test-existing", ws, ExpectedVersion::NoStream, 1),
            claiming,
            request("test-existing", ws, ExpectedVersion::Exact(1), 1),
        ])
        .await;
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().expect("a").stream_version, 2);
    assert!(matches!(results[1], Err(AppendError::Conflict { .. })), "{:?}", results[1]);
    assert!(matches!(results[2], Err(AppendError::ClaimTaken { .. })), "{:?}", results[2]);
    assert_eq!(results[3].as_ref().expect("exact").stream_version, 2);
    assert_eq!(store.read_stream("test-second-claimer", 1, None).await.expect("read"), vec![]);
}

/// Runs every check above, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn EventStore>>,
{
    append_and_read_stream(fresh().await).await;
    expected_versions_are_enforced(fresh().await).await;
    concurrent_writers_on_one_stream(fresh().await).await;
    racing_any_appends_all_go_in(fresh().await).await;
    log_read_is_complete_and_ordered(fresh().await).await;
    idempotency_is_atomic_with_events(fresh().await).await;
    claims_are_exclusive_until_released(fresh().await).await;
    racing_claims_have_one_winner(fresh().await).await;
    failures_do_not_fail_batch_mates(fresh().await).await;
    append_all_answers_each_request(fresh().await).await;
}
