//! `blazz bench replay`: how fast a projection is rebuilt from the log. Seeds the log with
//! `contact.created` events up to the requested size (if it is shorter), then rebuilds the contacts
//! projection into fresh tables and switches it in, reporting events per second.

use super::Error;
use blazz_commands::codec::Codec;
use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
use blazz_commands::store::EventStore;
use blazz_projections::{read_models, rebuild};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(pool: sqlx::PgPool, append_writers: usize, events: u64) -> Result<(), Error> {
    let store: Arc<dyn EventStore> =
        Arc::new(PgEventStore::new(pool.clone(), BatchConfig { writers: append_writers, ..BatchConfig::default() }));
    super::seed_contacts(&pool, &store, events).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await?;
    let projector = read_models::by_name("contacts").ok_or("no contacts projection")?;
    let started = Instant::now();
    let mut last_print = Instant::now();
    let done = rebuild::rebuild(&pool, store, &Codec::new(), projector, |p| {
        if last_print.elapsed().as_secs_f64() >= 1.0 {
            eprint!(
                "\rcontacts: {} / {} events, {:.0}/s, ETA {:.0} s   ",
                p.done,
                p.total,
                p.per_second,
                p.eta_seconds()
            );
            let _ = std::io::stderr().flush();
            last_print = Instant::now();
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!();
    println!("| log events | replayed | seconds | events/s |");
    println!("|---|---|---|---|");
    println!("| {total} | {} | {seconds:.1} | {:.0} |", done.done, done.done as f64 / seconds);
    Ok(())
}
