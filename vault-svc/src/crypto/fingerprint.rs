//! Card fingerprints: HMAC-SHA256 of the card number under a per-merchant key,
//! so the same card is recognisable within one merchant and nowhere else.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub fn fingerprint(key: &[u8; 32], pan: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(pan.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
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
}
