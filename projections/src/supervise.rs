//! A supervisor for long-running tasks (projector runners, the relay, dispatchers): a task that
//! returns an error or panics is logged with why and started again, after an exponential backoff
//! (with jitter) that starts over once a run has lasted a while. Only shutdown ends supervision.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A run that lasted this long was healthy: the next failure starts the backoff from the beginning.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs `start()` as a task until `shutdown` turns true, starting it again whenever it ends early
/// (an error or a panic). `name` names the task in the log.
pub async fn supervise<F, Fut, E>(name: &'static str, mut shutdown: watch::Receiver<bool>, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut delays = backoff();
    loop {
        let began = Instant::now();
        let why = match tokio::spawn(start()).await {
            Ok(Ok(())) if *shutdown.borrow() => return,
            Ok(Ok(())) => "it returned".to_owned(),
            Ok(Err(e)) => format!("it failed: {e}"),
            Err(e) if e.is_panic() => format!("it {}", crate::parked::panic_message(e.into_panic().as_ref())),
            Err(e) => format!("it was cancelled: {e}"),
        };
        if *shutdown.borrow() {
            return;
        }
        if began.elapsed() >= HEALTHY_RUN {
            delays = backoff();
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(30));
        tracing::error!(task = name, reason = %why, restart_in_ms = delay.as_millis() as u64, "task stopped; restarting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_or_fails_is_started_again_until_shutdown() {
        let (stop, stopped) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let watched = stopped.clone();
        let supervisor = tokio::spawn(supervise("test", stopped, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let mut watched = watched.clone();
            async move {
                match n {
                    0 => panic!("first run panics"),
                    1 => Err("second run fails"),
                    // Like every supervised task: runs until shutdown.
                    _ => {
                        let _ = watched.wait_for(|s| *s).await;
                        Ok(())
                    }
                }
            }
        }));
        // Paused time: the backoff sleeps advance the clock instantly once every task idles.
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "started again after the panic and after the error, then kept");
    }
}
