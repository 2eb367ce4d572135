//! Test harness: starts the real services on loopback ports (port 0) through
//! their configuration loaders, each test with its own Redis key prefix,
//! PostgreSQL schema or SQLite file and temporary folder (all removed at the
//! end), and hands out generated clients and request builders.
//! `vault` and `payments` start the services, `server` watches their tasks,
//! `database`, `redis` and `scratch` own the test's stores and files,
//! `conformance` runs a store suite on both backends; `prometheus` reads
//! scrapes and the PromQL of the deploy/observability assets; `walkthrough`
//! runs a Markdown file's shell blocks and checks their expectation comments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod database;
pub mod model;
pub mod payments;
pub mod procs;
pub mod prometheus;
pub mod redis;
pub mod scratch;
pub mod server;
pub mod vault;
pub mod walkthrough;

use tonic::metadata::MetadataValue;

use proto::vault::v1 as pb;

pub use database::{Db, TestDatabase, database_values, postgres_url, table_values, test_database};
pub use payments::{TestPlatform, repeated_cit, text_in_each_card_field, text_in_each_field};
pub use pb::tokens_client::TokensClient;
pub use pb::vault_client::VaultClient;
pub use proto::payments::v1::omni_tokens_client::OmniTokensClient;
pub use proto::payments::v1::payments_client::PaymentsClient;
pub use proto::payments::v1::registrations_client::RegistrationsClient;
pub use redis::{SilentRedis, redis_url, redis_values};
pub use scratch::ScratchDir;
pub use vault::{Store, TestVault};

/// Adds `authorization: Bearer <key>` to a request.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// A valid test card: Visa 4242…, expiring 12 of the year after next.
pub fn card(number: &str, security_code: &str) -> pb::Card {
    pb::Card {
        number: number.into(),
        expiration_month: 12,
        expiration_year: 2040,
        name: "Jane Doe".into(),
        security_code: security_code.into(),
        country: "th".into(),
        city: "Bangkok".into(),
        postal_code: "10320".into(),
        ..Default::default()
    }
}

pub fn create_request(card: pb::Card) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest { card: Some(card) }
}

pub fn detokenize_request(merchant_id: &str, token: &str, consumer_ref: &str) -> pb::DetokenizeRequest {
    pb::DetokenizeRequest {
        merchant_id: merchant_id.into(),
        token: token.into(),
        consumer_ref: consumer_ref.into(),
        livemode: token.starts_with("tokn_") && !token.starts_with("tokn_test_"),
        instrument: String::new(),
    }
}

/// The `ErrorInfo` reason of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    common::grpc::error_reason(status).unwrap_or_default()
}

/// A `Tokenize` request for a card.
pub fn tokenize_card(merchant_id: &str, kind: pb::TokenKind, card: pb::Card, customer_id: &str) -> pb::TokenizeRequest {
    pb::TokenizeRequest {
        merchant_id: merchant_id.into(),
        kind: kind as i32,
        source: Some(pb::tokenize_request::Source::Card(card)),
        customer_id: customer_id.into(),
        consumer_ref: String::new(),
        livemode: false,
    }
}

/// A `Tokenize` request attaching a single-use token to a customer.
pub fn tokenize_single_use(
    merchant_id: &str,
    kind: pb::TokenKind,
    single_use_token: &str,
    customer_id: &str,
    consumer_ref: &str,
) -> pb::TokenizeRequest {
    pb::TokenizeRequest {
        merchant_id: merchant_id.into(),
        kind: kind as i32,
        source: Some(pb::tokenize_request::Source::SingleUseToken(single_use_token.into())),
        customer_id: customer_id.into(),
        consumer_ref: consumer_ref.into(),
        livemode: false,
    }
}

/// `ExtendToken` of a test-mode durable token.
pub fn extend_request(merchant_id: &str, id: &str) -> pb::ExtendTokenRequest {
    pb::ExtendTokenRequest { merchant_id: merchant_id.into(), id: id.into(), livemode: false }
}

/// `DeleteToken` of a test-mode durable token.
pub fn delete_request(merchant_id: &str, id: &str) -> pb::DeleteTokenRequest {
    pb::DeleteTokenRequest { merchant_id: merchant_id.into(), id: id.into(), livemode: false }
}

/// Scoped requests of the internal API for a test-mode merchant.
pub fn scoped<T>(message: T, correlation_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-correlation-id", correlation_id.parse().unwrap());
    request
}
