//! Wiring: connect the store, start the projectors, build the router with its middleware, serve until
//! shutdown.

use crate::launcher::Launcher;
use crate::limits::{KeyRates, LimitSettings};
use crate::routes;
use crate::state::{AppState, Handles};
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use axum::Router;
use blazz_commands::audit::{checkpoint::Signer, seal};
use blazz_commands::automation::AutomationWorker;
use blazz_commands::bot::Bots;
use blazz_commands::codec::Codec;
use blazz_commands::credentials::{CredentialStore, Keyring};
use blazz_commands::dispatch::{Dispatcher, Providers, RetryPolicy};
use blazz_commands::media::{MediaFetcher, MediaUploads};
use blazz_commands::outbound::deliver::{Deliverer, DeliverySettings};
use blazz_commands::outbound::secrets::EndpointSecrets;
use blazz_commands::personal::{PersonalStore, Vault};
use blazz_commands::provider::meta::{MetaConfig, MetaProvider};
use blazz_commands::provider::sandbox::{SandboxProvider, SandboxScript};
use blazz_commands::store::postgres::{self, BatchConfig, PgEventStore};
use blazz_commands::store::{EventStore, StoreError};
use blazz_commands::Commands;
use blazz_projections::delta::{DeltaSink, Hub};
use blazz_projections::kafka::deltas::{self, KafkaDeltaSink};
use blazz_projections::kafka::{KafkaConfig, KafkaFeed, Relay};
use blazz_projections::progress::Progress;
use blazz_projections::read_models;
use blazz_projections::runner::Runner;
use blazz_projections::supervise::supervise;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Deltas kept for reconnecting WebSocket clients (and the live queue per client), by default.
pub const DELTA_BUFFER: usize = 10_000;

/// What a gateway process runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub append_writers: usize,
    pub operator_token: Option<String>,
    pub delta_buffer: usize,
    /// Run the projectors in this process (`blazz up`); otherwise they run in `blazz project`, queries
    /// follow their stored checkpoints, and this gateway has no live deltas of its own.
    pub projectors: bool,
    pub edge: EdgeSettings,
    /// The scaled-out read side: with projectors, this process also runs the relay and the Kafka feed;
    /// either way, live deltas come from the deltas topic. `None`: the log feed.
    pub kafka: Option<KafkaConfig>,
    /// Request timeout, concurrency limit, per-key rates.
    pub limits: LimitSettings,
    /// Run the audit sealer in this process (`blazz up` does, beside its projectors). `None`: it runs
    /// elsewhere (`blazz project`).
    pub audit: Option<AuditSettings>,
}

/// The audit sealer: the key checkpoints are signed with, and how often.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub signer: Signer,
    pub interval: std::time::Duration,
}

/// Starts the audit sealer (`blazz_commands::audit::seal`), supervised, until `shutdown`.
pub fn spawn_sealer(
    pool: PgPool,
    audit: AuditSettings,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(supervise("audit sealer", shutdown.clone(), move || {
        let (pool, audit, shutdown) = (pool.clone(), audit.clone(), shutdown.clone());
        async move {
            seal::run(pool, audit.signer, audit.interval, shutdown).await;
            Ok::<(), std::convert::Infallible>(())
        }
    }))
}

/// The WhatsApp edge: credential sealing, providers, and whether this process dispatches.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub keys: Keyring,
    pub meta: MetaConfig,
    pub sandbox: SandboxScript,
    /// Run a dispatcher in this process (`blazz up`, `blazz dispatch`).
    pub dispatch: bool,
    /// Where the sandbox posts its webhooks; `None`: this server's own address.
    pub public_url: Option<String>,
    pub retry: RetryPolicy,
    /// Outbound webhook deliveries (made where dispatching is, `dispatch`).
    pub webhooks: DeliverySettings,
    /// Where media is kept (inbound media is fetched where dispatching is).
    pub media: Arc<dyn object_store::ObjectStore>,
}

/// A filesystem media store under `dir` (created if missing).
pub fn media_dir(dir: &std::path::Path) -> std::io::Result<Arc<dyn object_store::ObjectStore>> {
    std::fs::create_dir_all(dir)?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(std::io::Error::other)?;
    Ok(Arc::new(store))
}

/// This process's default media store: in memory, shared by every default in it (like the sealing
/// key), so several servers of one process, as tests run them, see the same media. The commands
/// give a directory or S3 (`BLAZZ_MEDIA_STORE`); a directory here was left behind by every process.
fn default_media() -> Arc<dyn object_store::ObjectStore> {
    static STORE: std::sync::OnceLock<Arc<dyn object_store::ObjectStore>> = std::sync::OnceLock::new();
    STORE.get_or_init(|| Arc::new(object_store::memory::InMemory::new())).clone()
}

impl Default for EdgeSettings {
    /// A random sealing key of this process (the same for every default in it, so several servers
    /// of one process, as tests run them, open each other's data), Meta's public API, the default
    /// sandbox script, no dispatcher.
    fn default() -> Self {
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(Keyring::generate_base64);
        Self {
            keys: Keyring::from_base64(key, &[]).expect("a generated key is valid"),
            meta: MetaConfig::default(),
            sandbox: SandboxScript::default(),
            dispatch: false,
            public_url: None,
            retry: RetryPolicy::default(),
            webhooks: DeliverySettings::default(),
            media: default_media(),
        }
    }
}

impl Settings {
    pub fn new(append_writers: usize, operator_token: Option<String>) -> Self {
        Self {
            append_writers,
            operator_token,
            delta_buffer: DELTA_BUFFER,
            projectors: true,
            edge: EdgeSettings::default(),
            kafka: None,
            limits: LimitSettings::default(),
            audit: None,
        }
    }
}

/// Connects to PostgreSQL and applies the migrations.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let pool = postgres::connect(url, max_connections).await?;
    postgres::MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(e.into()))?;
    Ok(pool)
}

/// Why the system could not start.
/// Time for one call to a workspace's bot (its chat-completions endpoint).
pub const BOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The application state over a PostgreSQL pool, with the projectors (and the dispatcher, if enabled)
/// running in this process. They stop when `shutdown` turns true. `own_url` is where this server is
/// reached (the sandbox posts its webhooks there unless a public URL is configured).
pub async fn state(
    pool: PgPool,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
    own_url: &str,
) -> Result<AppState, StartError> {
    // The recorder is in place before the first append, batch or request is counted.
    crate::metrics::handle();
    let config = BatchConfig { writers: settings.append_writers, ..BatchConfig::default() };
    let personal = event_store(&pool, config, &settings.edge.keys);
    let vault = personal.vault().clone();
    let store: Arc<dyn EventStore> = Arc::new(personal.clone());
    let hub = Hub::new(settings.delta_buffer);
    let names = projection_names();
    let poll = std::time::Duration::from_millis(20);
    let progress = match (&settings.kafka, settings.projectors) {
        (None, true) => spawn_log_projectors(pool.clone(), store.clone(), hub.clone(), shutdown.clone()).0,
        (None, false) => Progress::polling(pool.clone(), names, None, poll, shutdown.clone()),
        (Some(kafka), projectors) => {
            let mut own = None;
            if projectors {
                // The topic carries the log as stored: personal fields sealed.
                spawn_relay(pool.clone(), personal.sealed().clone(), kafka, shutdown.clone()).await?;
                own = Some(
                    spawn_kafka_projectors(pool.clone(), kafka, vault.clone(), Some(hub.clone()), shutdown.clone())
                        .await?
                        .1,
                );
            }
            deltas::subscribe(kafka, pool.clone(), names.clone(), hub.clone(), own, shutdown.clone()).await?;
            Progress::polling(pool.clone(), names, Some(kafka.partitions), poll, shutdown.clone())
        }
    };
    let commands = Commands::new(store, Codec::new()).with_bulk_share(settings.limits.bulk_share).with_vault(vault);
    let launcher = Launcher::new(commands.clone());
    let kafka_partitions = settings.kafka.as_ref().map(|k| k.partitions);
    let edge = settings.edge;
    let credentials = CredentialStore::new(pool.clone(), edge.keys.clone());
    let ticks = crate::ticker::spawn(pool.clone(), shutdown.clone());
    if let Some(audit) = settings.audit {
        spawn_sealer(pool.clone(), audit, shutdown.clone());
    }
    let endpoint_secrets = EndpointSecrets::new(pool.clone(), edge.keys.clone());
    let bots = Bots::new(pool.clone(), edge.keys.clone(), edge.webhooks.allow_private, BOT_TIMEOUT)?;
    if edge.dispatch {
        let deliverer =
            Deliverer::new(pool.clone(), commands.clone(), endpoint_secrets.clone(), edge.webhooks.clone())?;
        spawn_deliverer(deliverer, shutdown.clone());
        let fetcher = MediaFetcher::new(
            pool.clone(),
            edge.media.clone(),
            credentials.clone(),
            edge.meta.clone(),
            edge.webhooks.poll,
        )?;
        spawn_media_fetcher(fetcher, shutdown.clone());
        let automation = AutomationWorker::new(pool.clone(), commands.clone(), bots.clone(), edge.webhooks.poll);
        spawn_automation(automation, shutdown.clone());
        let dispatcher = dispatcher(&pool, commands.clone(), credentials.clone(), &edge, own_url);
        spawn_dispatcher(pool.clone(), dispatcher, launcher.clone(), shutdown);
    }
    Ok(AppState::new(Handles {
        commands,
        limits: settings.limits,
        rates: Arc::new(KeyRates::new(settings.limits.key_rate)),
        operator_token: settings.operator_token.map(Arc::from),
        pool,
        progress,
        hub,
        credentials,
        endpoint_secrets,
        bots,
        media: edge.media.clone(),
        webhooks_allow_private: edge.webhooks.allow_private,
        ticks,
        launcher,
        kafka_partitions,
    }))
}

/// The event store over `pool`, sealing personal fields with data keys sealed under `keys` (the
/// deployment's secret keys; see `blazz_commands::personal`).
pub fn event_store(pool: &PgPool, config: BatchConfig, keys: &Keyring) -> PersonalStore {
    let sealed: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), config));
    PersonalStore::new(sealed, Vault::new(pool.clone(), keys.clone()))
}

/// Starts the projectors on the log feed, supervised (restarted after a crash, reporting to the same
/// progress), until `shutdown`; returns their progress and the supervisor's task.
pub fn spawn_log_projectors(
    pool: PgPool,
    store: Arc<dyn EventStore>,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) -> (Progress, tokio::task::JoinHandle<()>) {
    let make = move || Runner::new(pool.clone(), store.clone(), Codec::new(), read_models::all(), hub.clone());
    let first = make();
    let (progress, sender) = (first.progress(), first.progress_sender());
    let stopped = shutdown.clone();
    let task = tokio::spawn(supervise("projections", shutdown, move || {
        make().reporting_to(sender.clone()).run(stopped.clone())
    }));
    (progress, task)
}

/// Starts a dispatcher's two loops (sending, and launching scheduled campaigns through `launcher`),
/// each supervised; returns the sending loop's task (it finishes the sends in flight on shutdown).
pub fn spawn_dispatcher(
    pool: PgPool,
    dispatcher: Dispatcher,
    launcher: Launcher,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (p, d, s) = (pool.clone(), dispatcher.clone(), shutdown.clone());
    tokio::spawn(supervise("campaign schedule", shutdown.clone(), move || {
        let (p, d, l, s) = (p.clone(), d.clone(), launcher.clone(), s.clone());
        async move {
            crate::dispatch::schedule(p, d, l, s).await;
            Ok::<_, std::convert::Infallible>(())
        }
    }));
    let s = shutdown.clone();
    tokio::spawn(supervise("dispatcher", shutdown, move || {
        let (p, d, s) = (pool.clone(), dispatcher.clone(), s.clone());
        async move {
            crate::dispatch::run(p, d, s).await;
            Ok::<_, std::convert::Infallible>(())
        }
    }))
}

/// Starts the outbound webhook deliverer, supervised, until `shutdown`; the task finishes the
/// attempts in flight.
pub fn spawn_deliverer(deliverer: Deliverer, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    spawn_worker("webhook deliverer", shutdown, move |s| deliverer.clone().run(s))
}

/// Starts the automation worker (it performs the rules' runs), supervised, until `shutdown`.
pub fn spawn_automation(worker: AutomationWorker, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    spawn_worker("automation worker", shutdown, move |s| worker.clone().run(s))
}

/// Starts the inbound media fetcher, supervised, until `shutdown`.
pub fn spawn_media_fetcher(fetcher: MediaFetcher, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    spawn_worker("media fetcher", shutdown, move |s| fetcher.clone().run(s))
}

/// Runs `work` (until the shutdown it is given) under the supervisor: restarted if it panics.
fn spawn_worker<F, Fut>(name: &'static str, shutdown: watch::Receiver<bool>, work: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let s = shutdown.clone();
    tokio::spawn(supervise(name, shutdown, move || {
        let run = work(s.clone());
        async move {
            run.await;
            Ok::<_, std::convert::Infallible>(())
        }
    }))
}

/// The names of every live projection.
pub fn projection_names() -> Vec<&'static str> {
    read_models::all().iter().map(|p| p.name()).collect()
}

/// Starts the relay (`blazz relay`, or inside `blazz up` with Kafka) until `shutdown`.
pub async fn spawn_relay(
    pool: PgPool,
    store: Arc<dyn EventStore>,
    kafka: &KafkaConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let relay = Relay::new(pool, store, kafka.clone(), projection_names()).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = relay.run(shutdown).await {
            tracing::error!(error = %e, "relay stopped");
        }
    }))
}

/// Starts the projectors on the Kafka feed until `shutdown`. Their deltas go to the deltas topic for
/// every gateway and, with `local`, straight into this process's hub too. Returns the task and the
/// origin tag of the deltas they publish (this process's delta consumer skips those).
pub async fn spawn_kafka_projectors(
    pool: PgPool,
    kafka: &KafkaConfig,
    vault: Vault,
    local: Option<Hub>,
    shutdown: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, uuid::Uuid), StartError> {
    let feed = KafkaFeed::new(kafka).await?.revealing(vault);
    let topic = KafkaDeltaSink::new(kafka)?;
    let origin = topic.origin();
    let mut sinks: Vec<Arc<dyn DeltaSink>> = vec![Arc::new(topic)];
    if let Some(hub) = local {
        sinks.push(Arc::new(hub));
    }
    let runner = Runner::with_feed(pool, feed, Codec::new(), read_models::all(), sinks);
    let task = tokio::spawn(async move {
        if let Err(e) = runner.run(shutdown).await {
            tracing::error!(error = %e, "projections stopped");
        }
    });
    Ok((task, origin))
}

/// A dispatcher with the Meta provider and the sandbox (posting to the public URL, else `own_url`).
pub fn dispatcher(
    pool: &PgPool,
    commands: Commands,
    credentials: CredentialStore,
    edge: &EdgeSettings,
    own_url: &str,
) -> Dispatcher {
    let ingest = edge.public_url.clone().unwrap_or_else(|| own_url.to_owned());
    let providers = Providers {
        meta: Arc::new(MetaProvider::new(edge.meta.clone())),
        sandbox: Arc::new(SandboxProvider::new(ingest, edge.sandbox.clone())),
    };
    Dispatcher::new(commands, credentials, providers)
        .with_policy(edge.retry)
        .with_uploads(MediaUploads::new(pool.clone(), edge.media.clone()))
}

/// Longest `X-Request-Id` kept from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// Drops a client's `X-Request-Id` unless it is 1 to [`MAX_REQUEST_ID`] visible ASCII characters, so
/// the request-id layer replaces it with a fresh one: the id is copied into the metadata of every event
/// the request writes, and the log is immutable.
async fn bounded_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let ok = |v: &axum::http::HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(u8::is_ascii_graphic)
    };
    let values = req.headers().get_all("x-request-id");
    let mut iter = values.iter();
    let keep = matches!((iter.next(), iter.next()), (Some(v), None) if ok(v));
    if !keep {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// `GET /openapi.json`: the OpenAPI document of every other route (see [`crate::openapi`]).
async fn openapi_json(document: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// The full router with request ids and request spans that record the matched route, not the raw URI.
pub fn app(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let limits = state.limits;
    let (router, document) = routes::router();
    // Rendered once: the document describes the routes, which do not change while serving.
    // Shared, not copied, by every answer.
    let document = axum::body::Bytes::from(document.to_json().unwrap_or_default());
    router
        .route("/openapi.json", axum::routing::get(move || openapi_json(document.clone())))
        .with_state(state)
        // Inside the concurrency limit: a request counts until it ends or times out.
        .layer(axum::middleware::from_fn_with_state(limits, crate::limits::timeout))
        // One semaphore for the whole gateway (the router applies layers route by route).
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(crate::limits::overloaded))
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(Arc::new(
                    tokio::sync::Semaphore::new(limits.max_concurrent),
                ))),
        )
        // Outside the limits: shed and timed-out requests are counted too.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(axum::middleware::from_fn(crate::extract::correlate))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), route, request_id)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(bounded_request_id))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// A server (API and projectors) running in the background, for tests and benchmarks.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Dropping the handle stops the server and the projectors (they release their connections).
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Running {
    /// Starts the API and the projectors on an ephemeral port of 127.0.0.1.
    pub async fn start(pool: PgPool, settings: Settings) -> std::io::Result<Self> {
        let (stop, mut stopped) = watch::channel(false);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state =
            state(pool, settings, stopped.clone(), &format!("http://{addr}")).await.map_err(std::io::Error::other)?;
        let task = tokio::spawn(serve(listener, app(state.clone()), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self { addr, state, stop, task: Some(task) })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a signal that
/// arrives during start-up (before serving) is then kept, and shuts down cleanly (stopping a private
/// cluster) instead of killing the process with the cluster left running.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn received(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    async move {
        tokio::select! {
            _ = received(term) => {},
            _ = received(int) => {},
        }
    }
}
