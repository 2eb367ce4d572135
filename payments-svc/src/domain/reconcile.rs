//! The reconciler: finishes work whose owner is gone (docs/PAYMENTS.md). One
//! pass takes over every unfinished payment whose lease ran out (a conditional
//! update, so two reconcilers never work on one payment) and drives it on
//! without a client: a payment that never reached the acquirer fails, one
//! whose answer was lost is resolved by inquiry, the remaining recovery points
//! of approved payments are completed. It then releases idempotency keys left
//! in flight past their lease and purges records past their retention. Run on
//! an interval inside payments-svc and as `payments-svc reconcile` (CronJob);
//! the interval loop reports each pass and the backlog left after it (`report`).
use common::text::Text;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flows::Payments;
use super::payment::{Scope, Status};
use crate::acquirer::Acquirer;
use crate::domain::store::PaymentStore;
use vault_api::{CallContext, Vault};

mod report;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Payments taken over and driven to a final state.
    pub resolved: u32,
    /// Taken over but still waiting for the acquirer's answer.
    pub still_pending: u32,
    /// Could not be worked on now (a store or the vault down); tried next pass.
    pub errors: u32,
    pub keys_released: u64,
    pub keys_purged: u64,
}

/// How the reconciler is run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub batch: u32,
    /// Idempotency records older than this are purged.
    pub key_retention: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { batch: 100, key_retention: Duration::from_secs(24 * 3600) }
    }
}

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    /// One reconciliation pass.
    pub async fn reconcile(&self, schedule: Schedule) -> Result<Pass, crate::domain::PaymentError> {
        let mut pass = Pass::default();
        let now = self.clock().now_ms();
        for payment in self.store().unfinished(now, schedule.batch).await? {
            let until = now + self.lease().as_millis() as i64;
            if !self.store().take_lease(&payment.id, now, until).await? {
                continue;
            }
            let (merchant_id, livemode) = (payment.merchant_id.clone(), payment.livemode);
            let scope = Scope { merchant_id: &merchant_id, livemode };
            let ctx = CallContext {
                deadline: Some(Instant::now() + self.lease() / 2),
                traceparent: None,
                correlation_id: "reconciler".into(),
            };
            let id = payment.id.clone();
            let driven = match payment.reference_id {
                None => self.drive_initial(scope, payment, None, false, &ctx).await,
                Some(_) => self.drive_follow_up(scope, payment, false).await,
            };
            match driven {
                Ok(p) if p.status == Status::Pending => pass.still_pending += 1,
                Ok(p) => {
                    tracing::info!(payment_id = %id, status = p.status.as_str(), "reconciled");
                    pass.resolved += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, payment_id = %id, "not reconciled; retrying next pass");
                    pass.errors += 1;
                }
            }
        }
        // The pass is done when the reports it queued are: a one-off pass
        // (the CronJob) exits after it.
        self.reports_settled().await;
        let purge_before = now - schedule.key_retention.as_millis() as i64;
        (pass.keys_released, pass.keys_purged) = self.store().sweep_keys(now, purge_before).await?;
        Ok(pass)
    }
}

/// Runs a pass every `every` until the process stops; a failed pass is
/// logged. After each, the backlog is counted for the gauges.
pub async fn run_every<P: PaymentStore, V: Vault, A: Acquirer>(
    payments: Arc<Payments<P, V, A>>,
    every: Duration,
    schedule: Schedule,
) {
    report::register();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match payments.reconcile(schedule).await {
            Ok(pass) => {
                report::pass(&pass);
                if pass != Pass::default() {
                    tracing::info!(?pass, "reconciler pass");
                }
            }
            Err(error) => {
                report::failed_pass();
                tracing::warn!(%error, "reconciler pass failed; retrying next interval");
            }
        }
        sample_backlog(&*payments).await;
    }
}

/// Sets the backlog gauges; while the store is down they keep their last
/// value (the outage shows in `health_check_up` and the pass counters).
async fn sample_backlog<P: PaymentStore, V: Vault, A: Acquirer>(payments: &Payments<P, V, A>) {
    match payments.store().backlog().await {
        Ok(backlog) => report::backlog(&backlog, payments.clock().now_ms()),
        Err(error) => tracing::debug!(%error, "backlog not counted"),
    }
}
