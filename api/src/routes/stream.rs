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

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use crate::ticker::Tick;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use blazz_domain::role::Action;
use blazz_projections::delta::{Delta, DeltaKey, Hub, Resume};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct Params {
    after: Option<String>,
}

pub async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let after = match p.after.as_deref() {
        None | Some("") => None,
        Some(id) => Some(
            Delta::parse_id(id).ok_or_else(|| ApiError::bad_request("invalid_query", "after must be a delta_id"))?,
        ),
    };
    let workspace = caller.workspace_id();
    let ticks = s.ticks.subscribe();
    Ok(ws.on_upgrade(move |socket| serve(socket, s.hub, ticks, workspace, after)))
}

async fn send(socket: &mut WebSocket, delta: &Delta) -> bool {
    let mut v = serde_json::to_value(delta).unwrap_or_default();
    v["type"] = json!("delta");
    socket.send(Message::Text(v.to_string().into())).await.is_ok()
}

async fn resync(mut socket: WebSocket, reason: &str) {
    let _ = socket.send(Message::Text(json!({ "type": "resync", "reason": reason }).to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn serve(
    mut socket: WebSocket,
    hub: Hub,
    mut ticks: broadcast::Receiver<Tick>,
    workspace: Uuid,
    after: Option<DeltaKey>,
) {
    let (missed, mut live) = match hub.subscribe(after) {
        Resume::Resync => return resync(socket, "the requested position is no longer buffered").await,
        Resume::From(missed, live) => (missed, live),
    };
    let mut last = after.unwrap_or((0, 0, 0));
    let mine = |d: &Arc<Delta>| d.workspace_id == workspace;
    for d in missed.iter().filter(|d| mine(d)) {
        if !send(&mut socket, d).await {
            return;
        }
        last = d.key();
    }
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(d) if d.key() > last && mine(&d) => {
                    if !send(&mut socket, &d).await {
                        return;
                    }
                    last = d.key();
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return resync(socket, "the client fell behind").await,
                Err(RecvError::Closed) => return,
            },
            tick = ticks.recv() => match tick {
                Ok(tick) => {
                    for (_, campaign, changed) in tick.iter().filter(|(w, _, _)| *w == workspace) {
                        let m = json!({"type": "progress", "kind": "campaign", "id": campaign, "changed": changed});
                        if socket.send(Message::Text(m.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
                // A missed tick is replaced by the next one.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
