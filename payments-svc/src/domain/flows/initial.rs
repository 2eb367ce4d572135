//! An initial payment (PA or DB): validated first (`validate`), then the MIT
//! rule against the store, the card from the request or the vault (a
//! single-use token is consumed here), the acquirer within its timeout, a
//! durable token when asked and the payment was approved, and the payment with
//! its ledger lines in one commit.
use common::card::Card;
use common::money::Money;

use super::validate::{self, NewPayment, ValidPayment, ValidSource};
use super::{Payments, ledger_kind_created};
use crate::acquirer::{Acquirer, AcquirerRequest, Operation};
use crate::domain::error::PaymentError;
use crate::domain::payment::{LedgerKind, MaskedCard, Payment, PaymentType, Scope, Status};
use crate::storage::PaymentStore;
use crate::vault::{CallContext, StoredToken, TokenKind, TokenSource, Vault};

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    pub async fn create_payment(
        &self,
        scope: Scope<'_>,
        id: String,
        req: NewPayment,
        ctx: &CallContext,
    ) -> Result<Payment, PaymentError> {
        let req = validate::payment(req, self.clock.now_ms())?;
        self.check_connector(scope)?;
        if req.merchant_initiated {
            let token = req.source.token().unwrap_or_default();
            if !self.store.has_initial_cit(scope, token).await? {
                return Err(PaymentError::MitWithoutCit);
            }
        }
        let card = self.card(scope, &req.source, &id, ctx).await?;
        let operation = if req.payment_type == PaymentType::PA { Operation::Authorize } else { Operation::Debit };
        let outcome = self
            .call_acquirer(AcquirerRequest {
                payment_id: &id,
                operation,
                money: req.money,
                card: Some(&card),
                original_reference: None,
                merchant_initiated: req.merchant_initiated,
            })
            .await;
        let (status, result, acquirer_reference) = Self::settle(outcome);
        if let ValidSource::SingleUse(t) = &req.source {
            self.report_charge(scope, t, &id, status, ctx);
        }
        let created = match req.tokenize {
            Some(kind) if status == Status::Approved => self.tokenize_paid(scope, kind, &card, &req, &id, ctx).await,
            _ => None,
        };
        let payment = Payment {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            payment_type: req.payment_type,
            reference_id: None,
            amount: req.money.amount,
            currency: req.money.currency.code().into(),
            status,
            result: result.into(),
            token: created.as_ref().map(|(_, t)| t.id.clone()).or(req.source.token().map(str::to_owned)),
            registration_id: token_of(TokenKind::Registration, created.as_ref(), &req.source),
            omni_token: token_of(TokenKind::Omni, created.as_ref(), &req.source),
            card: Some(MaskedCard::of(&card)),
            captured_amount: captured(status, req.payment_type, req.money),
            refunded_amount: 0,
            reversed: false,
            acquirer_reference,
            standing_instruction: req.standing_instruction,
            customer_id: req.customer_id,
            merchant_transaction_id: req.merchant_transaction_id,
            description: req.description,
            created_at: self.clock.now_ms(),
        };
        let masked = MaskedCard::of(&card);
        let mut ledger = Vec::new();
        if let ValidSource::Stored(TokenKind::Omni, o) = &req.source {
            ledger.push(self.entry(scope, LedgerKind::DT, Some(&payment), o, &masked));
        }
        let used = req.source.token().unwrap_or_default();
        ledger.push(self.entry(scope, LedgerKind::of_payment(payment.payment_type), Some(&payment), used, &masked));
        if let Some((kind, t)) = &created {
            ledger.push(self.entry(scope, ledger_kind_created(*kind), Some(&payment), &t.id, &masked));
        }
        self.store.insert(&payment, &ledger).await?;
        Ok(payment)
    }

    /// The card, from the request or from the vault.
    async fn card(
        &self,
        scope: Scope<'_>,
        source: &ValidSource,
        id: &str,
        ctx: &CallContext,
    ) -> Result<Card, PaymentError> {
        Ok(match source {
            ValidSource::Card(card) => (**card).clone(),
            ValidSource::SingleUse(t) | ValidSource::Stored(_, t) => self.vault.detokenize(scope, t, id, ctx).await?,
        })
    }

    /// Tokenizes the card of an approved payment; a failure is logged and the
    /// payment stands without the token.
    async fn tokenize_paid(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        card: &Card,
        req: &ValidPayment,
        id: &str,
        ctx: &CallContext,
    ) -> Option<(TokenKind, StoredToken)> {
        match self.vault.tokenize(scope, kind, TokenSource::Card(card), &req.customer_id, id, ctx).await {
            Ok(token) => Some((kind, token)),
            Err(error) => {
                tracing::error!(%error, payment_id = %id, "payment approved but the card was not tokenized");
                None
            }
        }
    }

    /// Tells the vault how the payment over a single-use token ended (its
    /// `charge_status`), off the response path: a failure is only logged.
    fn report_charge(&self, scope: Scope<'_>, token: &str, payment_id: &str, status: Status, ctx: &CallContext) {
        let charge = match status {
            Status::Approved => "successful",
            Status::Declined | Status::Failed => "failed",
            Status::Pending => "pending",
        };
        let (vault, ctx) = (self.vault.clone(), ctx.clone());
        let (merchant_id, livemode) = (scope.merchant_id.to_owned(), scope.livemode);
        let (token, payment_id) = (token.to_owned(), payment_id.to_owned());
        tokio::spawn(async move {
            let scope = Scope { merchant_id: &merchant_id, livemode };
            if let Err(error) = vault.report_charge(scope, &token, &payment_id, charge, &ctx).await {
                tracing::warn!(%error, %payment_id, "charge status not reported to the vault");
            }
        });
    }
}

/// The id of the `kind` token a payment is on: the one it created, else the one it used.
fn token_of(kind: TokenKind, created: Option<&(TokenKind, StoredToken)>, source: &ValidSource) -> Option<String> {
    match (created, source) {
        (Some((k, t)), _) if *k == kind => Some(t.id.clone()),
        (_, ValidSource::Stored(k, t)) if *k == kind => Some(t.clone()),
        _ => None,
    }
}

/// A DB captures what it authorizes when approved; a PA captures later.
fn captured(status: Status, payment_type: PaymentType, money: Money) -> i64 {
    if status == Status::Approved && payment_type == PaymentType::DB { money.amount } else { 0 }
}
