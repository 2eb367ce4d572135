//! Follow-ups on an earlier payment: CP (capture a PA, partial and repeated up
//! to the authorized amount), RV (reverse a PA before capture), RF (refund a
//! DB or CP up to its captured amount). Each is recorded `pending` in the same
//! commit that reserves its effect on the original (a conditional update, so
//! racing follow-ups never pass the limits), then the acquirer is asked. An
//! approval keeps the reservation; a decline, or an inquiry that finds the
//! request never processed, releases it in the commit that records it; no
//! answer keeps the follow-up pending and its amount reserved (docs/PAYMENTS.md).
//! An approved CP or RV of a PA made over a single-use token has one step
//! more: the token's `charge_status` (`successful`, `reversed`) reported to
//! the vault. The answer is recorded at `AcquirerAnswered` when that report is
//! due, and the follow-up is finished once it is made (by this run, or the
//! reconciler's if the vault was away).
use common::money::{Currency, Money};

use super::Payments;
use super::initial::money_of;
use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Operation};
use crate::domain::error::{PaymentError, PaymentResult};
use crate::domain::payment::{LedgerKind, Payment, PaymentType, RecoveryPoint, Reservation, Scope, SourceKind, Status};
use crate::domain::store::{Begun, PaymentStore};
use vault_api::{ChargeStatus, Vault};

/// A follow-up asked for: its id, the payment it follows, its amount and
/// what it holds on that payment while pending.
struct FollowUp<'a> {
    id: String,
    original: &'a Payment,
    money: Money,
    reservation: Reservation,
}

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    pub async fn capture(&self, scope: Scope<'_>, pa_id: &str, amount: i64, id: String) -> PaymentResult<Payment> {
        let pa = self.original(scope, pa_id).await?;
        if pa.payment_type != PaymentType::PA {
            return Err(PaymentError::InvalidStateTransition("only a pre-authorization (PA) can be captured"));
        }
        let money = Money::new(amount, Currency::parse(&pa.currency)?, false)?;
        let refused = |pa: Payment| match () {
            _ if pa.status != Status::Approved => {
                PaymentError::InvalidStateTransition("only an approved pre-authorization can be captured")
            }
            _ if pa.reversed => PaymentError::InvalidStateTransition("the pre-authorization was reversed"),
            _ => PaymentError::AmountExceeds,
        };
        let asked = FollowUp { id, original: &pa, money, reservation: Reservation::Capture(amount) };
        self.begin_follow_up(scope, asked, refused).await
    }

    pub async fn reverse(&self, scope: Scope<'_>, pa_id: &str, id: String) -> PaymentResult<Payment> {
        let pa = self.original(scope, pa_id).await?;
        if pa.payment_type != PaymentType::PA {
            return Err(PaymentError::InvalidStateTransition("only a pre-authorization (PA) can be reversed"));
        }
        let money = Money::new(pa.amount, Currency::parse(&pa.currency)?, false)?;
        let refused = |pa: Payment| {
            PaymentError::InvalidStateTransition(match () {
                _ if pa.status != Status::Approved => "only an approved pre-authorization can be reversed",
                _ if pa.reversed => "the pre-authorization was already reversed",
                _ => "a captured pre-authorization cannot be reversed; refund the capture instead",
            })
        };
        let asked = FollowUp { id, original: &pa, money, reservation: Reservation::Reversal };
        self.begin_follow_up(scope, asked, refused).await
    }

    pub async fn refund(&self, scope: Scope<'_>, target_id: &str, amount: i64, id: String) -> PaymentResult<Payment> {
        let target = self.original(scope, target_id).await?;
        if !matches!(target.payment_type, PaymentType::DB | PaymentType::CP) {
            return Err(PaymentError::InvalidStateTransition("only a debit (DB) or a capture (CP) can be refunded"));
        }
        let money = Money::new(amount, Currency::parse(&target.currency)?, false)?;
        let refused = |target: Payment| {
            if target.status != Status::Approved {
                PaymentError::InvalidStateTransition("only an approved payment can be refunded")
            } else {
                PaymentError::AmountExceeds
            }
        };
        let asked = FollowUp { id, original: &target, money, reservation: Reservation::Refund(amount) };
        self.begin_follow_up(scope, asked, refused).await
    }

    /// Records the follow-up pending with its reservation (or finds it from an
    /// earlier run of the same key) and drives it.
    async fn begin_follow_up(
        &self,
        scope: Scope<'_>,
        asked: FollowUp<'_>,
        refused: impl FnOnce(Payment) -> PaymentError,
    ) -> PaymentResult<Payment> {
        let (original, reservation) = (asked.original, asked.reservation);
        let pending = self.pending_follow_up(scope, asked);
        let kind = pending.payment_type;
        match self.store.begin(&pending, Some(reservation), self.lease_until()).await? {
            Begun::New => self.drive_follow_up(scope, pending, true).await,
            Begun::Existing(existing)
                if existing.payment_type == kind && existing.reference_id.as_deref() == Some(&original.id) =>
            {
                self.drive_follow_up(scope, *existing, false).await
            }
            Begun::Existing(_) => Err(PaymentError::IdempotencyKeyReused),
            Begun::Refused => Err(refused(self.original(scope, &original.id).await?)),
        }
    }

    fn pending_follow_up(&self, scope: Scope<'_>, asked: FollowUp<'_>) -> Payment {
        let FollowUp { id, original, money, reservation } = asked;
        let kind = match reservation {
            Reservation::Capture(_) => PaymentType::CP,
            Reservation::Reversal => PaymentType::RV,
            Reservation::Refund(_) => PaymentType::RF,
        };
        Payment {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            payment_type: kind,
            reference_id: Some(original.id.clone()),
            amount: money.amount,
            currency: money.currency.code().into(),
            status: Status::Pending,
            result: common::result_code::PENDING.into(),
            token: original.token.clone(),
            registration_id: original.registration_id.clone(),
            omni_token: original.omni_token.clone(),
            card: original.card.clone(),
            account: original.account.clone(),
            mandate: None,
            standing_instruction: None,
            captured_amount: 0,
            refunded_amount: 0,
            reversed: false,
            acquirer_reference: None,
            customer_id: original.customer_id.clone(),
            merchant_transaction_id: original.merchant_transaction_id.clone(),
            description: original.description.clone(),
            created_at: self.clock.now_ms(),
            recovery: RecoveryPoint::Started,
            source_kind: None,
            tokenize: None,
        }
    }

    /// Asks the acquirer (or, if it may have been asked before, inquires) and
    /// records the answer, then reports the token's charge status if that is
    /// due (queued: `charge_reports`); a follow-up whose answer is still unknown is returned pending.
    /// `fresh`: this run recorded it.
    pub(crate) async fn drive_follow_up(
        &self,
        scope: Scope<'_>,
        mut payment: Payment,
        fresh: bool,
    ) -> PaymentResult<Payment> {
        let work_left = matches!(
            (payment.recovery, payment.status),
            (RecoveryPoint::Started, Status::Pending) | (RecoveryPoint::AcquirerAnswered, _)
        );
        if !work_left {
            return Ok(payment);
        }
        let original = self.original(scope, payment.reference_id.as_deref().unwrap_or_default()).await?;
        let charge = charge_of(&payment, &original);
        loop {
            payment = match (payment.recovery, payment.status) {
                (RecoveryPoint::Started, Status::Pending) => {
                    let outcome = self.ask_follow_up(&payment, &original, fresh).await?;
                    if outcome == AcquirerOutcome::TimedOut {
                        return Ok(payment);
                    }
                    self.answer_follow_up(payment, outcome, charge.is_some()).await?
                }
                (RecoveryPoint::AcquirerAnswered, _) => {
                    if let (Some(status), Some(token)) = (charge, original.token.as_deref()) {
                        // The follow-up stands and answers; it finishes once
                        // the vault has the report (if the vault is away, its
                        // lease runs out and the reconciler reports it).
                        let finishes = Some((payment.clone(), RecoveryPoint::AcquirerAnswered));
                        self.report_charge(scope, token, &original.id, status, finishes);
                        return Ok(payment);
                    }
                    let mut next = payment.clone();
                    next.recovery = RecoveryPoint::Finished;
                    self.advance(next, RecoveryPoint::AcquirerAnswered, &[], None).await?
                }
                _ => return Ok(payment),
            };
        }
    }

    /// The acquirer's answer to a follow-up: asked, or inquired of if it may
    /// have been asked before.
    async fn ask_follow_up(
        &self,
        payment: &Payment,
        original: &Payment,
        fresh: bool,
    ) -> PaymentResult<AcquirerOutcome> {
        let reference = original.acquirer_reference.as_deref();
        if !fresh {
            return self.inquire(payment, reference).await;
        }
        let operation = match payment.payment_type {
            PaymentType::CP => Operation::Capture,
            PaymentType::RV => Operation::Reverse,
            _ => Operation::Refund,
        };
        Ok(self
            .call_acquirer(AcquirerRequest {
                payment_id: &payment.id,
                operation,
                money: money_of(payment)?,
                card: None,
                account: None,
                mandate: None,
                original_reference: reference,
                merchant_initiated: false,
            })
            .await)
    }

    /// Records the acquirer's answer with the follow-up's ledger line and,
    /// unless approved, the release of its reservation. `reports`: an
    /// approval leaves the token's charge status to report.
    async fn answer_follow_up(
        &self,
        payment: Payment,
        outcome: AcquirerOutcome,
        reports: bool,
    ) -> PaymentResult<Payment> {
        let mut next = payment;
        Self::answered(&mut next, outcome);
        let status = next.status;
        next.recovery = if reports && status == Status::Approved {
            RecoveryPoint::AcquirerAnswered
        } else {
            RecoveryPoint::Finished
        };
        let release = (status != Status::Approved).then(|| next.reservation()).flatten();
        let mut ledger = Vec::new();
        if status != Status::Failed {
            let card = next.shown();
            let token = next.token.clone().unwrap_or_default();
            let kind = LedgerKind::of_payment(next.payment_type);
            ledger.push(self.entry(next.scope(), kind, Some(&next), &token, &card));
        }
        self.advance(next, RecoveryPoint::Started, &ledger, release).await
    }
}

/// The charge status an approved follow-up gives the single-use token its
/// original was made over: a capture makes the PA's `successful`, a reversal
/// `reversed`; a refund changes nothing (Omise's refunded charge stays
/// successful), nor does anything over another source.
fn charge_of(follow_up: &Payment, original: &Payment) -> Option<ChargeStatus> {
    if original.source_kind != Some(SourceKind::SingleUse) || original.token.is_none() {
        return None;
    }
    match follow_up.payment_type {
        PaymentType::CP => Some(ChargeStatus::Successful),
        PaymentType::RV => Some(ChargeStatus::Reversed),
        _ => None,
    }
}

impl Payment {
    /// What a follow-up holds on its original.
    pub fn reservation(&self) -> Option<Reservation> {
        match self.payment_type {
            PaymentType::CP => Some(Reservation::Capture(self.amount)),
            PaymentType::RV => Some(Reservation::Reversal),
            PaymentType::RF => Some(Reservation::Refund(self.amount)),
            PaymentType::PA | PaymentType::DB => None,
        }
    }
}
