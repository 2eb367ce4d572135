//! Merchant authentication: API keys (`pkey_…`/`skey_…`, `_test_` for test
//! mode), the merchant directory file that holds only their SHA-256 hashes, its
//! reload on change, and the CLI's merchant creation.
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids;
use crate::reason::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// May only create and read single-use tokens.
    Public,
    /// May do everything else.
    Secret,
}

/// The authenticated merchant behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub merchant_id: String,
    pub livemode: bool,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or unknown API key")]
    Unauthenticated,
    #[error("this API key may not call this method")]
    PermissionDenied,
}

impl AuthError {
    pub fn reason(self) -> Reason {
        match self {
            Self::Unauthenticated => Reason::AuthenticationFailure,
            Self::PermissionDenied => Reason::PermissionDenied,
        }
    }
}

/// The one mapping of authentication failures to gRPC, shared by both services.
impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Unauthenticated => tonic::Code::Unauthenticated,
            AuthError::PermissionDenied => tonic::Code::PermissionDenied,
        };
        crate::grpc::error_status(code, e.reason(), e.to_string())
    }
}

/// An API key in clear: exists only when created (printed once) and while a
/// request is authenticated. Never printed by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ApiKey(String);

impl ApiKey {
    fn generate(kind: KeyKind, livemode: bool) -> Self {
        let head = match kind {
            KeyKind::Public => "pkey_",
            KeyKind::Secret => "skey_",
        };
        let mode = if livemode { "" } else { "test_" };
        Self(format!("{head}{mode}{}", ids::base36(32)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Keys are 32 random base36 characters (≈165 bits), so a plain SHA-256 is a
/// sound verifier (as for GitHub tokens); no slow password hash is needed.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub hash: String,
    pub kind: KeyKind,
    pub livemode: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantRecord {
    pub id: String,
    pub name: String,
    pub keys: Vec<KeyRecord>,
}

/// The on-disk directory: merchants and the hashes of their keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryFile {
    pub merchants: Vec<MerchantRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("merchant directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("merchant directory {path} is not valid: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

impl DirectoryFile {
    pub fn read(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Io { path: path.into(), source })?;
        serde_json::from_str(&text).map_err(|source| DirectoryError::Parse { path: path.into(), source })
    }

    /// Writes atomically (temporary file, then rename) so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), DirectoryError> {
        let io = |source| DirectoryError::Io { path: path.into(), source };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// The four keys of a new merchant, shown once.
#[derive(Debug)]
pub struct NewMerchant {
    pub id: String,
    pub test_public: ApiKey,
    pub test_secret: ApiKey,
    pub live_public: ApiKey,
    pub live_secret: ApiKey,
}

/// Adds a merchant with fresh test and live keys to the directory file (created
/// if missing) and returns the keys in clear; only their hashes are stored.
pub fn create_merchant(path: &Path, name: &str) -> Result<NewMerchant, DirectoryError> {
    let mut file = if path.exists() { DirectoryFile::read(path)? } else { DirectoryFile::default() };
    let new = NewMerchant {
        id: format!("mrch_{}", ids::base36(20)),
        test_public: ApiKey::generate(KeyKind::Public, false),
        test_secret: ApiKey::generate(KeyKind::Secret, false),
        live_public: ApiKey::generate(KeyKind::Public, true),
        live_secret: ApiKey::generate(KeyKind::Secret, true),
    };
    let record = |key: &ApiKey, kind, livemode| KeyRecord { hash: key_hash(key.expose()), kind, livemode };
    file.merchants.push(MerchantRecord {
        id: new.id.clone(),
        name: name.to_owned(),
        keys: vec![
            record(&new.test_public, KeyKind::Public, false),
            record(&new.test_secret, KeyKind::Secret, false),
            record(&new.live_public, KeyKind::Public, true),
            record(&new.live_secret, KeyKind::Secret, true),
        ],
    });
    file.write(path)?;
    Ok(new)
}

/// An in-memory index of the directory: key hash → caller.
#[derive(Debug, Default)]
pub struct Directory {
    by_hash: HashMap<String, Caller>,
}

impl From<&DirectoryFile> for Directory {
    fn from(file: &DirectoryFile) -> Self {
        let by_hash = file
            .merchants
            .iter()
            .flat_map(|m| {
                m.keys.iter().map(|k| {
                    let caller = Caller { merchant_id: m.id.clone(), livemode: k.livemode, kind: k.kind };
                    (k.hash.clone(), caller)
                })
            })
            .collect();
        Self { by_hash }
    }
}

impl Directory {
    /// Authenticates `authorization: Bearer <key>`; `allowed` lists the key kinds
    /// the method accepts.
    pub fn authenticate(&self, metadata: &MetadataMap, allowed: &[KeyKind]) -> Result<Caller, AuthError> {
        let key = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(AuthError::Unauthenticated)?;
        let caller = self.by_hash.get(&key_hash(key.trim())).ok_or(AuthError::Unauthenticated)?;
        if !allowed.contains(&caller.kind) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(caller.clone())
    }
}

/// The live directory, swapped atomically when the file changes.
#[derive(Clone)]
pub struct DirectoryHandle {
    current: Arc<ArcSwap<Directory>>,
    path: Option<PathBuf>,
}

impl DirectoryHandle {
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let file = DirectoryFile::read(path)?;
        Ok(Self { current: Arc::new(ArcSwap::from_pointee(Directory::from(&file))), path: Some(path.into()) })
    }

    pub fn fixed(file: &DirectoryFile) -> Self {
        Self { current: Arc::new(ArcSwap::from_pointee(Directory::from(file))), path: None }
    }

    pub fn authenticate(&self, metadata: &MetadataMap, allowed: &[KeyKind]) -> Result<Caller, AuthError> {
        let caller = self.current.load().authenticate(metadata, allowed)?;
        crate::telemetry::spans::note_merchant(&caller.merchant_id);
        Ok(caller)
    }

    /// Re-reads the file whenever its modification time changes (a Kubernetes
    /// Secret update swaps the mounted file). A file that fails to parse is
    /// logged and ignored: the last good directory stays in force.
    pub fn spawn_reloader(&self, every: Duration) {
        let Some(path) = self.path.clone() else { return };
        let current = self.current.clone();
        tokio::spawn(async move {
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut seen: Option<SystemTime> = modified(&path);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match DirectoryFile::read(&path) {
                    Ok(file) => {
                        current.store(Arc::new(Directory::from(&file)));
                        tracing::info!(merchants = file.merchants.len(), "merchant directory reloaded");
                    }
                    Err(error) => tracing::warn!(%error, "merchant directory not reloaded"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(key: &str) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {key}").parse().unwrap());
        md
    }

    #[test]
    fn created_keys_authenticate_and_only_hashes_are_stored() {
        let dir = std::env::temp_dir().join(format!("payvault-auth-{}", ids::hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("merchants.json");
        let m = create_merchant(&path, "Shop").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for key in [&m.test_public, &m.test_secret, &m.live_public, &m.live_secret] {
            assert!(!text.contains(key.expose()));
        }
        assert!(m.test_public.expose().starts_with("pkey_test_"));
        assert!(m.live_secret.expose().starts_with("skey_") && !m.live_secret.expose().contains("test"));

        let directory = DirectoryHandle::load(&path).unwrap();
        let caller = directory.authenticate(&bearer(m.test_public.expose()), &[KeyKind::Public]).unwrap();
        assert_eq!(caller, Caller { merchant_id: m.id.clone(), livemode: false, kind: KeyKind::Public });
        assert_eq!(
            directory.authenticate(&bearer(m.test_public.expose()), &[KeyKind::Secret]),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            directory.authenticate(&bearer("pkey_test_nope"), &[KeyKind::Public]),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(directory.authenticate(&MetadataMap::new(), &[KeyKind::Public]), Err(AuthError::Unauthenticated));
        assert!(!format!("{m:?}").contains(m.test_secret.expose()));
    }

    #[tokio::test]
    async fn the_directory_reloads_when_its_file_changes() {
        let dir = std::env::temp_dir().join(format!("payvault-reload-{}", ids::hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("merchants.json");
        create_merchant(&path, "First").unwrap();
        let directory = DirectoryHandle::load(&path).unwrap();
        directory.spawn_reloader(Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(30)).await;

        let second = create_merchant(&path, "Second").unwrap();
        let md = bearer(second.test_secret.expose());
        let mut reloaded = false;
        for _ in 0..100 {
            if directory.authenticate(&md, &[KeyKind::Secret]).is_ok() {
                reloaded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reloaded, "a merchant added to the file can authenticate without a restart");

        std::fs::write(&path, "{ not json").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(directory.authenticate(&md, &[KeyKind::Secret]).is_ok(), "a broken file keeps the last good directory");
    }
}
