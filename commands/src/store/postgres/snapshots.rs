//! Snapshots of aggregate states for as-of queries (table `stream_snapshots`, a cache).

use crate::as_of::AsOf;
use crate::store::{Snapshot, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, QueryBuilder, Row};

const COLUMNS: &str = "stream_id, version, workspace_id, position, recorded_at, code, state";

fn decode(row: &PgRow) -> Result<Snapshot, StoreError> {
    let version: i64 = row.try_get("version")?;
    Ok(Snapshot {
        stream_id: row.try_get("stream_id")?,
        version: u64::try_from(version).map_err(|e| StoreError::Corrupt(format!("snapshot version: {e}")))?,
        workspace_id: row.try_get("workspace_id")?,
        position: row.try_get("position")?,
        recorded_at: row.try_get("recorded_at")?,
        code: row.try_get("code")?,
        state: row.try_get("state")?,
    })
}

pub(super) async fn newest(
    pool: &PgPool,
    stream_id: &str,
    code: &str,
    at: AsOf,
) -> Result<Option<Snapshot>, StoreError> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM stream_snapshots WHERE stream_id = "));
    q.push_bind(stream_id).push(" AND code = ").push_bind(code);
    match at {
        AsOf::Position(p) => {
            q.push(" AND position <= ").push_bind(p);
        }
        AsOf::Time(t) => {
            q.push(" AND recorded_at <= ").push_bind(t);
        }
        AsOf::Now => {}
    }
    q.push(" ORDER BY version DESC LIMIT 1");
    q.build().fetch_optional(pool).await?.as_ref().map(decode).transpose()
}

pub(super) async fn put(pool: &PgPool, snapshots: &[Snapshot]) -> Result<(), StoreError> {
    if snapshots.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::new(format!("INSERT INTO stream_snapshots ({COLUMNS}) "));
    q.push_values(snapshots, |mut b, s| {
        b.push_bind(&s.stream_id)
            .push_bind(i64::try_from(s.version).unwrap_or(i64::MAX))
            .push_bind(s.workspace_id)
            .push_bind(s.position)
            .push_bind(s.recorded_at)
            .push_bind(&s.code)
            .push_bind(&s.state);
    });
    q.push(" ON CONFLICT DO NOTHING");
    q.build().execute(pool).await?;
    Ok(())
}
