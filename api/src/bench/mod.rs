//! `blazz bench`: reproducible load generators whose output goes into docs/benchmarks.md.
//!
//! - `appends`: single-event appends (a new contact each, personal fields sealed) to distinct new
//!   streams through the store, from N concurrent writers, for a fixed time.
//! - `send`: `POST /v1/messages` (template messages) over real HTTP to an in-process server, at a fixed
//!   concurrency, for a fixed time.
//! - `replay` ([`replay`]): rebuild throughput of a projection over a large log.
//! - `webhooks` ([`webhooks`]): signed Meta webhook POSTs of 100 statuses each, at a fixed concurrency.
//! - `outbound` ([`outbound`]): outbound webhook deliveries/s to a local receiver, and the latency
//!   from a command to the receiver.
//! - `dispatch` ([`dispatch`]): achieved send rate against the configured one, and CPU per message.
//! - `fanout` ([`fanout`]): time to launch a campaign to N imported contacts.
//! - `as-of` ([`as_of`]): state-as-of latency on one long stream, against the plain read of it.
//! - `verify` ([`verify`]): `audit verify` events/s over a large log, against a plain read of it.
//! - `live` ([`live`]): commands at a fixed rate, measuring command-accepted → WebSocket-delta latency
//!   and the projections' lag meanwhile.
//!
//! Both use DATABASE_URL, or the private cluster under BLAZZ_DATA_DIR.

use crate::config::Config;
use crate::embedded::EmbeddedPostgres;
use crate::server;
use blazz_commands::store::postgres::BatchConfig;
use blazz_commands::store::{AppendRequest, EventMetadata, EventStore, ExpectedVersion};
use clap::Subcommand;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod as_of;
mod dispatch;
mod fanout;
mod live;
mod neighbours;
mod outbound;
mod replay;
mod verify;
mod webhooks;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Subcommand)]
pub enum Which {
    /// Single-event appends through the store.
    Appends {
        /// Writer counts to run, one after the other.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        writers: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// What each append writes.
        #[arg(long, value_enum, default_value = "contacts")]
        kind: AppendKind,
        /// Straight to the log, personal fields in clear (to measure what sealing costs).
        #[arg(long)]
        unsealed: bool,
    },
    /// Commands at a fixed rate: command-accepted → WebSocket delta latency, and projection lag.
    Live {
        /// Commands per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Rebuild the contacts projection over a log of at least `events` events (seeded if shorter).
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// Signed webhook POSTs of 100 statuses each (sent, then delivered, then read of queued messages).
    Webhooks {
        /// Serve without in-process projectors (they run in `blazz project`).
        #[arg(long)]
        without_projectors: bool,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Messages queued up front; each gets three statuses.
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
    },
    /// Outbound webhook deliveries to a local receiver: an import's fan-out (deliveries/s), then
    /// contacts created at a fixed rate (command → receiver latency).
    Outbound {
        /// Endpoints of the workspace, each subscribed to `contact.created`.
        #[arg(long, default_value_t = 4)]
        endpoints: usize,
        /// Contacts imported for the throughput phase.
        #[arg(long, default_value_t = 20_000)]
        contacts: usize,
        /// Contacts created per second in the latency phase.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds of the latency phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A campaign through the Meta provider to a local fake Graph API at a configured channel rate.
    Dispatch {
        #[arg(long, default_value_t = 80)]
        rate: u32,
        #[arg(long, default_value_t = 800)]
        messages: usize,
    },
    /// State-as-of queries on one stream of `events` events, against the plain read of the stream.
    AsOf {
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Timed queries per point.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
    },
    /// `audit verify` of the whole log of `events` events (seeded if shorter), against a plain read
    /// of the same rows, `rounds` times in turn.
    Verify {
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Launch a campaign to N recipients (imported first) and time the fan-out.
    Fanout {
        #[arg(long, default_value_t = 100_000)]
        recipients: usize,
    },
    /// Workspace B's sends alone, then while workspace A floods imports, poisoned bodies and a big
    /// campaign on a rate-1 channel (one run, one server): B's latency ratio.
    Neighbours {
        /// Concurrent HTTP clients of B.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Recipients of A's campaign.
        #[arg(long, default_value_t = 100_000)]
        campaign: usize,
        /// What A floods with (comma-separated; default all three).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "imports,nul,campaign")]
        flood: Vec<neighbours::Flood>,
    },
    /// POST /v1/messages over HTTP.
    Send {
        /// Serve without in-process projectors, as `blazz serve` does (they run in `blazz project`).
        #[arg(long)]
        without_projectors: bool,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// Count, rate and latency percentiles of one run.
#[derive(Debug)]
pub struct Summary {
    pub count: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub(crate) fn summarise(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Summary {
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Summary {
        count: latencies.len(),
        errors,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Runs `op` from `workers` tasks until `seconds` pass; `op` returns whether the call succeeded.
async fn drive<F, Fut>(workers: usize, seconds: u64, op: F) -> Summary
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op(w).await {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    summarise(all, errors, start.elapsed())
}

pub async fn run(config: Config, which: Which) -> Result<(), Error> {
    let (url, embedded) = match &config.database_url {
        Some(u) => (u.clone(), None),
        None => {
            let pg = EmbeddedPostgres::start(&config.data_dir).await?;
            (pg.url(), Some(pg))
        }
    };
    let result = async {
        let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
        match which {
            Which::Appends { writers, seconds, kind, unsealed } => {
                appends(pool, config.append_writers, &writers, seconds, kind, unsealed).await
            }
            Which::Send { concurrency, seconds, without_projectors } => {
                send(pool, config.append_writers, concurrency, seconds, !without_projectors).await
            }
            Which::Webhooks { without_projectors, concurrency, messages } => {
                webhooks::run(pool, config.append_writers, concurrency, messages, !without_projectors).await
            }
            Which::Outbound { endpoints, contacts, rate, seconds } => {
                outbound::run(pool, config.append_writers, endpoints, contacts, rate, seconds).await
            }
            Which::Dispatch { rate, messages } => dispatch::run(pool, config.append_writers, rate, messages).await,
            Which::Fanout { recipients } => fanout::run(pool, config.append_writers, recipients).await,
            Which::Live { rate, seconds } => {
                live::run(pool, config.append_writers, rate, seconds, config.kafka.clone()).await
            }
            Which::Replay { events } => replay::run(pool, config.append_writers, events).await,
            Which::AsOf { events, rounds } => as_of::run(pool, config.append_writers, events, rounds).await,
            Which::Verify { events, rounds } => verify::run(pool, config.append_writers, events, rounds).await,
            Which::Neighbours { concurrency, seconds, campaign, flood } => {
                neighbours::run(pool, &config, concurrency, seconds, campaign, &flood).await
            }
        }
    }
    .await;
    if let Some(pg) = embedded {
        pg.stop().await;
    }
    result
}

/// The workspace benchmark data belongs to.
/// Appends `contact.created` events from 64 writers until the log holds `events` (if it is shorter).
pub(crate) async fn seed_contacts(pool: &sqlx::PgPool, store: &Arc<dyn EventStore>, events: u64) -> Result<(), Error> {
    use std::sync::atomic::{AtomicI64, Ordering};
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    let missing = Arc::new(AtomicI64::new(events as i64 - have));
    if missing.load(Ordering::Relaxed) <= 0 {
        return Ok(());
    }
    eprintln!("seeding {} contact.created events", missing.load(Ordering::Relaxed));
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, missing) = (store.clone(), missing.clone());
            tokio::spawn(async move {
                while missing.fetch_sub(1, Ordering::Relaxed) > 0 {
                    store.append(new_contact_event()).await?;
                }
                Ok::<_, blazz_commands::store::AppendError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) const BENCH_WORKSPACE: Uuid = Uuid::from_u128(0xb1a2_2000_0000_7000_8000_0000_0000_0001);

/// A `contact.created` event of a new contact, as one append (real domain events keep the log
/// projectable and make the replay benchmark meaningful).
pub(crate) fn new_contact_event() -> AppendRequest {
    static PHONES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PHONES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let phone = blazz_domain::values::PhoneNumber::parse(&format!("+62813{:09}", n % 1_000_000_000))
        .unwrap_or_else(|_| unreachable!("valid by construction"));
    let event = blazz_domain::DomainEvent::Contact(blazz_domain::contact::ContactEvent::Created {
        phone: Some(phone),
        user_id: None,
        name: Some(format!("Contact {n}")),
        attributes: [("segment".to_string(), json!(format!("s{}", n % 7)))].into_iter().collect(),
    });
    AppendRequest::new(
        format!("contact-{}", Uuid::now_v7()),
        BENCH_WORKSPACE,
        ExpectedVersion::NoStream,
        vec![blazz_commands::codec::Codec::new().encode(&event)],
        bench_metadata(),
    )
}

/// What an append of `blazz bench appends` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppendKind {
    /// A new contact each (its phone, name and an attribute sealed under a fresh data key).
    Contacts,
    /// A queued text message each, every writer to an existing contact of its own (its key cached).
    Messages,
}

/// Appends as the write side makes them: through the store that seals personal fields, over the
/// hash-chained log (`unsealed`: straight to the log, in clear).
async fn appends(
    pool: sqlx::PgPool,
    append_writers: usize,
    writers: &[usize],
    seconds: u64,
    kind: AppendKind,
    unsealed: bool,
) -> Result<(), Error> {
    use blazz_commands::credentials::Keyring;
    let config = BatchConfig { writers: append_writers, ..BatchConfig::default() };
    let keys = Keyring::from_base64(&Keyring::generate_base64(), &[])?;
    let sealing = server::event_store(&pool, config, &keys);
    let store: Arc<dyn EventStore> = if unsealed { sealing.sealed().clone() } else { Arc::new(sealing) };
    let mut contacts = vec![];
    if kind == AppendKind::Messages {
        for _ in 0..writers.iter().copied().max().unwrap_or(1) {
            let created = new_contact_event();
            contacts.push(created.stream_id.trim_start_matches("contact-").parse::<Uuid>()?);
            store.append(created).await?;
        }
    }
    let contacts = Arc::new(contacts);
    println!("| writers | appends | errors | events/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for &w in writers {
        let (store, contacts) = (store.clone(), contacts.clone());
        let s = drive(w, seconds, move |n| {
            let store = store.clone();
            let request = match kind {
                AppendKind::Contacts => new_contact_event(),
                AppendKind::Messages => new_message_event(contacts[n % contacts.len()]),
            };
            async move { store.append(request).await.is_ok() }
        })
        .await;
        println!("| {w} | {} | {} | {:.0} | {} | {} |", s.count, s.errors, s.per_second, ms(s.p50), ms(s.p99));
    }
    Ok(())
}

/// A queued text message to `contact` (a new message stream).
fn new_message_event(contact: Uuid) -> AppendRequest {
    use blazz_domain::ids::{ChannelId, ContactId};
    use blazz_domain::message::{MessageContent, MessageEvent};
    let event = blazz_domain::DomainEvent::Message(MessageEvent::Queued {
        channel_id: ChannelId::from_uuid(BENCH_WORKSPACE),
        contact_id: ContactId::from_uuid(contact),
        to: blazz_domain::values::PhoneNumber::parse("+6281300000001").ok(),
        user_id: None,
        content: MessageContent::Text { body: "Halo, pesanan Anda sudah dikirim hari ini".into(), preview_url: false },
        reply_to: None,
        campaign_id: None,
        at: chrono::Utc::now(),
    });
    let stream = format!("message-{}", Uuid::now_v7());
    let events = vec![blazz_commands::codec::Codec::new().encode(&event)];
    AppendRequest::new(stream, BENCH_WORKSPACE, ExpectedVersion::NoStream, events, bench_metadata())
}

fn bench_metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: "system:bench".into(),
        request_id: None,
        agent_id: None,
    }
}

/// Imports contacts `row(0)`…`row(n - 1)` through `POST /v1/contacts/import` in requests of 50,000
/// rows; answers each request's answer, in order.
pub(crate) async fn import(
    client: &reqwest::Client,
    url: String,
    key: &str,
    n: usize,
    row: impl Fn(usize) -> Value,
) -> Result<Vec<Value>, Error> {
    let mut answers = vec![];
    for start in (0..n).step_by(50_000) {
        let rows: Vec<Value> = (start..n.min(start + 50_000)).map(&row).collect();
        answers.push(post(client, url.clone(), key, Value::Array(rows)).await?);
    }
    Ok(answers)
}

pub(crate) async fn post(client: &reqwest::Client, url: String, bearer: &str, body: Value) -> Result<Value, Error> {
    let res = client.post(url).bearer_auth(bearer).json(&body).send().await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        return Err(format!("{status}: {body}").into());
    }
    Ok(body)
}

/// Launches campaign `id` and waits (up to 10 minutes) for its fan-out to end; answers the payload of
/// its `campaign.launched` event (`queued`, `skipped`). Read from the log, so it works without
/// projectors.
pub(crate) async fn launch_and_wait(
    client: &reqwest::Client,
    running: &server::Running,
    key: &str,
    id: &str,
) -> Result<Value, Error> {
    post(client, running.url(&format!("/v1/campaigns/{id}/launch")), key, json!({})).await?;
    let url = running.url(&format!("/v1/history/streams/campaign-{id}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while std::time::Instant::now() < deadline {
        let history: Value = client.get(url.clone()).bearer_auth(key).send().await?.json().await?;
        let launched = history["events"]
            .as_array()
            .and_then(|events| events.iter().find(|e| e["event_type"] == "campaign.launched"));
        if let Some(e) = launched {
            return Ok(e["payload"].clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("campaign {id} did not finish launching").into())
}

/// A workspace ready to send template messages: a running server, its API key, and the bodies of
/// `POST /v1/messages` for different contacts.
pub(crate) struct Scenario {
    pub running: server::Running,
    pub client: reqwest::Client,
    pub key: String,
    pub bodies: Vec<Value>,
    /// The sandbox channel's provider phone number id.
    pub phone_number_id: String,
}

pub(crate) async fn scenario(
    pool: sqlx::PgPool,
    append_writers: usize,
    contacts: usize,
    projectors: bool,
) -> Result<Scenario, Error> {
    scenario_with(pool, append_writers, contacts, projectors, None).await
}

/// [`scenario`] with the read side on Kafka when `kafka` is given.
pub(crate) async fn scenario_with(
    pool: sqlx::PgPool,
    append_writers: usize,
    contacts: usize,
    projectors: bool,
    kafka: Option<blazz_projections::kafka::KafkaConfig>,
) -> Result<Scenario, Error> {
    let operator = format!("bench-{}", Uuid::new_v4());
    let settings =
        server::Settings { projectors, kafka, ..server::Settings::new(append_writers, Some(operator.clone())) };
    scenario_on(settings, pool, operator, contacts).await
}

/// A server started with `settings` (whose operator token is `operator`) and one [`Tenant`]. Benchmarks
/// drive one key as fast as they can: no per-key rate.
pub(crate) async fn scenario_on(
    mut settings: server::Settings,
    pool: sqlx::PgPool,
    operator: String,
    contacts: usize,
) -> Result<Scenario, Error> {
    settings.limits.key_rate = None;
    let running = server::Running::start(pool, settings).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(contacts.max(64)).build()?;
    let t = tenant(&running, &client, &operator, contacts, None).await?;
    Ok(Scenario { running, client, key: t.key, bodies: t.bodies, phone_number_id: t.phone_number_id })
}

/// A workspace with a sandbox channel (at `rate` messages per second, default 80), an approved
/// template and `contacts` contacts.
pub(crate) struct Tenant {
    pub workspace_id: Value,
    pub key: String,
    /// `POST /v1/messages` bodies, one per contact.
    pub bodies: Vec<Value>,
    pub phone_number_id: String,
    pub channel_id: Value,
    pub template_id: String,
}

pub(crate) async fn tenant(
    running: &server::Running,
    client: &reqwest::Client,
    operator: &str,
    contacts: usize,
    rate: Option<u32>,
) -> Result<Tenant, Error> {
    let ws = post(client, running.url("/v1/workspaces"), operator, json!({"name": "bench"})).await?;
    let key = ws["api_key"]["key"].as_str().ok_or("no key")?.to_owned();
    let workspace_id = ws["workspace_id"].clone();
    let number = (Uuid::new_v4().as_u128() % 1_000_000_000_000) as u64;
    let phone_number_id = format!("bench{number}");
    let channel = post(
        client,
        running.url("/v1/channels"),
        &key,
        json!({"provider": "sandbox", "phone_number_id": phone_number_id, "display_phone_number": "+15550000001",
               "rate_limit_per_second": rate}),
    )
    .await?;
    let template = post(
        client,
        running.url("/v1/templates"),
        &key,
        json!({"name": "bench_order", "language": "en", "category": "UTILITY",
               "components": [{"type": "BODY", "text": "Order {{1}} for {{2}} is on its way"}]}),
    )
    .await?;
    let template_id = template["template_id"].as_str().unwrap_or_default().to_owned();
    let review = running.url(&format!("/v1/templates/{template_id}/review"));
    post(client, review, operator, json!({"workspace_id": workspace_id, "status": "APPROVED"})).await?;
    let mut bodies = vec![];
    for i in 0..contacts {
        let c = post(
            client,
            running.url("/v1/contacts"),
            &key,
            json!({"phone": format!("+628{:010}", i), "name": format!("c{i}")}),
        )
        .await?;
        bodies.push(json!({"channel_id": channel["channel_id"], "contact_id": c["contact_id"], "type": "template",
                           "template": {"id": template_id, "variables": {"1": "A-1", "2": "Budi"}}}));
    }
    Ok(Tenant { workspace_id, key, bodies, phone_number_id, channel_id: channel["channel_id"].clone(), template_id })
}

async fn send(
    pool: sqlx::PgPool,
    append_writers: usize,
    concurrency: usize,
    seconds: u64,
    projectors: bool,
) -> Result<(), Error> {
    let Scenario { running, client, key, bodies, .. } = scenario(pool, append_writers, concurrency, projectors).await?;
    let url = running.url("/v1/messages");
    let bodies = Arc::new(bodies);
    let s = drive(concurrency, seconds, move |w| {
        let (client, url, key, body) = (client.clone(), url.clone(), key.clone(), bodies[w].clone());
        async move {
            match client.post(url).bearer_auth(key).json(&body).send().await {
                Ok(r) => r.status() == reqwest::StatusCode::ACCEPTED && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    println!("| concurrency | requests | errors | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    println!("| {concurrency} | {} | {} | {:.0} | {} | {} |", s.count, s.errors, s.per_second, ms(s.p50), ms(s.p99));
    running.stop().await?;
    Ok(())
}
