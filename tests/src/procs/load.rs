//! A small journaled load driver: N concurrent clients, each paying over fresh
//! single-use tokens (CreateToken with the public key, then CreatePayment with
//! the secret key) in a mix of flows — DB, DB→RF, PA→CP→RF, PA→RV — every
//! mutating call under a unique `idempotency-key` and a client deadline. Each
//! call is journaled with its key, request, outcome and duration, so a test
//! can afterwards retry every call with the same key and request. Bounded in
//! calls and in time; loopback only.
//!
//! This module holds the requests the driver sends; `journal` what a run
//! recorded, `driver` the single calls and their replays, `mix` the
//! concurrent clients and their flows.
use std::time::Duration;

use proto::payments::v1::{self as pb, PaymentType};

mod driver;
mod journal;
mod mix;

pub use driver::Driver;
pub use journal::{Call, Journal, Op, Outcome};
pub use mix::LoadConfig;

/// An answer later than its deadline by more than this counts as a hang.
pub const HANG_MARGIN: Duration = Duration::from_secs(2);

/// The test acquirer's approval code in test mode.
pub const APPROVED: &str = "000.100.110";

/// A fresh idempotency key.
pub fn new_key() -> String {
    format!("e2e-{}", common::ids::hex(12))
}

/// A DB of `amount` EUR cents over a single-use token.
pub fn db_over(token: &str, amount: i64) -> pb::CreatePaymentRequest {
    create(PaymentType::Db, token, amount)
}

/// A PA of `amount` EUR cents over a single-use token.
pub fn pa_over(token: &str, amount: i64) -> pb::CreatePaymentRequest {
    create(PaymentType::Pa, token, amount)
}

fn create(kind: PaymentType, token: &str, amount: i64) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        payment_type: kind as i32,
        amount,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::Token(token.into())),
        ..Default::default()
    }
}
