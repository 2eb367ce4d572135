//! Cryptography of the vault: where the key-encryption key comes from, the
//! per-merchant data keys derived under it, authenticated encryption of records
//! (AES-256-GCM with AAD binding), and card fingerprints.

pub mod custodian;
pub mod envelope;
pub mod fingerprint;
pub mod kek;
pub mod keyring;

pub use envelope::{Aad, CryptoError};
pub use kek::{FileKeyProvider, KekSet, KeyError, KeyProvider};
pub use keyring::{KeyActor, KeyRing, RingError};
