//! Card tokens through payments: registrations (OPP) with optional zero-amount
//! account verification, omni tokens (Till), a customer's list for one-click,
//! deletion and extension. Like a payment, each call refuses what it can
//! before anything is consumed: the source, the text fields and the live
//! connector are checked before the vault is asked for a card.
use common::card::Card;
use common::money::{Currency, Money};
use common::result_code;

use super::validate::{Source, check_text, stored_token};
use super::{Payments, ledger_kind_created, ledger_kind_deleted};
use crate::acquirer::{Acquirer, AcquirerRequest, Operation};
use crate::domain::error::PaymentError;
use crate::domain::payment::{MaskedCard, Outcome, Scope, Status};
use crate::domain::store::PaymentStore;
use vault_api::{CallContext, StoredToken, TokenKind, TokenSource, Vault};

/// A registration attempt: the token when stored, and the verification's result.
pub struct RegistrationOutcome {
    pub token: Option<StoredToken>,
    pub result: Outcome,
}

/// A registration's source after validation.
enum Registrable {
    Card(Box<Card>),
    SingleUse(String),
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
    ) -> Result<RegistrationOutcome, PaymentError> {
        check_text(customer_id, "customer_id")?;
        let source = match source {
            Source::Card(input) => Registrable::Card(Box::new(Card::validate(&input, self.clock.now_ms())?)),
            Source::Token(t) => Registrable::SingleUse(t),
            Source::Registration(_) | Source::Omni(_) => {
                return Err(PaymentError::InvalidArgument("a card or a single-use token is required"));
            }
        };
        if verify {
            self.check_connector(scope)?;
        }
        let token = match (source, verify) {
            (Registrable::Card(card), false) => {
                self.register(scope, TokenSource::Card(&card), customer_id, &id, ctx).await?
            }
            (Registrable::SingleUse(t), false) => {
                self.register(scope, TokenSource::SingleUse(&t), customer_id, &id, ctx).await?
            }
            (source, true) => {
                let card = match source {
                    Registrable::Card(card) => *card,
                    Registrable::SingleUse(t) => self.vault.detokenize(scope, &t, &id, ctx).await?,
                };
                let result = self.verify_account(&id, &card).await?;
                if let Some(declined) = result {
                    return Ok(RegistrationOutcome { token: None, result: declined });
                }
                self.register(scope, TokenSource::Card(&card), customer_id, &id, ctx).await?
            }
        };
        self.store
            .record(&self.entry(scope, ledger_kind_created(TokenKind::Registration), None, &token.id, &token.card))
            .await?;
        Ok(RegistrationOutcome { token: Some(token), result: result_code::success(scope.livemode).into() })
    }

    async fn register(
        &self,
        scope: Scope<'_>,
        source: TokenSource<'_>,
        customer_id: &str,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        Ok(self.vault.tokenize(scope, TokenKind::Registration, source, customer_id, id, ctx).await?)
    }

    /// A zero-amount account verification; `Some(result)` when it was not approved.
    async fn verify_account(&self, id: &str, card: &Card) -> Result<Option<Outcome>, PaymentError> {
        let money = Money::new(0, Currency::parse("EUR")?, true)?;
        let outcome = self
            .call_acquirer(AcquirerRequest {
                payment_id: id,
                operation: Operation::AccountVerification,
                money,
                card: Some(card),
                original_reference: None,
                merchant_initiated: false,
            })
            .await;
        let (status, result, _) = Self::settle(outcome);
        Ok((status != Status::Approved).then(|| result.into()))
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
        stored_token(kind, id)?;
        let deleted = self.vault.delete(scope, id, ctx).await?;
        if deleted {
            self.store.record(&self.entry(scope, ledger_kind_deleted(kind), None, id, &MaskedCard::default())).await?;
        }
        Ok(deleted)
    }

    pub async fn extend_registration(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        stored_token(TokenKind::Registration, id)?;
        Ok(self.vault.extend(scope, id, ctx).await?)
    }

    pub async fn create_omni_token(
        &self,
        scope: Scope<'_>,
        id: String,
        input: common::card::CardInput,
        customer_id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, PaymentError> {
        check_text(customer_id, "customer_id")?;
        let card = Card::validate(&input, self.clock.now_ms())?;
        let token =
            self.vault.tokenize(scope, TokenKind::Omni, TokenSource::Card(&card), customer_id, &id, ctx).await?;
        self.store
            .record(&self.entry(scope, ledger_kind_created(TokenKind::Omni), None, &token.id, &token.card))
            .await?;
        Ok(token)
    }
}
