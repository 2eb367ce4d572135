//! Authenticated encryption of one record: AES-256-GCM with a fresh random
//! nonce, the key version in a small header, and AAD that binds the record to
//! its merchant, token id and kind, so a ciphertext moved to another row or
//! another merchant fails to open.
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use zeroize::Zeroizing;

const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("no key for version {0}")]
    UnknownKeyVersion(u32),
    #[error("ciphertext failed authentication")]
    Unauthentic,
}

/// What a record is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub merchant_id: &'a str,
    pub token_id: &'a str,
    pub kind: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Length-prefixed so that no two different triples encode alike.
        let mut out = Vec::with_capacity(self.merchant_id.len() + self.token_id.len() + self.kind.len() + 12);
        for part in [self.merchant_id, self.token_id, self.kind] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

pub fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// `[format][key version: u32 BE][nonce: 12][ciphertext ‖ tag]`.
pub fn seal(cipher: &Aes256Gcm, key_version: u32, aad: Aad<'_>, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::Rng::fill(&mut rand::rng(), &mut nonce);
    let aad = aad.bytes();
    let ct = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad }).unwrap_or_default(); // only fails for plaintexts beyond 64 GiB
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.push(FORMAT);
    out.extend_from_slice(&key_version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// The key version a sealed record names.
pub fn key_version(sealed: &[u8]) -> Result<u32, CryptoError> {
    if sealed.len() < HEADER_LEN + 16 || sealed[0] != FORMAT {
        return Err(CryptoError::Malformed);
    }
    Ok(u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
}

pub fn open(cipher: &Aes256Gcm, aad: Aad<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    key_version(sealed)?;
    let nonce = Nonce::from_slice(&sealed[5..HEADER_LEN]);
    let aad = aad.bytes();
    cipher
        .decrypt(nonce, Payload { msg: &sealed[HEADER_LEN..], aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: Aad<'static> = Aad { merchant_id: "mrch_a", token_id: "tokn_1", kind: "card" };

    #[test]
    fn sealed_records_open_only_with_the_same_binding() {
        let c = cipher(&[7u8; 32]);
        let sealed = seal(&c, 4, AAD, b"secret");
        assert_eq!(key_version(&sealed), Ok(4));
        assert_eq!(open(&c, AAD, &sealed).unwrap().as_slice(), b"secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        for moved in
            [Aad { merchant_id: "mrch_b", ..AAD }, Aad { token_id: "tokn_2", ..AAD }, Aad { kind: "meta", ..AAD }]
        {
            assert_eq!(open(&c, moved, &sealed), Err(CryptoError::Unauthentic));
        }
        assert_eq!(open(&cipher(&[8u8; 32]), AAD, &sealed), Err(CryptoError::Unauthentic));
        assert_eq!(open(&c, AAD, &sealed[..10]), Err(CryptoError::Malformed));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let c = cipher(&[7u8; 32]);
        assert_ne!(seal(&c, 1, AAD, b"x"), seal(&c, 1, AAD, b"x"));
    }
}
