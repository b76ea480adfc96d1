//! The webhook deliverer in a process of its own, for tests that kill it with SIGKILL mid-delivery:
//! the deliverer `blazz dispatch` runs, over `DATABASE_URL` with the sealing key `BLAZZ_SECRET_KEY`,
//! on the tests' quick schedule with private addresses allowed and 1 s per attempt. Prints
//! `delivering` once it runs; runs until killed.

use blazz_commands::codec::Codec;
use blazz_commands::credentials::Keyring;
use blazz_commands::outbound::deliver::Deliverer;
use blazz_commands::outbound::secrets::EndpointSecrets;
use blazz_commands::store::postgres::BatchConfig;
use blazz_commands::Commands;
use std::sync::Arc;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is needed")?;
    let keys =
        Keyring::from_base64(&std::env::var("BLAZZ_SECRET_KEY").map_err(|_| "BLAZZ_SECRET_KEY is needed")?, &[])?;
    let pool = blazz_api::server::connect_and_migrate(&url, 4).await?;
    let store = blazz_api::server::event_store(&pool, BatchConfig::default(), &keys);
    let vault = store.vault().clone();
    let commands = Commands::new(Arc::new(store), Codec::new()).with_vault(vault);
    let secrets = EndpointSecrets::new(pool.clone(), keys);
    let settings = blazz_tests::outbound::quick_delivery(true, Duration::from_secs(1));
    let deliverer = Deliverer::new(pool, commands, secrets, settings)?;
    let (_running, stop) = tokio::sync::watch::channel(false);
    println!("delivering");
    deliverer.run(stop).await;
    Ok(())
}
