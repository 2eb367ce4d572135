//! The built-in acquirer for test-mode merchants: deterministic by card number and
//! amount (DESIGN §3), so every outcome, including both kinds of acquirer timeout,
//! can be produced on demand, and an inquiry answers what execution decided
//! without remembering anything (so it holds across restarts and replicas).
//!
//! - Amount whose minor units end in `99`: processed, but the answer never comes
//!   (`execute` never returns; the payments service's timeout turns that into
//!   `TimedOut`). An inquiry answers what was decided (approved, or the card's decline).
//! - Amount ending in `98`: never answers and never processed. An inquiry answers
//!   `NotProcessed`.
//! - Cards (Authorize, Debit, AccountVerification): `4000000000000002` generic decline,
//!   `4111111111140011` insufficient funds, `4111111111130012` lost or stolen,
//!   `4111111111110014` rejected by the issuer; every other valid card approves
//!   (e.g. 4242424242424242, 4111111111111111, 5555555555554444, 4012888888881881).
//!   An inquiry knows the card by its BIN and last four, which tell these apart.
//! - Bank accounts (SEPA direct debit), by IBAN: `DE62370400440532013001`
//!   account closed (800.100.202), `DE35370400440532013002` insufficient funds
//!   (800.100.203), `DE08370400440532013003` mandate discarded (800.100.205);
//!   every other valid IBAN approves (e.g. DE89370400440532013000,
//!   GB82WEST12345698765432, FR1420041010050500013M02606, NL91ABNA0417164300).
//!   An inquiry knows the account by its country, bank code and last four.
//! - Capture, Reverse, Refund: approve when they carry the original reference.
//!
//! Approvals carry `success(false)` (test-mode success) and the reference `ref_<payment id>`.
use common::bank::{Iban, MaskedAccount};
use common::result_code::{self, ResultCode};

use crate::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Inquiry, Operation};

/// Test card numbers that decline, and how.
const DECLINING_CARDS: [(&str, ResultCode); 4] = [
    ("4000000000000002", result_code::DECLINED),
    ("4111111111140011", result_code::INSUFFICIENT_FUNDS),
    ("4111111111130012", result_code::LOST_OR_STOLEN),
    ("4111111111110014", result_code::REJECTED_BY_ISSUER),
];

/// Test IBANs that decline, and how.
const DECLINING_ACCOUNTS: [(&str, ResultCode); 3] = [
    ("DE62370400440532013001", result_code::ACCOUNT_CLOSED),
    ("DE35370400440532013002", result_code::INSUFFICIENT_FUNDS),
    ("DE08370400440532013003", result_code::MANDATE_DISCARDED),
];

/// The declining account a masked one names, if any.
fn declining_account(known: &MaskedAccount) -> Option<ResultCode> {
    DECLINING_ACCOUNTS.iter().find_map(|(iban, result)| {
        let iban = Iban::parse(iban).ok()?;
        let same = iban.country() == known.country
            && iban.bank_code().unwrap_or_default() == known.bank_code
            && iban.last4() == known.last4;
        same.then_some(*result)
    })
}

/// The minor-unit ending of a request processed whose answer is lost.
const TIMEOUT_PROCESSED_CENTS: i64 = 99;
/// The minor-unit ending of a request lost before the acquirer processed it.
const TIMEOUT_NOT_PROCESSED_CENTS: i64 = 98;

#[derive(Debug, Default, Clone)]
pub struct TestAcquirer;

/// What a request carries that the decision depends on.
enum CardKnown<'a> {
    Number(&'a str),
    Masked {
        bin: &'a str,
        last4: &'a str,
    },
    /// A bank account, by what decides it: the declining test IBAN it is, if any.
    Account(Option<ResultCode>),
    Missing,
}

impl TestAcquirer {
    fn decide(
        operation: Operation,
        card: CardKnown<'_>,
        original_reference: Option<&str>,
        id: &str,
    ) -> AcquirerOutcome {
        let refusal = match operation {
            Operation::Authorize | Operation::Debit | Operation::AccountVerification => match card {
                CardKnown::Number(number) => {
                    DECLINING_CARDS.iter().find(|(n, _)| *n == number).map(|(_, result)| *result)
                }
                CardKnown::Masked { bin, last4 } => DECLINING_CARDS
                    .iter()
                    .find(|(n, _)| n.starts_with(bin) && n.ends_with(last4))
                    .map(|(_, result)| *result),
                CardKnown::Account(refusal) => refusal,
                // The service always sends the card for these operations.
                CardKnown::Missing => Some(result_code::INVALID_CARD),
            },
            Operation::Capture | Operation::Reverse | Operation::Refund => match original_reference {
                Some(_) => None,
                None => Some(result_code::REFERENCE_NOT_FOUND),
            },
        };
        match refusal {
            Some(result) => AcquirerOutcome::Declined { result },
            None => AcquirerOutcome::Approved { result: result_code::success(false), reference: format!("ref_{id}") },
        }
    }
}

impl Acquirer for TestAcquirer {
    async fn execute(&self, request: AcquirerRequest<'_>) -> AcquirerOutcome {
        if matches!(request.money.amount % 100, TIMEOUT_PROCESSED_CENTS | TIMEOUT_NOT_PROCESSED_CENTS) {
            return std::future::pending().await;
        }
        let card = match (request.card, request.account) {
            (Some(c), _) => CardKnown::Number(c.number.expose()),
            (None, Some(a)) => CardKnown::Account(
                DECLINING_ACCOUNTS.iter().find(|(iban, _)| *iban == a.iban.expose()).map(|(_, result)| *result),
            ),
            (None, None) => CardKnown::Missing,
        };
        Self::decide(request.operation, card, request.original_reference, request.payment_id)
    }

    async fn inquire(&self, inquiry: Inquiry<'_>) -> AcquirerOutcome {
        if inquiry.money.amount % 100 == TIMEOUT_NOT_PROCESSED_CENTS {
            return AcquirerOutcome::NotProcessed;
        }
        let card = match (inquiry.card, inquiry.account) {
            (Some(c), _) => CardKnown::Masked { bin: &c.bin, last4: &c.last4 },
            (None, Some(a)) => CardKnown::Account(declining_account(a)),
            (None, None) => CardKnown::Missing,
        };
        Self::decide(inquiry.operation, card, inquiry.original_reference, inquiry.payment_id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::card::{Billing, Card, CardNumber, Expiry};
    use common::money::{Currency, Money};

    use super::*;
    use crate::domain::payment::MaskedCard;

    const APPROVING_CARDS: [&str; 5] =
        ["4242424242424242", "4111111111111111", "5555555555554444", "4012888888881881", "378282246310005"];

    fn card(number: &str) -> Card {
        Card {
            number: CardNumber::parse(number).unwrap(),
            expiry: Expiry { month: 12, year: 2099 },
            name: "Test Holder".to_owned(),
            security_code: None,
            billing: Billing::default(),
        }
    }

    fn money(amount: i64, code: &str) -> Money {
        Money::new(amount, Currency::parse(code).unwrap(), true).unwrap()
    }

    fn card_request<'a>(operation: Operation, card: &'a Card, money: Money) -> AcquirerRequest<'a> {
        AcquirerRequest {
            payment_id: "pay_1",
            operation,
            money,
            card: Some(card),
            account: None,
            mandate: None,
            original_reference: None,
            merchant_initiated: false,
        }
    }

    fn follow_up(operation: Operation, money: Money) -> AcquirerRequest<'static> {
        AcquirerRequest {
            payment_id: "pay_2",
            operation,
            money,
            card: None,
            account: None,
            mandate: None,
            original_reference: Some("ref_pay_1"),
            merchant_initiated: false,
        }
    }

    async fn run(request: AcquirerRequest<'_>) -> Option<AcquirerOutcome> {
        tokio::time::timeout(Duration::from_millis(50), TestAcquirer.execute(request)).await.ok()
    }

    fn approved(payment_id: &str) -> AcquirerOutcome {
        AcquirerOutcome::Approved { result: result_code::SUCCESS_TEST, reference: format!("ref_{payment_id}") }
    }

    #[test]
    fn every_test_card_passes_validation() {
        for number in APPROVING_CARDS.iter().chain(DECLINING_CARDS.iter().map(|(n, _)| n)) {
            assert!(CardNumber::parse(number).is_ok(), "{number} should be a valid card number");
        }
    }

    #[tokio::test]
    async fn approving_cards_approve_with_test_success() {
        for number in APPROVING_CARDS {
            let card = card(number);
            for op in [Operation::Authorize, Operation::Debit] {
                assert_eq!(run(card_request(op, &card, money(1000, "EUR"))).await, Some(approved("pay_1")), "{number}");
            }
        }
    }

    #[tokio::test]
    async fn declining_cards_decline_with_their_code() {
        for (number, result) in DECLINING_CARDS {
            let card = card(number);
            for op in [Operation::Authorize, Operation::Debit] {
                let outcome = run(card_request(op, &card, money(1000, "EUR"))).await;
                assert_eq!(outcome, Some(AcquirerOutcome::Declined { result }), "{number} {op:?}");
            }
        }
        assert_eq!(
            run(card_request(Operation::Debit, &card("4000000000000002"), money(1000, "EUR"))).await,
            Some(AcquirerOutcome::Declined { result: result_code::DECLINED })
        );
    }

    #[tokio::test]
    async fn account_verification_follows_the_card() {
        let ok = card("4242424242424242");
        assert_eq!(
            run(card_request(Operation::AccountVerification, &ok, money(0, "EUR"))).await,
            Some(approved("pay_1"))
        );
        for (number, result) in DECLINING_CARDS {
            let card = card(number);
            let outcome = run(card_request(Operation::AccountVerification, &card, money(0, "EUR"))).await;
            assert_eq!(outcome, Some(AcquirerOutcome::Declined { result }), "{number}");
        }
    }

    // Paused time: the 50 ms timeouts elapse instantly once the runtime is idle.
    #[tokio::test(start_paused = true)]
    async fn amounts_ending_in_99_or_98_never_answer() {
        let ok = card("4242424242424242");
        let declining = card("4000000000000002");
        for amount in [99, 1099, 123_499] {
            for op in [Operation::Authorize, Operation::Debit] {
                assert_eq!(run(card_request(op, &ok, money(amount, "EUR"))).await, None, "{amount} {op:?}");
                assert_eq!(run(card_request(op, &declining, money(amount, "EUR"))).await, None, "{amount} {op:?}");
            }
            for op in [Operation::Capture, Operation::Reverse, Operation::Refund] {
                assert_eq!(run(follow_up(op, money(amount, "EUR"))).await, None, "{amount} {op:?}");
            }
        }
        // The rule is on the minor unit, whatever the exponent.
        assert_eq!(run(card_request(Operation::Debit, &ok, money(199, "JPY"))).await, None);
        assert_eq!(run(card_request(Operation::Debit, &ok, money(98, "EUR"))).await, None);
        // Amounts near them answer.
        for amount in [97, 100, 990, 9900] {
            assert_eq!(run(card_request(Operation::Debit, &ok, money(amount, "EUR"))).await, Some(approved("pay_1")));
        }
    }

    #[tokio::test]
    async fn accounts_decide_by_iban_and_an_inquiry_agrees() {
        let approving = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"];
        let declining = DECLINING_ACCOUNTS.iter().map(|(iban, result)| (*iban, Some(*result)));
        for (iban, refusal) in approving.into_iter().map(|i| (i, None)).chain(declining) {
            let input = common::bank::BankAccountInput::new(iban, "", "Jane Doe", "");
            let account = common::bank::BankAccount::validate(&input).unwrap();
            let request = AcquirerRequest {
                payment_id: "pay_1",
                operation: Operation::Debit,
                money: money(1000, "EUR"),
                card: None,
                account: Some(&account),
                mandate: None,
                original_reference: None,
                merchant_initiated: false,
            };
            let expected = match refusal {
                Some(result) => AcquirerOutcome::Declined { result },
                None => approved("pay_1"),
            };
            assert_eq!(run(request).await, Some(expected.clone()), "{iban}");
            let masked = account.masked();
            let inquiry = Inquiry {
                payment_id: "pay_1",
                operation: Operation::Debit,
                money: money(1000, "EUR"),
                card: None,
                account: Some(&masked),
                mandate: None,
                original_reference: None,
                merchant_initiated: false,
            };
            assert_eq!(TestAcquirer.inquire(inquiry).await, expected, "{iban}");
        }
    }

    #[tokio::test]
    async fn capture_reverse_refund_approve_with_a_reference() {
        for op in [Operation::Capture, Operation::Reverse, Operation::Refund] {
            assert_eq!(run(follow_up(op, money(500, "EUR"))).await, Some(approved("pay_2")), "{op:?}");
        }
    }

    #[tokio::test]
    async fn missing_inputs_are_refused_not_approved() {
        let no_card = AcquirerRequest {
            payment_id: "pay_3",
            operation: Operation::Debit,
            money: money(1000, "EUR"),
            card: None,
            account: None,
            mandate: None,
            original_reference: None,
            merchant_initiated: false,
        };
        assert_eq!(run(no_card).await, Some(AcquirerOutcome::Declined { result: result_code::INVALID_CARD }));
        let no_reference = AcquirerRequest {
            payment_id: "pay_4",
            operation: Operation::Capture,
            money: money(1000, "EUR"),
            card: None,
            account: None,
            mandate: None,
            original_reference: None,
            merchant_initiated: true,
        };
        assert_eq!(
            run(no_reference).await,
            Some(AcquirerOutcome::Declined { result: result_code::REFERENCE_NOT_FOUND })
        );
    }

    fn inquiry<'a>(operation: Operation, card: Option<&'a MaskedCard>, amount: i64) -> Inquiry<'a> {
        Inquiry {
            payment_id: "pay_1",
            operation,
            money: money(amount, "EUR"),
            card,
            account: None,
            mandate: None,
            original_reference: card.is_none().then_some("ref_pay_0"),
            merchant_initiated: false,
        }
    }

    #[tokio::test]
    async fn an_inquiry_answers_what_execution_decided() {
        for number in APPROVING_CARDS.iter().chain(DECLINING_CARDS.iter().map(|(n, _)| n)) {
            let card = card(number);
            let masked = MaskedCard::of(&card);
            for amount in [1000, 1099] {
                let executed = run(card_request(Operation::Debit, &card, money(1000, "EUR"))).await;
                let inquired = TestAcquirer.inquire(inquiry(Operation::Debit, Some(&masked), amount)).await;
                assert_eq!(Some(inquired), executed, "{amount}");
            }
            let never = TestAcquirer.inquire(inquiry(Operation::Debit, Some(&masked), 1098)).await;
            assert_eq!(never, AcquirerOutcome::NotProcessed);
        }
        for op in [Operation::Capture, Operation::Reverse, Operation::Refund] {
            assert_eq!(TestAcquirer.inquire(inquiry(op, None, 199)).await, approved("pay_1"), "{op:?}");
            assert_eq!(TestAcquirer.inquire(inquiry(op, None, 198)).await, AcquirerOutcome::NotProcessed, "{op:?}");
        }
    }
}
