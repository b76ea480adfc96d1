//! Checkpoints: where each projector is in each lane of a feed, stored in the same transaction as
//! its read-model changes. Feeds, the runner, rebuilds, progress, status and the Kafka relay read
//! them here; this module depends on none of them.

use blazz_commands::store::LogCursor;
use sqlx::PgExecutor;
use std::collections::HashMap;

/// A lane of a feed: the log feed's only one is [`LOG_LANE`]; Kafka's are its partitions.
pub type Lane = i32;
/// The log feed's lane.
pub const LOG_LANE: Lane = -1;

/// Where a feed's checkpoints are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointTable {
    /// `projection_checkpoints`: one row per projector (the log feed).
    Log,
    /// `projection_partition_checkpoints`: one row per projector and partition (the Kafka feed).
    Partitions,
}

/// Where one projector is in one lane: the last applied event, and the lane's epoch then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub cursor: LogCursor,
    pub epoch: i64,
}

/// Checkpoints by projector and lane; a missing one is [`Checkpoint::default`] (before the first event).
pub type Checkpoints = HashMap<(String, Lane), Checkpoint>;

/// Reads the checkpoints of `names` (in `lanes`, for the partition table; `None`: all), locking them
/// when `lock` (in a fixed order, so concurrent lockers cannot deadlock).
pub async fn read_checkpoints<'c>(
    conn: impl PgExecutor<'c>,
    table: CheckpointTable,
    names: &[&str],
    lanes: Option<&[Lane]>,
    lock: bool,
) -> Result<Checkpoints, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = match table {
        CheckpointTable::Log => format!(
            "SELECT projection, {LOG_LANE}::int4, transaction_id::text, position, 0::int8 FROM projection_checkpoints
             WHERE projection = ANY($1) ORDER BY projection{lock}"
        ),
        CheckpointTable::Partitions => format!(
            "SELECT projection, partition, transaction_id::text, position, epoch FROM projection_partition_checkpoints
             WHERE projection = ANY($1) AND ($2::int4[] IS NULL OR partition = ANY($2))
             ORDER BY projection, partition{lock}"
        ),
    };
    let rows: Vec<(String, i32, String, i64, i64)> =
        sqlx::query_as(&sql).bind(names).bind(lanes).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(p, lane, x, position, epoch)| {
            let cursor = LogCursor { transaction_id: x.parse().unwrap_or(0), position };
            ((p, lane), Checkpoint { cursor, epoch })
        })
        .collect())
}

pub(crate) fn at(cps: &Checkpoints, name: &str, lane: Lane) -> Checkpoint {
    cps.get(&(name.to_owned(), lane)).copied().unwrap_or_default()
}

/// Per lane of `lanes`, the slowest of `names`' checkpoints; a projector without a checkpoint in a lane
/// has applied nothing there.
pub fn slowest_per_lane(
    cps: &Checkpoints,
    names: &[&str],
    lanes: impl IntoIterator<Item = Lane>,
) -> HashMap<Lane, LogCursor> {
    lanes
        .into_iter()
        .map(|lane| (lane, names.iter().map(|n| at(cps, n, lane).cursor).min().unwrap_or_default()))
        .collect()
}
