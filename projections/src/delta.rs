//! Deltas: what changed in a read model, small enough to push to live clients.
//!
//! Each delta carries the log cursor of the event that caused it plus its index among that event's
//! deltas; `key()` orders deltas exactly as the log orders events, so a client resumes "after" the last
//! delta it saw. The hub keeps the most recent deltas in memory for resuming; a client asking for
//! something older than that is told to resync.

use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
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

/// One workspace's share of the hub: its own broadcast channel and replay buffer, so another
/// workspace's burst can neither evict its deltas nor make its subscribers lag.
#[derive(Debug)]
struct WorkspaceBuffer {
    tx: broadcast::Sender<Arc<Delta>>,
    deltas: VecDeque<Arc<Delta>>,
    /// Everything at or below this key may be missing from the buffer.
    floor: DeltaKey,
}

#[derive(Debug, Default)]
struct Lanes {
    by_workspace: HashMap<Uuid, WorkspaceBuffer>,
    /// Where the runner started: a workspace seen for the first time may miss deltas before it.
    floor: DeltaKey,
}

/// In-process fan-out of deltas, kept per workspace.
#[derive(Debug, Clone)]
pub struct Hub {
    lanes: Arc<Mutex<Lanes>>,
    capacity: usize,
    /// Every workspace's deltas, for operators' tools and tests (never a client's subscription).
    all: broadcast::Sender<Arc<Delta>>,
}

impl Hub {
    /// `capacity`: deltas kept for resuming, and the live queue length per subscriber, per workspace.
    pub fn new(capacity: usize) -> Self {
        Self { lanes: Arc::default(), capacity: capacity.max(1), all: broadcast::channel(capacity.max(1)).0 }
    }

    /// Live deltas of every workspace (not for clients: they get their workspace's, see [`Hub::subscribe`]).
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Delta>> {
        self.all.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deltas before `key` were produced before this hub existed (the runner started there).
    pub fn set_floor(&self, key: DeltaKey) {
        let mut l = self.lock();
        if l.by_workspace.is_empty() && key > l.floor {
            l.floor = key;
        }
    }

    fn lane(lanes: &mut Lanes, workspace: Uuid, capacity: usize) -> &mut WorkspaceBuffer {
        let floor = lanes.floor;
        lanes.by_workspace.entry(workspace).or_insert_with(|| WorkspaceBuffer {
            tx: broadcast::channel(capacity).0,
            deltas: VecDeque::new(),
            floor,
        })
    }

    pub fn publish(&self, deltas: Vec<Delta>) {
        let mut lanes = self.lock();
        for d in deltas {
            let d = Arc::new(d);
            let lane = Self::lane(&mut lanes, d.workspace_id, self.capacity);
            if lane.deltas.len() == self.capacity {
                if let Some(old) = lane.deltas.pop_front() {
                    lane.floor = lane.floor.max(old.key());
                }
            }
            lane.deltas.push_back(d.clone());
            if self.all.receiver_count() > 0 {
                let _ = self.all.send(d.clone());
            }
            // No subscribers is fine.
            let _ = lane.tx.send(d);
        }
    }

    /// Live subscribers of `workspace` (open sockets, on a gateway).
    pub fn subscribers(&self, workspace: Uuid) -> usize {
        self.lock().by_workspace.get(&workspace).map_or(0, |lane| lane.tx.receiver_count())
    }

    /// Subscribes for `workspace`'s deltas after `after` (`None`: live ones only).
    pub fn subscribe(&self, workspace: Uuid, after: Option<DeltaKey>) -> Resume {
        let mut lanes = self.lock();
        let lane = Self::lane(&mut lanes, workspace, self.capacity);
        let rx = lane.tx.subscribe();
        match after {
            None => Resume::From(vec![], rx),
            Some(k) if k < lane.floor => Resume::Resync,
            Some(k) => Resume::From(lane.deltas.iter().filter(|d| d.key() > k).cloned().collect(), rx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(pos: i64) -> Delta {
        delta_of(Uuid::nil(), pos)
    }

    fn delta_of(workspace_id: Uuid, pos: i64) -> Delta {
        Delta {
            kind: "contact".into(),
            op: "upsert".into(),
            id: Uuid::nil(),
            workspace_id,
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
        match hub.subscribe(Uuid::nil(), Some((3, 3, 0))) {
            Resume::From(missed, _) => assert_eq!(missed.iter().map(|d| d.position).collect::<Vec<_>>(), [4, 5]),
            Resume::Resync => panic!("3 is still buffered"),
        }
        assert!(matches!(hub.subscribe(Uuid::nil(), Some((1, 1, 0))), Resume::Resync), "1 was evicted");
        assert_eq!(Delta::parse_id("7.8.1"), Some((7, 8, 1)));
        assert_eq!(Delta::parse_id("7.8"), None);
    }

    #[test]
    fn one_workspaces_burst_neither_evicts_nor_lags_another_workspaces_deltas() {
        let (quiet, noisy) = (Uuid::now_v7(), Uuid::now_v7());
        let hub = Hub::new(3);
        hub.publish(vec![delta_of(quiet, 1)]);
        let Resume::From(_, mut live) = hub.subscribe(quiet, None) else { panic!("live") };
        hub.publish((2..=100).map(|p| delta_of(noisy, p)).collect());
        hub.publish(vec![delta_of(quiet, 101)]);
        match hub.subscribe(quiet, Some((0, 0, 0))) {
            Resume::From(missed, _) => assert_eq!(missed.iter().map(|d| d.position).collect::<Vec<_>>(), [1, 101]),
            Resume::Resync => panic!("the quiet workspace's deltas were evicted by the noisy one"),
        }
        assert_eq!(live.try_recv().map(|d| d.position).ok(), Some(101), "not lagged, nothing foreign");
        assert!(matches!(hub.subscribe(noisy, Some((2, 2, 0))), Resume::Resync), "the noisy one evicted its own");
    }
}
