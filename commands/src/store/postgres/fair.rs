//! The group-commit queue, shared fairly between workspaces.
//!
//! Appends wait in one lane per workspace, and writers serve the lanes round-robin, so a workspace
//! with thousands of appends queued (an import, a campaign's fan-out) cannot put them all ahead of
//! another workspace's single append. Three rules keep a backlog from slowing the others:
//! - a lane with a backlog ([`HEAVY_EVENTS`] or more events waiting) is written in batches of its own;
//!   the other lanes share batches (round-robin, one group from each in turn). A request's latency is
//!   its batch's, so a quiet workspace's append never waits on a thousand-event transaction;
//! - a workspace may be in at most `share` of the batches in flight (all writers but one, when there
//!   are several): a busy workspace leaves a writer free for the others. While another workspace is
//!   appending too (in the last [`CONTENDED`]), a backlog gets one writer: its thousand-event
//!   transactions then take one connection's worth of the database, not all but one;
//! - each lane holds a bounded number of groups; a full lane makes only its own workspace wait.

use super::Pending;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

/// Groups (one append, or the requests of one `append_all`) a workspace may have waiting.
const LANE_GROUPS: usize = 4096;
/// How recently another workspace must have been served for a backlog to be held to one writer.
pub(super) const CONTENDED: Duration = Duration::from_millis(200);
/// Entries of the "served lately" map past which old ones are dropped (it is pruned anyway whenever a
/// backlog asks whether it is contended).
const SERVED_PRUNE_AT: usize = 1024;
/// Events waiting in a lane from which it is written in batches of its own.
pub(super) const HEAVY_EVENTS: usize = 64;

struct Group {
    pending: Vec<Pending>,
    /// This group's place in its lane, given back when a writer takes it.
    _space: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Lane {
    groups: VecDeque<Group>,
    events: usize,
}

#[derive(Default)]
struct State {
    lanes: HashMap<Uuid, Lane>,
    /// Workspaces with groups waiting, in the order writers serve them.
    ring: VecDeque<Uuid>,
    /// Batches in flight that hold requests of a workspace.
    busy: HashMap<Uuid, usize>,
    /// When each workspace was last served (those served within [`CONTENDED`]).
    served: HashMap<Uuid, Instant>,
    /// Each workspace's room for waiting groups (kept once made: a few bytes per workspace).
    space: HashMap<Uuid, Arc<Semaphore>>,
    closed: bool,
}

/// A batch taken by a writer: its requests and the workspaces they belong to.
pub(super) struct Batch {
    pub pending: Vec<Pending>,
    workspaces: Vec<Uuid>,
}

pub(super) struct FairQueue {
    state: Mutex<State>,
    /// Work is waiting, or a busy workspace's batch finished.
    ready: Notify,
    share: usize,
}

fn events(group: &[Pending]) -> usize {
    group.iter().map(|p| p.request.events.len().max(1)).sum()
}

impl FairQueue {
    pub fn new(writers: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), ready: Notify::new(), share: writers.saturating_sub(1).max(1) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a group (of one workspace: the first request's), waiting while that workspace's lane is
    /// full. `Err` gives the group back once the queue is closed.
    pub async fn push(&self, pending: Vec<Pending>) -> Result<(), Vec<Pending>> {
        let Some(workspace) = pending.first().map(|p| p.request.workspace_id) else { return Ok(()) };
        let space = {
            let mut st = self.lock();
            if st.closed {
                return Err(pending);
            }
            st.space.entry(workspace).or_insert_with(|| Arc::new(Semaphore::new(LANE_GROUPS))).clone()
        };
        let Ok(permit) = space.acquire_owned().await else { return Err(pending) };
        {
            let mut st = self.lock();
            if st.closed {
                return Err(pending);
            }
            let lane = st.lanes.entry(workspace).or_default();
            let was_empty = lane.groups.is_empty();
            lane.events += events(&pending);
            lane.groups.push_back(Group { pending, _space: permit });
            if was_empty {
                st.ring.push_back(workspace);
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next batch of at most about `max_events` events; `None` once closed and drained.
    pub async fn take(&self, max_events: usize) -> Option<Batch> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if let Some(batch) = self.form(&mut st, max_events) {
                    let more = !st.ring.is_empty();
                    drop(st);
                    if more {
                        // Pass the wake-up on: another writer can take what is left.
                        self.ready.notify_one();
                    }
                    return Some(batch);
                }
                if st.closed && st.lanes.is_empty() {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn form(&self, st: &mut State, max_events: usize) -> Option<Batch> {
        let (mut pending, mut workspaces, mut total) = (Vec::new(), Vec::<Uuid>::new(), 0);
        // The first lane served decides: a backlog's batch of its own, or a shared batch of the others.
        let mut backlog: Option<Option<Uuid>> = None;
        let mut passed = Vec::new();
        while total < max_events {
            let Some(ws) = st.ring.pop_front() else { break };
            let joined = workspaces.contains(&ws);
            let Some(heavy) = st.lanes.get(&ws).map(|lane| lane.events >= HEAVY_EVENTS) else { continue };
            let fits = match backlog {
                None => true,
                Some(Some(owner)) => owner == ws,
                Some(None) => !heavy,
            };
            let share = if heavy && st.contended(ws) { 1 } else { self.share };
            if !fits || (!joined && st.busy.get(&ws).copied().unwrap_or(0) >= share) {
                passed.push(ws);
                continue;
            }
            backlog.get_or_insert(heavy.then_some(ws));
            let Some(lane) = st.lanes.get_mut(&ws) else { continue };
            let Some(group) = lane.groups.pop_front() else { continue };
            let n = events(&group.pending);
            lane.events -= n;
            total += n;
            pending.extend(group.pending);
            if lane.groups.is_empty() {
                st.lanes.remove(&ws);
            } else {
                st.ring.push_back(ws);
            }
            if !joined {
                workspaces.push(ws);
            }
        }
        // Workspaces passed over keep their turn.
        for ws in passed.into_iter().rev() {
            st.ring.push_front(ws);
        }
        if pending.is_empty() {
            return None;
        }
        let now = Instant::now();
        if st.served.len() > SERVED_PRUNE_AT {
            st.served.retain(|_, at| now.duration_since(*at) < CONTENDED);
        }
        for ws in &workspaces {
            *st.busy.entry(*ws).or_default() += 1;
            st.served.insert(*ws, now);
        }
        Some(Batch { pending, workspaces })
    }

    /// A batch is written: its workspaces may take another writer.
    pub fn done(&self, workspaces: &[Uuid]) {
        {
            let mut st = self.lock();
            for ws in workspaces {
                if let Some(n) = st.busy.get_mut(ws) {
                    *n -= 1;
                    if *n == 0 {
                        st.busy.remove(ws);
                    }
                }
            }
        }
        self.ready.notify_one();
    }

    /// No more groups are accepted; writers drain what is queued, then stop.
    pub fn close(&self) {
        let spaces: Vec<Arc<Semaphore>> = {
            let mut st = self.lock();
            st.closed = true;
            st.space.values().cloned().collect()
        };
        for s in spaces {
            s.close();
        }
        self.ready.notify_waiters();
    }
}

impl State {
    /// Whether a workspace other than `ws` was served lately (or is in flight now).
    fn contended(&mut self, ws: Uuid) -> bool {
        let now = Instant::now();
        self.served.retain(|_, at| now.duration_since(*at) < CONTENDED);
        self.served.keys().any(|w| *w != ws) || self.busy.keys().any(|w| *w != ws)
    }
}

impl Batch {
    pub fn workspaces(&self) -> &[Uuid] {
        &self.workspaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent};

    fn group(workspace: Uuid) -> Vec<Pending> {
        let meta = EventMetadata {
            correlation_id: Uuid::nil(),
            causation_id: None,
            actor: "t".into(),
            request_id: None,
            agent_id: None,
        };
        let event = NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "t".into(),
            schema_version: 1,
            payload: serde_json::Value::Null,
        };
        let request = AppendRequest::new("s-1".into(), workspace, ExpectedVersion::Any, vec![event], meta);
        vec![Pending { request, reply: tokio::sync::oneshot::channel().0 }]
    }

    fn of(batch: &Batch, ws: Uuid) -> usize {
        batch.pending.iter().filter(|p| p.request.workspace_id == ws).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_single_append_is_served_next_in_a_batch_without_the_backlog() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let q = FairQueue::new(4);
        for _ in 0..3000 {
            q.push(group(a)).await.ok();
        }
        q.push(group(b)).await.ok();
        q.push(group(c)).await.ok();
        let first = q.take(1024).await.expect("a batch");
        assert_eq!((of(&first, a), first.pending.len()), (1024, 1024), "A's backlog is written on its own");
        let second = q.take(1024).await.expect("a batch");
        assert_eq!(second.workspaces(), [b, c], "B and C share the next batch, not behind 3,000 of A");
        assert_eq!(second.pending.len(), 2);
        // B and C appended just now, so A's backlog keeps to one writer: its next batch waits for the
        // first to be written.
        assert!(q.form(&mut q.lock(), 1024).is_none());
        q.done(first.workspaces());
        let third = q.take(1024).await.expect("a batch");
        assert_eq!(of(&third, a), 1024, "then A again");
    }

    #[tokio::test]
    async fn quiet_workspaces_share_batches() {
        let q = FairQueue::new(4);
        let workspaces: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
        for ws in &workspaces {
            for _ in 0..3 {
                q.push(group(*ws)).await.ok();
            }
        }
        let batch = q.take(1024).await.expect("a batch");
        assert_eq!((batch.workspaces().len(), batch.pending.len()), (50, 150), "one transaction for all of them");
        assert_eq!(of(&batch, workspaces[0]), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_workspace_leaves_one_writer_to_the_others() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let q = FairQueue::new(3);
        for _ in 0..4000 {
            q.push(group(a)).await.ok();
        }
        let batches = [q.take(1000).await.expect("1"), q.take(1000).await.expect("2")];
        // A is in two batches in flight, all but one of three writers: the third is not A's.
        assert!(q.form(&mut q.lock(), 1000).is_none());
        q.push(group(b)).await.ok();
        let third = q.take(1000).await.expect("3");
        assert_eq!((of(&third, b), third.pending.len()), (1, 1), "the free writer serves B alone");
        q.done(batches[0].workspaces());
        // B was served just now: while contended, A's backlog is held to one writer, which it has.
        assert!(q.form(&mut q.lock(), 1000).is_none(), "A's backlog holds one writer while B appends");
        q.done(batches[1].workspaces());
        let fourth = q.take(1000).await.expect("4");
        assert_eq!(of(&fourth, a), 1000, "A takes a writer again once its batches are written");
    }

    #[tokio::test]
    async fn alone_a_backlog_uses_all_writers_but_one() {
        let a = Uuid::now_v7();
        let q = FairQueue::new(4);
        for _ in 0..4000 {
            q.push(group(a)).await.ok();
        }
        for n in 1..=3 {
            assert_eq!(of(&q.take(1000).await.expect("a batch"), a), 1000, "batch {n}");
        }
        assert!(q.form(&mut q.lock(), 1000).is_none(), "the fourth writer stays free");
    }

    #[tokio::test]
    async fn closing_drains_what_is_queued_then_ends() {
        let a = Uuid::now_v7();
        let q = FairQueue::new(2);
        q.push(group(a)).await.ok();
        q.close();
        assert!(q.push(group(a)).await.is_err(), "closed to new groups");
        let last = q.take(10).await.expect("the queued group");
        q.done(last.workspaces());
        assert!(q.take(10).await.is_none());
    }
}
