//! `blazz bench dispatch`: the achieved send rate against the channel's configured one, through the
//! Meta provider to a local fake Graph API (it answers at once, counting calls), and the CPU the
//! `blazz` process spent per 1,000 messages (dispatcher, projectors and the fake together; PostgreSQL
//! is a separate process and not included), and its resident memory before, at its peak during and
//! after the campaign (issue 17: RSS during a 100k campaign), and how far the projectors were behind
//! at the last provider call (events, and the seconds until every one had caught up).

use super::{import, post, Error};
use crate::server::{self, Running};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

type Calls = Arc<Mutex<Vec<Instant>>>;

async fn fake_graph() -> Result<(String, Calls), Error> {
    async fn send(State(calls): State<Calls>, Json(body): Json<Value>) -> Json<Value> {
        calls.lock().map(|mut c| c.push(Instant::now())).ok();
        let id = body["biz_opaque_callback_data"].as_str().unwrap_or("").to_owned();
        Json(json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.BENCH.{id}")}]}))
    }
    let calls: Calls = Arc::default();
    let app = axum::Router::new().route("/{v}/{number}/messages", axum::routing::post(send)).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, calls))
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of this process in MiB (Linux `/proc/self/status`, VmRSS; 0 where unreadable).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

pub async fn run(pool: sqlx::PgPool, append_writers: usize, rate: u32, messages: usize) -> Result<(), Error> {
    let (graph, calls) = fake_graph().await?;
    let operator = format!("bench-{}", Uuid::new_v4());
    let mut settings = server::Settings::new(append_writers, Some(operator.clone()));
    settings.edge.dispatch = true;
    settings.edge.meta.base_url = graph;
    let running = Running::start(pool.clone(), settings).await?;
    let client = reqwest::Client::new();
    let ws = post(&client, running.url("/v1/workspaces"), &operator, json!({"name": "bench"})).await?;
    let key = ws["api_key"]["key"].as_str().ok_or("no key")?.to_owned();
    let number = format!("bench{}", Uuid::new_v4().as_u128() % 1_000_000_000_000);
    let channel = post(
        &client,
        running.url("/v1/channels"),
        &key,
        json!({"provider": "meta", "phone_number_id": number, "display_phone_number": "+15550000001", "rate_limit_per_second": rate}),
    )
    .await?;
    let channel = channel["channel_id"].as_str().ok_or("no channel")?.to_owned();
    let creds = json!({"access_token": "bench", "app_secret": "bench", "verify_token": "bench"});
    client
        .put(running.url(&format!("/v1/channels/{channel}/credentials")))
        .bearer_auth(&key)
        .json(&creds)
        .send()
        .await?;
    import(&client, running.url("/v1/contacts/import"), &key, messages, |i| json!({"phone": format!("+6288{:09}", i)}))
        .await?;
    let template = post(
        &client,
        running.url("/v1/templates"),
        &key,
        json!({"name": "bench", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "Hello"}]}),
    )
    .await?;
    let template = template["template_id"].as_str().ok_or("no template")?.to_owned();
    let review = json!({"workspace_id": ws["workspace_id"], "status": "APPROVED"});
    post(&client, running.url(&format!("/v1/templates/{template}/review")), &operator, review).await?;
    let campaign = post(
        &client,
        running.url("/v1/campaigns"),
        &key,
        json!({"name": "bench", "channel_id": channel, "template_id": template, "audience": {"kind": "all"}}),
    )
    .await?;
    let campaign = campaign["campaign_id"].as_str().ok_or("no campaign")?.to_owned();

    let (cpu_before, rss_before) = (cpu_seconds(), rss_mib());
    let mut rss_peak = rss_before;
    post(&client, running.url(&format!("/v1/campaigns/{campaign}/launch")), &key, json!({})).await?;
    let deadline = Instant::now() + Duration::from_secs(messages as u64 / u64::from(rate.max(1)) * 3 + 60);
    while calls.lock().map(|c| c.len()).unwrap_or(0) < messages {
        if Instant::now() > deadline {
            return Err("the campaign did not finish in time".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        rss_peak = rss_peak.max(rss_mib());
    }
    let cpu = cpu_seconds() - cpu_before;
    let last_call = Instant::now();
    let lag = |s: &blazz_projections::status::Status| s.projections.iter().map(|p| p.lag_events).max().unwrap_or(0);
    let behind = lag(&blazz_projections::status::status(&pool, None).await?);
    while lag(&blazz_projections::status::status(&pool, None).await?) > 0 {
        if Instant::now() > deadline {
            return Err("the projectors did not catch up in time".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = last_call.elapsed().as_secs_f64();
    let mut at = calls.lock().map(|c| c.clone()).unwrap_or_default();
    at.sort();
    let span = at.last().zip(at.first()).map(|(l, f)| l.duration_since(*f).as_secs_f64()).unwrap_or(0.0);
    let achieved = (at.len().saturating_sub(1)) as f64 / span;
    println!("| configured /s | messages | achieved /s | deviation | process CPU s per 1,000 | RSS MiB at launch / peak / end | projectors behind at the last call |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {rate} | {messages} | {achieved:.1} | {:+.1} % | {:.2} | {rss_before:.0} / {rss_peak:.0} / {:.0} | {behind} events, caught up in {caught_up:.1} s |",
        (achieved / f64::from(rate) - 1.0) * 100.0,
        cpu / messages as f64 * 1000.0,
        rss_mib()
    );
    running.stop().await?;
    Ok(())
}
