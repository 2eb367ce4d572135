//! An initial payment (PA or DB), written ahead and driven through its
//! recovery points (docs/PAYMENTS.md): validated first (`validate`, nothing
//! consumed by a refusal), recorded `pending` before the vault is asked, the
//! masked card recorded before the acquirer is asked, the answer recorded with
//! the ledger lines, then the durable token asked for and the charge status.
//! `drive` resumes a payment from wherever it stopped: the retry of a client
//! (which brings its request, so the card can be had again) or the reconciler
//! (which does not, so a payment that never reached the acquirer fails).
//! A SEPA direct debit runs the same way over a bank account: raw (kept in
//! memory only), or a registration's, whose DB/EUR/mandate rules are checked
//! once the vault gives the account, before the acquirer is asked.
use common::money::{Currency, Money};
use common::result_code;

use super::validate::{self, NewPayment, ValidPayment, ValidSource, account_rules, instrument_rules};
use super::{Payments, ledger_kind_created};
use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Inquiry, Operation};
use crate::domain::error::{PaymentError, PaymentResult};
use crate::domain::payment::{
    LedgerKind, MaskedCard, Payment, PaymentType, RecoveryPoint, Scope, SiMode, SiSource, SourceKind, Status,
};
use crate::domain::store::{Begun, PaymentStore};
use common::reason::Reason;
use vault_api::{CallContext, ChargeStatus, Instrument, InstrumentKind, TokenKind, TokenSource, Vault, VaultError};

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    pub async fn create_payment(
        &self,
        scope: Scope<'_>,
        id: String,
        req: NewPayment,
        ctx: &CallContext,
    ) -> PaymentResult<Payment> {
        let mut req = validate::payment(req, self.clock.now_ms())?;
        self.check_connector(scope)?;
        if matches!(req.source, ValidSource::CustomerDefault) {
            let default = self.vault.default_registration(scope, &req.customer_id, ctx).await?;
            match &default.account {
                Some(_) => account_rules(req.payment_type, req.money.currency.code(), req.mandate.as_ref())?,
                None if req.mandate.is_some() => {
                    return Err(PaymentError::InvalidArgument("a mandate applies only to a bank account"));
                }
                None => {}
            }
            req.source = ValidSource::Stored(TokenKind::Registration, default.id);
        }
        if req.merchant_initiated {
            self.check_initial_cit(scope, &req).await?;
        }
        let pending = self.pending_initial(scope, id, &req);
        let (payment, fresh) = match self.store.begin(&pending, None, self.lease_until()).await? {
            Begun::New => (pending, true),
            Begun::Existing(existing) if existing.payment_type == pending.payment_type => (*existing, false),
            Begun::Existing(_) | Begun::Refused => return Err(PaymentError::IdempotencyKeyReused),
        };
        self.drive_initial(scope, payment, Some(&req), fresh, ctx).await
    }

    /// A MIT needs a successful INITIAL CIT of the merchant on its token: the
    /// one its `initial_transaction_id` names, when it names one.
    async fn check_initial_cit(&self, scope: Scope<'_>, req: &ValidPayment) -> PaymentResult<()> {
        let token = req.source.token().unwrap_or_default();
        let named = req.standing_instruction.as_ref().map(|si| si.initial_transaction_id.as_str()).unwrap_or_default();
        let found = match named {
            "" => self.store.has_initial_cit(scope, token).await?,
            id => self.store.get(scope, id).await?.is_some_and(|initial| is_initial_cit_on(&initial, token)),
        };
        if found { Ok(()) } else { Err(PaymentError::MitWithoutCit) }
    }

    fn pending_initial(&self, scope: Scope<'_>, id: String, req: &ValidPayment) -> Payment {
        let account = match &req.source {
            ValidSource::Account(account) => Some(account.masked()),
            _ => None,
        };
        let (source_kind, card) = match &req.source {
            ValidSource::Card(card) => (SourceKind::Card, Some(MaskedCard::of(card))),
            ValidSource::Account(_) => (SourceKind::Account, None),
            ValidSource::SingleUse(_) => (SourceKind::SingleUse, None),
            ValidSource::Stored(TokenKind::Registration, _) | ValidSource::CustomerDefault => {
                (SourceKind::Registration, None)
            }
            ValidSource::Stored(TokenKind::Omni, _) => (SourceKind::Omni, None),
        };
        let stored = |kind| match &req.source {
            ValidSource::Stored(k, t) if *k == kind => Some(t.clone()),
            _ => None,
        };
        Payment {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            payment_type: req.payment_type,
            reference_id: None,
            amount: req.money.amount,
            currency: req.money.currency.code().into(),
            status: Status::Pending,
            result: result_code::PENDING.into(),
            token: req.source.token().map(str::to_owned),
            registration_id: stored(TokenKind::Registration),
            omni_token: stored(TokenKind::Omni),
            recovery: if card.is_some() || account.is_some() {
                RecoveryPoint::CardObtained
            } else {
                RecoveryPoint::Started
            },
            card,
            account,
            mandate: req.mandate.clone(),
            standing_instruction: req.standing_instruction.clone(),
            captured_amount: 0,
            refunded_amount: 0,
            reversed: false,
            acquirer_reference: None,
            customer_id: req.customer_id.clone(),
            merchant_transaction_id: req.merchant_transaction_id.clone(),
            description: req.description.clone(),
            created_at: self.clock.now_ms(),
            source_kind: Some(source_kind),
            tokenize: req.tokenize,
        }
    }

    /// Runs the recovery points that remain. `req` is the client's request
    /// when a client drives it (first run or retry); `None` for the reconciler.
    /// `fresh`: this run wrote the payment, so the acquirer has not been asked.
    /// Returns the payment as it stands: finished, or pending when the
    /// acquirer's answer is still unknown.
    pub(crate) async fn drive_initial(
        &self,
        scope: Scope<'_>,
        mut payment: Payment,
        req: Option<&ValidPayment>,
        fresh: bool,
        ctx: &CallContext,
    ) -> PaymentResult<Payment> {
        let mut card: Option<Instrument> = match req.map(|r| &r.source) {
            Some(ValidSource::Card(card)) => Some(Instrument::Card((**card).clone())),
            Some(ValidSource::Account(account)) => Some(Instrument::Account((**account).clone())),
            _ => None,
        };
        let mut acquirer_asked = !fresh;
        loop {
            payment = match payment.recovery {
                RecoveryPoint::Started => match self.obtain_card(scope, &payment, req.is_some(), fresh, ctx).await {
                    Ok(Some(obtained)) => {
                        let mut next = payment.clone();
                        if let Err(refusal) = instrument_rules(&payment, &obtained) {
                            // Not an instrument this request may pay with: it did not happen.
                            return self.refuse_started(&payment, refusal).await;
                        }
                        match &obtained {
                            Instrument::Card(card) => next.card = Some(MaskedCard::of(card)),
                            Instrument::Account(account) => next.account = Some(account.masked()),
                        }
                        next.recovery = RecoveryPoint::CardObtained;
                        card = Some(obtained);
                        acquirer_asked = false;
                        self.advance(next, RecoveryPoint::Started, &[], None).await?
                    }
                    Ok(None) => {
                        let failed = self.answer_initial(payment, AcquirerOutcome::NotProcessed).await?;
                        // Lost to a client's retry that obtained the card first
                        // and may be asking the acquirer now: an inquiry could
                        // come before its request, so the payment is the
                        // retry's to finish.
                        if failed.recovery == RecoveryPoint::CardObtained && failed.status == Status::Pending {
                            return Ok(failed);
                        }
                        failed
                    }
                    // The vault refused the token (used, expired, unknown): the
                    // payment did not happen, and the caller is told why.
                    Err(PaymentError::Vault(refusal)) if refusal != VaultError::Unavailable => {
                        return self.refuse_started(&payment, PaymentError::Vault(refusal)).await;
                    }
                    Err(error) => return Err(error),
                },
                RecoveryPoint::CardObtained if payment.status == Status::Pending => {
                    let outcome = match &card {
                        Some(card) if !acquirer_asked => self.execute_initial(&payment, card).await?,
                        _ => self.inquire(&payment, None).await?,
                    };
                    acquirer_asked = true;
                    if outcome == AcquirerOutcome::TimedOut {
                        // Best effort: the final status is reported once known.
                        self.report_charge_status(scope, &payment, None);
                        return Ok(payment);
                    }
                    self.answer_initial(payment, outcome).await?
                }
                RecoveryPoint::CardObtained | RecoveryPoint::AcquirerAnswered => {
                    self.tokenize_paid(scope, payment, card.as_ref(), ctx).await?
                }
                RecoveryPoint::Tokenized => {
                    if self.report_charge_status(scope, &payment, Some(RecoveryPoint::Tokenized)) {
                        // The payment stands and answers; it finishes once the
                        // vault has the report (if the vault is away, its lease
                        // runs out and the reconciler reports it).
                        return Ok(payment);
                    }
                    let mut next = payment.clone();
                    next.recovery = RecoveryPoint::Finished;
                    self.advance(next, RecoveryPoint::Tokenized, &[], None).await?
                }
                RecoveryPoint::Finished => return Ok(payment),
            };
        }
    }

    /// Records a payment at `Started` as failed (never processed) and answers
    /// the caller with why.
    async fn refuse_started(&self, payment: &Payment, refusal: PaymentError) -> PaymentResult<Payment> {
        let mut failed = payment.clone();
        failed.status = Status::Failed;
        failed.result = result_code::NOT_PROCESSED.into();
        failed.recovery = RecoveryPoint::Finished;
        self.advance(failed, RecoveryPoint::Started, &[], None).await?;
        Err(refusal)
    }

    /// The card of a payment at `Started`: from the vault (the same
    /// `consumer_ref` gets a consumed single-use token's card again within
    /// the vault's replay window). `None` when the payment cannot go on: the
    /// reconciler never asks the acquirer on nobody's behalf, and a token
    /// whose replay window has passed has no card to give.
    async fn obtain_card(
        &self,
        scope: Scope<'_>,
        payment: &Payment,
        client_present: bool,
        fresh: bool,
        ctx: &CallContext,
    ) -> PaymentResult<Option<Instrument>> {
        let Some(token) = payment.token.as_deref().filter(|_| client_present) else { return Ok(None) };
        match self.vault.detokenize(scope, token, &payment.id, Some(expected_instrument(payment)), ctx).await {
            Ok(card) => Ok(Some(card)),
            // The token holds what this request cannot pay with (an account
            // without a mandate, a card with one): refused before the vault
            // used it, with the request's own reason.
            Err(VaultError::Rejected { reason: Reason::InstrumentMismatch }) => Err(mismatch(payment)),
            // Consumed by this payment in an earlier run, past the replay window.
            Err(VaultError::UsedToken) if !fresh && payment.source_kind == Some(SourceKind::SingleUse) => {
                tracing::warn!(payment_id = %payment.id, "resumed payment's card is no longer available");
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn execute_initial(&self, payment: &Payment, instrument: &Instrument) -> PaymentResult<AcquirerOutcome> {
        let (card, account) = match instrument {
            Instrument::Card(card) => (Some(card), None),
            Instrument::Account(account) => (None, Some(account)),
        };
        Ok(self
            .call_acquirer(AcquirerRequest {
                payment_id: &payment.id,
                operation: operation_of(payment),
                money: money_of(payment)?,
                card,
                account,
                mandate: payment.mandate.as_ref(),
                original_reference: None,
                merchant_initiated: payment.merchant_initiated(),
            })
            .await)
    }

    /// Asks the acquirer what became of a request whose answer was lost
    /// (`original_reference`: the acquirer's reference of a follow-up's original).
    pub(super) async fn inquire(
        &self,
        payment: &Payment,
        original_reference: Option<&str>,
    ) -> PaymentResult<AcquirerOutcome> {
        let inquiry = Inquiry {
            payment_id: &payment.id,
            operation: operation_of(payment),
            money: money_of(payment)?,
            card: payment.card.as_ref().filter(|_| payment.reference_id.is_none()),
            account: payment.account.as_ref().filter(|_| payment.reference_id.is_none()),
            mandate: payment.mandate.as_ref(),
            original_reference,
            merchant_initiated: payment.merchant_initiated(),
        };
        Ok(tokio::time::timeout(self.acquirer_timeout, self.acquirer.inquire(inquiry))
            .await
            .unwrap_or(AcquirerOutcome::TimedOut))
    }

    /// Records a definitive answer with the payment's ledger lines.
    async fn answer_initial(&self, payment: Payment, outcome: AcquirerOutcome) -> PaymentResult<Payment> {
        let from = payment.recovery;
        let mut next = payment;
        Self::answered(&mut next, outcome);
        let status = next.status;
        // Points with nothing to do are skipped in this same commit.
        next.recovery = match next.tokenize {
            Some(_) if status == Status::Approved => RecoveryPoint::AcquirerAnswered,
            _ => next.after_tokenizing(),
        };
        let masked = next.shown();
        let used = next.token.clone().unwrap_or_default();
        let mut ledger = Vec::new();
        if status != Status::Failed {
            if let Some(omni) = next.omni_token.as_deref().filter(|_| next.source_kind == Some(SourceKind::Omni)) {
                ledger.push(self.entry(next.scope(), LedgerKind::DT, Some(&next), omni, &masked));
            }
            let kind = LedgerKind::of_payment(next.payment_type);
            ledger.push(self.entry(next.scope(), kind, Some(&next), &used, &masked));
        }
        self.advance(next, from, &ledger, None).await
    }

    /// Creates the durable token an approved payment asked for. Without the
    /// card in memory (a resumed payment), the vault is asked for it again
    /// under the same `consumer_ref`; if it cannot give it, the payment stands
    /// without the token (logged), as when tokenizing fails.
    async fn tokenize_paid(
        &self,
        scope: Scope<'_>,
        payment: Payment,
        card: Option<&Instrument>,
        ctx: &CallContext,
    ) -> PaymentResult<Payment> {
        let from = payment.recovery;
        let mut next = payment;
        next.recovery = next.after_tokenizing();
        let kind = match next.tokenize {
            Some(kind) if next.status == Status::Approved => kind,
            _ => return self.advance(next, from, &[], None).await,
        };
        let again;
        let card = match card {
            Some(card) => card,
            None => match next.token.as_deref() {
                Some(token) => {
                    match self.vault.detokenize(scope, token, &next.id, Some(expected_instrument(&next)), ctx).await {
                        Ok(card) => {
                            again = card;
                            &again
                        }
                        Err(VaultError::Unavailable) => return Err(VaultError::Unavailable.into()),
                        Err(error) => {
                            tracing::error!(%error, payment_id = %next.id, "approved payment's card is gone: not tokenized");
                            return self.advance(next, from, &[], None).await;
                        }
                    }
                }
                None => return self.advance(next, from, &[], None).await,
            },
        };
        let source = match card {
            Instrument::Card(card) => TokenSource::Card(card),
            Instrument::Account(account) => TokenSource::Account(account),
        };
        let token = match self.vault.tokenize(scope, kind, source, &next.customer_id, &next.id, ctx).await {
            Ok(token) => token,
            Err(VaultError::Unavailable) => return Err(VaultError::Unavailable.into()),
            Err(error) => {
                tracing::error!(%error, payment_id = %next.id, "payment approved but the card was not tokenized");
                return self.advance(next, from, &[], None).await;
            }
        };
        match kind {
            TokenKind::Registration => next.registration_id = Some(token.id.clone()),
            TokenKind::Omni => next.omni_token = Some(token.id.clone()),
        }
        let masked = next.shown();
        let line = self.entry(scope, ledger_kind_created(kind), Some(&next), &token.id, &masked);
        self.advance(next, from, &[line], None).await
    }

    /// Queues the report to the vault of how the payment over a single-use
    /// token stands (its `charge_status`): an authorization (PA) or an answer
    /// still awaited is `pending`, a debit (DB) or an approved account
    /// verification `successful`, a decline or a payment never processed
    /// `failed`; with `finishing`, the payment finishes from that recovery
    /// point once the vault has it. `false` when no report is due.
    fn report_charge_status(&self, scope: Scope<'_>, payment: &Payment, finishing: Option<RecoveryPoint>) -> bool {
        if payment.source_kind != Some(SourceKind::SingleUse) {
            return false;
        }
        let Some(token) = payment.token.as_deref() else { return false };
        let charge = match payment.status {
            Status::Approved if operation_of(payment) == Operation::Authorize => ChargeStatus::Pending,
            Status::Approved => ChargeStatus::Successful,
            Status::Declined | Status::Failed => ChargeStatus::Failed,
            Status::Pending => ChargeStatus::Pending,
        };
        self.report_charge(scope, token, &payment.id, charge, finishing.map(|from| (payment.clone(), from)));
        true
    }
}

/// A payment under a SEPA mandate pays with a bank account; any other with a card.
fn expected_instrument(payment: &Payment) -> InstrumentKind {
    if payment.mandate.is_some() { InstrumentKind::Account } else { InstrumentKind::Card }
}

/// Why a token holding the other instrument cannot pay `payment`.
fn mismatch(payment: &Payment) -> PaymentError {
    match expected_instrument(payment) {
        InstrumentKind::Card => account_rules(payment.payment_type, &payment.currency, None)
            .err()
            .unwrap_or(PaymentError::InvalidArgument("a bank account needs a mandate")),
        InstrumentKind::Account => PaymentError::InvalidArgument("a mandate applies only to a bank account"),
    }
}

/// What the acquirer is asked for a payment: a zero-amount PA (which only a
/// PA that stores the card may be) is an account verification.
fn operation_of(payment: &Payment) -> Operation {
    match payment.payment_type {
        PaymentType::PA if payment.amount == 0 => Operation::AccountVerification,
        PaymentType::PA => Operation::Authorize,
        PaymentType::DB => Operation::Debit,
        PaymentType::CP => Operation::Capture,
        PaymentType::RV => Operation::Reverse,
        PaymentType::RF => Operation::Refund,
    }
}

/// A stored payment's amount in its currency.
pub(super) fn money_of(payment: &Payment) -> PaymentResult<Money> {
    let currency = Currency::parse(&payment.currency)?;
    Ok(Money::new(payment.amount, currency, payment.amount == 0)?)
}

impl Payment {
    /// The point after the durable token: the charge status still to report
    /// for a single-use token, else nothing is left.
    fn after_tokenizing(&self) -> RecoveryPoint {
        if self.source_kind == Some(SourceKind::SingleUse) { RecoveryPoint::Tokenized } else { RecoveryPoint::Finished }
    }
}

/// Whether `payment` is a successful INITIAL CIT over `token`.
fn is_initial_cit_on(payment: &Payment, token: &str) -> bool {
    let on_token =
        [&payment.token, &payment.registration_id, &payment.omni_token].iter().any(|t| t.as_deref() == Some(token));
    let initial_cit = payment
        .standing_instruction
        .as_ref()
        .is_some_and(|si| si.mode == SiMode::Initial && si.source == SiSource::Cit);
    payment.status == Status::Approved && on_token && initial_cit
}
