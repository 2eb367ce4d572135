//! The vault's rules, free of transport and storage types: what a token id
//! looks like, how single-use tokens are created, read and consumed.

pub mod card_meta;
pub mod error;
pub mod single_use;
pub mod token_id;

pub use error::VaultError;
