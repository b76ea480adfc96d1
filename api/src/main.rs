//! The `blazz` binary.

use blazz_api::config::{redact_url, Config};
use blazz_api::embedded::EmbeddedPostgres;
use blazz_api::{bench, server};
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
    Up,
    /// Serve the API against DATABASE_URL; the projectors run in `blazz project`.
    Serve,
    /// Run the projectors (the log feed) against DATABASE_URL, without the API.
    Project,
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
}

/// DATABASE_URL, or the private cluster of a `blazz up` running on the same data directory.
fn existing_database(config: &Config) -> Result<String, Error> {
    config.database_url.clone().or_else(|| EmbeddedPostgres::running_url(&config.data_dir)).ok_or_else(|| {
        "no database: set DATABASE_URL, or run this next to a running `blazz up` (same BLAZZ_DATA_DIR)".into()
    })
}

async fn projections(config: Config, which: Projections) -> Result<(), Error> {
    use blazz_commands::codec::Codec;
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    use blazz_projections::{read_models, rebuild, status};
    use std::io::Write;
    let pool = server::connect_and_migrate(&existing_database(&config)?, 4).await?;
    match which {
        Projections::Status => {
            let s = status::status(&pool).await?;
            println!("{:<16} {:>12} {:>12} {:>10} {:>10}", "projection", "position", "applied", "lag", "lag s");
            for p in s.projections {
                println!(
                    "{:<16} {:>12} {:>12} {:>10} {:>10.1}",
                    p.projection, p.position, p.events_applied, p.lag_events, p.lag_seconds
                );
            }
            println!("log read horizon age: {:.1} s", s.horizon_age_seconds);
        }
        Projections::Rebuild { name } => {
            let projector = read_models::by_name(&name).ok_or_else(|| format!("unknown projection {name:?}"))?;
            let store = std::sync::Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()));
            let done = rebuild::rebuild(&pool, store, &Codec::new(), projector, |p| {
                eprint!(
                    "\r{name}: {} / {} events, {:.0}/s, ETA {:.0} s   ",
                    p.done,
                    p.total,
                    p.per_second,
                    p.eta_seconds()
                );
                let _ = std::io::stderr().flush();
            })
            .await?;
            eprintln!();
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

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

/// `blazz project`: the projectors alone, until Ctrl-C or SIGTERM.
async fn project(config: Config) -> Result<(), Error> {
    use blazz_commands::codec::Codec;
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    use blazz_projections::{delta::Hub, read_models, runner::Runner};
    let url = config.database_url.clone().ok_or("`blazz project` needs DATABASE_URL")?;
    let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
    let store = std::sync::Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()));
    let runner = Runner::new(pool, store, Codec::new(), read_models::all(), Hub::new(1));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    println!("Blazz projectors running");
    server::shutdown_signal().await;
    let _ = stop.send(true);
    task.await??;
    Ok(())
}

async fn run_server(config: Config, embedded_allowed: bool) -> Result<(), Error> {
    if !embedded_allowed && config.database_url.is_none() {
        return Err("`blazz serve` needs DATABASE_URL (use `blazz up` for the self-contained mode)".into());
    }
    let (url, embedded) = database(&config).await?;
    let result = async {
        tracing::info!(database = %redact_url(&url), "connecting");
        let pool = server::connect_and_migrate(&url, config.db_max_connections).await?;
        let (token, token_file) = operator_token(&config)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let state = server::state(
            pool,
            server::Settings {
                projectors: embedded_allowed,
                ..server::Settings::new(config.append_writers, Some(token))
            },
            stopped,
        );
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("cannot listen on {} ({e}); set BLAZZ_ADDR", config.addr))?;
        let addr = listener.local_addr()?;
        println!("Blazz API listening on http://{addr}");
        if let Some(f) = token_file {
            println!("Operator token (for POST /v1/workspaces) is in {}", f.display());
        }
        server::serve(listener, server::app(state), server::shutdown_signal()).await?;
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
            Cmd::Up => run_server(config, true).await,
            Cmd::Serve => run_server(config, false).await,
            Cmd::Project => project(config).await,
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
