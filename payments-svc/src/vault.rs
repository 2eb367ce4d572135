//! Payments' port to the vault, in payments' own types. `grpc` is the adapter
//! over the vault's internal gRPC API (mTLS); tests of payment flows may use
//! any other implementation.
use std::future::Future;
use std::time::Instant;

use common::card::Card;
use common::clock::Millis;

use crate::domain::payment::{MaskedCard, Scope};

pub mod grpc;

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
    Rejected { reason: String },
    #[error("the vault is unavailable")]
    Unavailable,
    #[error("the vault failed")]
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Registration,
    Omni,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Omni => "omni",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registration" => Some(Self::Registration),
            "omni" => Some(Self::Omni),
            _ => None,
        }
    }
}

pub enum TokenSource<'a> {
    Card(&'a Card),
    SingleUse(&'a str),
}

/// A durable token as payments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub customer_id: String,
    pub card: MaskedCard,
    pub created_at: Millis,
    pub retain_until: Millis,
    pub extended: bool,
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
    /// registration or an omni token.
    fn detokenize(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<Card, VaultError>> + Send;

    /// Tells the vault how the payment that consumed a single-use token ended
    /// (`successful`, `failed`, `pending`).
    fn report_charge(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        status: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<bool, VaultError>> + Send;

    fn tokenize(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        source: TokenSource<'_>,
        customer_id: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> impl Future<Output = Result<StoredToken, VaultError>> + Send;

    /// A customer's durable tokens of `kind`, one page.
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
}
