//! The key-encryption key (KEK): versioned 256-bit keys (`common::keys`)
//! loaded through a `KeyProvider`. The file/env provider reads lines
//! `v<version>:<base64 key>`; the highest version is current, older ones stay
//! for reading old records.
use std::path::PathBuf;

pub use common::keys::{Key, KeyError, KeySet as KekSet};

/// Where the KEK comes from. Implementations: `FileKeyProvider` (file or
/// environment variable) and `custodian::CustodianKeyProvider` (split knowledge).
pub trait KeyProvider: Send + Sync {
    fn load(&self) -> Result<KekSet, KeyError>;
}

/// Reads the KEK set from the environment variable `PAYVAULT_KEK` if set (lines
/// separated by newlines or `;`), else from a file (mounted from a Kubernetes Secret).
#[derive(Debug, Clone)]
pub struct FileKeyProvider {
    pub path: PathBuf,
}

pub const KEK_ENV: &str = "PAYVAULT_KEK";

impl KeyProvider for FileKeyProvider {
    fn load(&self) -> Result<KekSet, KeyError> {
        KekSet::load(KEK_ENV, &self.path)
    }
}
