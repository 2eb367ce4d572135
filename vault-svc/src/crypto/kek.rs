//! The key-encryption key (KEK): versioned 256-bit keys loaded through a
//! `KeyProvider`. The file/env provider reads lines `v<version>:<base64 key>`;
//! the highest version is current, older ones stay for reading old records.
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, Zeroizing};

/// A 256-bit key; zeroized on drop, never printed.
#[derive(Clone)]
pub struct Key(pub(crate) Zeroizing<[u8; 32]>);

impl Key {
    pub fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rng(), bytes.as_mut_slice());
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key material line {line} is malformed (expected `v<version>:<base64 of 32 bytes>`)")]
    Malformed { line: usize },
    #[error("no key-encryption key configured")]
    Missing,
    #[error("{0}")]
    Custodian(String),
}

/// Every KEK version the vault knows, and which one encrypts new data.
#[derive(Debug, Clone)]
pub struct KekSet {
    keys: BTreeMap<u32, Key>,
}

impl KekSet {
    pub fn new(keys: BTreeMap<u32, Key>) -> Result<Self, KeyError> {
        if keys.is_empty() { Err(KeyError::Missing) } else { Ok(Self { keys }) }
    }

    pub fn current(&self) -> (u32, &Key) {
        let (v, k) = self.keys.iter().next_back().unwrap_or_else(|| unreachable!("KekSet is never empty"));
        (*v, k)
    }

    pub fn versions(&self) -> impl Iterator<Item = (u32, &Key)> {
        self.keys.iter().map(|(v, k)| (*v, k))
    }

    /// A copy with a new random version `current + 1`, for KEK rotation.
    pub fn with_new_version(&self) -> Self {
        let mut keys = self.keys.clone();
        keys.insert(self.current().0 + 1, Key::random());
        Self { keys }
    }

    pub fn get(&self, version: u32) -> Option<&Key> {
        self.keys.get(&version)
    }

    /// Parses `v1:<base64>` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = || KeyError::Malformed { line: i + 1 };
            let (version, b64) = line.strip_prefix('v').and_then(|l| l.split_once(':')).ok_or_else(malformed)?;
            let version: u32 = version.parse().map_err(|_| malformed())?;
            let mut raw = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| malformed())?);
            let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| malformed())?;
            raw.zeroize();
            keys.insert(version, Key(Zeroizing::new(bytes)));
        }
        Self::new(keys)
    }

    /// The text form `parse` reads.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(self.keys.iter().map(|(v, k)| format!("v{v}:{}\n", STANDARD.encode(k.expose()))).collect())
    }
}

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
        if let Ok(text) = std::env::var(KEK_ENV) {
            let text = Zeroizing::new(text.replace(';', "\n"));
            return KekSet::parse(&text);
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(&self.path).map_err(|source| KeyError::Io { path: self.path.clone(), source })?,
        );
        KekSet::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_text_round_trips_and_highest_version_is_current() {
        let mut keys = BTreeMap::new();
        keys.insert(1, Key::random());
        keys.insert(3, Key::random());
        let set = KekSet::new(keys).unwrap();
        let parsed = KekSet::parse(&set.to_text()).unwrap();
        assert_eq!(parsed.current().0, 3);
        assert_eq!(parsed.get(1).unwrap().expose(), set.get(1).unwrap().expose());
        assert!(!format!("{parsed:?}").contains(&STANDARD.encode(set.get(1).unwrap().expose())));
    }

    #[test]
    fn malformed_kek_lines_are_refused_by_line_number() {
        assert!(matches!(KekSet::parse("v1:AAAA"), Err(KeyError::Malformed { line: 1 })));
        assert!(matches!(KekSet::parse("# c\nx1:abc"), Err(KeyError::Malformed { line: 2 })));
        assert!(matches!(KekSet::parse(""), Err(KeyError::Missing)));
    }
}
