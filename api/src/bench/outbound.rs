//! `blazz bench outbound`: outbound webhook deliveries to a local receiver (it answers 200 at once),
//! in two phases on one server with its deliverer:
//! - **throughput**: `contacts` contacts imported, each `contact.created` delivered to each of
//!   `endpoints` endpoints; deliveries/s from the first arrival to the last;
//! - **latency**: `POST /v1/contacts` at `rate`/s for `seconds`; for each delivery, the time from
//!   the command being sent to the receiver having the request (p50, p99).

use super::{ms, post, summarise, Error};
use crate::server::{self, Running};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Arrival times at the receiver, by the contact's phone.
type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

async fn receiver() -> Result<(String, Arrivals), Error> {
    async fn receive(State(got): State<Arrivals>, Json(body): Json<Value>) -> &'static str {
        let phone = body["data"]["payload"]["phone"].as_str().unwrap_or_default().to_owned();
        got.lock().map(|mut g| g.push((phone, Instant::now()))).ok();
        "ok"
    }
    let got: Arrivals = Arc::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, got))
}

fn arrived(got: &Arrivals) -> usize {
    got.lock().map(|g| g.len()).unwrap_or(0)
}

/// Waits until the receiver holds `n` requests (up to `within`).
async fn wait_for(got: &Arrivals, n: usize, within: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    while arrived(got) < n {
        if Instant::now() > deadline {
            return Err(format!("{} of {n} deliveries arrived in time", arrived(got)).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub async fn run(
    pool: sqlx::PgPool,
    append_writers: usize,
    endpoints: usize,
    contacts: usize,
    rate: u64,
    seconds: u64,
) -> Result<(), Error> {
    let (url, got) = receiver().await?;
    let operator = format!("bench-{}", Uuid::new_v4());
    let mut settings = server::Settings::new(append_writers, Some(operator.clone()));
    settings.edge.dispatch = true;
    settings.edge.webhooks.allow_private = true;
    let running = Running::start(pool, settings).await?;
    let client = reqwest::Client::new();
    let ws = post(&client, running.url("/v1/workspaces"), &operator, json!({"name": "bench"})).await?;
    let key = ws["api_key"]["key"].as_str().ok_or("no key")?.to_owned();
    for _ in 0..endpoints {
        let body = json!({"url": url, "event_types": ["contact.created"]});
        post(&client, running.url("/v1/webhook-endpoints"), &key, body).await?;
    }
    let endpoints = endpoints.max(1);
    let prefix = Uuid::new_v4().as_u128() % 1_000;

    // Throughput: an import's events fan out to every endpoint.
    let rows: Vec<Value> = (0..contacts).map(|i| json!({"phone": format!("+6287{prefix:03}{i:07}")})).collect();
    for chunk in rows.chunks(5_000) {
        post(&client, running.url("/v1/contacts/import"), &key, Value::Array(chunk.to_vec())).await?;
    }
    let total = contacts * endpoints;
    wait_for(&got, total, Duration::from_secs(600)).await?;
    let at: Vec<Instant> = got.lock().map(|g| g.iter().map(|(_, t)| *t).collect()).unwrap_or_default();
    let span = at.iter().max().zip(at.iter().min()).map(|(l, f)| l.duration_since(*f)).unwrap_or_default();
    println!("| endpoints | deliveries | first → last arrival s | deliveries/s |");
    println!("|---|---|---|---|");
    println!("| {endpoints} | {total} | {:.2} | {:.0} |", span.as_secs_f64(), total as f64 / span.as_secs_f64());

    // Latency: commands at a fixed rate, each timed from its sending to each delivery's arrival.
    got.lock().map(|mut g| g.clear()).ok();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (start, mut n, mut tasks) = (Instant::now(), 0usize, vec![]);
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let phone = format!("+6286{prefix:03}{n:07}");
        n += 1;
        sent.lock().map(|mut s| s.insert(phone.clone(), Instant::now())).ok();
        let (client, url, key) = (client.clone(), running.url("/v1/contacts"), key.clone());
        tasks.push(tokio::spawn(async move { post(&client, url, &key, json!({"phone": phone})).await.is_ok() }));
    }
    let mut errors = 0;
    for t in tasks {
        if !t.await.unwrap_or(false) {
            errors += 1;
        }
    }
    wait_for(&got, (n - errors) * endpoints, Duration::from_secs(120)).await?;
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let latencies: Vec<Duration> = got
        .lock()
        .map(|g| g.iter().filter_map(|(p, t)| sent.get(p).map(|s| t.saturating_duration_since(*s))).collect())
        .unwrap_or_default();
    let s = summarise(latencies, errors, start.elapsed());
    println!();
    println!("| rate /s | commands | errors | deliveries | command → receiver p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    println!("| {rate} | {n} | {errors} | {} | {} | {} |", s.count, ms(s.p50), ms(s.p99));
    running.stop().await?;
    Ok(())
}
