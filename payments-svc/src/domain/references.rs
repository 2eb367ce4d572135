//! The references payments-svc keeps of what callers send it, keyed: an
//! idempotency key, the request it came with and the payment id it stands for
//! are HMAC-SHA256 values under the reference key (PCI DSS 3.5.1.1 asks for
//! keyed hashes: a bare hash of a request holding a card number is
//! brute-forceable from the card's BIN). The key is versioned like the
//! vault's KEK (`common::keys`): new records are written under the current
//! version, and a key first claimed under an older version keeps that version
//! (`older`), so a retry across a rotation finds its record and its payment.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use common::keys::{Key, KeySet};

/// The reference key, every version of it.
#[derive(Debug, Clone)]
pub struct References {
    keys: KeySet,
}

/// One version of the reference key.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    number: u32,
    key: &'a Key,
}

impl References {
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }

    pub fn current(&self) -> Version<'_> {
        let (number, key) = self.keys.current();
        Version { number, key }
    }

    /// The versions before the current one, newest first.
    pub fn older(&self) -> impl Iterator<Item = Version<'_>> {
        self.keys.versions().rev().skip(1).map(|(number, key)| Version { number, key })
    }
}

impl Version<'_> {
    fn mac(&self, purpose: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The keyed hash of `parts` as hex, `bytes` long: the first of the
    /// rounds 0, 1, … whose text holds no card-length digit run, so nothing
    /// payvault stores looks like a card number (about one 32-byte value in
    /// ten is computed again).
    fn card_safe(&self, purpose: &str, parts: &[&[u8]], bytes: usize) -> String {
        (0u32..)
            .map(|round| {
                let mut mac = self.mac(purpose, parts);
                mac.update(&round.to_be_bytes());
                hex::encode(&mac.finalize().into_bytes()[..bytes])
            })
            .find(|text| common::ids::is_card_safe(text))
            .unwrap_or_else(|| unreachable!("a card-safe value within 2^32 rounds"))
    }

    fn tagged(&self, purpose: &str, parts: &[&[u8]]) -> String {
        format!("v{}:{}", self.number, self.card_safe(purpose, parts, 32))
    }

    /// What an owner's idempotency key is stored as.
    pub fn idempotency_key(&self, owner: &str, key: &str) -> String {
        self.tagged("idempotency-key", &[owner.as_bytes(), key.as_bytes()])
    }

    /// What a request is recognised by: the keyed hash of its method and
    /// encoded message.
    pub fn request(&self, method: &str, encoded_request: &[u8]) -> String {
        self.tagged("request", &[method.as_bytes(), &Sha256::digest(encoded_request)])
    }

    /// The payment id a key stands for: stable across retries, distinct per
    /// owner and method.
    pub fn payment_id(&self, owner: &str, key: &str, method: &str) -> String {
        self.card_safe("payment-id", &[owner.as_bytes(), method.as_bytes(), key.as_bytes()], 16)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn references_are_keyed_stable_and_distinct() {
        let refs = References::new(KeySet::random());
        let other = References::new(KeySet::random());
        let v = refs.current();
        assert_eq!(v.request("m", b"a"), v.request("m", b"a"));
        assert_ne!(v.request("m", b"a"), v.request("m", b"b"));
        assert_ne!(v.request("m1", b"a"), v.request("m2", b"a"));
        assert_ne!(v.request("m", b"a"), other.current().request("m", b"a"), "another key, another value");
        assert!(v.idempotency_key("mrch_1:test", "k").starts_with("v1:"));
        assert_ne!(v.idempotency_key("mrch_1:test", "k"), v.idempotency_key("mrch_2:test", "k"));
        assert_ne!(v.idempotency_key("a", "bc"), v.idempotency_key("ab", "c"), "parts are length-prefixed");
        let id = v.payment_id("mrch_1", "key-1", "CreatePayment");
        assert_eq!(id.len(), 32);
        assert_eq!(id, v.payment_id("mrch_1", "key-1", "CreatePayment"));
        assert_ne!(id, v.payment_id("mrch_2", "key-1", "CreatePayment"));
        assert_ne!(id, other.current().payment_id("mrch_1", "key-1", "CreatePayment"));
    }

    #[test]
    fn older_versions_come_newest_first_after_the_current() {
        let keys = KeySet::new(BTreeMap::from([(1, Key::random()), (2, Key::random()), (5, Key::random())])).unwrap();
        let refs = References::new(keys);
        assert_eq!(refs.current().number, 5);
        assert_eq!(refs.older().map(|v| v.number).collect::<Vec<_>>(), [2, 1]);
        assert!(refs.older().next().unwrap().idempotency_key("o", "k").starts_with("v2:"));
    }

    #[test]
    fn nothing_stored_looks_like_a_card_number() {
        let refs = References::new(KeySet::random());
        for i in 0..10_000 {
            let v = refs.current();
            let key = i.to_string();
            for value in
                [v.payment_id("m", &key, "CreatePayment"), v.idempotency_key("m", &key), v.request("m", key.as_bytes())]
            {
                assert!(
                    common::ids::is_card_safe(&value) && common::card::naive_pans(&value).next().is_none(),
                    "{value}"
                );
            }
        }
    }
}
