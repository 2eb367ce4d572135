//! The contract between payvault's services and the vault, in the manner of
//! quickwit-proto: the [`Vault`] port in domain types, its tonic adapter
//! ([`client::GrpcVault`]: mTLS, the remaining deadline, trace context, retry as
//! tower layers), the [`Reason`] of every `ErrorInfo`, the token-id shapes the
//! vault issues and classifies ([`token_id`]), and the one conversion of cards
//! and token kinds to and from the wire ([`convert`]). payments-svc sees the
//! vault only through this crate; vault-svc takes its id shapes, card
//! conversion and the types both sides share ([`Scope`], [`TokenSource`],
//! [`MaskedCard`]) from it, so the two cannot drift apart.

pub mod client;
pub mod convert;
pub mod token_id;
mod vault;

pub use client::{Balancing, GrpcVault, VaultEndpoint};
pub use common::bank::MaskedAccount;
pub use common::reason::Reason;
pub use token_id::{TokenKind, TokenRef};
pub use vault::{
    CallContext, ChargeReport, ChargeStatus, Instrument, InstrumentKind, MAX_CHARGE_REPORTS, MaskedCard, Scope,
    StoredToken, TokenSource, Vault, VaultError,
};
