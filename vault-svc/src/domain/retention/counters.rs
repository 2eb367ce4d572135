//! What the retention sweeper reports to Prometheus:
//! `retention_sweeper_tokens_total{outcome="deleted"|"already_gone"}` per due
//! token (`already_gone`: deleted by someone else between the sweeper's read
//! and its delete, e.g. the CronJob and the in-process sweeper at once) and
//! `retention_sweeper_runs_total{outcome="completed"|"failed"}` per sweep (a
//! failed one stopped at a store error; the next run starts over). Only the
//! in-process sweeper's counters are scraped: the `vault-svc sweep` job exits
//! after its run and logs its count instead.

/// Sets every series to zero, so `rate()` and `increase()` see them before the
/// first due token (call once, when the exporter is installed).
pub fn register() {
    for outcome in ["deleted", "already_gone"] {
        metrics::counter!("retention_sweeper_tokens_total", "outcome" => outcome).absolute(0);
    }
    for outcome in ["completed", "failed"] {
        metrics::counter!("retention_sweeper_runs_total", "outcome" => outcome).absolute(0);
    }
}

pub(super) fn token(deleted: bool) {
    let outcome = if deleted { "deleted" } else { "already_gone" };
    metrics::counter!("retention_sweeper_tokens_total", "outcome" => outcome).increment(1);
}

pub(super) fn run(completed: bool) {
    let outcome = if completed { "completed" } else { "failed" };
    metrics::counter!("retention_sweeper_runs_total", "outcome" => outcome).increment(1);
}
