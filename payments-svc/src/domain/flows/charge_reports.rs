//! Charge-status reports, off the response path. A payment over a single-use
//! token tells the vault how it stands (the token's `charge_status`), and a
//! capture or reversal tells it how its original stands; neither changes the
//! payment, so the caller is not kept waiting for it. A flow hands the report
//! to `ChargeReports::submit` (with the step to `Finished` it completes, if
//! any) and answers. One batch task at a time sends every report queued, up
//! to `MAX_CHARGE_REPORTS`, in one `ReportCharges` call, then moves the
//! payments those reports complete to `Finished` (their writes
//! group-committed), and goes on while reports are queued.
//!
//! A report the vault could not take (unavailable) leaves its payment where it
//! was, unfinished under its lease: the reconciler takes it over when the
//! lease runs out and reports again. A crash loses only queued reports, in the
//! same way, and so does a report submitted while `MAX_QUEUED` wait. Reports
//! repeat harmlessly: the vault keeps the later status.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use vault_api::{CallContext, ChargeReport, MAX_CHARGE_REPORTS, Vault, VaultError};

use crate::domain::payment::{Payment, RecoveryPoint};
use crate::domain::store::{PaymentStore, Step};

/// How long the vault has to take one batch of reports.
const REPORT_DEADLINE: Duration = Duration::from_secs(2);

/// The most reports held in memory: with the vault slow or away, a report
/// beyond it is not queued, and its payment is left to the reconciler as if
/// the vault had refused the batch (memory stays bounded in an outage).
const MAX_QUEUED: usize = 10 * MAX_CHARGE_REPORTS;

/// A report due, and the payment it completes: moved from the recovery point
/// named to `Finished` once the vault has the report.
pub(super) struct Due {
    pub report: ChargeReport,
    pub finishes: Option<(Payment, RecoveryPoint)>,
}

/// The reports queued and the batch task sending them.
pub(super) struct ChargeReports<P, V> {
    inner: Arc<Inner<P, V>>,
}

struct Inner<P, V> {
    store: Arc<P>,
    vault: Arc<V>,
    tracker: TaskTracker,
    queue: Mutex<Queue>,
    /// Notified when the batch task stops, the queue empty.
    idle: Notify,
}

#[derive(Default)]
struct Queue {
    due: Vec<Due>,
    sending: bool,
}

impl<P, V> ChargeReports<P, V> {
    /// Batches run on `tracker`, so that a drain (or a test) waiting for it
    /// waits for the reports too.
    pub(super) fn new(store: Arc<P>, vault: Arc<V>, tracker: TaskTracker) -> Self {
        let inner = Inner { store, vault, tracker, queue: Mutex::default(), idle: Notify::new() };
        Self { inner: Arc::new(inner) }
    }

    /// Resolves once every report submitted so far has been sent (or failed)
    /// and its payment moved on.
    pub(super) async fn settled(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !self.inner.lock().sending {
                return;
            }
            idle.await;
        }
    }
}

impl<P: PaymentStore, V: Vault> ChargeReports<P, V> {
    /// Queues `due`; starts a batch task unless one is running.
    pub(super) fn submit(&self, due: Due) {
        let mut queue = self.inner.lock();
        if queue.due.len() >= MAX_QUEUED {
            tracing::warn!(payment_id = %due.report.consumer_ref, "charge-status queue full; the reconciler reports it");
            return;
        }
        queue.due.push(due);
        if !queue.sending {
            queue.sending = true;
            self.inner.tracker.spawn(send_batches(self.inner.clone()));
        }
    }
}

impl<P, V> Inner<P, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn send_batches<P: PaymentStore, V: Vault>(inner: Arc<Inner<P, V>>) {
    loop {
        let batch: Vec<Due> = {
            let mut queue = inner.lock();
            if queue.due.is_empty() {
                queue.sending = false;
                inner.idle.notify_waiters();
                return;
            }
            let n = queue.due.len().min(MAX_CHARGE_REPORTS);
            queue.due.drain(..n).collect()
        };
        send(&inner, batch).await;
    }
}

async fn send<P: PaymentStore, V: Vault>(inner: &Inner<P, V>, batch: Vec<Due>) {
    let reports: Vec<ChargeReport> = batch.iter().map(|due| due.report.clone()).collect();
    let ctx = CallContext {
        deadline: Some(Instant::now() + REPORT_DEADLINE),
        traceparent: None,
        correlation_id: "charge-reports".into(),
    };
    match inner.vault.report_charges(&reports, &ctx).await {
        Ok(_) => {}
        Err(VaultError::Unavailable | VaultError::Internal) => {
            tracing::warn!(reports = reports.len(), "charge statuses not reported yet: the vault did not answer");
            return;
        }
        // Refused reports are not made again: the payments finish.
        Err(error) => tracing::warn!(%error, reports = reports.len(), "charge statuses refused by the vault"),
    }
    let finishes = batch.into_iter().filter_map(|due| due.finishes).map(|(payment, from)| async move {
        let mut next = payment;
        next.recovery = RecoveryPoint::Finished;
        let step = Step { from, ledger: &[], release: None, lease_until: 0 };
        if let Err(error) = inner.store.advance(&next, step).await {
            tracing::warn!(%error, payment_id = %next.id, "charge status reported; the payment finishes later");
        }
    });
    futures::future::join_all(finishes).await;
}
