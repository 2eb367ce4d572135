//! Versioned 256-bit secret keys, as both services keep them: the vault's
//! key-encryption key and payments-svc's reference key. The text form is one
//! `v<version>:<base64 of 32 bytes>` line per version (blank lines and `#`
//! comments skipped); the highest version is current, older ones stay for what
//! was written under them. Keys are zeroized on drop and never printed.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, Zeroizing};

/// A 256-bit key; zeroized on drop, never printed.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

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
    #[error("no key configured")]
    Missing,
    #[error("{0}")]
    Custodian(String),
}

/// Every version of a key, and which one is current.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: BTreeMap<u32, Key>,
}

impl KeySet {
    pub fn new(keys: BTreeMap<u32, Key>) -> Result<Self, KeyError> {
        if keys.is_empty() { Err(KeyError::Missing) } else { Ok(Self { keys }) }
    }

    /// One random key, version 1.
    pub fn random() -> Self {
        Self { keys: BTreeMap::from([(1, Key::random())]) }
    }

    pub fn current(&self) -> (u32, &Key) {
        let (v, k) = self.keys.iter().next_back().unwrap_or_else(|| unreachable!("a KeySet is never empty"));
        (*v, k)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = (u32, &Key)> {
        self.keys.iter().map(|(v, k)| (*v, k))
    }

    /// A copy with a new random version `current + 1`, for rotation.
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

    /// Reads the set from environment variable `env` if it is set (lines
    /// separated by newlines or `;`), else from the file at `path` (mounted
    /// from a Kubernetes Secret).
    pub fn load(env: &str, path: &Path) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var(env) {
            return Self::parse(&Zeroizing::new(text.replace(';', "\n")));
        }
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        Self::parse(&Zeroizing::new(std::fs::read_to_string(path).map_err(io)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips_and_highest_version_is_current() {
        let set = KeySet::new(BTreeMap::from([(1, Key::random()), (3, Key::random())])).unwrap();
        let parsed = KeySet::parse(&set.to_text()).unwrap();
        assert_eq!(parsed.current().0, 3);
        assert_eq!(parsed.get(1).unwrap().expose(), set.get(1).unwrap().expose());
        assert!(!format!("{parsed:?}").contains(&STANDARD.encode(set.get(1).unwrap().expose())));
    }

    #[test]
    fn malformed_key_lines_are_refused_by_line_number() {
        assert!(matches!(KeySet::parse("v1:AAAA"), Err(KeyError::Malformed { line: 1 })));
        assert!(matches!(KeySet::parse("# c\nx1:abc"), Err(KeyError::Malformed { line: 2 })));
        assert!(matches!(KeySet::parse(""), Err(KeyError::Missing)));
    }
}
