//! Card fingerprints: HMAC-SHA256 of the card number under a per-merchant key,
//! so the same card is recognisable within one merchant and nowhere else.
//! Like every value payvault shows, a fingerprint never holds a card-length
//! digit run: one that would is computed again with a counter (so the same
//! card still has one fingerprint).
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub fn fingerprint(key: &[u8; 32], pan: &str) -> String {
    (0u8..)
        .map(|round| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(pan.as_bytes());
            if round > 0 {
                mac.update(&[0, round]);
            }
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        })
        .find(|f| common::ids::is_card_safe(f))
        .unwrap_or_else(|| unreachable!("a card-safe fingerprint within 256 rounds"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_depend_on_the_key_and_the_card() {
        let a = super::fingerprint(&[1; 32], "4242424242424242");
        assert_eq!(a, super::fingerprint(&[1; 32], "4242424242424242"));
        assert_ne!(a, super::fingerprint(&[2; 32], "4242424242424242"));
        assert_ne!(a, super::fingerprint(&[1; 32], "4111111111111111"));
        assert!(!a.contains("4242"));
    }

    #[test]
    fn fingerprints_never_look_like_card_numbers() {
        for i in 0..10_000u32 {
            let mut key = [7u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            let f = super::fingerprint(&key, "4242424242424242");
            assert!(common::ids::is_card_safe(&f) && common::card::naive_pans(&f).next().is_none(), "{f}");
        }
    }
}
