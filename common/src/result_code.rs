//! payvault's result codes: the one table of the OPP (ACI Open Payment Platform)
//! `ddd.ddd.ddd` codes payvault returns, with their published descriptions, and
//! their classification by OPP's published regular expressions.
//! docs/RESULT_CODES.md lists the table, the regexes and their sources.
use std::sync::LazyLock;

use regex::Regex;

/// A published OPP result code and its published description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCode {
    pub code: &'static str,
    pub description: &'static str,
}

/// What a result code means for the payment, from OPP's regex groups:
///
/// - `Success`: "successfully processed transactions".
/// - `SuccessNeedsReview`: "successfully processed transactions that should be manually reviewed".
/// - `Pending`: both "pending" groups (open session, and status may change after days).
/// - `Declined`: "rejections by the external bank or similar payment system" and "soft
///   declines" — the issuer said no; the request itself was fine.
/// - `Rejected`: every other rejection group (3-D Secure, communication errors — which include
///   the acquirer timeout —, system errors, risk, blacklist, configuration, registration, job,
///   reference/workflow, format, address, contact, account, amount validation) and any code
///   that matches no group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Success,
    SuccessNeedsReview,
    Pending,
    Declined,
    Rejected,
}

const fn rc(code: &'static str, description: &'static str) -> ResultCode {
    ResultCode { code, description }
}

/// Live-mode success.
pub const SUCCESS_LIVE: ResultCode = rc("000.000.000", "Transaction succeeded");
/// Test-mode success: what the test acquirer answers.
pub const SUCCESS_TEST: ResultCode =
    rc("000.100.110", "Request successfully processed in 'Merchant in Integrator Test Mode'");

/// Generic issuer decline.
pub const DECLINED: ResultCode = rc("800.100.100", "transaction declined for unknown reason");
pub const INSUFFICIENT_FUNDS: ResultCode = rc("800.100.203", "Insufficient Funds");
/// SEPA direct debit, rejected by the debtor's bank: the account is closed.
pub const ACCOUNT_CLOSED: ResultCode = rc("800.100.202", "Account Closed");
/// SEPA direct debit: the debtor's bank discarded the mandate (invalid).
pub const MANDATE_DISCARDED: ResultCode = rc("800.100.205", "Mandate Discarded");
/// OPP has no combined "lost or stolen" code; it has 800.100.165 (card lost) and
/// 800.100.159 (stolen card). payvault answers "card lost" for both.
pub const LOST_OR_STOLEN: ResultCode = rc("800.100.165", "transaction declined (card lost)");
/// The issuer's authorization system refused the transaction.
pub const REJECTED_BY_ISSUER: ResultCode = rc("800.100.152", "transaction declined by authorization system");

/// The acquirer did not answer in time: the outcome is unknown (never a success).
pub const ACQUIRER_TIMEOUT: ResultCode = rc("900.100.300", "timeout, uncertain result");
/// In progress, or awaiting the acquirer's outcome (status PENDING).
pub const PENDING: ResultCode = rc("000.200.000", "transaction pending");
/// The acquirer's answer was lost and an inquiry found it never processed the
/// request (status FAILED): nothing was charged.
pub const NOT_PROCESSED: ResultCode = rc("900.100.400", "timeout at connectors/acquirer side");

/// A capture above what remains of the authorized amount.
pub const CAPTURE_EXCEEDS_AUTHORIZED: ResultCode =
    rc("700.400.100", "cannot capture (PA value exceeded, PA reverted or invalid workflow?)");
/// A refund above what remains of the captured amount.
pub const REFUND_EXCEEDS_CAPTURED: ResultCode =
    rc("700.400.200", "cannot refund (refund volume exceeded or tx reversed or invalid workflow?)");
/// A reversal of a payment that can no longer be reversed (captured, refunded or reversed).
pub const REVERSAL_NOT_ALLOWED: ResultCode =
    rc("700.400.300", "cannot reverse (already refunded|reversed, invalid workflow or amount exceeded)");
/// Any other transition the referenced payment's type or state does not allow
/// (e.g. a refund of a PA, a capture of a DB).
pub const INVALID_WORKFLOW: ResultCode =
    rc("700.300.100", "referenced tx can not be refunded, captured or reversed (invalid type)");
/// A capture, reversal or refund that references no known payment.
pub const REFERENCE_NOT_FOUND: ResultCode = rc("700.100.100", "reference id not existing");

/// A live-mode merchant with no connector configured.
pub const NO_CONNECTOR: ResultCode = rc("600.200.201", "Channel/Merchant not configured for this payment method");

/// A merchant-initiated transaction over a token that has no successful initial
/// customer-initiated transaction on record. OPP has no code naming CIT/MIT; this is
/// its registration-validation code for a stored-credential payment without a valid
/// initial one.
pub const MIT_WITHOUT_CIT: ResultCode = rc("100.150.300", "payment only allowed with valid initial registration");

pub const INVALID_CARD: ResultCode = rc("100.100.101", "invalid creditcard, bank account number or bank name");
/// A malformed expiry (month outside 1–12, impossible year).
pub const INVALID_EXPIRY: ResultCode = rc("100.100.305", "invalid expiration date format");
/// A well-formed expiry in the past.
pub const CARD_EXPIRED: ResultCode = rc("100.100.303", "card expired");
pub const INVALID_SECURITY_CODE: ResultCode = rc("100.100.601", "invalid CVV/brand combination");
/// A zero (outside account verification) or negative amount.
pub const INVALID_AMOUNT: ResultCode = rc("100.550.300", "request contains no amount or too low amount");
/// An amount above `money::MAX_AMOUNT`.
pub const AMOUNT_TOO_LARGE: ResultCode = rc("100.550.301", "amount too large");
pub const INVALID_CURRENCY: ResultCode = rc("100.550.401", "invalid currency");

/// Every code payvault returns: the one table.
pub const ALL: &[ResultCode] = &[
    SUCCESS_LIVE,
    SUCCESS_TEST,
    DECLINED,
    INSUFFICIENT_FUNDS,
    ACCOUNT_CLOSED,
    MANDATE_DISCARDED,
    LOST_OR_STOLEN,
    REJECTED_BY_ISSUER,
    ACQUIRER_TIMEOUT,
    PENDING,
    NOT_PROCESSED,
    CAPTURE_EXCEEDS_AUTHORIZED,
    REFUND_EXCEEDS_CAPTURED,
    REVERSAL_NOT_ALLOWED,
    INVALID_WORKFLOW,
    REFERENCE_NOT_FOUND,
    NO_CONNECTOR,
    MIT_WITHOUT_CIT,
    INVALID_CARD,
    INVALID_EXPIRY,
    CARD_EXPIRED,
    INVALID_SECURITY_CODE,
    INVALID_AMOUNT,
    AMOUNT_TOO_LARGE,
    INVALID_CURRENCY,
];

/// The success code for the merchant's mode.
pub fn success(livemode: bool) -> ResultCode {
    if livemode { SUCCESS_LIVE } else { SUCCESS_TEST }
}

/// The published code and description, if the code is one payvault returns.
pub fn lookup(code: &str) -> Option<ResultCode> {
    ALL.iter().find(|rc| rc.code == code).copied()
}

/// OPP's published group patterns, verbatim (see docs/RESULT_CODES.md for the source).
const SUCCESS_PATTERN: &str = r"^(000\.000\.|000\.100\.1|000\.[36]|000\.400\.[1][12]0)";
const SUCCESS_NEEDS_REVIEW_PATTERN: &str = r"^(000\.400\.0[^3]|000\.400\.100)";
const PENDING_PATTERNS: [&str; 2] = [r"^(000\.200)", r"^(800\.400\.5|100\.400\.500)"];
const DECLINED_PATTERNS: [&str; 2] = [r"^(800\.[17]00|800\.800\.[123])", r"^(300\.100\.100)"];

struct Classifier {
    success: Regex,
    success_needs_review: Regex,
    pending: Regex,
    declined: Regex,
}

impl Classifier {
    fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            success: Regex::new(SUCCESS_PATTERN)?,
            success_needs_review: Regex::new(SUCCESS_NEEDS_REVIEW_PATTERN)?,
            pending: Regex::new(&PENDING_PATTERNS.join("|"))?,
            declined: Regex::new(&DECLINED_PATTERNS.join("|"))?,
        })
    }
}

/// Compiled once. The patterns are constants, so `None` cannot happen at run time
/// (a test proves they compile); if it did, every code would classify as `Rejected`,
/// which never reports a payment as successful.
static CLASSIFIER: LazyLock<Option<Classifier>> = LazyLock::new(|| Classifier::new().ok());

/// Classifies a code with OPP's published regular expressions. Anything that is not a
/// success, a pending or a decline is `Rejected`, including unknown and malformed codes.
pub fn classify(code: &str) -> Class {
    let Some(c) = CLASSIFIER.as_ref() else { return Class::Rejected };
    if c.success.is_match(code) {
        Class::Success
    } else if c.success_needs_review.is_match(code) {
        Class::SuccessNeedsReview
    } else if c.pending.is_match(code) {
        Class::Pending
    } else if c.declined.is_match(code) {
        Class::Declined
    } else {
        Class::Rejected
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(Classifier::new().is_ok());
        assert!(CLASSIFIER.is_some());
    }

    #[test]
    fn codes_are_well_formed_unique_and_described() {
        let shape = Regex::new(r"^\d{3}\.\d{3}\.\d{3}$").unwrap();
        let mut seen = HashSet::new();
        for rc in ALL {
            assert!(shape.is_match(rc.code), "{}", rc.code);
            assert!(seen.insert(rc.code), "duplicate code {}", rc.code);
            assert!(!rc.description.is_empty(), "{}", rc.code);
        }
    }

    #[test]
    fn lookup_finds_every_constant() {
        for rc in ALL {
            assert_eq!(lookup(rc.code), Some(*rc));
        }
        assert_eq!(lookup("000.000.001"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn every_constant_classifies_as_its_meaning() {
        let expected = [
            (SUCCESS_LIVE, Class::Success),
            (SUCCESS_TEST, Class::Success),
            (DECLINED, Class::Declined),
            (INSUFFICIENT_FUNDS, Class::Declined),
            (ACCOUNT_CLOSED, Class::Declined),
            (MANDATE_DISCARDED, Class::Declined),
            (LOST_OR_STOLEN, Class::Declined),
            (REJECTED_BY_ISSUER, Class::Declined),
            (ACQUIRER_TIMEOUT, Class::Rejected),
            (PENDING, Class::Pending),
            (NOT_PROCESSED, Class::Rejected),
            (CAPTURE_EXCEEDS_AUTHORIZED, Class::Rejected),
            (REFUND_EXCEEDS_CAPTURED, Class::Rejected),
            (REVERSAL_NOT_ALLOWED, Class::Rejected),
            (INVALID_WORKFLOW, Class::Rejected),
            (REFERENCE_NOT_FOUND, Class::Rejected),
            (NO_CONNECTOR, Class::Rejected),
            (MIT_WITHOUT_CIT, Class::Rejected),
            (INVALID_CARD, Class::Rejected),
            (INVALID_EXPIRY, Class::Rejected),
            (CARD_EXPIRED, Class::Rejected),
            (INVALID_SECURITY_CODE, Class::Rejected),
            (INVALID_AMOUNT, Class::Rejected),
            (AMOUNT_TOO_LARGE, Class::Rejected),
            (INVALID_CURRENCY, Class::Rejected),
        ];
        assert_eq!(expected.len(), ALL.len(), "every constant has an expected class");
        for (rc, class) in expected {
            assert_eq!(classify(rc.code), class, "{} {}", rc.code, rc.description);
        }
    }

    #[test]
    fn success_picks_the_mode() {
        assert_eq!(success(true), SUCCESS_LIVE);
        assert_eq!(success(false), SUCCESS_TEST);
    }

    #[test]
    fn classifies_published_examples_of_each_group() {
        let cases = [
            ("000.000.100", Class::Success),
            ("000.300.000", Class::Success),
            ("000.600.000", Class::Success),
            ("000.400.110", Class::Success),
            ("000.400.000", Class::SuccessNeedsReview),
            ("000.400.010", Class::SuccessNeedsReview),
            ("000.400.100", Class::SuccessNeedsReview),
            ("000.200.000", Class::Pending),
            ("000.200.100", Class::Pending),
            ("800.400.500", Class::Pending),
            ("100.400.500", Class::Pending),
            ("800.100.151", Class::Declined),
            ("800.100.159", Class::Declined),
            ("800.700.100", Class::Declined),
            ("800.800.102", Class::Declined),
            ("300.100.100", Class::Declined),
            // 3-D Secure, communication, system, risk, blacklist and chargeback groups.
            ("000.400.030", Class::Rejected),
            ("000.400.101", Class::Rejected),
            ("000.400.200", Class::Rejected),
            ("900.100.400", Class::Rejected),
            ("999.999.999", Class::Rejected),
            ("800.110.100", Class::Rejected),
            ("800.200.159", Class::Rejected),
            ("800.121.100", Class::Rejected),
            ("000.100.200", Class::Rejected),
            // Unknown or malformed.
            ("", Class::Rejected),
            ("garbage", Class::Rejected),
            (" 000.000.000", Class::Rejected),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code), class, "{code:?}");
        }
    }
}
