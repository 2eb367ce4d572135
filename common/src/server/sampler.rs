//! Gauges the shell samples while it serves. A `Sample` reads in-process state
//! (a connection pool's counters) and sets its gauges; the shell runs every
//! sample at start and then every `EVERY`, so a scrape never waits on one and
//! no gauge is older than one period. A sample must be cheap and must not
//! block: anything that needs a store round trip belongs on a loop that
//! already talks to the store (the payments reconciler samples its backlog).
use std::sync::Arc;
use std::time::Duration;

/// How often the gauges are refreshed: well inside a usual 15–30 s scrape interval.
pub const EVERY: Duration = Duration::from_secs(5);

/// One synchronous reading that sets gauges.
pub type Sample = Arc<dyn Fn() + Send + Sync>;

/// Runs every sample now and then every `EVERY`, until aborted.
pub(crate) async fn run(samples: Arc<[Sample]>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for sample in samples.iter() {
            sample();
        }
    }
}
