//! The payment flows, split by phase (docs/PAYMENTS.md): `validate` turns a
//! request into a validated one without side effects (so a refused request
//! consumes nothing); `initial` writes a PA/DB ahead and drives it through its
//! recovery points (card, acquirer, ledger, durable token, charge status);
//! `follow_up` records CP/RV/RF with their reservation on the original and
//! resolves them; `registration` runs the card-token calls (registrations and
//! omni tokens). This module holds what they share: the ledger line builder,
//! the acquirer call within its timeout, moving a payment on one step, and
//! handing charge-status reports to `charge_reports`, off the response path.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use common::clock::SharedClock;
use common::result_code::{self, ResultCode};
use vault_api::{ChargeReport, ChargeStatus, TokenKind, Vault};

use super::error::PaymentError;
use super::payment::{
    LedgerEntry, LedgerKind, LedgerRecord, MaskedCard, Payment, PaymentType, RecoveryPoint, Reservation, Scope, Status,
};
use super::store::{LedgerQuery, PaymentStore, Step};
use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest};

mod charge_reports;
mod follow_up;
mod initial;
mod registration;
mod validate;

pub use registration::TokenOutcome;
pub use validate::{MandateInput, NewPayment, Source, ValidPayment, ValidSource};

const MAX_PAGE: u32 = 100;

pub fn new_id() -> String {
    common::ids::hex(16)
}

/// The ledger line of a durable token's creation (OPP's RG, Till's TK).
fn ledger_kind_created(kind: TokenKind) -> LedgerKind {
    match kind {
        TokenKind::Registration => LedgerKind::RG,
        TokenKind::Omni => LedgerKind::TK,
    }
}

/// The ledger line of a durable token's deletion (OPP's DR, Till's DL).
fn ledger_kind_deleted(kind: TokenKind) -> LedgerKind {
    match kind {
        TokenKind::Registration => LedgerKind::DR,
        TokenKind::Omni => LedgerKind::DL,
    }
}

pub struct Payments<P, V, A> {
    store: Arc<P>,
    vault: Arc<V>,
    acquirer: Arc<A>,
    clock: SharedClock,
    acquirer_timeout: Duration,
    /// How long a worker owns a payment before another may take it over.
    lease: Duration,
    /// Whether a live acquirer connector is configured (none is, yet).
    live_connector: bool,
    reports: charge_reports::ChargeReports<P, V>,
}

/// How long a worker owns work unless configured otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl<P: PaymentStore, V, A: Acquirer> Payments<P, V, A> {
    pub fn new(store: Arc<P>, vault: Arc<V>, acquirer: Arc<A>, clock: SharedClock, acquirer_timeout: Duration) -> Self {
        let reports = charge_reports::ChargeReports::new(store.clone(), vault.clone(), TaskTracker::new());
        Self { store, vault, acquirer, clock, acquirer_timeout, lease: DEFAULT_LEASE, live_connector: false, reports }
    }

    /// Charge-status reports run on `tracker` (the detached work a drain
    /// waits for), not on one of their own.
    pub fn with_tracker(self, tracker: TaskTracker) -> Self {
        let reports = charge_reports::ChargeReports::new(self.store.clone(), self.vault.clone(), tracker);
        Self { reports, ..self }
    }

    pub fn with_lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The end of a lease taken now.
    fn lease_until(&self) -> common::clock::Millis {
        self.clock.now_ms() + self.lease.as_millis() as i64
    }

    /// Writes `next` (a payment moved on from recovery point `from`) with its
    /// ledger lines and the release of its reservation, in one commit. If
    /// another worker moved it first, the payment as that one left it.
    async fn advance(
        &self,
        next: Payment,
        from: RecoveryPoint,
        ledger: &[LedgerEntry],
        release: Option<Reservation>,
    ) -> Result<Payment, PaymentError> {
        if self.store.advance(&next, Step { from, ledger, release, lease_until: self.lease_until() }).await? {
            return Ok(next);
        }
        self.original(next.scope(), &next.id).await
    }

    pub fn store(&self) -> &P {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Live payments need a connector; refused before anything is consumed.
    fn check_connector(&self, scope: Scope<'_>) -> Result<(), PaymentError> {
        if scope.livemode && !self.live_connector {
            return Err(PaymentError::NoConnector);
        }
        Ok(())
    }

    /// A ledger line: a payment operation's line carries the payment's id and
    /// result; a token event gets an id of its own and the mode's success.
    fn entry(
        &self,
        scope: Scope<'_>,
        kind: LedgerKind,
        payment: Option<&Payment>,
        token: &str,
        card: &MaskedCard,
    ) -> LedgerEntry {
        let (payment_id, reference_id, amount, currency, result) = match payment {
            Some(p) => (
                p.id.clone(),
                p.reference_id.clone().unwrap_or_default(),
                p.amount,
                p.currency.clone(),
                p.result.clone(),
            ),
            None => (String::new(), String::new(), 0, String::new(), result_code::success(scope.livemode).into()),
        };
        let id = if kind.is_payment() { payment_id.clone() } else { new_id() };
        LedgerEntry {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            transaction_type: kind,
            payment_id,
            reference_id,
            amount,
            currency,
            result,
            token: token.into(),
            card: card.clone(),
            created_at: self.clock.now_ms(),
        }
    }

    /// Queues the report of `status` of the payment `consumer_ref` on
    /// single-use `token` for the vault (its `charge_status`), off the
    /// response path (`charge_reports`); once the vault has it, `finishes`
    /// (a payment and the recovery point it is at) moves to `Finished`.
    fn report_charge(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        status: ChargeStatus,
        finishes: Option<(Payment, RecoveryPoint)>,
    ) where
        V: Vault,
    {
        let report = ChargeReport {
            merchant_id: scope.merchant_id.into(),
            token: token.into(),
            consumer_ref: consumer_ref.into(),
            status,
        };
        self.reports.submit(charge_reports::Due { report, finishes });
    }

    /// Resolves once every charge-status report queued so far is sent (or
    /// failed) and its payment moved on.
    pub async fn reports_settled(&self) {
        self.reports.settled().await;
    }

    async fn call_acquirer(&self, request: AcquirerRequest<'_>) -> AcquirerOutcome {
        tokio::time::timeout(self.acquirer_timeout, self.acquirer.execute(request))
            .await
            .unwrap_or(AcquirerOutcome::TimedOut)
    }

    /// Writes a definitive acquirer answer into `next`: status, result, the
    /// acquirer's reference, and what an approved DB or CP makes capturable.
    fn answered(next: &mut Payment, outcome: AcquirerOutcome) {
        let (status, result, acquirer_reference) = Self::settle(outcome);
        let captures = matches!(next.payment_type, PaymentType::DB | PaymentType::CP);
        next.captured_amount = if status == Status::Approved && captures { next.amount } else { 0 };
        next.status = status;
        next.result = result.into();
        next.acquirer_reference = acquirer_reference;
    }

    fn settle(outcome: AcquirerOutcome) -> (Status, ResultCode, Option<String>) {
        match outcome {
            AcquirerOutcome::Approved { result, reference } => (Status::Approved, result, Some(reference)),
            AcquirerOutcome::Declined { result } => (Status::Declined, result, None),
            AcquirerOutcome::TimedOut => (Status::Pending, result_code::PENDING, None),
            AcquirerOutcome::NotProcessed => (Status::Failed, result_code::NOT_PROCESSED, None),
        }
    }

    async fn original(&self, scope: Scope<'_>, id: &str) -> Result<Payment, PaymentError> {
        self.store.get(scope, id).await?.ok_or(PaymentError::NotFound)
    }

    pub async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Payment, PaymentError> {
        self.original(scope, id).await
    }

    pub async fn ledger(
        &self,
        scope: Scope<'_>,
        query: LedgerQuery<'_>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<LedgerRecord>, String), PaymentError> {
        let limit = if page_size <= 0 { 20 } else { (page_size as u32).min(MAX_PAGE) };
        let after = if page_token.is_empty() {
            0
        } else {
            page_token.parse().map_err(|_| PaymentError::InvalidArgument("page_token is not one this API returned"))?
        };
        let records = self.store.ledger(scope, query, after, limit).await?;
        let next = if records.len() == limit as usize {
            records.last().map(|r| r.seq.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((records, next))
    }
}
