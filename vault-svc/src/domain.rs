//! The vault's rules, free of transport and storage types: what a token id
//! looks like, how single-use tokens are created, read and consumed, how
//! durable card tokens are stored, used, retained and deleted, and how keys
//! are rotated.

pub mod audit;
pub mod card_meta;
pub mod card_token;
pub mod error;
pub mod key_rotation;
pub mod retention;
pub mod single_use;
pub mod store;
pub mod token_id;

pub use error::VaultError;
