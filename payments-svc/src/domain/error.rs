//! Payments' domain error. `grpc/status.rs` is the one place that maps it to a
//! gRPC status; messages are fixed texts that never carry input.
use common::bank::AccountError;
use common::card::CardError;
use common::money::MoneyError;
use vault_api::VaultError;

use super::store::StoreError;

/// What a payment flow returns.
pub type PaymentResult<T> = Result<T, PaymentError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    InvalidCard(#[from] CardError),
    #[error(transparent)]
    InvalidMoney(#[from] MoneyError),
    /// A bank account refused: its IBAN, BIC or holder (never echoed).
    #[error(transparent)]
    InvalidAccount(#[from] AccountError),
    /// A SEPA direct debit without a valid mandate; names what is wrong.
    #[error("invalid mandate: {0}")]
    InvalidMandate(&'static str),
    /// A malformed request; names the field, never its value.
    #[error("invalid request: {0}")]
    InvalidArgument(&'static str),
    /// A text field that is too long or holds control characters.
    #[error("invalid request: {0} must be text of at most 255 characters, without control characters")]
    InvalidText(&'static str),
    /// A text field that holds a card number (never echoed).
    #[error("invalid request: {0} holds a card number; card data goes only in card fields")]
    CardNumberInText(&'static str),
    #[error("payment not found")]
    NotFound,
    /// The transition is not allowed from the payment's state; the payment is unchanged.
    #[error("{0}")]
    InvalidStateTransition(&'static str),
    #[error("the amount exceeds what is left to capture or refund")]
    AmountExceeds,
    #[error("a merchant-initiated payment needs a successful initial cardholder-initiated payment on this token")]
    MitWithoutCit,
    #[error("live payments need a configured acquirer connector")]
    NoConnector,
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the request did not finish before the deadline; its work goes on, retry with the same idempotency-key")]
    DeadlineExceeded,
    #[error("the request failed")]
    Internal,
    #[error("this idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyKeyInUse,
}
