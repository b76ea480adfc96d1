//! The `blazz` binary.

use blazz_api::config::{redact_url, Config};
use blazz_api::embedded::EmbeddedPostgres;
use blazz_api::{bench, server};
use blazz_commands::credentials::Keyring;
use blazz_commands::provider::meta::MetaConfig;
use blazz_commands::provider::sandbox::SandboxScript;
use clap::{Parser, Subcommand};
use std::path::Path;
use tracing_subscriber::EnvFilter;

/// mimalloc: measurably less time in allocation than the system allocator under load
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "blazz", version, about = "Blazz: event-sourced WhatsApp Business messaging backend")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the whole system in one process (a private PostgreSQL cluster unless DATABASE_URL is set).
    Up {
        /// Also create a demo workspace with a sandbox channel, and print its API key.
        #[arg(long)]
        demo: bool,
    },
    /// Serve the API against DATABASE_URL; the projectors run in `blazz project`.
    Serve,
    /// Run the projectors against DATABASE_URL, without the API (the Kafka feed with KAFKA_BROKERS).
    Project,
    /// Publish the log to Kafka (DATABASE_URL, KAFKA_BROKERS).
    Relay,
    /// Run a dispatcher (sends queued messages) against DATABASE_URL, without the API.
    Dispatch,
    /// Apply database migrations (DATABASE_URL, or the private cluster).
    Migrate,
    /// Load generators; see docs/benchmarks.md.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// Inspect or rebuild projections (DATABASE_URL, or the cluster of a running `blazz up`).
    Projections {
        #[command(subcommand)]
        which: Projections,
    },
    /// Import from a file through a running gateway, with progress.
    Import {
        #[command(subcommand)]
        which: Import,
    },
    /// Print the OpenAPI document the gateway serves at /openapi.json (docs/openapi.json).
    Openapi,
    /// For auditors (DATABASE_URL, or the cluster of a running `blazz up`).
    Audit {
        #[command(subcommand)]
        which: Audit,
    },
    /// Re-seal every channel credential and contact data key not sealed with the current
    /// BLAZZ_SECRET_KEY (rotation: set the new key, keep the old in BLAZZ_SECRET_KEYS_PREVIOUS, run
    /// this, then drop the old). Events are not touched.
    Reseal,
}

#[derive(Debug, Subcommand)]
enum Audit {
    /// Write a workspace's events recorded in [--from, --to], in log order, a line each.
    Export {
        #[arg(long)]
        workspace: uuid::Uuid,
        /// RFC 3339; the start of the log when absent.
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339; now when absent.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: blazz_api::cli::audit::Format,
        /// The file to write; standard output when absent.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Check every event's digest and link, and every head against the signed checkpoints, of one
    /// workspace or the whole log; report the first broken link (exit status 1).
    Verify {
        /// Absent: the whole log, every workspace in it.
        #[arg(long)]
        workspace: Option<uuid::Uuid>,
        /// The trusted signer (hex); the configured signing key's when absent.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the signed checkpoints of a workspace (or of the whole log), a JSON line each.
    Checkpoints {
        #[arg(long)]
        workspace: Option<uuid::Uuid>,
    },
    /// Fold the log and sign checkpoints now, rather than at the sealer's next round.
    Seal,
    /// Print the public key checkpoints are signed with (hex), for auditors to keep.
    PublicKey,
}

#[derive(Debug, Subcommand)]
enum Import {
    /// Contacts from a CSV (header: phone, name, attributes…) or JSON file, in chunks of
    /// `--chunk-rows` through `POST /v1/contacts/import`.
    Contacts {
        file: std::path::PathBuf,
        /// The gateway.
        #[arg(long, env = "BLAZZ_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A key of the workspace to import into (agent or above).
        #[arg(long, env = "BLAZZ_API_KEY", hide_env_values = true)]
        key: String,
        #[arg(long, default_value_t = blazz_api::cli::import::CHUNK_ROWS)]
        chunk_rows: usize,
    },
}

async fn import(which: Import) -> Result<(), Error> {
    use blazz_api::cli::{import, progress::JobProgress};
    let Import::Contacts { file, url, key, chunk_rows } = which;
    let mut progress = JobProgress::stderr("contacts", "rows", 0);
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
    let summary = import::contacts(&client, &url, &key, &file, chunk_rows, &mut progress).await?;
    for e in summary.errors.iter().take(20) {
        eprintln!("line {}: {} {}", e["line"], e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""));
    }
    if summary.errors.len() > 20 {
        eprintln!("… and {} more", summary.errors.len() - 20);
    }
    println!("{} rows: {} imported, {} not imported", summary.rows, summary.imported, summary.failed);
    Ok(())
}

#[derive(Debug, Subcommand)]
enum Projections {
    /// Each projection's position and lag, and the age of the log's read horizon.
    Status,
    /// Rebuild one projection from the log into fresh tables and switch it in when caught up.
    Rebuild {
        /// contacts, groups, templates, channels, conversations or messages
        name: String,
    },
    /// Events a projector could not apply (parked so the others go on).
    Parked {
        /// Also those already applied by a retry or skipped.
        #[arg(long)]
        all: bool,
    },
    /// Apply a parked event again (and the events of its stream parked behind it), in order.
    Retry {
        /// The parked event's id (see `parked`).
        #[arg(required_unless_present = "every")]
        id: Option<i64>,
        /// Every parked event, stream by stream.
        #[arg(long = "all", conflicts_with = "id")]
        every: bool,
    },
    /// Drop a parked event for good, then retry the events of its stream parked behind it.
    Skip { id: i64 },
}

async fn audit(config: Config, which: Audit) -> Result<(), Error> {
    use blazz_api::cli::audit::{export, Selection};
    use blazz_commands::audit::{checkpoint, seal, verify};
    if let Audit::PublicKey = which {
        println!("{}", hex::encode(audit_settings(&config)?.signer.public_key()));
        return Ok(());
    }
    use blazz_api::cli::progress::JobProgress;
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    let pool = server::connect_and_migrate(&existing_database(&config)?, 4).await?;
    match which {
        Audit::Export { workspace, from, to, format, out } => {
            let store = PgEventStore::new(pool.clone(), BatchConfig::default());
            let vault = blazz_commands::personal::Vault::new(pool, secret_keys(&config)?);
            let selection = Selection { workspace, from, to };
            let mut progress = JobProgress::stderr("export", "events", store.count(workspace, from, to).await?);
            let mut out: Box<dyn std::io::Write> = match out {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written = export(&store, &vault, selection, format, &mut *out, &mut progress).await?;
            eprintln!("exported {written} events");
        }
        Audit::Verify { workspace, public_key } => {
            let trusted: [u8; 32] = match public_key {
                Some(k) => {
                    hex::decode(k.trim()).ok().and_then(|b| b.try_into().ok()).ok_or("--public-key: 64 hex digits")?
                }
                None => audit_settings(&config)?.signer.public_key(),
            };
            let total: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE $1::uuid IS NULL OR workspace_id = $1")
                    .bind(workspace)
                    .fetch_one(&pool)
                    .await?;
            let mut progress = JobProgress::stderr("verify", "events", total.max(0) as u64);
            let started = std::time::Instant::now();
            let v = verify::verify(&pool, workspace, &trusted, &mut |n| progress.set(n)).await?;
            progress.finish();
            let rate = v.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
            println!("checked {} events ({rate:.0}/s) and {} checkpoints", v.events, v.checkpoints);
            if let Some(broken) = v.broken {
                println!("BROKEN at {broken}");
                return Err("the log does not verify".into());
            }
            println!("intact; {} events after the last checkpoint are covered by their links only", v.unsigned_tail);
        }
        Audit::Checkpoints { workspace } => {
            for c in checkpoint::list(&pool, workspace.unwrap_or(checkpoint::LOG)).await? {
                println!("{}", serde_json::to_string(&c)?);
            }
        }
        Audit::Seal => {
            let s = seal::round(&pool, &audit_settings(&config)?.signer).await?;
            println!("sealed {} older events, folded {}, signed {} checkpoints", s.sealed, s.folded, s.checkpoints);
        }
        Audit::PublicKey => {} // answered above, without a database
    }
    Ok(())
}

/// DATABASE_URL, or the private cluster of a `blazz up` running on the same data directory.
fn existing_database(config: &Config) -> Result<String, Error> {
    config.database_url.clone().or_else(|| EmbeddedPostgres::running_url(&config.data_dir)).ok_or_else(|| {
        "no database: set DATABASE_URL, or run this next to a running `blazz up` (same BLAZZ_DATA_DIR)".into()
    })
}

async fn projections(config: Config, which: Projections) -> Result<(), Error> {
    use blazz_commands::codec::Codec;
    use blazz_projections::{read_models, rebuild, status};
    let pool = server::connect_and_migrate(&existing_database(&config)?, 4).await?;
    match which {
        Projections::Status => {
            let s = status::status(&pool, config.kafka.as_ref().map(|k| k.partitions)).await?;
            println!(
                "{:<16} {:>12} {:>12} {:>10} {:>10} {:>8}",
                "projection", "position", "applied", "lag", "lag s", "parked"
            );
            for p in &s.projections {
                println!(
                    "{:<16} {:>12} {:>12} {:>10} {:>10.1} {:>8}",
                    p.projection, p.position, p.events_applied, p.lag_events, p.lag_seconds, p.parked
                );
            }
            println!("log read horizon age: {:.1} s", s.horizon_age_seconds);
            let parked: i64 = s.projections.iter().map(|p| p.parked).sum();
            println!("parked events: {parked}{}", if parked > 0 { " (see `blazz projections parked`)" } else { "" });
        }
        Projections::Parked { all } => {
            use blazz_projections::parked;
            println!(
                "{:>8} {:<14} {:>10} {:<48} {:<8} {:>8}  error",
                "id", "projection", "position", "stream", "status", "attempts"
            );
            let mut after = 0;
            loop {
                let page = parked::list(&pool, all, after, 500).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for p in &page {
                    println!(
                        "{:>8} {:<14} {:>10} {:<48} {:<8} {:>8}  {}",
                        p.id, p.projection, p.position, p.stream_id, p.status, p.attempts, p.error
                    );
                }
            }
        }
        Projections::Retry { id, every } => {
            use blazz_projections::parked;
            let store = sealing_store(&config, &pool)?;
            let r = match (id, every) {
                (Some(id), _) => parked::retry(&pool, &store, &Codec::new(), id).await?,
                (None, _) => parked::retry_all(&pool, &store, &Codec::new()).await?,
            };
            println!("{}", serde_json::to_string(&r)?);
        }
        Projections::Skip { id } => {
            let store = sealing_store(&config, &pool)?;
            let r = blazz_projections::parked::skip(&pool, &store, &Codec::new(), id).await?;
            println!("{}", serde_json::to_string(&r)?);
        }
        Projections::Rebuild { name } => {
            let projector = read_models::by_name(&name).ok_or_else(|| format!("unknown projection {name:?}"))?;
            let store = std::sync::Arc::new(sealing_store(&config, &pool)?);
            let mut bar = blazz_api::cli::progress::JobProgress::stderr(&name, "events", 0);
            let done = rebuild::rebuild(&pool, store, &Codec::new(), projector, |p| {
                bar.set_total(p.total);
                bar.set(p.done);
            })
            .await?;
            bar.finish();
            println!("{name} rebuilt from {} events at {:.0} events/s and switched in", done.done, done.per_second);
        }
    }
    Ok(())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The database to use: DATABASE_URL, or the private cluster (started here).
async fn database(config: &Config) -> Result<(String, Option<EmbeddedPostgres>), Error> {
    match &config.database_url {
        Some(url) => Ok((url.clone(), None)),
        None => {
            let pg = EmbeddedPostgres::start(&config.data_dir).await?;
            Ok((pg.url(), Some(pg)))
        }
    }
}

/// BLAZZ_OPERATOR_TOKEN, or one generated once and kept (mode 0600) in the data directory.
fn operator_token(config: &Config) -> Result<(String, Option<std::path::PathBuf>), Error> {
    if let Some(t) = &config.operator_token {
        return Ok((t.clone(), None));
    }
    let path = config.data_dir.join("operator-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok((t.trim().to_owned(), Some(path)));
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let token = format!("op_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    write_private(&path, &token)?;
    Ok((token, Some(path)))
}

/// A key from configuration (`env`), or one generated once and kept (mode 0600) in the data
/// directory as `file`.
fn kept_key(
    config: &Config,
    configured: &Option<String>,
    env: &str,
    file: &str,
    generate: fn() -> String,
) -> Result<String, Error> {
    if let Some(k) = configured {
        return Ok(k.clone());
    }
    let path = config.data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_owned()),
        _ => {
            if config.database_url.is_some() {
                tracing::warn!("{env} is not set: generated one in {}; every instance must share it", path.display());
            }
            std::fs::create_dir_all(&config.data_dir)?;
            let k = generate();
            write_private(&path, &k)?;
            Ok(k)
        }
    }
}

/// The event store with personal fields sealed under the deployment's secret keys.
fn sealing_store(config: &Config, pool: &sqlx::PgPool) -> Result<blazz_commands::personal::PersonalStore, Error> {
    use blazz_commands::store::postgres::BatchConfig;
    Ok(server::event_store(pool, BatchConfig::default(), &secret_keys(config)?))
}

/// The credential sealing keys: BLAZZ_SECRET_KEY, or one generated once and kept in the data directory.
fn secret_keys(config: &Config) -> Result<Keyring, Error> {
    let current = kept_key(config, &config.secret_key, "BLAZZ_SECRET_KEY", "secret.key", Keyring::generate_base64)?;
    Ok(Keyring::from_base64(&current, &config.previous_secret_keys)?)
}

/// The audit sealer's settings: BLAZZ_AUDIT_SIGNING_KEY, or a key generated once and kept in the
/// data directory; BLAZZ_AUDIT_CHECKPOINT_SECS.
fn audit_settings(config: &Config) -> Result<server::AuditSettings, Error> {
    use blazz_commands::audit::checkpoint::Signer;
    let seed = kept_key(
        config,
        &config.audit_signing_key,
        "BLAZZ_AUDIT_SIGNING_KEY",
        "audit-signing.key",
        Signer::generate_base64,
    )?;
    Ok(server::AuditSettings {
        signer: Signer::from_base64(&seed)?,
        interval: std::time::Duration::from_secs(config.audit_checkpoint_secs),
    })
}

fn edge_settings(config: &Config, dispatch: bool) -> Result<server::EdgeSettings, Error> {
    let step = std::time::Duration::from_millis(config.sandbox_delay_ms);
    Ok(server::EdgeSettings {
        keys: secret_keys(config)?,
        meta: MetaConfig {
            base_url: config.meta_base_url.clone(),
            api_version: config.meta_api_version.clone(),
            ..MetaConfig::default()
        },
        sandbox: SandboxScript {
            sent_after: step,
            delivered_after: step * 2,
            read_after: Some(step * 3),
            fail_with: config.sandbox_fail_code,
            reply: config.sandbox_reply.clone(),
        },
        dispatch,
        public_url: config.public_url.clone(),
        retry: blazz_commands::dispatch::RetryPolicy {
            max_attempts: config.max_attempts,
            unknown_after: std::time::Duration::from_secs(config.unknown_after_secs),
            recipient_pace: std::time::Duration::from_secs_f64(config.recipient_pace_secs),
            ..blazz_commands::dispatch::RetryPolicy::default()
        },
        webhooks: blazz_commands::outbound::deliver::DeliverySettings {
            allow_private: config.webhooks_allow_private,
            timeout: std::time::Duration::from_millis(config.webhooks_timeout_ms),
            ..Default::default()
        },
        media: media_store(config)?,
    })
}

/// The media store of `BLAZZ_MEDIA_STORE`: S3-compatible for `s3://…`, else a directory.
fn media_store(config: &Config) -> Result<std::sync::Arc<dyn object_store::ObjectStore>, Error> {
    match config.media_store.as_deref() {
        Some(url) if url.starts_with("s3://") => {
            let s3 = object_store::aws::AmazonS3Builder::from_env().with_url(url).build()?;
            Ok(std::sync::Arc::new(s3))
        }
        Some(dir) => Ok(server::media_dir(Path::new(dir))?),
        None => Ok(server::media_dir(&config.data_dir.join("media"))?),
    }
}

/// `blazz dispatch`: a dispatcher alone, until Ctrl-C or SIGTERM.
async fn dispatch(config: Config) -> Result<(), Error> {
    use blazz_commands::codec::Codec;
    use blazz_commands::credentials::CredentialStore;
    let url = config.database_url.clone().ok_or("`blazz dispatch` needs DATABASE_URL")?;
    let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
    let store = sealing_store(&config, &pool)?;
    let vault = store.vault().clone();
    let commands = blazz_commands::Commands::new(std::sync::Arc::new(store), Codec::new())
        .with_bulk_share(config.limits.bulk_share)
        .with_vault(vault);
    let launcher = blazz_api::launcher::Launcher::new(commands.clone());
    let edge = edge_settings(&config, true)?;
    let credentials = CredentialStore::new(pool.clone(), edge.keys.clone());
    let secrets = blazz_commands::outbound::secrets::EndpointSecrets::new(pool.clone(), edge.keys.clone());
    let deliverer = blazz_commands::outbound::deliver::Deliverer::new(
        pool.clone(),
        commands.clone(),
        secrets,
        edge.webhooks.clone(),
    )?;
    let bots = blazz_commands::bot::Bots::new(
        pool.clone(),
        edge.keys.clone(),
        edge.webhooks.allow_private,
        server::BOT_TIMEOUT,
    )?;
    let automation =
        blazz_commands::automation::AutomationWorker::new(pool.clone(), commands.clone(), bots, edge.webhooks.poll);
    let dispatcher = server::dispatcher(&pool, commands, credentials, &edge, &format!("http://{}", config.addr));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivering = server::spawn_deliverer(deliverer, stopped.clone());
    let automating = server::spawn_automation(automation, stopped.clone());
    let task = server::spawn_dispatcher(pool, dispatcher, launcher, stopped);
    println!("Blazz dispatcher, webhook deliverer and automation worker running");
    server::shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    delivering.await?;
    automating.await?;
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

/// `blazz project`: the projectors alone (the Kafka feed when KAFKA_BROKERS is set, else the log
/// feed), until Ctrl-C or SIGTERM.
async fn project(config: Config) -> Result<(), Error> {
    use blazz_projections::delta::Hub;
    let url = config.database_url.clone().ok_or("`blazz project` needs DATABASE_URL")?;
    let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sealer = server::spawn_sealer(pool.clone(), audit_settings(&config)?, stopped.clone());
    let task = match &config.kafka {
        Some(kafka) => {
            let vault = blazz_commands::personal::Vault::new(pool.clone(), secret_keys(&config)?);
            server::spawn_kafka_projectors(pool, kafka, vault, None, stopped).await?.0
        }
        None => {
            let store = std::sync::Arc::new(sealing_store(&config, &pool)?);
            server::spawn_log_projectors(pool, store, Hub::new(1), stopped).1
        }
    };
    println!("Blazz projectors running ({})", if config.kafka.is_some() { "Kafka feed" } else { "log feed" });
    server::shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    sealer.await?;
    Ok(())
}

/// `blazz relay`: publishes the log to Kafka, until Ctrl-C or SIGTERM.
async fn relay(config: Config) -> Result<(), Error> {
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    let url = config.database_url.clone().ok_or("`blazz relay` needs DATABASE_URL")?;
    let kafka = config.kafka.clone().ok_or("`blazz relay` needs KAFKA_BROKERS")?;
    let pool = server::connect_and_migrate(&url, 4).await?;
    let store = std::sync::Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = server::spawn_relay(pool, store, &kafka, stopped).await?;
    println!("Blazz relay running (topic {})", kafka.events_topic());
    server::shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

async fn run_server(mut config: Config, embedded_allowed: bool, demo: bool) -> Result<(), Error> {
    if demo && config.sandbox_reply.is_none() {
        config.sandbox_reply = Some(blazz_api::demo::DEMO_REPLY.into());
    }
    if !embedded_allowed && config.database_url.is_none() {
        return Err("`blazz serve` needs DATABASE_URL (use `blazz up` for the self-contained mode)".into());
    }
    // Before anything starts: a SIGTERM during start-up must still stop the private cluster.
    let shutdown = server::shutdown_signal();
    let (url, embedded) = database(&config).await?;
    let result = async {
        tracing::info!(database = %redact_url(&url), "connecting");
        let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
        let (token, token_file) = operator_token(&config)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("cannot listen on {} ({e}); set BLAZZ_ADDR", config.addr))?;
        let addr = listener.local_addr()?;
        let settings = server::Settings {
            projectors: embedded_allowed,
            edge: edge_settings(&config, embedded_allowed)?,
            kafka: config.kafka.clone(),
            limits: config.limits,
            audit: embedded_allowed.then(|| audit_settings(&config)).transpose()?,
            ..server::Settings::new(config.append_writers, Some(token))
        };
        let state = server::state(pool, settings, stopped, &format!("http://{addr}")).await?;
        println!("Blazz API listening on http://{addr}");
        if demo {
            let d = blazz_api::demo::create(&state).await?;
            println!("Demo workspace {} with sandbox channel {}", d.workspace_id, d.channel_id);
            println!("Demo API key (shown once): {}", d.api_key);
            println!("Demo agent {} (online, team Support, auto-assigned); its key: {}", d.agent_id, d.agent_key);
        }
        if let Some(f) = token_file {
            println!("Operator token (for POST /v1/workspaces) is in {}", f.display());
        }
        server::serve(listener, server::app(state), shutdown).await?;
        let _ = stop.send(true);
        tracing::info!("shut down");
        Ok::<_, Error>(())
    }
    .await;
    if let Some(pg) = embedded {
        pg.stop().await;
    }
    result
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("BLAZZ_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
    let cli = Cli::parse();
    let result: Result<(), Error> = async {
        let config = Config::from_env()?;
        match cli.command {
            Cmd::Up { demo } => run_server(config, true, demo).await,
            Cmd::Serve => run_server(config, false, false).await,
            Cmd::Project => project(config).await,
            Cmd::Relay => relay(config).await,
            Cmd::Dispatch => dispatch(config).await,
            Cmd::Migrate => {
                let (url, embedded) = database(&config).await?;
                let migrated = server::connect_and_migrate(&url, 2).await;
                if let Some(pg) = embedded {
                    pg.stop().await;
                }
                migrated?;
                println!("migrations applied");
                Ok(())
            }
            Cmd::Bench { which } => bench::run(config, which).await,
            Cmd::Projections { which } => projections(config, which).await,
            Cmd::Import { which } => import(which).await,
            Cmd::Audit { which } => audit(config, which).await,
            Cmd::Reseal => {
                let pool = server::connect_and_migrate(&existing_database(&config)?, 2).await?;
                let keys = secret_keys(&config)?;
                let credentials =
                    blazz_commands::credentials::CredentialStore::new(pool.clone(), keys.clone()).reseal_all().await?;
                let secrets = blazz_commands::outbound::secrets::EndpointSecrets::new(pool.clone(), keys.clone())
                    .reseal_all()
                    .await?;
                let bots = blazz_commands::bot::Bots::new(pool.clone(), keys.clone(), false, server::BOT_TIMEOUT)?
                    .reseal_all()
                    .await?;
                let data_keys = blazz_commands::personal::Vault::new(pool, keys).reseal_all().await?;
                println!(
                    "re-sealed {credentials} channel credentials, {secrets} webhook signing secrets, {bots} bot keys, {data_keys} contact data keys and key-tree nodes"
                );
                Ok(())
            }
            Cmd::Openapi => {
                println!("{}", blazz_api::openapi::document().to_pretty_json()?);
                Ok(())
            }
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
