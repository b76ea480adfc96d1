//! `blazz bench as-of`: the latency of a state-as-of query on one long stream. Seeds one contact
//! with `events` events (its creation, then attribute changes, 500 to an append), then times
//! [`Commands::state_at`]: once cold (no snapshots yet: it folds the whole stream), then at the
//! first, middle and last event and without a point (from the snapshots), against the plain read
//! of the same stream from PostgreSQL, in one run. The stream's attribute changes are sealed
//! personal data, opened on every read.

use super::{ms, new_contact_event, summarise, Error, BENCH_WORKSPACE};
use blazz_commands::as_of::AsOf;
use blazz_commands::codec::Codec;
use blazz_commands::credentials::Keyring;
use blazz_commands::store::postgres::BatchConfig;
use blazz_commands::store::{AppendRequest, EventStore, ExpectedVersion};
use blazz_commands::Commands;
use blazz_domain::aggregate::StreamId;
use blazz_domain::contact::ContactEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Appends per seeding batch.
const BATCH: u64 = 500;

pub async fn run(pool: sqlx::PgPool, append_writers: usize, events: u64, rounds: usize) -> Result<(), Error> {
    // Through the sealing store, as the API answers it: every change's attributes are sealed and
    // opened again on each read.
    let keys = Keyring::from_base64(&Keyring::generate_base64(), &[])?;
    let config = BatchConfig { writers: append_writers, ..BatchConfig::default() };
    let store: Arc<dyn EventStore> = Arc::new(crate::server::event_store(&pool, config, &keys));
    let created = new_contact_event();
    let stream = created.stream_id.clone();
    store.append(created.clone()).await?;
    let codec = Codec::new();
    let mut version = 1;
    while version < events {
        let n = BATCH.min(events - version);
        let changes = (0..n).map(|i| {
            let set = [("visits".to_string(), json!(version + i))].into_iter().collect();
            codec.encode(&DomainEvent::Contact(ContactEvent::AttributesChanged { set, removed: vec![] }))
        });
        let expected = ExpectedVersion::Exact(version);
        let request =
            AppendRequest::new(stream.clone(), BENCH_WORKSPACE, expected, changes.collect(), created.metadata.clone());
        store.append(request).await?;
        version += n;
    }
    let recorded = store.read_stream(&stream, 1, None).await?;
    let position_of = |v: usize| recorded.get(v.saturating_sub(1)).map_or(0, |e| e.position);
    let commands = Commands::new(store.clone(), codec);
    let id = StreamId::parse(&stream).ok_or("bench stream id")?;
    println!("as-of on one contact stream of {} events, {rounds} rounds each (ms)", recorded.len());
    println!("{:<28} {:>8} {:>8}", "query", "p50", "p99");
    let raw = time(rounds, || async {
        let rows: Vec<(serde_json::Value,)> =
            sqlx::query_as("SELECT payload FROM events WHERE stream_id = $1 ORDER BY stream_version")
                .bind(&stream)
                .fetch_all(&pool)
                .await?;
        Ok(rows.len() as u64)
    })
    .await?;
    println!("{:<28} {:>8} {:>8}", "raw read of the stream", ms(raw.0), ms(raw.1));
    // Cold: the first query at the end folds the whole stream and keeps the snapshots it passes.
    let cold = Instant::now();
    commands.state_at(BENCH_WORKSPACE, &id, AsOf::Position(position_of(recorded.len()))).await?;
    let cold = cold.elapsed();
    println!(
        "{:<28} {:>8} {:>8}   {:.2}x the raw read (one query)",
        "cold, at the last event",
        ms(cold),
        "-",
        ratio(cold, raw.0)
    );
    let points = [
        ("at the first event", AsOf::Position(position_of(1))),
        ("at the middle event", AsOf::Position(position_of(recorded.len() / 2))),
        ("at the last event", AsOf::Position(position_of(recorded.len()))),
        ("now (no point)", AsOf::Now),
    ];
    for (name, at) in points {
        let (p50, p99) = time(rounds, || async {
            let state = commands.state_at(BENCH_WORKSPACE, &id, at).await?.ok_or("no state")?;
            Ok(state.version)
        })
        .await?;
        println!("{name:<28} {:>8} {:>8}   {:.2}x the raw read (p50)", ms(p50), ms(p99), ratio(p50, raw.0));
    }
    Ok(())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}

/// p50 and p99 of `rounds` calls of `op` (after one warm-up call).
async fn time<F, Fut>(rounds: usize, op: F) -> Result<(Duration, Duration), Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, Error>>,
{
    op().await?;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        op().await?;
        latencies.push(t.elapsed());
    }
    let s = summarise(latencies, 0, started.elapsed());
    Ok((s.p50, s.p99))
}
