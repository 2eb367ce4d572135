//! Envelope encryption. Each merchant has random data keys (versioned, for
//! records) and one fingerprint key, stored in the vault database wrapped by
//! the KEK (versioned) with AAD binding merchant, purpose and version. The ring
//! creates a merchant's keys on first use, caches the unwrapped ciphers (so the
//! hot path makes no extra round trip) and re-reads them every minute, or at
//! once when a record names a version it has not seen (another replica rotated).
//! Rotation: `rewrap_all` moves every data key under the current KEK;
//! `add_data_key` starts a new data-key version for re-encryption.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use common::clock::{Millis, SharedClock};

use super::envelope::{self, Aad, CryptoError};
use super::fingerprint::fingerprint;
use super::kek::{KekSet, Key};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::store::StoreError;
use crate::domain::store::cards::{KeyPurpose, KeyStore, WrappedKey};

const REFRESH_MS: Millis = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct MerchantKeys {
    data: BTreeMap<u32, Aes256Gcm>,
    fingerprint: Zeroizing<[u8; 32]>,
    loaded_at: Millis,
}

pub struct KeyRing {
    keks: KekSet,
    kek_ciphers: BTreeMap<u32, Aes256Gcm>,
    store: Arc<dyn KeyStore>,
    clock: SharedClock,
    cache: RwLock<HashMap<String, Arc<MerchantKeys>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kek_version", &self.keks.current().0).finish_non_exhaustive()
    }
}

fn wrap_aad<'a>(merchant_id: &'a str, key_id: &'a str) -> Aad<'a> {
    Aad { merchant_id, token_id: key_id, kind: "data_key" }
}

fn key_id(purpose: KeyPurpose, version: u32) -> String {
    format!("{}:{version}", purpose.as_str())
}

impl KeyRing {
    pub fn new(keks: KekSet, store: Arc<dyn KeyStore>, clock: SharedClock) -> Self {
        let kek_ciphers = keks.versions().map(|(v, k)| (v, envelope::cipher(k.expose()))).collect();
        Self { keks, kek_ciphers, store, clock, cache: RwLock::new(HashMap::new()) }
    }

    fn cached(&self, merchant_id: &str) -> Option<Arc<MerchantKeys>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).get(merchant_id).cloned()
    }

    fn unwrap_key(&self, k: &WrappedKey) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let cipher = self.kek_ciphers.get(&k.kek_version).ok_or(CryptoError::UnknownKeyVersion(k.kek_version))?;
        let id = key_id(k.purpose, k.version);
        let plain = envelope::open(cipher, wrap_aad(&k.merchant_id, &id), &k.wrapped)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Zeroizing::new(bytes))
    }

    fn wrap_key(&self, merchant_id: &str, purpose: KeyPurpose, version: u32, key: &Key) -> WrappedKey {
        let (kek_version, _) = self.keks.current();
        let cipher = &self.kek_ciphers[&kek_version];
        let id = key_id(purpose, version);
        WrappedKey {
            merchant_id: merchant_id.into(),
            purpose,
            version,
            kek_version,
            wrapped: envelope::seal(cipher, kek_version, wrap_aad(merchant_id, &id), key.expose()),
            created_at: self.clock.now_ms(),
            rotation_id: None,
        }
    }

    fn audit(&self, event_type: &'static str, merchant_id: &str, key_id: &str, who: &Actor) -> AuditEntry {
        AuditEntry::new(self.clock.now_ms(), event_type, merchant_id, key_id, who, "success")
    }

    /// Creates `purpose` key `version` for the merchant unless it exists.
    async fn create(
        &self,
        merchant_id: &str,
        purpose: KeyPurpose,
        version: u32,
        rotation_id: Option<i64>,
        who: &Actor,
    ) -> Result<(), RingError> {
        let wrapped = WrappedKey { rotation_id, ..self.wrap_key(merchant_id, purpose, version, &Key::random()) };
        let audit = self.audit("KC", merchant_id, &key_id(purpose, version), who);
        self.store.insert_data_key(&wrapped, &audit).await?;
        Ok(())
    }

    /// Loads (creating on first use) the merchant's keys into the cache.
    async fn load(&self, merchant_id: &str) -> Result<Arc<MerchantKeys>, RingError> {
        let mut stored = self.store.data_keys(merchant_id).await?;
        let has = |p| stored.iter().any(|k: &WrappedKey| k.purpose == p);
        if !has(KeyPurpose::Data) || !has(KeyPurpose::Fingerprint) {
            let who = Actor::system("vault-svc");
            if !has(KeyPurpose::Data) {
                self.create(merchant_id, KeyPurpose::Data, 1, None, &who).await?;
            }
            if !has(KeyPurpose::Fingerprint) {
                self.create(merchant_id, KeyPurpose::Fingerprint, 1, None, &who).await?;
            }
            // Re-read: a concurrent creator's key may have won.
            stored = self.store.data_keys(merchant_id).await?;
        }
        self.cache_stored(merchant_id, &stored)
    }

    /// Unwraps the merchant's stored keys and caches them.
    fn cache_stored(&self, merchant_id: &str, stored: &[WrappedKey]) -> Result<Arc<MerchantKeys>, RingError> {
        let mut data = BTreeMap::new();
        let mut fingerprint_key = None;
        for k in stored {
            let key = self.unwrap_key(k)?;
            match k.purpose {
                KeyPurpose::Data => {
                    data.insert(k.version, envelope::cipher(&key));
                }
                KeyPurpose::Fingerprint => fingerprint_key = Some(key),
            }
        }
        let keys = Arc::new(MerchantKeys {
            data,
            fingerprint: fingerprint_key.ok_or(CryptoError::Malformed)?,
            loaded_at: self.clock.now_ms(),
        });
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(merchant_id.into(), keys.clone());
        Ok(keys)
    }

    async fn keys(&self, merchant_id: &str) -> Result<Arc<MerchantKeys>, RingError> {
        match self.cached(merchant_id) {
            Some(k) if self.clock.now_ms() - k.loaded_at < REFRESH_MS => Ok(k),
            _ => self.load(merchant_id).await,
        }
    }

    /// Seals under the merchant's current data key; returns the blob and the
    /// data-key version used.
    pub async fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<(Vec<u8>, u32), RingError> {
        let keys = self.keys(aad.merchant_id).await?;
        let (version, cipher) = keys.data.iter().next_back().ok_or(CryptoError::Malformed)?;
        Ok((envelope::seal(cipher, *version, aad, plaintext), *version))
    }

    /// Opens a blob with the data-key version it names.
    pub async fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, RingError> {
        let version = envelope::key_version(sealed)?;
        let mut keys = self.keys(aad.merchant_id).await?;
        if !keys.data.contains_key(&version) {
            keys = self.load(aad.merchant_id).await?;
        }
        let cipher = keys.data.get(&version).ok_or(CryptoError::UnknownKeyVersion(version))?;
        Ok(envelope::open(cipher, aad, sealed)?)
    }

    /// The merchant's fingerprint of a card number.
    pub async fn fingerprint(&self, merchant_id: &str, pan: &str) -> Result<String, RingError> {
        Ok(fingerprint(&self.keys(merchant_id).await?.fingerprint, pan))
    }

    /// What a caller's reference (a `consumer_ref`) is stored as: its keyed
    /// hash under the merchant's fingerprint key, separated from card
    /// fingerprints by a prefix no card number has. `None` for a merchant
    /// without keys (who can have stored nothing): keys are never created here.
    pub async fn reference(&self, merchant_id: &str, reference: &str) -> Result<Option<String>, RingError> {
        // The fingerprint key never changes: a cached one stays right. On a
        // miss, one read: what it finds is cached, nothing is created.
        let keys = match self.cached(merchant_id) {
            Some(keys) => keys,
            None => {
                let stored = self.store.data_keys(merchant_id).await?;
                if !stored.iter().any(|k| k.purpose == KeyPurpose::Fingerprint) {
                    return Ok(None);
                }
                self.cache_stored(merchant_id, &stored)?
            }
        };
        Ok(Some(format!("ref_{}", fingerprint(&keys.fingerprint, &format!("ref\0{reference}")))))
    }

    /// The merchant's current data-key version for re-encryption run
    /// `rotation_id`: adds version `current + 1` unless this run already did.
    pub async fn data_key_for_rotation(
        &self,
        merchant_id: &str,
        rotation_id: i64,
        who: &Actor,
    ) -> Result<u32, RingError> {
        let stored = self.store.data_keys(merchant_id).await?;
        let data = stored.iter().filter(|k| k.purpose == KeyPurpose::Data);
        if let Some(k) = data.clone().find(|k| k.rotation_id == Some(rotation_id)) {
            return Ok(k.version);
        }
        let next = data.map(|k| k.version).max().unwrap_or(0) + 1;
        self.create(merchant_id, KeyPurpose::Data, next, Some(rotation_id), who).await?;
        self.load(merchant_id).await?;
        Ok(next)
    }

    /// Seals under a given data-key version (re-encryption).
    pub async fn seal_with(&self, version: u32, aad: Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, RingError> {
        let mut keys = self.keys(aad.merchant_id).await?;
        if !keys.data.contains_key(&version) {
            keys = self.load(aad.merchant_id).await?;
        }
        let cipher = keys.data.get(&version).ok_or(CryptoError::UnknownKeyVersion(version))?;
        Ok(envelope::seal(cipher, version, aad, plaintext))
    }

    /// Re-wraps every stored key that is not under the current KEK version.
    /// Idempotent and resumable: a key already moved is skipped.
    pub async fn rewrap_all(&self, who: &Actor) -> Result<usize, RingError> {
        let (current, _) = self.keks.current();
        let mut moved = 0;
        for k in self.store.all_data_keys().await? {
            if k.kek_version == current {
                continue;
            }
            let key = self.unwrap_key(&k)?;
            let rewrapped = self.wrap_key(&k.merchant_id, k.purpose, k.version, &Key::new(key));
            let rewrapped = WrappedKey { created_at: k.created_at, rotation_id: k.rotation_id, ..rewrapped };
            let audit = self.audit("KR", &k.merchant_id, &key_id(k.purpose, k.version), who);
            if self.store.rewrap(&rewrapped, k.kek_version, &audit).await? {
                moved += 1;
            }
        }
        self.cache.write().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(moved)
    }

    /// Every merchant that has keys (for re-encryption).
    pub async fn merchants(&self) -> Result<Vec<String>, RingError> {
        let mut merchants: Vec<String> = self.store.all_data_keys().await?.into_iter().map(|k| k.merchant_id).collect();
        merchants.dedup();
        Ok(merchants)
    }
}
