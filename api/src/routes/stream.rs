//! `GET /v1/stream?after=<delta_id>`: live deltas of the caller's workspace over WebSocket.
//!
//! Messages are JSON: `{"type": "delta", ...}` per change, in log order. A client that reconnects
//! passes the `delta_id` of the last delta it received and first gets what it missed, then live ones,
//! without gaps or duplicates. If that is older than what this gateway still holds, or the client reads
//! too slowly to keep up, it gets `{"type": "resync"}` and the socket closes: reload from the queries,
//! then reconnect without `after`.
//!
//! While a campaign of the workspace runs, `{"type": "progress", "kind": "campaign", "id": ..., "changed":
//! {counts, rate_per_second, eta_seconds}}` comes once a second besides the deltas (not replayed on
//! resume: the next tick brings the current state).
//!
//! Fairness: each workspace has its own replay buffer and live queue (another tenant's burst cannot
//! push this one's clients into resync). A client that does not take a message within the socket send
//! timeout (5 s unless configured) gets `resync` and is closed, so a stalled reader holds no memory for long. The key
//! is checked again every [`KEY_RECHECK`]: a revoked key's sockets close within that plus the key
//! cache's lifetime.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Query, Upgrade};
use crate::state::AppState;
use crate::ticker::Tick;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use blazz_commands::handlers::workspace::Principal;
use blazz_domain::role::Action;
use blazz_projections::delta::{Delta, DeltaKey, Resume};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    after: Option<String>,
}

/// How often an open socket's key is checked again (revocation closes it).
pub const KEY_RECHECK: Duration = Duration::from_secs(1);

#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "live",
    params(Params),
    responses((status = 101, description = "Switching to the WebSocket protocol.")),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<Params>,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let after = match p.after.as_deref() {
        None | Some("") => None,
        Some(id) => Some(
            Delta::parse_id(id).ok_or_else(|| ApiError::bad_request("invalid_query", "after must be a delta_id"))?,
        ),
    };
    let workspace = caller.workspace_id();
    let secret = crate::auth::bearer(&headers).unwrap_or_default().to_owned();
    let ticks = s.ticks.subscribe();
    let socket_timeout = s.limits.socket_send_timeout;
    Ok(ws.on_upgrade(move |socket| {
        serve(Client { socket, timeout: socket_timeout }, s, secret, ticks, workspace, after)
    }))
}

/// Why a socket stops.
enum Stop {
    /// The client went away (or its connection failed).
    Gone,
    /// The client did not take a message in time.
    Stalled,
}

/// A subscriber's socket and how long it may take to accept a message.
struct Client {
    socket: WebSocket,
    timeout: Duration,
}

impl Client {
    async fn send_text(&mut self, text: String) -> Result<(), Stop> {
        match tokio::time::timeout(self.timeout, self.socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Stalled),
        }
    }

    async fn send(&mut self, delta: &Delta) -> Result<(), Stop> {
        let mut v = serde_json::to_value(delta).unwrap_or_default();
        v["type"] = json!("delta");
        self.send_text(v.to_string()).await
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.socket.send(Message::Close(None))).await;
    }

    /// Tells the client to resync and closes; a stalled client gets one bounded try.
    async fn resync(mut self, reason: &str) {
        let text = json!({ "type": "resync", "reason": reason }).to_string();
        if self.send_text(text).await.is_ok() {
            self.close().await;
        }
    }
}

async fn serve(
    mut socket: Client,
    s: AppState,
    secret: String,
    ticks: broadcast::Receiver<Tick>,
    workspace: Uuid,
    after: Option<DeltaKey>,
) {
    let subscribers = metrics::gauge!("blazz_websocket_subscribers");
    subscribers.increment(1.0);
    let reason = match run(&mut socket, &s, &secret, ticks, workspace, after).await {
        Ok(reason) => Some(reason),
        Err(Stop::Gone) => None,
        Err(Stop::Stalled) => Some("the client did not read in time"),
    };
    subscribers.decrement(1.0);
    if let Some(reason) = reason {
        metrics::counter!("blazz_websocket_resyncs_total").increment(1);
        socket.resync(reason).await;
    }
}

/// Serves deltas and ticks until the socket must stop; `Ok(reason)`: tell the client to resync.
async fn run(
    socket: &mut Client,
    s: &AppState,
    secret: &str,
    mut ticks: broadcast::Receiver<Tick>,
    workspace: Uuid,
    after: Option<DeltaKey>,
) -> Result<&'static str, Stop> {
    let (missed, mut live) = match s.hub.subscribe(workspace, after) {
        Resume::Resync => return Ok("the requested position is no longer buffered"),
        Resume::From(missed, live) => (missed, live),
    };
    let mut last = after.unwrap_or((0, 0, 0));
    for d in &missed {
        socket.send(d).await?;
        last = d.key();
    }
    let mut recheck = tokio::time::interval(KEY_RECHECK);
    recheck.tick().await;
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(d) if d.key() > last => {
                    socket.send(&d).await?;
                    last = d.key();
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Ok("the client fell behind"),
                Err(RecvError::Closed) => return Err(Stop::Gone),
            },
            tick = ticks.recv() => match tick {
                Ok(tick) => {
                    for (_, campaign, changed) in tick.iter().filter(|(w, _, _)| *w == workspace) {
                        let m = json!({"type": "progress", "kind": "campaign", "id": campaign, "changed": changed});
                        socket.send_text(m.to_string()).await?;
                    }
                }
                // A missed tick is replaced by the next one.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(Stop::Gone),
            },
            _ = recheck.tick() => {
                // A store failure is not a revocation: keep serving and look again later.
                // A deactivated agent's key goes as a revoked one does.
                if let Ok(None | Some(Principal { agent_active: false, .. })) = s.commands.authenticate(secret).await {
                    socket.close().await;
                    return Err(Stop::Gone);
                }
            },
            incoming = socket.socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Err(Stop::Gone),
                Some(Ok(_)) => {}
            },
        }
    }
}
