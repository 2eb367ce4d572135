//! Representative vault messages and their encoded sizes, and the echo messages
//! padded to the same sizes, so the echo baseline moves the same bytes as the
//! vault RPC it is compared with.
use prost::Message;
use proto::vault::v1::{Card, CardMetadata, CreateTokenRequest, DetokenizeRequest, DetokenizeResponse, Token};

use crate::echo::pb::{EchoRequest, EchoResponse};

/// Encoded protobuf sizes of one request and its response, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub request: usize,
    pub response: usize,
}

impl Sizes {
    pub fn create_token() -> Self {
        Self { request: create_token_request().encoded_len(), response: token().encoded_len() }
    }

    pub fn detokenize() -> Self {
        Self { request: detokenize_request().encoded_len(), response: detokenize_response().encoded_len() }
    }

    /// `SET` carries the value; the reply is `OK`.
    pub fn redis_set(value: usize) -> Self {
        Self { request: value, response: 0 }
    }

    /// `GETDEL` carries the key; the reply is the value.
    pub fn redis_getdel(value: usize) -> Self {
        Self { request: 0, response: value }
    }
}

/// The card every create-token request sends: Stripe's and Omise's test Visa.
pub fn card() -> Card {
    Card {
        number: "4242424242424242".into(),
        expiration_month: 12,
        expiration_year: 2030,
        name: "Somchai Prasert".into(),
        security_code: "123".into(),
        ..Card::default()
    }
}

/// Exactly what the create-token op sends.
pub fn create_token_request() -> CreateTokenRequest {
    CreateTokenRequest { card: Some(card()) }
}

// Ids shaped like the vault's: a prefix and random base36 characters.
const TOKEN_ID: &str = "tokn_test_0123456789abcdefghijklmn";
const MERCHANT_ID: &str = "mrch_0123456789abcdefghij";
/// HMAC-SHA256, base64url without padding: 43 characters.
const FINGERPRINT: &str = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c";
/// What the detokenize op sends as `consumer_ref` (run prefix + counter).
const CONSUMER_REF: &str = "lg-0123abcd-123456";
/// 2027-01-15, with millisecond precision as the vault keeps it.
const CREATED_AT: i64 = 1_800_000_000;

fn metadata() -> CardMetadata {
    CardMetadata {
        brand: "visa".into(),
        bin: "424242".into(),
        last_digits: "4242".into(),
        expiration_month: 12,
        expiration_year: 2030,
        name: "Somchai Prasert".into(),
        fingerprint: FINGERPRINT.into(),
        country: String::new(),
    }
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 123_000_000 }
}

/// A fresh single-use token as CreateToken returns it.
pub fn token() -> Token {
    Token {
        id: TOKEN_ID.into(),
        livemode: false,
        used: false,
        charge_status: "unknown".into(),
        created_at: Some(timestamp(CREATED_AT)),
        expires_at: Some(timestamp(CREATED_AT + 1800)),
        card: Some(metadata()),
    }
}

pub fn detokenize_request() -> DetokenizeRequest {
    DetokenizeRequest {
        merchant_id: MERCHANT_ID.into(),
        token: TOKEN_ID.into(),
        consumer_ref: CONSUMER_REF.into(),
        livemode: false,
    }
}

/// The card comes back as it was given, security code included (first use).
pub fn detokenize_response() -> DetokenizeResponse {
    DetokenizeResponse { card: Some(card()), metadata: Some(metadata()), livemode: false }
}

/// The largest `n` with `len(n) <= target` (`len` grows with `n`); equal to
/// `target` unless a varint length prefix makes that size unreachable.
fn fit(target: usize, len: impl Fn(usize) -> usize) -> usize {
    (0..=target).rev().find(|&n| len(n) <= target).unwrap_or(0)
}

/// Payload bytes that make an `EchoResponse` encode to `response` bytes.
pub fn echo_response_payload(response: usize) -> usize {
    fit(response, |n| EchoResponse { payload: vec![0; n] }.encoded_len())
}

/// An echo request that encodes to `sizes.request` bytes and asks for a
/// response that encodes to `sizes.response` bytes.
pub fn echo_request(sizes: Sizes) -> EchoRequest {
    let response_size = u32::try_from(echo_response_payload(sizes.response)).unwrap_or(u32::MAX);
    let with = |n| EchoRequest { payload: vec![0x5a; n], response_size };
    with(fit(sizes.request, |n| with(n).encoded_len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_messages_match_the_vault_messages_byte_for_byte() {
        for sizes in [Sizes::create_token(), Sizes::detokenize()] {
            let req = echo_request(sizes);
            assert_eq!(req.encoded_len(), sizes.request);
            let resp = EchoResponse { payload: vec![0; req.response_size as usize] };
            assert_eq!(resp.encoded_len(), sizes.response);
        }
    }

    #[test]
    fn sizes_are_plausible() {
        let c = Sizes::create_token();
        assert!((30..100).contains(&c.request), "{c:?}");
        assert!(c.response > c.request, "{c:?}");
        let d = Sizes::detokenize();
        assert!(d.response > d.request, "{d:?}");
    }
}
