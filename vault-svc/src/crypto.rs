//! Cryptography of the vault: where the key-encryption key comes from (a file,
//! the environment, or custodian shares), the per-merchant data keys wrapped
//! under it, authenticated encryption of records (AES-256-GCM with AAD
//! binding), and card fingerprints.

pub mod custodian;
pub mod envelope;
pub mod fingerprint;
pub mod kek;
pub mod keyring;

pub use envelope::{Aad, CryptoError};
pub use kek::{FileKeyProvider, KekSet, KeyError, KeyProvider};
pub use keyring::{KeyRing, RingError};
