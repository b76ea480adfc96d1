//! Read coalescing, the read-side twin of group commit: concurrent multi-stream reads (every send
//! loads channel, contact, conversation and template) queue up while a query is in flight, and a
//! reader task answers all of them with one index query, then splits the rows per caller.

use super::read;
use crate::store::{RecordedEvent, StoreError};
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

pub(super) struct ReadPending {
    pub streams: Vec<String>,
    pub reply: oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
}

/// One reader task: take everything queued (up to `max_streams` stream ids), read it in one query,
/// answer each caller with its own streams' events (ordered by stream, then version).
pub(super) async fn reader(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<ReadPending>>>, max_streams: usize) {
    loop {
        let batch = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut size = first.streams.len();
            let mut batch = vec![first];
            while size < max_streams {
                match rx.try_recv() {
                    Ok(p) => {
                        size += p.streams.len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let ids: Vec<String> =
            batch.iter().flat_map(|p| p.streams.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        match read::streams(&pool, &ids).await {
            Ok(events) => {
                let mut by_stream: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
                for e in &events {
                    by_stream.entry(e.stream_id.as_str()).or_default().push(e);
                }
                for p in batch {
                    let wanted: BTreeSet<&String> = p.streams.iter().collect();
                    let mine = wanted
                        .into_iter()
                        .flat_map(|s| by_stream.get(s.as_str()).into_iter().flatten().map(|e| (*e).clone()))
                        .collect();
                    let _ = p.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for p in batch {
                    let _ = p.reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}
