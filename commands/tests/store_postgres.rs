//! The PostgreSQL store against a real server: the conformance suite (one fresh database per check),
//! the gap-free read with a transaction committing late, and group commit.

use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
use blazz_commands::store::{
    conformance, AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogCursor, NewEvent,
};
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

fn store(pool: PgPool) -> Arc<dyn EventStore> {
    Arc::new(PgEventStore::new(pool, BatchConfig::default()))
}

macro_rules! conformance_tests {
    ($($name:ident),*) => {$(
        #[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
        async fn $name(pool: PgPool) {
            conformance::$name(store(pool)).await;
        }
    )*};
}

conformance_tests!(
    append_and_read_stream,
    expected_versions_are_enforced,
    concurrent_writers_on_one_stream,
    racing_any_appends_all_go_in,
    log_read_is_complete_and_ordered,
    idempotency_is_atomic_with_events,
    claims_are_exclusive_until_released,
    racing_claims_have_one_winner,
    failures_do_not_fail_batch_mates,
    append_all_answers_each_request
);

fn one_event(stream: &str, ws: Uuid) -> AppendRequest {
    AppendRequest::new(
        stream.into(),
        ws,
        ExpectedVersion::NoStream,
        vec![NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "test.happened".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
        }],
        EventMetadata {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "test".into(),
            request_id: None,
            agent_id: None,
        },
    )
}

/// A transaction takes a position, then another commits a later position first. A reader must not
/// move past the late one: it sees nothing until the early transaction ends, then both, in order.
#[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
async fn log_reader_never_skips_an_event_committed_late(pool: PgPool) {
    let store = store(pool.clone());
    let ws = Uuid::now_v7();
    let mut slow = pool.begin().await.unwrap();
    let early: i64 = sqlx::query_scalar(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, workspace_id, payload, metadata)
         VALUES ('test-slow', 1, $1, 'test.happened', 1, $2, '{}', $3) RETURNING position",
    )
    .bind(Uuid::now_v7())
    .bind(ws)
    .bind(serde_json::json!({"correlation_id": Uuid::now_v7(), "actor": "test"}))
    .fetch_one(&mut *slow)
    .await
    .unwrap();

    let late = store.append(one_event("test-fast", ws)).await.unwrap().position.unwrap();
    assert!(late > early, "the fast transaction got the later position");

    let page = store.read_log(LogCursor::START, 100, None).await.unwrap();
    assert!(page.events.is_empty(), "nothing is readable while an earlier transaction is open: {:?}", page.events);
    assert_eq!(page.next, LogCursor::START, "the cursor does not move past the open transaction");

    slow.commit().await.unwrap();
    let events = conformance::read_whole_log(&*store, None, 2).await;
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, [early, late], "both events, the early transaction's first");
}

/// A transaction that rolls back leaves no event and does not hold the reader back afterwards.
#[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
async fn rolled_back_transactions_leave_no_gap_and_no_stall(pool: PgPool) {
    let store = store(pool.clone());
    let ws = Uuid::now_v7();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, workspace_id, payload, metadata)
         VALUES ('test-rb', 1, $1, 'test.happened', 1, $2, '{}', '{\"correlation_id\":\"00000000-0000-0000-0000-000000000000\",\"actor\":\"t\"}')",
    )
    .bind(Uuid::now_v7())
    .bind(ws)
    .execute(&mut *tx)
    .await
    .unwrap();
    store.append(one_event("test-after", ws)).await.unwrap();
    tx.rollback().await.unwrap();
    let events = conformance::read_whole_log(&*store, None, 1).await;
    assert_eq!(events[0].stream_id, "test-after");
}

/// Concurrent appends share transactions: far fewer transactions than commands.
#[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
async fn concurrent_appends_share_transactions(pool: PgPool) {
    let store = store(pool.clone());
    let ws = Uuid::now_v7();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(one_event(&format!("test-gc{i}"), ws)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut events: Vec<(String, u64)> =
        sqlx::query_as::<_, (String, String)>("SELECT stream_id, transaction_id::text FROM events")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(s, t)| (s, t.parse().unwrap()))
            .collect();
    events.sort();
    assert_eq!(events.len(), 400);
    let transactions: HashSet<u64> = events.iter().map(|e| e.1).collect();
    assert!(transactions.len() < 200, "400 appends used {} transactions", transactions.len());
}

/// The log is ordered by transaction id as a number. Sorting it as text puts "10" before "9", which
/// returns events out of order and lets a checkpointing reader skip some.
#[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
async fn log_order_is_numeric_across_transaction_id_digit_boundaries(pool: PgPool) {
    let store = store(pool.clone());
    let ws = Uuid::now_v7();
    // Transaction ids 9 and 10 are long finished, so both are below the read horizon.
    for (stream, xid) in [("test-nine", "9"), ("test-ten", "10")] {
        sqlx::query(
            "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, workspace_id, payload, metadata)
             VALUES ($1::text::xid8, $2, 1, $3, 'test.happened', 1, $4, '{}', '{\"correlation_id\":\"00000000-0000-0000-0000-000000000000\",\"actor\":\"t\"}')",
        )
        .bind(xid)
        .bind(stream)
        .bind(Uuid::now_v7())
        .bind(ws)
        .execute(&pool)
        .await
        .unwrap();
    }
    let page = store.read_log(LogCursor::START, 1, None).await.unwrap();
    assert_eq!(page.events[0].transaction_id, 9, "the lowest transaction id comes first");
    let page = store.read_log(page.next, 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.transaction_id).collect::<Vec<_>>(), [10]);
}

/// Group commit shares round trips, never fate: an append the database refuses (a NUL in its payload,
/// reaching the store because the test bypasses every check above it) fails alone with its own error;
/// the good appends of other workspaces sent at the same time all commit.
#[sqlx::test(migrator = "blazz_commands::store::postgres::MIGRATOR")]
async fn a_refused_append_fails_alone_and_its_batch_mates_commit(pool: PgPool) {
    use blazz_commands::store::AppendError;
    let store = store(pool.clone());
    let (poisoner, neighbour) = (Uuid::now_v7(), Uuid::now_v7());
    let mut requests = vec![];
    for i in 0..200 {
        let mut r = one_event(&format!("test-good{i}"), neighbour);
        if i % 50 == 7 {
            r = one_event(&format!("test-poison{i}"), poisoner);
            r.events[0].payload = serde_json::json!({ "name": "nul \u{0} inside" });
        }
        requests.push(r);
    }
    // One group: all of it reaches one writer, so it would share one transaction.
    let outcomes = store.append_all(requests).await;
    let mut refused = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i % 50 == 7 {
            assert!(matches!(outcome, Err(AppendError::Rejected(_))), "{i}: {outcome:?}");
            refused += 1;
        } else {
            assert!(outcome.is_ok(), "{i}: {outcome:?}");
        }
    }
    assert_eq!(refused, 4);
    let stored: Vec<(Uuid, i64)> = sqlx::query_as("SELECT workspace_id, count(*) FROM events GROUP BY workspace_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, [(neighbour, 196)], "every good append committed, nothing of the refused ones");

    // Concurrent single appends too (several writers, batches formed by timing).
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = one_event(&format!("test-c{i}"), if i % 3 == 0 { poisoner } else { neighbour });
                if i % 3 == 0 {
                    r.events[0].payload = serde_json::json!({ "note": "\u{0}" });
                }
                (i, store.append(r).await)
            })
        })
        .collect();
    for t in tasks {
        let (i, outcome) = t.await.unwrap();
        assert_eq!(outcome.is_ok(), i % 3 != 0, "{i}: {outcome:?}");
    }
}
