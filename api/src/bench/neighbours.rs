//! `blazz bench neighbours`: does a noisy workspace slow a quiet one? One server, one run, two phases:
//! workspace B sends template messages alone, then again while workspace A floods it (a campaign to
//! `campaign` recipients on a channel at 1 message/s, contact imports of 5,000 rows back to back, and
//! bodies with NULs that must be refused). A has the default per-key rate (1,000 requests/s), B none.
//! Prints B's figures in both phases and the ratio of its p99.

use super::{drive, import, launch_and_wait, ms, post, scenario_on, tenant, Error, Scenario, Summary};
use crate::server;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One kind of A's noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flood {
    /// Contact imports of 5,000 rows, back to back.
    Imports,
    /// Bodies with NULs from 4 clients.
    Nul,
    /// The campaign to all of A's contacts (its fan-out).
    Campaign,
}

/// B's sends for `seconds` from `concurrency` clients.
async fn b_sends(s: &Scenario, concurrency: usize, seconds: u64) -> Summary {
    let (client, url, key, bodies) =
        (s.client.clone(), s.running.url("/v1/messages"), s.key.clone(), Arc::new(s.bodies.clone()));
    drive(concurrency, seconds, move |w| {
        let (client, url, key, body) = (client.clone(), url.clone(), key.clone(), bodies[w].clone());
        async move {
            match client.post(url).bearer_auth(key).json(&body).send().await {
                Ok(r) => r.status() == reqwest::StatusCode::ACCEPTED && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}

/// With `config`'s append writers and bulk share (`BLAZZ_BULK_SHARE`).
pub async fn run(
    pool: sqlx::PgPool,
    config: &crate::config::Config,
    concurrency: usize,
    seconds: u64,
    campaign: usize,
    kinds: &[Flood],
) -> Result<(), Error> {
    let operator = format!("bench-{}", Uuid::new_v4());
    let mut settings = server::Settings::new(config.append_writers, Some(operator.clone()));
    settings.edge.dispatch = true;
    settings.limits.bulk_share = config.limits.bulk_share;
    let b = scenario_on(settings, pool, operator.clone(), concurrency).await?;
    let a = tenant(&b.running, &b.client, &operator, 0, Some(1)).await?;
    // B drives its key as fast as it can (no per-key rate); A has the default one, as any workspace.
    let a_rate = crate::limits::LimitSettings::default().key_rate.map(|r| r.get());
    let url = b.running.url(&format!("/v1/operator/workspaces/{}/rate-limit", a.workspace_id.as_str().unwrap_or("")));
    let set = b.client.put(url).bearer_auth(&operator).json(&json!({ "requests_per_second": a_rate })).send().await?;
    if !set.status().is_success() {
        return Err(format!("A's rate limit not set: {}", set.status()).into());
    }
    let started = Instant::now();
    let row = |i| json!({"phone": format!("+6291{:09}", i)});
    let imported = import(&b.client, b.running.url("/v1/contacts/import"), &a.key, campaign, row).await?;
    let position = imported.iter().filter_map(|r| r["position"].as_i64()).max().unwrap_or(0);
    // B alone must be alone: the projectors finish A's import first.
    caught_up(&b, &a.key, position).await?;
    eprintln!("A: {campaign} contacts imported and projected in {:.1} s", started.elapsed().as_secs_f64());

    let alone = b_sends(&b, concurrency, seconds).await;

    // The flood, for as long as B's second phase runs.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let flood = flood(&b, &a, campaign, kinds, deadline);
    let (noisy, flooded) = tokio::join!(flood, b_sends(&b, concurrency, seconds));
    let noisy = noisy?;

    println!("| phase | B requests | B errors | B requests/s | B p50 ms | B p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (phase, s) in [("B alone", &alone), ("B while A floods", &flooded)] {
        println!("| {phase} | {} | {} | {:.0} | {} | {} |", s.count, s.errors, s.per_second, ms(s.p50), ms(s.p99));
    }
    println!(
        "B p99 ratio (flooded / alone): {:.2}; A meanwhile: {} queued by its campaign, {} contacts imported, {} poisoned bodies refused (422) and {} rate-limited (429), {} other answers",
        flooded.p99.as_secs_f64() / alone.p99.as_secs_f64().max(1e-9),
        noisy.queued,
        noisy.imported.load(Ordering::Relaxed),
        noisy.refused.load(Ordering::Relaxed),
        noisy.limited.load(Ordering::Relaxed),
        noisy.other.load(Ordering::Relaxed),
    );
    b.running.stop().await?;
    Ok(())
}

/// Waits until `key`'s workspace reads at `position` (its projections have caught up).
async fn caught_up(s: &Scenario, key: &str, position: i64) -> Result<(), Error> {
    let url = s.running.url(&format!("/v1/contacts?limit=1&min_position={position}"));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let res = s.client.get(url.clone()).bearer_auth(key).send().await?;
        if res.status().is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("projections did not reach {position}: {}", res.status()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What A did during the flood.
struct Noise {
    queued: u64,
    imported: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// 429: A's key rate at work.
    limited: Arc<AtomicU64>,
    other: Arc<AtomicU64>,
}

async fn flood(
    b: &Scenario,
    a: &super::Tenant,
    campaign: usize,
    kinds: &[Flood],
    deadline: Instant,
) -> Result<Noise, Error> {
    let noise = Noise {
        queued: 0,
        imported: Arc::default(),
        refused: Arc::default(),
        limited: Arc::default(),
        other: Arc::default(),
    };
    let client = b.client.clone();
    let url = |p: &str| b.running.url(p);
    let mut tasks = vec![];
    // Imports of 5,000 new contacts, back to back.
    if kinds.contains(&Flood::Imports) {
        let (client, url, key, imported, other) =
            (client.clone(), url("/v1/contacts/import"), a.key.clone(), noise.imported.clone(), noise.other.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while Instant::now() < deadline {
                round += 1;
                let rows: Vec<Value> = (0..5_000)
                    .map(|i| json!({"phone": format!("+6292{round:04}{i:05}"), "name": "imported"}))
                    .collect();
                match post(&client, url.clone(), &key, Value::Array(rows)).await {
                    Ok(r) => imported.fetch_add(r["imported"].as_u64().unwrap_or(0), Ordering::Relaxed),
                    Err(_) => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Bodies with NULs, from 4 clients sharing a key of their own (its rate is not the imports').
    let nul_key = if kinds.contains(&Flood::Nul) {
        let issued = post(&client, url("/v1/api-keys"), &a.key, json!({"name": "nul flood", "role": "admin"})).await?;
        issued["key"].as_str().ok_or("no key")?.to_owned()
    } else {
        String::new()
    };
    for w in (0..4).filter(|_| kinds.contains(&Flood::Nul)) {
        let (client, url, key) = (client.clone(), url("/v1/contacts"), nul_key.clone());
        let (refused, limited, other) = (noise.refused.clone(), noise.limited.clone(), noise.other.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = json!({"phone": format!("+6293{w}0000000"), "name": "nul \u{0} name", "attributes": {"x": "\u{0}"}});
                match client.post(url.clone()).bearer_auth(&key).json(&body).send().await.map(|r| r.status()) {
                    Ok(reqwest::StatusCode::UNPROCESSABLE_ENTITY) => refused.fetch_add(1, Ordering::Relaxed),
                    // A hostile client does not wait for Retry-After.
                    Ok(reqwest::StatusCode::TOO_MANY_REQUESTS) => limited.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // The campaign to every contact of A, on A's rate-1 channel (its fan-out runs now).
    let mut queued = 0;
    if campaign > 0 && kinds.contains(&Flood::Campaign) {
        let created = post(
            &client,
            url("/v1/campaigns"),
            &a.key,
            json!({"name": "flood", "channel_id": a.channel_id, "template_id": a.template_id, "audience": {"kind": "all"},
                   "variables": {"body.1": {"value": "A-1"}, "body.2": {"value": "Kak"}}}),
        )
        .await?;
        let id = created["campaign_id"].as_str().ok_or("no campaign id")?;
        let launched = launch_and_wait(&client, &b.running, &a.key, id).await?;
        queued = launched["queued"].as_u64().unwrap_or(0);
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(Noise { queued, ..noise })
}
