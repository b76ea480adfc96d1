//! `blazz bench fanout`: time to launch a campaign to N recipients, from the request to its fan-out's
//! end: the audience read, every message rendered and queued (one event each, appended in groups of 1,000). The contacts are imported first.

use super::{import, launch_and_wait, post, scenario, Error, Scenario};
use serde_json::json;
use std::time::Instant;

pub async fn run(pool: sqlx::PgPool, append_writers: usize, recipients: usize) -> Result<(), Error> {
    let Scenario { running, client, key, bodies, .. } = scenario(pool, append_writers, 1, false).await?;
    let started = Instant::now();
    let row = |i| json!({"phone": format!("+629{:010}", i), "name": format!("r{i}"), "attributes": {"first_name": format!("R{i}")}});
    for r in import(&client, running.url("/v1/contacts/import"), &key, recipients, row).await? {
        if r["failed"].as_u64().unwrap_or(0) > 0 {
            return Err(format!("import failed: {}", r["errors"]).into());
        }
    }
    eprintln!("imported {recipients} contacts in {:.1} s", started.elapsed().as_secs_f64());
    let body = &bodies[0];
    let campaign = post(
        &client,
        running.url("/v1/campaigns"),
        &key,
        json!({"name": "bench", "channel_id": body["channel_id"], "template_id": body["template"]["id"],
               "audience": {"kind": "all"},
               "variables": {"body.1": {"value": "A-1"}, "body.2": {"attribute": "first_name", "default": "Kak"}}}),
    )
    .await?;
    let id = campaign["campaign_id"].as_str().ok_or("no campaign id")?;
    let started = Instant::now();
    let launched = launch_and_wait(&client, &running, &key, id).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let queued = launched["queued"].as_u64().unwrap_or(0);
    println!("| recipients | queued | skipped | launch s | messages/s |");
    println!("|---|---|---|---|---|");
    println!("| {recipients} | {queued} | {} | {elapsed:.1} | {:.0} |", launched["skipped"], queued as f64 / elapsed);
    running.stop().await?;
    Ok(())
}
