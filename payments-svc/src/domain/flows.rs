//! The payment flows. An initial payment (PA or DB) validates everything
//! first (so a refused request consumes nothing), gets the card from the vault
//! only then, calls the acquirer within its timeout, tokenizes the card when
//! asked and the payment succeeded, and records the payment with its ledger
//! entries in one commit. Follow-ups (CP, RV, RF) reserve their effect on the
//! original payment with a conditional update before calling the acquirer and
//! release it if the acquirer does not approve.
use std::sync::Arc;
use std::time::Duration;

use common::card::{Card, CardInput, contains_pan};
use common::clock::SharedClock;
use common::money::{Currency, Money};
use common::result_code::{self, ResultCode};
use vault_api::token_id::{self, TokenRef};
use vault_api::{CallContext, StoredToken, TokenKind, TokenSource, Vault};

use super::error::PaymentError;
use super::payment::{
    LedgerEntry, LedgerRecord, MaskedCard, Outcome, Payment, PaymentType, Scope, SiMode, SiSource, StandingInstruction,
    Status,
};
use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Operation};
use crate::storage::{LedgerQuery, PaymentStore};

pub enum Source {
    Card(Box<CardInput>),
    /// A single-use token.
    Token(String),
    Registration(String),
    Omni(String),
}

pub struct NewPayment {
    pub payment_type: PaymentType,
    pub amount: i64,
    pub currency: String,
    pub source: Source,
    pub create_registration: bool,
    pub create_omni_token: bool,
    pub customer_id: String,
    pub merchant_transaction_id: String,
    pub description: String,
    pub standing_instruction: Option<StandingInstruction>,
}

/// A registration attempt: the token when stored, and the verification's result.
pub struct RegistrationOutcome {
    pub token: Option<StoredToken>,
    pub result: Outcome,
}

const MAX_TEXT: usize = 255;
const MAX_PAGE: u32 = 100;

fn check_text(value: &str, what: &'static str) -> Result<(), PaymentError> {
    if value.chars().count() > MAX_TEXT || contains_pan(value) {
        return Err(PaymentError::InvalidArgument(what));
    }
    Ok(())
}

/// Whether `id` has the shape the vault gives durable tokens of `kind`.
fn is_durable(id: &str, kind: TokenKind) -> bool {
    token_id::classify(id) == Some(TokenRef::Durable(kind))
}

pub fn new_id() -> String {
    common::ids::hex(16)
}

pub struct Payments<P, V, A> {
    store: Arc<P>,
    vault: Arc<V>,
    acquirer: Arc<A>,
    clock: SharedClock,
    acquirer_timeout: Duration,
    /// Whether a live acquirer connector is configured (none is, yet).
    live_connector: bool,
}

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    pub fn new(store: Arc<P>, vault: Arc<V>, acquirer: Arc<A>, clock: SharedClock, acquirer_timeout: Duration) -> Self {
        Self { store, vault, acquirer, clock, acquirer_timeout, live_connector: false }
    }

    pub fn store(&self) -> &P {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn entry(
        &self,
        scope: Scope<'_>,
        kind: &'static str,
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
        let id = if matches!(kind, "PA" | "DB" | "CP" | "RV" | "RF") { payment_id.clone() } else { new_id() };
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

    async fn call_acquirer(&self, request: AcquirerRequest<'_>) -> AcquirerOutcome {
        tokio::time::timeout(self.acquirer_timeout, self.acquirer.execute(request))
            .await
            .unwrap_or(AcquirerOutcome::TimedOut)
    }

    fn settle(outcome: AcquirerOutcome) -> (Status, ResultCode, Option<String>) {
        match outcome {
            AcquirerOutcome::Approved { result, reference } => (Status::Approved, result, Some(reference)),
            AcquirerOutcome::Declined { result } => (Status::Declined, result, None),
            AcquirerOutcome::TimedOut => (Status::TimedOut, result_code::ACQUIRER_TIMEOUT, None),
        }
    }

    pub async fn create_payment(
        &self,
        scope: Scope<'_>,
        id: String,
        req: NewPayment,
        ctx: &CallContext,
    ) -> Result<Payment, PaymentError> {
        // Everything that can be refused is refused before the vault is asked.
        if !matches!(req.payment_type, PaymentType::PA | PaymentType::DB) {
            return Err(PaymentError::InvalidArgument("payment_type must be PAYMENT_TYPE_PA or PAYMENT_TYPE_DB"));
        }
        let money = Money::new(req.amount, Currency::parse(&req.currency)?, false)?;
        check_text(&req.customer_id, "customer_id must be at most 255 characters")?;
        check_text(&req.merchant_transaction_id, "merchant_transaction_id must be at most 255 characters")?;
        check_text(&req.description, "description must be at most 255 characters")?;
        if req.create_registration && req.create_omni_token {
            return Err(PaymentError::InvalidArgument("ask for a registration or an omni token, not both"));
        }
        let stored_source = matches!(req.source, Source::Registration(_) | Source::Omni(_));
        if (req.create_registration || req.create_omni_token) && stored_source {
            return Err(PaymentError::InvalidArgument("tokenizing needs a card or a single-use token as the source"));
        }
        let merchant_initiated = req.standing_instruction.as_ref().is_some_and(|si| si.source == SiSource::Mit);
        if let Some(si) = &req.standing_instruction {
            if si.mode == SiMode::Initial && si.source == SiSource::Mit {
                return Err(PaymentError::InvalidArgument("an INITIAL standing instruction is cardholder-initiated"));
            }
            if si.source == SiSource::Mit && !stored_source {
                return Err(PaymentError::InvalidArgument("a merchant-initiated payment needs a stored token"));
            }
        }
        if scope.livemode && !self.live_connector {
            return Err(PaymentError::NoConnector);
        }
        let raw_card = match &req.source {
            Source::Card(input) => Some(Card::validate(input, self.clock.now_ms())?),
            _ => None,
        };
        let token_used = match &req.source {
            Source::Card(_) => None,
            Source::Token(t) | Source::Registration(t) | Source::Omni(t) => Some(t.clone()),
        };
        match &req.source {
            Source::Registration(r) if !is_durable(r, TokenKind::Registration) => {
                return Err(PaymentError::Vault(vault_api::VaultError::NotFound));
            }
            Source::Omni(o) if !is_durable(o, TokenKind::Omni) => {
                return Err(PaymentError::Vault(vault_api::VaultError::NotFound));
            }
            _ => {}
        }
        if merchant_initiated {
            let token = token_used.as_deref().unwrap_or_default();
            if !self.store.has_initial_cit(scope, token).await? {
                return Err(PaymentError::MitWithoutCit);
            }
        }

        // The card, from the request or from the vault (a single-use token is consumed here).
        let card = match (raw_card, &req.source) {
            (Some(card), _) => card,
            (None, Source::Token(t) | Source::Registration(t) | Source::Omni(t)) => {
                self.vault.detokenize(scope, t, &id, ctx).await?
            }
            (None, Source::Card(_)) => return Err(PaymentError::InvalidArgument("card")),
        };
        let masked = MaskedCard::of(&card);
        let operation = if req.payment_type == PaymentType::PA { Operation::Authorize } else { Operation::Debit };
        let outcome = self
            .call_acquirer(AcquirerRequest {
                payment_id: &id,
                operation,
                money,
                card: Some(&card),
                original_reference: None,
                merchant_initiated,
            })
            .await;
        let (status, result, acquirer_reference) = Self::settle(outcome);
        if let Source::Token(t) = &req.source {
            self.report_charge(scope, t, &id, status, ctx);
        }

        // Tokenize once the payment succeeded.
        let mut created: Option<(TokenKind, StoredToken)> = None;
        if status == Status::Approved && (req.create_registration || req.create_omni_token) {
            let kind = if req.create_registration { TokenKind::Registration } else { TokenKind::Omni };
            match self.vault.tokenize(scope, kind, TokenSource::Card(&card), &req.customer_id, &id, ctx).await {
                Ok(token) => created = Some((kind, token)),
                Err(error) => {
                    tracing::error!(%error, payment_id = %id, "payment approved but the card was not tokenized")
                }
            }
        }
        let registration_id =
            created.as_ref().filter(|(k, _)| *k == TokenKind::Registration).map(|(_, t)| t.id.clone());
        let omni_token = match (&created, &req.source) {
            (Some((TokenKind::Omni, t)), _) => Some(t.id.clone()),
            (_, Source::Omni(o)) => Some(o.clone()),
            _ => None,
        };
        let registration_id = registration_id.or(match &req.source {
            Source::Registration(r) => Some(r.clone()),
            _ => None,
        });
        // The token the payment is "on" (for the CIT/MIT rule): the one it created, else the one it used.
        let token = created.as_ref().map(|(_, t)| t.id.clone()).or(token_used.clone());
        let payment = Payment {
            id: id.clone(),
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            payment_type: req.payment_type,
            reference_id: None,
            amount: money.amount,
            currency: money.currency.code().into(),
            status,
            result: result.into(),
            token: token.clone(),
            registration_id,
            omni_token,
            card: Some(masked.clone()),
            standing_instruction: req.standing_instruction,
            captured_amount: if status == Status::Approved && req.payment_type == PaymentType::DB {
                money.amount
            } else {
                0
            },
            refunded_amount: 0,
            reversed: false,
            acquirer_reference,
            customer_id: req.customer_id,
            merchant_transaction_id: req.merchant_transaction_id,
            description: req.description,
            created_at: self.clock.now_ms(),
        };
        let mut ledger = Vec::new();
        if let Source::Omni(o) = &req.source {
            ledger.push(self.entry(scope, "DT", Some(&payment), o, &masked));
        }
        ledger.push(self.entry(
            scope,
            payment.payment_type.as_str(),
            Some(&payment),
            token_used.as_deref().unwrap_or_default(),
            &masked,
        ));
        if let Some((kind, t)) = &created {
            let kind = if *kind == TokenKind::Registration { "RG" } else { "TK" };
            ledger.push(self.entry(scope, kind, Some(&payment), &t.id, &masked));
        }
        self.store.insert(&payment, &ledger).await?;
        Ok(payment)
    }

    /// Tells the vault how the payment over a single-use token ended (its
    /// `charge_status`), off the response path: a failure is only logged.
    fn report_charge(&self, scope: Scope<'_>, token: &str, payment_id: &str, status: Status, ctx: &CallContext) {
        let charge = match status {
            Status::Approved => "successful",
            Status::Declined => "failed",
            Status::TimedOut => "pending",
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

    async fn original(&self, scope: Scope<'_>, id: &str) -> Result<Payment, PaymentError> {
        self.store.get(scope, id).await?.ok_or(PaymentError::NotFound)
    }

    /// Records a follow-up (CP, RV, RF) on `original` and its ledger entry.
    async fn follow_up(
        &self,
        scope: Scope<'_>,
        id: String,
        kind: PaymentType,
        original: &Payment,
        money: Money,
        outcome: AcquirerOutcome,
    ) -> Result<Payment, PaymentError> {
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
        let entry =
            self.entry(scope, kind.as_str(), Some(&payment), original.token.as_deref().unwrap_or_default(), &card);
        self.store.insert(&payment, &[entry]).await?;
        Ok(payment)
    }

    fn acquirer_request<'a>(
        id: &'a str,
        operation: Operation,
        money: Money,
        original: &'a Payment,
    ) -> AcquirerRequest<'a> {
        AcquirerRequest {
            payment_id: id,
            operation,
            money,
            card: None,
            original_reference: original.acquirer_reference.as_deref(),
            merchant_initiated: false,
        }
    }

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
        let outcome = self.call_acquirer(Self::acquirer_request(&id, Operation::Capture, money, &pa)).await;
        if !matches!(outcome, AcquirerOutcome::Approved { .. }) {
            self.store.release(pa_id, amount, 0, false).await?;
        }
        self.follow_up(scope, id, PaymentType::CP, &pa, money, outcome).await
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
        let outcome = self.call_acquirer(Self::acquirer_request(&id, Operation::Reverse, money, &pa)).await;
        if !matches!(outcome, AcquirerOutcome::Approved { .. }) {
            self.store.release(pa_id, 0, 0, true).await?;
        }
        self.follow_up(scope, id, PaymentType::RV, &pa, money, outcome).await
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
        let outcome = self.call_acquirer(Self::acquirer_request(&id, Operation::Refund, money, &target)).await;
        if !matches!(outcome, AcquirerOutcome::Approved { .. }) {
            self.store.release(target_id, 0, amount, false).await?;
        }
        self.follow_up(scope, id, PaymentType::RF, &target, money, outcome).await
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

    pub async fn create_registration(
        &self,
        scope: Scope<'_>,
        id: String,
        source: Source,
        customer_id: &str,
        verify: bool,
        ctx: &CallContext,
    ) -> Result<RegistrationOutcome, PaymentError> {
        check_text(customer_id, "customer_id must be at most 255 characters")?;
        let success: Outcome = result_code::success(scope.livemode).into();
        let token = match (source, verify) {
            (Source::Card(input), false) => {
                let card = Card::validate(&input, self.clock.now_ms())?;
                self.vault
                    .tokenize(scope, TokenKind::Registration, TokenSource::Card(&card), customer_id, &id, ctx)
                    .await?
            }
            (Source::Token(t), false) => {
                self.vault
                    .tokenize(scope, TokenKind::Registration, TokenSource::SingleUse(&t), customer_id, &id, ctx)
                    .await?
            }
            (source, true) => {
                let card = match source {
                    Source::Card(input) => Card::validate(&input, self.clock.now_ms())?,
                    Source::Token(t) => self.vault.detokenize(scope, &t, &id, ctx).await?,
                    _ => return Err(PaymentError::InvalidArgument("a card or a single-use token is required")),
                };
                if scope.livemode && !self.live_connector {
                    return Err(PaymentError::NoConnector);
                }
                let money = Money::new(0, Currency::parse("EUR")?, true)?;
                let outcome = self
                    .call_acquirer(AcquirerRequest {
                        payment_id: &id,
                        operation: Operation::AccountVerification,
                        money,
                        card: Some(&card),
                        original_reference: None,
                        merchant_initiated: false,
                    })
                    .await;
                let (status, result, _) = Self::settle(outcome);
                if status != Status::Approved {
                    return Ok(RegistrationOutcome { token: None, result: result.into() });
                }
                self.vault
                    .tokenize(scope, TokenKind::Registration, TokenSource::Card(&card), customer_id, &id, ctx)
                    .await?
            }
            _ => return Err(PaymentError::InvalidArgument("a card or a single-use token is required")),
        };
        self.store.record(&self.entry(scope, "RG", None, &token.id, &token.card)).await?;
        Ok(RegistrationOutcome { token: Some(token), result: success })
    }

    pub async fn list_registrations(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
        ctx: &CallContext,
    ) -> Result<(Vec<StoredToken>, String), PaymentError> {
        Ok(self.vault.list(scope, TokenKind::Registration, customer_id, page_size, page_token, ctx).await?)
    }

    pub async fn delete_token(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        id: &str,
        ctx: &CallContext,
    ) -> Result<bool, PaymentError> {
        if !is_durable(id, kind) {
            return Err(PaymentError::Vault(vault_api::VaultError::NotFound));
        }
        let deleted = self.vault.delete(scope, id, ctx).await?;
        if deleted {
            let event = if kind == TokenKind::Registration { "DR" } else { "DL" };
            self.store.record(&self.entry(scope, event, None, id, &MaskedCard::default())).await?;
        }
        Ok(deleted)
    }

    pub async fn extend_registration(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        if !is_durable(id, TokenKind::Registration) {
            return Err(PaymentError::Vault(vault_api::VaultError::NotFound));
        }
        Ok(self.vault.extend(scope, id, ctx).await?)
    }

    pub async fn create_omni_token(
        &self,
        scope: Scope<'_>,
        id: String,
        input: CardInput,
        customer_id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        check_text(customer_id, "customer_id must be at most 255 characters")?;
        let card = Card::validate(&input, self.clock.now_ms())?;
        let token =
            self.vault.tokenize(scope, TokenKind::Omni, TokenSource::Card(&card), customer_id, &id, ctx).await?;
        self.store.record(&self.entry(scope, "TK", None, &token.id, &token.card)).await?;
        Ok(token)
    }
}
