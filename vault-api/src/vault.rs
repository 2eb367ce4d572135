//! The vault port in domain types: what a caller may ask of the vault and the
//! errors it answers with. [`crate::client::GrpcVault`] implements it over
//! gRPC; tests of payment flows may use any other implementation.
use std::future::Future;
use std::time::Instant;

use common::bank::{BankAccount, MaskedAccount};
use common::card::{Billing, Card};
use common::clock::Millis;
use serde::{Deserialize, Serialize};

use crate::Reason;
use crate::token_id::TokenKind;

/// Whose tokens and payments: one merchant in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub merchant_id: &'a str,
    pub livemode: bool,
}

impl<'a> Scope<'a> {
    /// The scope an authenticated key gives.
    pub fn of(caller: &'a common::auth::Caller) -> Self {
        Self { merchant_id: &caller.merchant_id, livemode: caller.livemode }
    }
}

/// What the platform shows of a card outside the vault: brand, BIN, last four,
/// expiry and holder, never more. Serialized under the names of vault.proto's
/// `CardMetadata`: the vault seals it so, inside its card metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedCard {
    pub brand: String,
    pub bin: String,
    #[serde(rename = "last_digits")]
    pub last4: String,
    #[serde(rename = "expiration_month")]
    pub exp_month: u8,
    #[serde(rename = "expiration_year")]
    pub exp_year: u16,
    pub name: String,
}

impl MaskedCard {
    pub fn of(card: &Card) -> Self {
        Self {
            brand: card.number.brand().as_str().into(),
            bin: card.number.bin().into(),
            last4: card.number.last4().into(),
            exp_month: card.expiry.month,
            exp_year: card.expiry.year,
            name: card.name.clone(),
        }
    }
}

/// Omise's `charge_status` of a single-use token: how the payment made with
/// it stands. `Unknown` (never used, or used by no payment) and `Expired`
/// (never used and past its 30 minutes) are what a token shows without a
/// report; the others are reported by the payment that consumed it, and a
/// report never replaces a status later in the payment's life (`stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeStatus {
    Unknown,
    Expired,
    /// Authorized (a PA not yet captured), or waiting for the acquirer's answer.
    Pending,
    /// Charged: an approved DB, or a capture of the PA.
    Successful,
    /// The PA was reversed.
    Reversed,
    /// Declined, or never processed.
    Failed,
}

impl ChargeStatus {
    pub const ALL: [Self; 6] =
        [Self::Unknown, Self::Expired, Self::Pending, Self::Successful, Self::Reversed, Self::Failed];

    /// Omise's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Pending => "pending",
            Self::Successful => "successful",
            Self::Reversed => "reversed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// How late in a payment's life the status comes: 0 for what no payment
    /// reports, 1 for `pending` (authorized or awaiting the acquirer), 2 for
    /// the ends (`successful`, `reversed`, `failed`). A report lands only on a
    /// token at an earlier stage, so one that arrives late (a PA's `pending`
    /// retried by the reconciler after its capture's `successful`) changes
    /// nothing; no payment goes from one end to another.
    pub fn stage(self) -> u8 {
        match self {
            Self::Unknown | Self::Expired => 0,
            Self::Pending => 1,
            Self::Successful | Self::Reversed | Self::Failed => 2,
        }
    }

    /// Whether a payment may report it.
    pub fn reportable(self) -> bool {
        self.stage() > 0
    }
}

impl std::fmt::Display for ChargeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of the payment `consumer_ref` (its id) on single-use `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeReport {
    pub merchant_id: String,
    pub token: String,
    pub consumer_ref: String,
    pub status: ChargeStatus,
}

/// The most reports one `report_charges` call carries.
pub const MAX_CHARGE_REPORTS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("token not found")]
    TokenNotFound,
    #[error("token was already used")]
    UsedToken,
    #[error("token has expired")]
    TokenExpired,
    #[error("not found")]
    NotFound,
    #[error("the token was deleted")]
    TokenDeleted,
    /// The vault refused the card or request; carries the vault's reason.
    #[error("the vault refused the request")]
    Rejected { reason: Reason },
    #[error("the vault is unavailable")]
    Unavailable,
    #[error("the vault failed")]
    Internal,
}

/// Where a durable token's card or account comes from: card data, a
/// single-use token to consume, or a SEPA bank account (registrations only).
/// Callers hand over a validated [`Card`] or [`BankAccount`]; the vault takes
/// them as the wire carried them (`TokenSource<CardInput, BankAccountInput>`)
/// and validates them itself.
pub enum TokenSource<'a, C = Card, A = BankAccount> {
    Card(&'a C),
    SingleUse(&'a str),
    Account(&'a A),
}

/// What a token stands for, in clear: a card or a bank account.
#[derive(Debug, Clone)]
pub enum Instrument {
    Card(Card),
    Account(BankAccount),
}

/// Which kind of [`Instrument`] a caller can use: a Detokenize that names one
/// is refused (`instrument_mismatch`) before the token is used when the
/// token holds the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentKind {
    Card,
    Account,
}

impl InstrumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Account => "account",
        }
    }
}

/// A durable token as callers of the vault see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub customer_id: String,
    /// Empty for a bank account.
    pub card: MaskedCard,
    /// A bank account's metadata (then `card` is empty).
    pub account: Option<MaskedAccount>,
    pub last_used_at: Option<Millis>,
    /// The card's billing address as the vault keeps it: shown on the
    /// registration or omni token, never stored outside the vault.
    pub billing: Billing,
    pub created_at: Millis,
    pub retain_until: Millis,
    pub extended: bool,
    /// A registration that is its customer's default.
    pub is_default: bool,
}

/// What travels with every vault call: the caller's deadline, trace context
/// and correlation id.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub deadline: Option<Instant>,
    pub traceparent: Option<String>,
    pub correlation_id: String,
}

pub trait Vault: Send + Sync + 'static {
    /// The card behind a single-use token (consumed for `consumer_ref`), a
    /// registration or an omni token; or the bank account behind a
    /// registration of one.
    fn detokenize(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        expect: Option<InstrumentKind>,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<Instrument, VaultError>> + Send;

    /// Tells the vault how the payments that consumed single-use tokens stand
    /// (each a reportable [`ChargeStatus`]), in one call; per report, in
    /// order, `true` when the token now shows it, `false` when it is not this
    /// consumer's or already shows a later stage.
    fn report_charges(
        &self,
        reports: &[ChargeReport],
        ctx: &CallContext,
    ) -> impl Future<Output = Result<Vec<bool>, VaultError>> + Send;

    fn tokenize(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        source: TokenSource<'_>,
        customer_id: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;

    /// A customer's durable tokens of `kind`, one page (the vault filters by
    /// kind before paging, so only the last page is short).
    fn list(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<(Vec<StoredToken>, String), VaultError>> + Send;

    /// `true` if this call deleted it.
    fn delete(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<bool, VaultError>> + Send;

    fn extend(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;

    /// A durable token's metadata.
    fn describe(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;

    /// The customer's default registration (`NotFound` without one).
    fn default_registration(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;

    /// Makes registration `id` its customer's default.
    fn set_default(
        &self,
        scope: Scope<'_>,
        id: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::ChargeStatus;

    #[test]
    fn charge_statuses_are_omises_and_ends_outrank_pending() {
        let texts: Vec<_> = ChargeStatus::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts, ["unknown", "expired", "pending", "successful", "reversed", "failed"]);
        for c in ChargeStatus::ALL {
            assert_eq!(ChargeStatus::parse(c.as_str()), Some(c));
        }
        assert_eq!(ChargeStatus::parse("Successful"), None);
        let reportable: Vec<_> = ChargeStatus::ALL.into_iter().filter(|c| c.reportable()).collect();
        assert_eq!(
            reportable,
            [ChargeStatus::Pending, ChargeStatus::Successful, ChargeStatus::Reversed, ChargeStatus::Failed]
        );
        for end in [ChargeStatus::Successful, ChargeStatus::Reversed, ChargeStatus::Failed] {
            assert!(end.stage() > ChargeStatus::Pending.stage());
        }
    }
}
