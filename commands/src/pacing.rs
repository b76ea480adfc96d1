//! Bulk work yields to other workspaces. An import or a campaign fan-out is seconds of CPU in this
//! process and in PostgreSQL (planning, encoding, appending, and then projecting what it wrote). The
//! fair queue keeps its appends from cutting in front of other workspaces' commands, but not its CPU
//! from crowding their requests out. So bulk work runs in chunks, each in a *turn* of its workspace
//! ([`BulkPacer::turn`]): one turn of a workspace at a time, however many imports and fan-outs it
//! runs at once, and after each chunk the turn rests while any other workspace has been active
//! lately, for `worked × (1 − share) / share` (`worked`: how long the chunk took). So a workspace's
//! bulk work together keeps `share` of the time while others are active; alone it never rests, and a
//! workspace cannot raise its share by starting more jobs.
//!
//! "Active" means a command of that workspace was decided here, or the gateway saw one of its
//! requests ([`BulkPacer::note`]), within [`ACTIVE_WITHIN`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// A workspace counts as active this long after its last command or request.
pub const ACTIVE_WITHIN: Duration = Duration::from_millis(250);
/// The longest one rest lasts, however long the chunk took.
pub const MAX_REST: Duration = Duration::from_secs(1);
/// The share of its time bulk work keeps while other workspaces are active, by default.
pub const DEFAULT_SHARE: f64 = 0.25;
/// Past this many remembered workspaces, the ones not active lately are forgotten.
const PRUNE_AT: usize = 1024;

/// Decides how long bulk work rests between chunks. Cheap to share.
#[derive(Debug)]
pub struct BulkPacer {
    share: f64,
    seen: Mutex<HashMap<Uuid, Instant>>,
    rests: AtomicU64,
    /// Each workspace's turn (held while a chunk works and rests).
    turns: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// A workspace's bulk turn: one chunk of work, then [`Turn::end`].
#[derive(Debug)]
#[must_use = "a turn ends with `end`, which rests"]
pub struct Turn {
    workspace: Uuid,
    started: Instant,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Default for BulkPacer {
    fn default() -> Self {
        Self::new(DEFAULT_SHARE)
    }
}

impl BulkPacer {
    /// `share` in (0, 1]: the fraction of its time bulk work keeps while others are active
    /// (1 disables pacing; out-of-range values are clamped).
    pub fn new(share: f64) -> Self {
        let share = if share.is_finite() { share.clamp(0.01, 1.0) } else { DEFAULT_SHARE };
        Self { share, seen: Mutex::default(), rests: AtomicU64::new(0), turns: Mutex::default() }
    }

    pub fn share(&self) -> f64 {
        self.share
    }

    /// Records that `workspace` is active now (the nil id, operator commands before a workspace
    /// exists, is no workspace).
    pub fn note(&self, workspace: Uuid) {
        if workspace.is_nil() {
            return;
        }
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(workspace, now);
        if seen.len() > PRUNE_AT {
            seen.retain(|_, at| now.duration_since(*at) < ACTIVE_WITHIN);
        }
    }

    /// Whether a workspace other than `workspace` was active within [`ACTIVE_WITHIN`].
    pub fn others_active(&self, workspace: Uuid) -> bool {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().any(|(w, at)| *w != workspace && now.duration_since(*at) < ACTIVE_WITHIN)
    }

    /// How long bulk work of `workspace` that just worked for `worked` rests now.
    pub fn rest_for(&self, workspace: Uuid, worked: Duration) -> Duration {
        if self.share >= 1.0 || !self.others_active(workspace) {
            return Duration::ZERO;
        }
        worked.mul_f64((1.0 - self.share) / self.share).min(MAX_REST)
    }

    /// Waits for `workspace`'s bulk turn (its other bulk jobs' chunks go first).
    pub async fn turn(&self, workspace: Uuid) -> Turn {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            if turns.len() > PRUNE_AT {
                // Turns nobody holds or waits for.
                turns.retain(|_, t| Arc::strong_count(t) > 1);
            }
            turns.entry(workspace).or_default().clone()
        };
        let held = lock.lock_owned().await;
        Turn { workspace, started: Instant::now(), _held: held }
    }

    /// Ends a turn: rests (still holding it) as [`Self::rest_for`] says for the time it worked.
    pub async fn end(&self, turn: Turn) {
        let rest = self.rest_for(turn.workspace, turn.started.elapsed());
        if !rest.is_zero() {
            self.rests.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(rest).await;
        }
        drop(turn);
    }

    /// How many rests bulk work has taken so far.
    pub fn rests(&self) -> u64 {
        self.rests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Uuid = Uuid::from_u128(1);
    const B: Uuid = Uuid::from_u128(2);

    #[tokio::test(start_paused = true)]
    async fn alone_bulk_work_never_rests() {
        let p = BulkPacer::new(0.5);
        p.note(A);
        assert_eq!(p.rest_for(A, Duration::from_millis(100)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn with_another_workspace_active_it_keeps_its_share() {
        let p = BulkPacer::new(0.25);
        p.note(B);
        assert_eq!(p.rest_for(A, Duration::from_millis(100)), Duration::from_millis(300));
        // The rest is bounded, however long the chunk took.
        assert_eq!(p.rest_for(A, Duration::from_secs(10)), MAX_REST);
        // B's own bulk work does not rest for B.
        assert_eq!(p.rest_for(B, Duration::from_millis(100)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_neighbour_stops_counting_once_quiet() {
        let p = BulkPacer::new(0.5);
        p.note(B);
        tokio::time::advance(ACTIVE_WITHIN + Duration::from_millis(1)).await;
        assert_eq!(p.rest_for(A, Duration::from_millis(100)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn share_one_disables_pacing_and_odd_shares_are_clamped() {
        let p = BulkPacer::new(1.0);
        p.note(B);
        assert_eq!(p.rest_for(A, Duration::from_millis(100)), Duration::ZERO);
        assert_eq!(BulkPacer::new(f64::NAN).share(), DEFAULT_SHARE);
        assert_eq!(BulkPacer::new(7.0).share(), 1.0);
        assert!(BulkPacer::new(0.0).share() > 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_workspaces_jobs_share_one_turn_and_its_rest() {
        let p = Arc::new(BulkPacer::new(0.5));
        p.note(B);
        let first = p.turn(A).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        // A second job of A waits while the first works and rests; B's job does not.
        let second = tokio::spawn({
            let p = p.clone();
            async move {
                let t = p.turn(A).await;
                let waited = Instant::now();
                p.end(t).await;
                waited
            }
        });
        let other = p.turn(B).await;
        p.end(other).await;
        let before_end = Instant::now();
        p.end(first).await;
        // The first chunk worked 100 ms with B active: it rested 100 ms, holding the turn.
        let waited = second.await.unwrap();
        assert!(waited >= before_end + Duration::from_millis(100), "{waited:?} vs {before_end:?}");
        assert_eq!(p.rests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn many_workspaces_are_pruned_once_quiet() {
        let p = BulkPacer::new(0.5);
        for i in 0..PRUNE_AT as u128 {
            p.note(Uuid::from_u128(1000 + i));
        }
        tokio::time::advance(ACTIVE_WITHIN).await;
        p.note(A);
        assert_eq!(p.seen.lock().unwrap().len(), 1);
    }
}
