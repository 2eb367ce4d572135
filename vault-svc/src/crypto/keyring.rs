//! Per-merchant keys under the KEK. A merchant's data key for KEK version v is
//! HKDF-SHA256(KEK_v, info = "dek" ‖ merchant id); its fingerprint key is
//! derived the same way with info "fingerprint". Derived ciphers are cached so
//! the hot path does no key schedule work.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::envelope::{self, Aad, CryptoError};
use super::fingerprint::fingerprint;
use super::kek::KekSet;

const SALT: &[u8] = b"payvault/v1";

pub struct KeyRing {
    keks: KekSet,
    ciphers: RwLock<HashMap<(String, u32), Arc<Aes256Gcm>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("current_version", &self.keks.current().0).finish_non_exhaustive()
    }
}

impl KeyRing {
    pub fn new(keks: KekSet) -> Self {
        Self { keks, ciphers: RwLock::new(HashMap::new()) }
    }

    fn derive(&self, version: u32, purpose: &str, merchant_id: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let kek = self.keks.get(version).ok_or(CryptoError::UnknownKeyVersion(version))?;
        let mut okm = Zeroizing::new([0u8; 32]);
        let info = [purpose.as_bytes(), b"\0", merchant_id.as_bytes()].concat();
        Hkdf::<Sha256>::new(Some(SALT), kek.expose())
            .expand(&info, okm.as_mut_slice())
            .map_err(|_| CryptoError::Malformed)?;
        Ok(okm)
    }

    fn cipher(&self, merchant_id: &str, version: u32) -> Result<Arc<Aes256Gcm>, CryptoError> {
        let cache_key = (merchant_id.to_owned(), version);
        if let Some(c) = self.ciphers.read().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return Ok(c.clone());
        }
        let key = self.derive(version, "dek", merchant_id)?;
        let cipher = Arc::new(envelope::cipher(&key));
        self.ciphers.write().unwrap_or_else(|e| e.into_inner()).insert(cache_key, cipher.clone());
        Ok(cipher)
    }

    /// Encrypts under the merchant's current data key.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let version = self.keks.current().0;
        Ok(envelope::seal(&*self.cipher(aad.merchant_id, version)?, version, aad, plaintext))
    }

    /// Decrypts with whichever key version the record names.
    pub fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let version = envelope::key_version(sealed)?;
        envelope::open(&*self.cipher(aad.merchant_id, version)?, aad, sealed)
    }

    /// The merchant's fingerprint of a card number. Keyed by the first KEK
    /// version so fingerprints stay stable when the KEK rotates.
    pub fn fingerprint(&self, merchant_id: &str, pan: &str) -> Result<String, CryptoError> {
        let key = self.derive(self.keks.first_version(), "fingerprint", merchant_id)?;
        Ok(fingerprint(&key, pan))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::kek::Key;

    fn ring(versions: &[u32]) -> (KeyRing, BTreeMap<u32, Key>) {
        let keys: BTreeMap<u32, Key> = versions.iter().map(|v| (*v, Key::random())).collect();
        (KeyRing::new(KekSet::new(keys.clone()).unwrap()), keys)
    }

    #[test]
    fn merchants_have_separate_keys_and_old_versions_stay_readable() {
        let (old, mut keys) = ring(&[1]);
        let aad = Aad { merchant_id: "m1", token_id: "t", kind: "card" };
        let sealed = old.seal(aad, b"data").unwrap();
        keys.insert(2, Key::random());
        let rotated = KeyRing::new(KekSet::new(keys).unwrap());
        assert_eq!(rotated.open(aad, &sealed).unwrap().as_slice(), b"data");
        let resealed = rotated.seal(aad, b"data").unwrap();
        assert_eq!(envelope::key_version(&resealed), Ok(2));
        assert_eq!(old.open(aad, &resealed), Err(CryptoError::UnknownKeyVersion(2)));
        // Another merchant's key cannot open it even with the AAD forged.
        let forged = Aad { merchant_id: "m2", ..aad };
        assert!(rotated.open(forged, &sealed).is_err());
        assert_eq!(old.fingerprint("m1", "4242424242424242"), rotated.fingerprint("m1", "4242424242424242"));
        assert_ne!(old.fingerprint("m1", "4242424242424242"), old.fingerprint("m2", "4242424242424242"));
    }
}
