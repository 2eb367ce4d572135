//! The vault's domain error. `grpc/status.rs` is the one place that turns it
//! into a gRPC status; messages here are fixed texts that never carry input.
use common::card::CardError;

use crate::crypto::CryptoError;
use crate::storage::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    InvalidCard(#[from] CardError),
    /// A required field is missing or malformed; names the field, never its value.
    #[error("invalid request: {0}")]
    InvalidArgument(&'static str),
    #[error("token not found")]
    TokenNotFound,
    #[error("token was already used")]
    UsedToken,
    #[error("token has expired")]
    TokenExpired,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store did not answer before the deadline")]
    DeadlineExceeded,
    #[error("stored data could not be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("stored data is corrupt")]
    Corrupt,
}
