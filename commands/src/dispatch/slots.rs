//! Send slots shared by every dispatcher through PostgreSQL: a channel's rate (`dispatch_rate`: when
//! its next slot is) and each campaign recipient's pace on a channel (`dispatch_pace`: one message per
//! recipient per pace interval). Coordination state, not a read model.

use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// Takes the pace slot of each `(channel, recipient)` whose previous slot has run out; answers those
/// granted (the others wait).
pub async fn pace(pool: &PgPool, pairs: &[(Uuid, Uuid)], pace: Duration) -> Result<HashSet<(Uuid, Uuid)>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let (channels, contacts): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    let granted: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "INSERT INTO dispatch_pace (channel_id, contact_id, next_at)
         SELECT c, r, now() + make_interval(secs => $3) FROM unnest($1::uuid[], $2::uuid[]) AS u(c, r)
         ON CONFLICT (channel_id, contact_id) DO UPDATE SET next_at = excluded.next_at
           WHERE dispatch_pace.next_at <= now()
         RETURNING channel_id, contact_id",
    )
    .bind(&channels)
    .bind(&contacts)
    .bind(pace.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(granted.into_iter().collect())
}

/// Reserves `n` send slots of `channel` at `per_second`; returns how long from now the first slot is.
pub async fn reserve(pool: &PgPool, channel: Uuid, n: usize, per_second: f64) -> Result<Duration, sqlx::Error> {
    let span = n as f64 / per_second;
    let (start_in,): (f64,) = sqlx::query_as(
        "INSERT INTO dispatch_rate (channel_id, next_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (channel_id) DO UPDATE SET next_at = greatest(dispatch_rate.next_at, now()) + make_interval(secs => $2)
         RETURNING extract(epoch FROM (next_at - make_interval(secs => $2)) - now())::float8",
    )
    .bind(channel)
    .bind(span)
    .fetch_one(pool)
    .await?;
    Ok(Duration::from_secs_f64(start_in.max(0.0)))
}
