//! Card tokens through payments: registrations (OPP) and omni tokens (Till),
//! each with optional zero-amount account verification (a PA of 0 through the
//! payment flow), a customer's list for one-click and default registration,
//! deletion and extension. Like a payment, each call refuses what it can
//! before anything is consumed: the source, the text fields and the live
//! connector are checked before the vault is asked for a card. A registration
//! may hold a SEPA bank account instead (no verification applies: the first
//! direct debit under its mandate is its test); its ledger lines show it as
//! DIRECTDEBIT_SEPA with its last four.
use common::bank::BankAccount;
use common::card::Card;
use common::result_code;

use super::validate::{NewPayment, Source, check_text, stored_token};
use super::{Payments, ledger_kind_created, ledger_kind_deleted};
use crate::acquirer::Acquirer;
use crate::domain::error::PaymentError;
use crate::domain::payment::{MaskedCard, Outcome, PaymentType, Scope, Status, account_line};
use crate::domain::store::PaymentStore;
use vault_api::{CallContext, StoredToken, TokenKind, TokenSource, Vault, VaultError};

/// The currency of a verification, which moves no money (OPP's examples use EUR).
const VERIFICATION_CURRENCY: &str = "EUR";

/// A registration or omni token attempt: the token when stored, and the
/// verification's result (success when there was none).
pub struct TokenOutcome {
    pub token: Option<StoredToken>,
    pub result: Outcome,
}

/// A registration's source after validation.
enum Registrable {
    Card(Box<Card>),
    SingleUse(String),
    Account(Box<BankAccount>),
}

/// What a ledger line shows of a stored token: its card, or its account.
fn shown(token: &StoredToken) -> MaskedCard {
    token.account.as_ref().map_or_else(|| token.card.clone(), account_line)
}

impl<P: PaymentStore, V: Vault, A: Acquirer> Payments<P, V, A> {
    pub async fn create_registration(
        &self,
        scope: Scope<'_>,
        id: String,
        source: Source,
        customer_id: &str,
        verify: bool,
        ctx: &CallContext,
    ) -> Result<TokenOutcome, PaymentError> {
        if !matches!(source, Source::Card(_) | Source::Token(_) | Source::Account(_)) {
            return Err(PaymentError::InvalidArgument("a card, a single-use token or a bank_account is required"));
        }
        if verify && matches!(source, Source::Account(_)) {
            return Err(PaymentError::InvalidArgument("verify applies to cards; a bank account is not verified"));
        }
        if verify {
            return self.verify_and_store(scope, id, TokenKind::Registration, source, customer_id, ctx).await;
        }
        check_text(customer_id, "customer_id")?;
        let source = match source {
            Source::Card(input) => Registrable::Card(Box::new(Card::validate(&input, self.clock.now_ms())?)),
            Source::Token(t) => Registrable::SingleUse(t),
            Source::Account(input) => Registrable::Account(Box::new(BankAccount::validate(&input)?)),
            _ => return Err(PaymentError::InvalidArgument("a card or a single-use token is required")),
        };
        let source = match &source {
            Registrable::Card(card) => TokenSource::Card(&**card),
            Registrable::SingleUse(t) => TokenSource::SingleUse(t),
            Registrable::Account(account) => TokenSource::Account(&**account),
        };
        let token = self.vault.tokenize(scope, TokenKind::Registration, source, customer_id, &id, ctx).await?;
        self.store
            .record(&self.entry(scope, ledger_kind_created(TokenKind::Registration), None, &token.id, &shown(&token)))
            .await?;
        Ok(TokenOutcome { token: Some(token), result: result_code::success(scope.livemode).into() })
    }

    /// OPP's account verification: a zero-amount PA (a payment like any
    /// other, in the ledger, resumable) that stores the card as `kind` only if
    /// it is approved.
    async fn verify_and_store(
        &self,
        scope: Scope<'_>,
        id: String,
        kind: TokenKind,
        source: Source,
        customer_id: &str,
        ctx: &CallContext,
    ) -> Result<TokenOutcome, PaymentError> {
        let verification = NewPayment {
            payment_type: PaymentType::PA,
            amount: 0,
            currency: VERIFICATION_CURRENCY.into(),
            source,
            create_registration: kind == TokenKind::Registration,
            create_omni_token: kind == TokenKind::Omni,
            customer_id: customer_id.into(),
            merchant_transaction_id: String::new(),
            description: String::new(),
            standing_instruction: None,
            mandate: None,
        };
        let payment = self.create_payment(scope, id, verification, ctx).await?;
        let stored = match kind {
            TokenKind::Registration => payment.registration_id.as_deref(),
            TokenKind::Omni => payment.omni_token.as_deref(),
        };
        let token = match stored {
            Some(token) if payment.status == Status::Approved => Some(self.vault.describe(scope, token, ctx).await?),
            // Approved, but the vault did not store the card (logged by the flow).
            None if payment.status == Status::Approved => return Err(VaultError::Internal.into()),
            _ => None,
        };
        Ok(TokenOutcome { token, result: payment.result })
    }

    /// A customer's registrations or omni tokens, one page.
    pub async fn list_tokens(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
        ctx: &CallContext,
    ) -> Result<(Vec<StoredToken>, String), PaymentError> {
        Ok(self.vault.list(scope, kind, customer_id, page_size, page_token, ctx).await?)
    }

    /// A registration's or omni token's metadata, billing address included.
    pub async fn describe_token(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        Ok(self.vault.describe(scope, id, ctx).await?)
    }

    /// Makes registration `id` its customer's default.
    pub async fn set_default_registration(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        stored_token(TokenKind::Registration, id)?;
        Ok(self.vault.set_default(scope, id, ctx).await?)
    }

    pub async fn delete_token(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        id: &str,
        ctx: &CallContext,
    ) -> Result<bool, PaymentError> {
        stored_token(kind, id)?;
        let deleted = self.vault.delete(scope, id, ctx).await?;
        if deleted {
            self.store.record(&self.entry(scope, ledger_kind_deleted(kind), None, id, &MaskedCard::default())).await?;
        }
        Ok(deleted)
    }

    /// Raises a registration's or omni token's retention to 24 months after expiry.
    pub async fn extend_token(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        stored_token(kind, id)?;
        Ok(self.vault.extend(scope, id, ctx).await?)
    }

    pub async fn create_omni_token(
        &self,
        scope: Scope<'_>,
        id: String,
        input: common::card::CardInput,
        customer_id: &str,
        verify: bool,
        ctx: &CallContext,
    ) -> Result<TokenOutcome, PaymentError> {
        if verify {
            let source = Source::Card(Box::new(input));
            return self.verify_and_store(scope, id, TokenKind::Omni, source, customer_id, ctx).await;
        }
        check_text(customer_id, "customer_id")?;
        let card = Card::validate(&input, self.clock.now_ms())?;
        let token =
            self.vault.tokenize(scope, TokenKind::Omni, TokenSource::Card(&card), customer_id, &id, ctx).await?;
        self.store
            .record(&self.entry(scope, ledger_kind_created(TokenKind::Omni), None, &token.id, &token.card))
            .await?;
        Ok(TokenOutcome { token: Some(token), result: result_code::success(scope.livemode).into() })
    }
}
