//! Follow-ups on an earlier payment: CP (capture a PA, partial and repeated up
//! to the authorized amount), RV (reverse a PA before capture), RF (refund a
//! DB or CP up to its captured amount). Each reserves its effect on the
//! original with a conditional update before the acquirer is called, so two
//! racing follow-ups can never pass the limits, and releases it if the
//! acquirer did not approve.
use common::money::{Currency, Money};

use super::Payments;
use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Operation};
use crate::domain::error::PaymentError;
use crate::domain::payment::{LedgerKind, Payment, PaymentType, Scope, Status};
use crate::storage::PaymentStore;

/// What a follow-up would undo on its original if the acquirer does not approve.
struct Reservation {
    captured: i64,
    refunded: i64,
    reversed: bool,
}

impl<P: PaymentStore, V, A: Acquirer> Payments<P, V, A> {
    pub async fn capture(
        &self,
        scope: Scope<'_>,
        pa_id: &str,
        amount: i64,
        id: String,
    ) -> Result<Payment, PaymentError> {
        let pa = self.original(scope, pa_id).await?;
        if pa.payment_type != PaymentType::PA {
            return Err(PaymentError::InvalidStateTransition("only a pre-authorization (PA) can be captured"));
        }
        let money = Money::new(amount, Currency::parse(&pa.currency)?, false)?;
        if !self.store.reserve_capture(scope, pa_id, amount).await? {
            let pa = self.original(scope, pa_id).await?;
            return Err(match () {
                _ if pa.status != Status::Approved => {
                    PaymentError::InvalidStateTransition("only an approved pre-authorization can be captured")
                }
                _ if pa.reversed => PaymentError::InvalidStateTransition("the pre-authorization was reversed"),
                _ => PaymentError::AmountExceeds,
            });
        }
        let reservation = Reservation { captured: amount, refunded: 0, reversed: false };
        self.settle_follow_up(scope, id, PaymentType::CP, &pa, money, reservation).await
    }

    pub async fn reverse(&self, scope: Scope<'_>, pa_id: &str, id: String) -> Result<Payment, PaymentError> {
        let pa = self.original(scope, pa_id).await?;
        if pa.payment_type != PaymentType::PA {
            return Err(PaymentError::InvalidStateTransition("only a pre-authorization (PA) can be reversed"));
        }
        let money = Money::new(pa.amount, Currency::parse(&pa.currency)?, false)?;
        if !self.store.reserve_reversal(scope, pa_id).await? {
            let pa = self.original(scope, pa_id).await?;
            return Err(PaymentError::InvalidStateTransition(match () {
                _ if pa.status != Status::Approved => "only an approved pre-authorization can be reversed",
                _ if pa.reversed => "the pre-authorization was already reversed",
                _ => "a captured pre-authorization cannot be reversed; refund the capture instead",
            }));
        }
        let reservation = Reservation { captured: 0, refunded: 0, reversed: true };
        self.settle_follow_up(scope, id, PaymentType::RV, &pa, money, reservation).await
    }

    pub async fn refund(
        &self,
        scope: Scope<'_>,
        target_id: &str,
        amount: i64,
        id: String,
    ) -> Result<Payment, PaymentError> {
        let target = self.original(scope, target_id).await?;
        if !matches!(target.payment_type, PaymentType::DB | PaymentType::CP) {
            return Err(PaymentError::InvalidStateTransition("only a debit (DB) or a capture (CP) can be refunded"));
        }
        let money = Money::new(amount, Currency::parse(&target.currency)?, false)?;
        if !self.store.reserve_refund(scope, target_id, amount).await? {
            let target = self.original(scope, target_id).await?;
            return Err(if target.status != Status::Approved {
                PaymentError::InvalidStateTransition("only an approved payment can be refunded")
            } else {
                PaymentError::AmountExceeds
            });
        }
        let reservation = Reservation { captured: 0, refunded: amount, reversed: false };
        self.settle_follow_up(scope, id, PaymentType::RF, &target, money, reservation).await
    }

    /// Asks the acquirer for a reserved follow-up, releases the reservation if
    /// it was not approved, and records the follow-up with its ledger line.
    async fn settle_follow_up(
        &self,
        scope: Scope<'_>,
        id: String,
        kind: PaymentType,
        original: &Payment,
        money: Money,
        reservation: Reservation,
    ) -> Result<Payment, PaymentError> {
        let operation = match kind {
            PaymentType::CP => Operation::Capture,
            PaymentType::RV => Operation::Reverse,
            _ => Operation::Refund,
        };
        let outcome = self
            .call_acquirer(AcquirerRequest {
                payment_id: &id,
                operation,
                money,
                card: None,
                original_reference: original.acquirer_reference.as_deref(),
                merchant_initiated: false,
            })
            .await;
        if !matches!(outcome, AcquirerOutcome::Approved { .. }) {
            let Reservation { captured, refunded, reversed } = reservation;
            self.store.release(&original.id, captured, refunded, reversed).await?;
        }
        let (status, result, acquirer_reference) = Self::settle(outcome);
        let payment = Payment {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            payment_type: kind,
            reference_id: Some(original.id.clone()),
            amount: money.amount,
            currency: money.currency.code().into(),
            status,
            result: result.into(),
            token: original.token.clone(),
            registration_id: original.registration_id.clone(),
            omni_token: original.omni_token.clone(),
            card: original.card.clone(),
            standing_instruction: None,
            captured_amount: if status == Status::Approved && kind == PaymentType::CP { money.amount } else { 0 },
            refunded_amount: 0,
            reversed: false,
            acquirer_reference,
            customer_id: original.customer_id.clone(),
            merchant_transaction_id: original.merchant_transaction_id.clone(),
            description: original.description.clone(),
            created_at: self.clock.now_ms(),
        };
        let card = original.card.clone().unwrap_or_default();
        let token = original.token.as_deref().unwrap_or_default();
        let entry = self.entry(scope, LedgerKind::of_payment(kind), Some(&payment), token, &card);
        self.store.insert(&payment, &[entry]).await?;
        Ok(payment)
    }
}
