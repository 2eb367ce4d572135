//! Representative vault and payments messages and their encoded sizes, and the
//! echo messages padded to the same sizes, so the echo baseline moves the same
//! bytes as the RPC it is compared with.
use prost::Message;
use proto::payments::v1 as pay;
use proto::vault::v1::{
    Card, CardMetadata, CreateTokenRequest, DetokenizeRequest, DetokenizeResponse, StoredToken, Token, TokenKind,
    TokenizeRequest, tokenize_request,
};

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

    /// A registration from a new card (no security code) and the stored token.
    pub fn tokenize() -> Self {
        Self { request: tokenize_request().encoded_len(), response: stored_token().encoded_len() }
    }

    /// A registration's detokenize: its id, no `consumer_ref`; the card without
    /// a security code (never stored) and its metadata.
    pub fn detokenize_registration() -> Self {
        let request =
            DetokenizeRequest { token: REGISTRATION_ID.into(), consumer_ref: String::new(), ..detokenize_request() };
        let mut response = detokenize_response();
        if let Some(card) = &mut response.card {
            card.security_code.clear();
        }
        Self { request: request.encoded_len(), response: response.encoded_len() }
    }

    /// `SET` carries the value; the reply is `OK`.
    pub fn redis_set(value: usize) -> Self {
        Self { request: value, response: 0 }
    }

    /// `GETDEL` carries the key; the reply is the value.
    pub fn redis_getdel(value: usize) -> Self {
        Self { request: 0, response: value }
    }

    /// A DB payment over a single-use token and the approved payment.
    pub fn pay_db_token() -> Self {
        Self {
            request: pay_db_token_request(TOKEN_ID.into()).encoded_len(),
            response: payment(Source::Token).encoded_len(),
        }
    }

    /// A one-click DB payment over a registration and the approved payment.
    pub fn pay_one_click() -> Self {
        Self {
            request: pay_one_click_request(REGISTRATION_ID.into()).encoded_len(),
            response: payment(Source::Registration).encoded_len(),
        }
    }

    /// The `INSERT` carries the row (payload, id and instant); the reply is a count.
    pub fn pg_insert(value: usize) -> Self {
        Self { request: value + PAYMENT_ID.len() + 8, response: 0 }
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
/// Registrations and payments: 32 lowercase hex, as OPP's.
const REGISTRATION_ID: &str = "0123456789abcdef0123456789abcdef";
const PAYMENT_ID: &str = "fedcba9876543210fedcba9876543210";
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
        // No billing address: the create-token op sends none.
        ..CardMetadata::default()
    }
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 123_000_000 }
}

/// A fresh single-use token as CreateToken returns it.
pub fn token() -> Token {
    Token {
        object: "token".into(),
        location: format!("/tokens/{TOKEN_ID}"),
        id: TOKEN_ID.into(),
        livemode: false,
        used: false,
        charge_status: "unknown".into(),
        created_at: Some(prost_types::Timestamp { seconds: CREATED_AT, nanos: 0 }),
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
        // What payments-svc sends: it pays with a card unless under a mandate.
        instrument: "card".into(),
    }
}

/// The card comes back as it was given, security code included (first use).
pub fn detokenize_response() -> DetokenizeResponse {
    DetokenizeResponse {
        card: Some(card()),
        metadata: Some(metadata()),
        livemode: false,
        bank_account: None,
        account: None,
    }
}

/// What the tokenize op sends, but for the card number and customer, which
/// are new each call and of the same length.
pub fn tokenize_request() -> TokenizeRequest {
    let mut card = card();
    card.security_code.clear();
    TokenizeRequest {
        merchant_id: MERCHANT_ID.into(),
        kind: TokenKind::Registration as i32,
        source: Some(tokenize_request::Source::Card(card)),
        customer_id: CONSUMER_REF.into(),
        consumer_ref: String::new(),
        livemode: false,
    }
}

/// A new registration as Tokenize returns it.
pub fn stored_token() -> StoredToken {
    StoredToken {
        account: None,
        id: REGISTRATION_ID.into(),
        kind: TokenKind::Registration as i32,
        merchant_id: MERCHANT_ID.into(),
        customer_id: CONSUMER_REF.into(),
        card: Some(metadata()),
        created_at: Some(timestamp(CREATED_AT)),
        last_used_at: None,
        retain_until: Some(timestamp(CREATED_AT + 86_400 * 800)),
        extended: false,
        livemode: false,
        is_default: true,
    }
}

/// The amount and currency of every payment the payment ops make.
pub const AMOUNT: i64 = 1000;
pub const CURRENCY: &str = "EUR";
/// The result code of an approved test-mode payment; any other is an error.
pub const APPROVED_TEST: &str = "000.100.110";

/// The card registered for one-click payments.
pub fn registration_card() -> pay::Card {
    pay::Card {
        number: "4242424242424242".into(),
        expiration_month: 12,
        expiration_year: 2030,
        name: "Jane Doe".into(),
        ..pay::Card::default()
    }
}

/// A DB payment of `AMOUNT` `CURRENCY` over `source`.
fn db_payment_request(source: pay::create_payment_request::Source) -> pay::CreatePaymentRequest {
    pay::CreatePaymentRequest {
        payment_type: pay::PaymentType::Db as i32,
        amount: AMOUNT,
        currency: CURRENCY.into(),
        source: Some(source),
        ..pay::CreatePaymentRequest::default()
    }
}

/// A DB payment over a single-use token.
pub fn pay_db_token_request(token: String) -> pay::CreatePaymentRequest {
    db_payment_request(pay::create_payment_request::Source::Token(token))
}

/// A cardholder-initiated repeated payment over a registration (one-click).
pub fn one_click_instruction() -> pay::StandingInstruction {
    pay::StandingInstruction {
        mode: pay::StandingInstructionMode::Repeated as i32,
        r#type: pay::StandingInstructionType::Unscheduled as i32,
        source: pay::StandingInstructionSource::Cit as i32,
        initial_transaction_id: String::new(),
    }
}

/// A one-click DB payment over a registration.
pub fn pay_one_click_request(registration_id: String) -> pay::CreatePaymentRequest {
    pay::CreatePaymentRequest {
        standing_instruction: Some(one_click_instruction()),
        ..db_payment_request(pay::create_payment_request::Source::RegistrationId(registration_id))
    }
}

/// What a payment was made over, for the shape of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Token,
    Registration,
}

/// An approved DB payment as payments-svc returns it.
fn payment(source: Source) -> pay::Payment {
    let one_click = source == Source::Registration;
    pay::Payment {
        id: PAYMENT_ID.into(),
        payment_type: pay::PaymentType::Db as i32,
        amount: AMOUNT,
        currency: CURRENCY.into(),
        result: Some(pay::Result {
            code: APPROVED_TEST.into(),
            description: "Request successfully processed in 'Merchant in Integrator Test Mode'".into(),
        }),
        registration_id: if one_click { REGISTRATION_ID.into() } else { String::new() },
        card: Some(pay::CardMetadata {
            brand: "visa".into(),
            bin: "424242".into(),
            last_digits: "4242".into(),
            expiration_month: 12,
            expiration_year: 2030,
            name: if one_click { "Jane Doe" } else { "Somchai Prasert" }.into(),
            // A payment's card never carries the billing address.
            ..pay::CardMetadata::default()
        }),
        standing_instruction: one_click.then(one_click_instruction),
        captured_amount: AMOUNT,
        // Milliseconds in the nanos: as large as most instants' (5 bytes of varint).
        created_at: Some(prost_types::Timestamp { seconds: CREATED_AT, nanos: 456_000_000 }),
        ..pay::Payment::default()
    }
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
        for sizes in [Sizes::create_token(), Sizes::detokenize(), Sizes::pay_db_token(), Sizes::pay_one_click()] {
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
        let p = Sizes::pay_db_token();
        assert!((30..100).contains(&p.request) && p.response > p.request, "{p:?}");
        let t = Sizes::tokenize();
        assert!(t.request > c.request && t.response > t.request, "{t:?}");
        let r = Sizes::detokenize_registration();
        assert!(r.request < d.request && r.response < d.response, "{r:?}");
        let o = Sizes::pay_one_click();
        assert!(o.request > p.request && o.response > p.response, "{o:?}");
    }
}
