//! What the in-process reconciler reports to Prometheus after each pass:
//!
//! - `reconciler_payments_total{outcome="resolved"|"still_pending"|"error"}`,
//!   the payments a pass took over, by what became of them (`Pass`);
//! - `idempotency_keys_swept_total{outcome="released"|"purged"}`, keys in
//!   flight past their lease let go, and records past retention deleted;
//! - `reconciler_passes_total{outcome="completed"|"failed"}`;
//! - the backlog gauges `payments_pending`, `payments_pending_oldest_age_seconds`
//!   (0 when none is pending) and `idempotency_keys_in_flight`, from one
//!   `PaymentStore::backlog` round trip. They count the whole database, so
//!   every replica reports the same value: aggregate them with `max`, not `sum`.
//!
//! The `payments-svc reconcile` job is not scraped; it prints its pass.
use common::clock::Millis;

use super::Pass;
use crate::domain::store::Backlog;

/// Sets every counter series to zero, so `rate()` sees them before the first
/// event (call once, when the loop starts).
pub(super) fn register() {
    for outcome in ["resolved", "still_pending", "error"] {
        metrics::counter!("reconciler_payments_total", "outcome" => outcome).absolute(0);
    }
    for outcome in ["released", "purged"] {
        metrics::counter!("idempotency_keys_swept_total", "outcome" => outcome).absolute(0);
    }
    for outcome in ["completed", "failed"] {
        metrics::counter!("reconciler_passes_total", "outcome" => outcome).absolute(0);
    }
}

pub(super) fn pass(pass: &Pass) {
    let payments = [("resolved", pass.resolved), ("still_pending", pass.still_pending), ("error", pass.errors)];
    for (outcome, n) in payments {
        metrics::counter!("reconciler_payments_total", "outcome" => outcome).increment(u64::from(n));
    }
    for (outcome, n) in [("released", pass.keys_released), ("purged", pass.keys_purged)] {
        metrics::counter!("idempotency_keys_swept_total", "outcome" => outcome).increment(n);
    }
    metrics::counter!("reconciler_passes_total", "outcome" => "completed").increment(1);
}

pub(super) fn failed_pass() {
    metrics::counter!("reconciler_passes_total", "outcome" => "failed").increment(1);
}

pub(super) fn backlog(backlog: &Backlog, now: Millis) {
    let age_ms = backlog.oldest_pending.map_or(0, |created| now.saturating_sub(created).max(0));
    metrics::gauge!("payments_pending").set(backlog.pending as f64);
    metrics::gauge!("payments_pending_oldest_age_seconds").set(age_ms as f64 / 1000.0);
    metrics::gauge!("idempotency_keys_in_flight").set(backlog.keys_in_flight as f64);
}
