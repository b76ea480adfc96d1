//! `blazz bench verify`: how fast `audit verify` checks the whole log. Seeds the log up to `events`,
//! runs a sealer round (timed: the fold and the checkpoints), then in turn, `rounds` times: a plain
//! read of the same rows and columns in the same order and pages (the floor: what PostgreSQL and the
//! driver cost alone), and the verification (read, digest, links, heads, checkpoints).

use super::{seed_contacts, Error};
use blazz_commands::audit::checkpoint::Signer;
use blazz_commands::audit::{seal, verify};
use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
use blazz_commands::store::EventStore;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(pool: sqlx::PgPool, append_writers: usize, events: u64, rounds: usize) -> Result<(), Error> {
    let store: Arc<dyn EventStore> =
        Arc::new(PgEventStore::new(pool.clone(), BatchConfig { writers: append_writers, ..BatchConfig::default() }));
    seed_contacts(&pool, &store, events).await?;
    let signer = Signer::from_base64(&Signer::generate_base64())?;
    let started = Instant::now();
    let sealed = seal::round(&pool, &signer).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sealer round: folded {} events and signed {} checkpoints in {seconds:.2} s ({:.0} events/s)",
        sealed.folded,
        sealed.checkpoints,
        sealed.folded as f64 / seconds
    );
    println!("| round | events | plain read s | verify s | verify events/s | verify / read time |");
    println!("|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let started = Instant::now();
        let read = plain_read(&pool).await?;
        let read_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let v = verify::verify(&pool, None, &signer.public_key(), &mut |_| {}).await?;
        let verify_s = started.elapsed().as_secs_f64();
        if let Some(b) = v.broken {
            return Err(format!("the bench log does not verify: {b}").into());
        }
        if v.events != read {
            return Err(format!("verify checked {} events, the plain read found {read}", v.events).into());
        }
        println!(
            "| {round} | {} | {read_s:.2} | {verify_s:.2} | {:.0} | {:.2} |",
            v.events,
            v.events as f64 / verify_s,
            verify_s / read_s
        );
    }
    Ok(())
}

/// The rows `verify` reads, read the same way and thrown away.
async fn plain_read(pool: &sqlx::PgPool) -> Result<u64, Error> {
    let (mut after, mut n) = (("0".to_string(), 0i64), 0u64);
    loop {
        let rows = verify::page(pool.clone(), None, after).await?;
        let Some(last) = rows.last() else { return Ok(n) };
        after = (last.xid_text.clone(), last.position);
        n += rows.len() as u64;
    }
}
