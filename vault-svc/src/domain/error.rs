//! The vault's domain error. `grpc/status.rs` is the one place that turns it
//! into a gRPC status; messages here are fixed texts that never carry input.
use common::bank::AccountError;
use common::card::CardError;

use super::store::StoreError;
use crate::crypto::{CryptoError, RingError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    InvalidCard(#[from] CardError),
    /// A bank account refused: its IBAN, BIC or holder.
    #[error(transparent)]
    InvalidAccount(#[from] AccountError),
    /// A required field is missing or malformed; names the field, never its value.
    #[error("invalid request: {0}")]
    InvalidArgument(&'static str),
    /// A text field that holds a card number; names the field, never its value.
    #[error("invalid request: {0} holds a card number; card data goes only in card fields")]
    CardNumberInText(&'static str),
    #[error("token not found")]
    TokenNotFound,
    /// A durable token id that this merchant does not have.
    #[error("not found")]
    NotFound,
    #[error("the token was deleted")]
    TokenDeleted,
    #[error("the request conflicted with a concurrent change; retry it")]
    Conflict,
    #[error("token was already used")]
    UsedToken,
    #[error("token has expired")]
    TokenExpired,
    /// The token holds another instrument (a card, a bank account) than the caller can use.
    #[error("the token holds another instrument than the one asked for")]
    InstrumentMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store did not answer before the deadline")]
    DeadlineExceeded,
    #[error("stored data could not be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("stored data is corrupt")]
    Corrupt,
}

impl From<RingError> for VaultError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Crypto(c) => Self::Crypto(c),
            RingError::Store(s) => Self::Store(s),
        }
    }
}
