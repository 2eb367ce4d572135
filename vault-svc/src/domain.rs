//! The vault's rules, free of transport and storage types: how single-use
//! tokens are created, read and consumed, how durable card tokens are stored,
//! used, retained and deleted, and how keys are rotated. Token-id shapes come
//! from `vault_api::token_id`, which payments-svc classifies ids with too.

pub mod account_meta;
pub mod audit;
pub mod card_meta;
pub mod card_token;
pub mod error;
pub mod key_rotation;
pub mod retention;
pub mod single_use;
pub mod store;

pub use error::VaultError;
