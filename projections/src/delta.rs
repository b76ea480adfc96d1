//! Deltas: what changed in a read model, small enough to push to live clients.
//!
//! Each delta carries the log cursor of the event that caused it plus its index among that event's
//! deltas; `key()` orders deltas exactly as the log orders events, so a client resumes "after" the last
//! delta it saw. The hub keeps the most recent deltas in memory for resuming; a client asking for
//! something older than that is told to resync.

use serde::Serialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use uuid::Uuid;

/// `(transaction id, position, index)`: the total order of deltas.
pub type DeltaKey = (u64, i64, u32);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// What changed: `contact`, `group`, `template`, `channel`, `conversation`, `message`, `campaign`.
    pub kind: Cow<'static, str>,
    /// `upsert` or `delete`.
    pub op: Cow<'static, str>,
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// Log position of the event that caused the change (what commands answer with).
    pub position: i64,
    /// Resume token: `<transaction id>.<position>.<index>`.
    pub delta_id: String,
    /// The changed fields.
    pub changed: serde_json::Value,
    #[serde(skip)]
    pub key: DeltaKey,
}

impl Delta {
    pub fn key(&self) -> DeltaKey {
        self.key
    }

    pub fn parse_id(s: &str) -> Option<DeltaKey> {
        let mut it = s.split('.');
        let k = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
        it.next().is_none().then_some(k)
    }
}

/// A delta before the runner stamps it with its event's place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: &'static str,
    pub op: &'static str,
    pub id: Uuid,
    pub changed: serde_json::Value,
}

impl Change {
    pub fn upsert(kind: &'static str, id: Uuid, changed: serde_json::Value) -> Self {
        Self { kind, op: "upsert", id, changed }
    }
    pub fn delete(kind: &'static str, id: Uuid) -> Self {
        Self { kind, op: "delete", id, changed: serde_json::Value::Null }
    }
}

/// Where a runner publishes the deltas of a committed batch.
pub trait DeltaSink: Send + Sync + 'static {
    /// Deltas of one batch, in log order.
    fn publish(&self, deltas: Vec<Delta>);
    /// The runner starts after `key`: earlier deltas were produced before this sink existed.
    fn start_at(&self, _key: DeltaKey) {}
}

impl DeltaSink for Hub {
    fn publish(&self, deltas: Vec<Delta>) {
        Hub::publish(self, deltas)
    }
    fn start_at(&self, key: DeltaKey) {
        self.set_floor(key)
    }
}

/// What a subscriber gets when resuming.
#[derive(Debug)]
pub enum Resume {
    /// The deltas after the client's key, then live ones from the receiver.
    From(Vec<Arc<Delta>>, broadcast::Receiver<Arc<Delta>>),
    /// The client's key is older than what this node still holds.
    Resync,
}

#[derive(Debug)]
struct Buffer {
    deltas: VecDeque<Arc<Delta>>,
    /// Everything at or below this key may be missing from the buffer.
    floor: DeltaKey,
}

/// In-process fan-out of deltas.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Delta>>,
    buffer: Arc<Mutex<Buffer>>,
    capacity: usize,
}

impl Hub {
    /// `capacity`: deltas kept for resuming, and the live queue length per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            buffer: Arc::new(Mutex::new(Buffer { deltas: VecDeque::new(), floor: (0, 0, 0) })),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deltas before `key` were produced before this hub existed (the runner started there).
    pub fn set_floor(&self, key: DeltaKey) {
        let mut b = self.lock();
        if b.deltas.is_empty() && key > b.floor {
            b.floor = key;
        }
    }

    pub fn publish(&self, deltas: Vec<Delta>) {
        let mut b = self.lock();
        for d in deltas {
            let d = Arc::new(d);
            if b.deltas.len() == self.capacity {
                if let Some(old) = b.deltas.pop_front() {
                    // Deltas of different workspaces may arrive out of log order (Kafka partitions):
                    // the floor only rises.
                    b.floor = b.floor.max(old.key());
                }
            }
            b.deltas.push_back(d.clone());
            // No subscribers is fine.
            let _ = self.tx.send(d);
        }
    }

    /// Subscribes for deltas after `after` (`None`: live ones only).
    pub fn subscribe(&self, after: Option<DeltaKey>) -> Resume {
        let b = self.lock();
        let rx = self.tx.subscribe();
        match after {
            None => Resume::From(vec![], rx),
            Some(k) if k < b.floor => Resume::Resync,
            Some(k) => Resume::From(b.deltas.iter().filter(|d| d.key() > k).cloned().collect(), rx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(pos: i64) -> Delta {
        Delta {
            kind: "contact".into(),
            op: "upsert".into(),
            id: Uuid::nil(),
            workspace_id: Uuid::nil(),
            position: pos,
            delta_id: format!("{pos}.{pos}.0"),
            changed: serde_json::Value::Null,
            key: (pos as u64, pos, 0),
        }
    }

    #[test]
    fn resuming_replays_what_was_missed_and_too_old_means_resync() {
        let hub = Hub::new(3);
        hub.publish((1..=5).map(delta).collect());
        match hub.subscribe(Some((3, 3, 0))) {
            Resume::From(missed, _) => assert_eq!(missed.iter().map(|d| d.position).collect::<Vec<_>>(), [4, 5]),
            Resume::Resync => panic!("3 is still buffered"),
        }
        assert!(matches!(hub.subscribe(Some((1, 1, 0))), Resume::Resync), "1 was evicted");
        assert_eq!(Delta::parse_id("7.8.1"), Some((7, 8, 1)));
        assert_eq!(Delta::parse_id("7.8"), None);
    }
}
