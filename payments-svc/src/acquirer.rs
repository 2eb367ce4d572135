//! The acquirer port: what payments asks of a card acquirer, in payments' own
//! types. `test_acquirer` is the built-in deterministic acquirer for test-mode
//! merchants; real connectors implement the same trait.
//!
//! `execute` may end without an answer (`TimedOut`): the acquirer may or may
//! not have done it. `inquire` asks, by the request's reference (the payment
//! id), what became of a request whose answer was lost; the reconciler and a
//! retry after a crash use it instead of executing twice.
use std::future::Future;

use common::bank::{BankAccount, MaskedAccount};
use common::card::Card;
use common::money::Money;
use common::result_code::ResultCode;

use crate::domain::payment::{Mandate, MaskedCard};

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

/// A request to the acquirer over card `C` or bank account `A`: in clear to
/// execute it (`AcquirerRequest`), or what the payment record holds of it to
/// inquire about it by its reference (`Inquiry`), never the card number or
/// the IBAN.
#[derive(Debug)]
pub struct AcquirerRequest<'a, C = Card, A = BankAccount> {
    pub payment_id: &'a str,
    pub operation: Operation,
    pub money: Money,
    /// The card, for Authorize, Debit and AccountVerification.
    pub card: Option<&'a C>,
    /// The bank account instead, for a SEPA direct debit (Debit only).
    pub account: Option<&'a A>,
    /// The SEPA mandate of a direct debit.
    pub mandate: Option<&'a Mandate>,
    /// The acquirer's reference of the original authorization, for Capture, Reverse, Refund.
    pub original_reference: Option<&'a str>,
    pub merchant_initiated: bool,
}

/// An inquiry about an earlier request, by its reference.
pub type Inquiry<'a> = AcquirerRequest<'a, MaskedCard, MaskedAccount>;

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
    /// The acquirer has no such request: nothing happened (only an inquiry says so).
    NotProcessed,
}

pub trait Acquirer: Send + Sync + 'static {
    fn execute(&self, request: AcquirerRequest<'_>) -> impl Future<Output = AcquirerOutcome> + Send;

    /// What became of the request `inquiry` names: `Approved`/`Declined` if it
    /// was processed, `NotProcessed` if it never was, `TimedOut` if the
    /// acquirer cannot say now (ask again later).
    fn inquire(&self, inquiry: Inquiry<'_>) -> impl Future<Output = AcquirerOutcome> + Send;
}
