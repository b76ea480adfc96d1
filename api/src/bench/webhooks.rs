//! `blazz bench webhooks`: webhook ingestion throughput. Queues `messages` messages (in process), then
//! posts signed Meta notifications of 100 statuses each from `concurrency` clients over HTTP: every
//! message gets `sent`, then `delivered`, then `read`, so every status is new work (one event each).
//! Reports statuses per second and the POST latency.

use super::{ms, scenario, summarise, Error, Scenario};
use blazz_commands::handlers::message::{SendContent, SendMessage};
use blazz_commands::provider::signature;
use blazz_commands::CommandContext;
use blazz_domain::ids::{ChannelId, ContactId, TemplateId};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const PER_POST: usize = 100;
const STATUSES: [&str; 3] = ["sent", "delivered", "read"];

fn id(v: &Value) -> Result<Uuid, Error> {
    v.as_str().and_then(|s| Uuid::try_parse(s).ok()).ok_or_else(|| format!("not an id: {v}").into())
}

pub async fn run(
    pool: sqlx::PgPool,
    append_writers: usize,
    concurrency: usize,
    messages: usize,
    projectors: bool,
) -> Result<(), Error> {
    let Scenario { running, client, key, bodies, phone_number_id } =
        scenario(pool, append_writers, 1, projectors).await?;
    let body = &bodies[0];
    let channel = id(&body["channel_id"])?;
    let secret = format!("bench-secret-{}", Uuid::new_v4());
    let creds = json!({"access_token": "bench", "app_secret": secret, "verify_token": "bench"});
    let res = client
        .put(running.url(&format!("/v1/channels/{channel}/credentials")))
        .bearer_auth(&key)
        .json(&creds)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(format!("credentials: {}", res.status()).into());
    }
    let shown: Value = client.get(running.url("/v1/workspace")).bearer_auth(&key).send().await?.json().await?;
    let workspace = id(&shown["workspace_id"])?;

    // Queue the messages in process, 64 at a time.
    let started = Instant::now();
    let commands = running.state.commands.clone();
    let send = SendMessage {
        channel_id: ChannelId::from_uuid(channel),
        contact_id: ContactId::from_uuid(id(&body["contact_id"])?),
        content: SendContent::Template {
            template_id: TemplateId::from_uuid(id(&body["template"]["id"])?),
            variables: [("1".to_owned(), "A-1".to_owned()), ("2".to_owned(), "Budi".to_owned())].into(),
        },
        reply_to: None,
    };
    let queued: Vec<String> = futures::future::try_join_all((0..64).map(|w| {
        let (commands, send) = (commands.clone(), send.clone());
        async move {
            let mut ids = vec![];
            for _ in (w..messages).step_by(64) {
                let ctx = CommandContext::system(workspace, "bench");
                let r = commands.send_message(&ctx, send.clone()).await?;
                ids.push(r.outcome.message_id.to_string());
            }
            Ok::<_, blazz_commands::CommandError>(ids)
        }
    }))
    .await?
    .into_iter()
    .flatten()
    .collect();
    eprintln!("queued {} messages in {:.1} s", queued.len(), started.elapsed().as_secs_f64());

    // Work item i: batch (i mod batches) of messages, status STATUSES[i / batches].
    let batches = queued.len().div_ceil(PER_POST);
    let items = batches * STATUSES.len();
    let (queued, next) = (Arc::new(queued), Arc::new(AtomicUsize::new(0)));
    let url = running.url(&format!("/v1/webhooks/meta/{channel}"));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queued, next, client, url, secret, number) =
                (queued.clone(), next.clone(), client.clone(), url.clone(), secret.clone(), phone_number_id.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut statuses) = (vec![], 0usize, 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items {
                        break;
                    }
                    let (batch, kind) = (i % batches, STATUSES[i / batches]);
                    let now = chrono::Utc::now().timestamp().to_string();
                    let list: Vec<Value> = queued[batch * PER_POST..((batch + 1) * PER_POST).min(queued.len())]
                        .iter()
                        .map(|m| json!({"id": format!("wamid.B.{m}"), "status": kind, "timestamp": now,
                                        "recipient_id": "6280000000000", "biz_opaque_callback_data": m}))
                        .collect();
                    let n = list.len() as u64;
                    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA",
                        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550000001", "phone_number_id": number}, "statuses": list}}]}]}))
                    .unwrap_or_default();
                    let t = Instant::now();
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header(signature::HEADER, signature::sign(&secret, &body))
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            let answer: Value = r.json().await.unwrap_or_default();
                            latencies.push(t.elapsed());
                            statuses += answer["statuses"].as_u64().unwrap_or(0).min(n);
                            errors += usize::from(answer["absorbed"].as_u64().unwrap_or(0) > 0);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors, statuses)
            })
        })
        .collect();
    let (mut latencies, mut errors, mut statuses) = (vec![], 0, 0);
    for t in tasks {
        let (l, e, s) = t.await?;
        latencies.extend(l);
        errors += e;
        statuses += s;
    }
    let elapsed = started.elapsed();
    let s = summarise(latencies, errors, elapsed);
    println!("| concurrency | POSTs | statuses | errors | statuses/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {concurrency} | {} | {statuses} | {} | {:.0} | {} | {} |",
        s.count,
        s.errors,
        statuses as f64 / elapsed.as_secs_f64(),
        ms(s.p50),
        ms(s.p99)
    );
    running.stop().await?;
    Ok(())
}
