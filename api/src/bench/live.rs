//! `blazz bench live`: template sends at a fixed rate while a WebSocket client of the same workspace
//! listens. For each message: the time from the command's answer (accepted) to its `message` delta.
//! Meanwhile the projections' lag (events behind the log) is sampled every 100 ms. With `KAFKA_BROKERS`
//! set, the read side runs on Kafka (relay, Kafka feed, deltas topic) and the lag is that of the Kafka
//! feed's partition checkpoints.

use super::{ms, scenario_with, summarise, Error, Scenario};
use blazz_projections::status;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// When a message's answer and its delta arrived (whichever came first is stored first).
#[derive(Default)]
struct Seen {
    accepted: HashMap<String, Instant>,
    delta: HashMap<String, Instant>,
    latencies: Vec<Duration>,
}

impl Seen {
    fn accepted(&mut self, id: String, at: Instant) {
        match self.delta.remove(&id) {
            // The delta beat the HTTP answer: zero latency from the client's point of view.
            Some(_) => self.latencies.push(Duration::ZERO),
            None => {
                self.accepted.insert(id, at);
            }
        }
    }

    fn delta(&mut self, id: String, at: Instant) {
        match self.accepted.remove(&id) {
            Some(t) => self.latencies.push(at.saturating_duration_since(t)),
            None => {
                self.delta.insert(id, at);
            }
        }
    }
}

pub async fn run(
    pool: sqlx::PgPool,
    append_writers: usize,
    rate: u64,
    seconds: u64,
    kafka: Option<blazz_projections::kafka::KafkaConfig>,
) -> Result<(), Error> {
    let partitions = kafka.as_ref().map(|k| k.partitions);
    let Scenario { running, client, key, bodies, .. } =
        scenario_with(pool.clone(), append_writers, 256, true, kafka).await?;
    let mut req = format!("ws://{}/v1/stream", running.addr).into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {key}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let lock = |s: &Arc<Mutex<Seen>>| s.lock().unwrap_or_else(|e| e.into_inner()).latencies.len();

    let listener = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = socket.next().await {
                if let Message::Text(t) = msg {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "resync" {
                        eprintln!("the bench client was told to resync: {v}");
                    }
                    if v["kind"] == "message" && v["changed"]["status"] == "queued" {
                        if let Some(id) = v["id"].as_str() {
                            seen.lock().unwrap_or_else(|e| e.into_inner()).delta(id.to_owned(), Instant::now());
                        }
                    }
                }
            }
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut max_events, mut max_seconds, mut sum, mut samples) = (0i64, 0f64, 0i64, 0i64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(s) = status::status(&pool, partitions).await {
                    let lag = s.projections.iter().map(|p| p.lag_events).max().unwrap_or(0);
                    max_events = max_events.max(lag);
                    max_seconds = s.projections.iter().map(|p| p.lag_seconds).fold(max_seconds, f64::max);
                    sum += lag;
                    samples += 1;
                }
            }
            (max_events, max_seconds, sum as f64 / samples.max(1) as f64)
        })
    };

    let url = running.url("/v1/messages");
    // Warm-up: one command through the whole pipeline (on Kafka: the consumer group joined, the deltas
    // topic read), so the figures are those of a running system, not of its start.
    let first = client.post(&url).bearer_auth(&key).json(&bodies[0]).send().await?.json::<serde_json::Value>().await?;
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .accepted(first["message_id"].as_str().unwrap_or("").to_owned(), Instant::now());
    let ready_by = Instant::now() + Duration::from_secs(60);
    while lock(&seen) == 0 {
        if Instant::now() > ready_by {
            return Err("the warm-up command's delta never arrived".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen.lock().unwrap_or_else(|e| e.into_inner()).latencies.clear();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut inflight = vec![];
    let mut n = 0usize;
    while Instant::now() < deadline {
        tick.tick().await;
        let (client, url, key, body, seen) =
            (client.clone(), url.clone(), key.clone(), bodies[n % bodies.len()].clone(), seen.clone());
        n += 1;
        inflight.push(tokio::spawn(async move {
            let Ok(res) = client.post(url).bearer_auth(key).json(&body).send().await else { return false };
            let Ok(v) = res.json::<serde_json::Value>().await else { return false };
            let Some(id) = v["message_id"].as_str() else { return false };
            seen.lock().unwrap_or_else(|e| e.into_inner()).accepted(id.to_owned(), Instant::now());
            true
        }));
    }
    let mut errors = 0;
    for t in inflight {
        if !t.await.unwrap_or(false) {
            errors += 1;
        }
    }
    let sent_for = start.elapsed();
    // Let the last deltas arrive (bounded).
    let wait_until = Instant::now() + Duration::from_secs(10);
    while lock(&seen) < n - errors && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lag = sampler.await.ok();
    listener.abort();
    let latencies = std::mem::take(&mut seen.lock().unwrap_or_else(|e| e.into_inner()).latencies);
    let s = summarise(latencies, errors, sent_for);
    println!("| target rate | commands | errors | achieved /s | deltas matched | delta p50 ms | delta p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {rate} | {n} | {errors} | {:.0} | {} | {} | {} |",
        n as f64 / sent_for.as_secs_f64(),
        s.count,
        ms(s.p50),
        ms(s.p99)
    );
    if let Some((max_events, max_seconds, mean)) = lag {
        println!("projection lag while sending: max {max_events} events / {max_seconds:.2} s, mean {mean:.1} events (sampled every 100 ms)");
    }
    running.stop().await?;
    Ok(())
}
