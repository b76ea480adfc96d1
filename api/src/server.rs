//! Wiring: connect the store, build the router with its middleware, serve until shutdown.

use crate::routes;
use crate::state::AppState;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use axum::Router;
use blazz_commands::codec::Codec;
use blazz_commands::store::postgres::{self, BatchConfig, PgEventStore};
use blazz_commands::store::StoreError;
use blazz_commands::Commands;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Connects to PostgreSQL and applies the migrations.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let pool = postgres::connect(url, max_connections).await?;
    postgres::MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::Database(e.into()))?;
    Ok(pool)
}

/// The application state over a PostgreSQL pool.
pub fn state(pool: PgPool, append_writers: usize, operator_token: Option<String>) -> AppState {
    let store = PgEventStore::new(
        pool,
        BatchConfig {
            writers: append_writers,
            ..BatchConfig::default()
        },
    );
    AppState {
        commands: Commands::new(Arc::new(store), Codec::new()),
        operator_token: operator_token.map(Arc::from),
    }
}

/// The full router with request ids and request spans that record the matched route, not the raw URI.
pub fn app(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    routes::router()
        .with_state(state)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), route, request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A server running in the background (tests and benchmarks).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts the API on an ephemeral port of 127.0.0.1.
    pub async fn start(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app(state.clone()), async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
