//! The acquirer port: what payments asks of a card acquirer, in payments' own
//! types. `test_acquirer` is the built-in deterministic acquirer for test-mode
//! merchants; real connectors implement the same trait.
use std::future::Future;

use common::card::Card;
use common::money::Money;
use common::result_code::ResultCode;

pub mod test_acquirer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// PA: authorize only.
    Authorize,
    /// DB: authorize and capture.
    Debit,
    /// A zero-amount account verification (registration with `verify`).
    AccountVerification,
    /// CP of an earlier PA.
    Capture,
    /// RV of an earlier PA.
    Reverse,
    /// RF of an earlier DB or CP.
    Refund,
}

#[derive(Debug)]
pub struct AcquirerRequest<'a> {
    pub payment_id: &'a str,
    pub operation: Operation,
    pub money: Money,
    /// The card, for Authorize, Debit and AccountVerification.
    pub card: Option<&'a Card>,
    /// The acquirer's reference of the original authorization, for Capture, Reverse, Refund.
    pub original_reference: Option<&'a str>,
    pub merchant_initiated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquirerOutcome {
    Approved {
        result: ResultCode,
        reference: String,
    },
    Declined {
        result: ResultCode,
    },
    /// No answer in time: the outcome is unknown and never reported as approved.
    TimedOut,
}

pub trait Acquirer: Send + Sync + 'static {
    fn execute(&self, request: AcquirerRequest<'_>) -> impl Future<Output = AcquirerOutcome> + Send;
}
