//! The pure first phase of an initial payment: everything a request can be
//! refused for without asking a store, the vault or the acquirer, checked
//! here, so a refused request has no side effect (no token consumed, nothing
//! written). What comes out is a `ValidPayment` the later phases trust. A
//! SEPA direct debit (a raw bank account, or a registration named with a
//! mandate) is a DB in EUR with a valid mandate; a registration found to hold
//! an account is checked again once the vault names it (`account_rules`).
use common::bank::{BankAccount, BankAccountInput};
use common::card::{Card, CardInput};
use common::clock::Millis;
use common::field::FieldFault;
use common::money::{Currency, Money};

use crate::domain::error::PaymentError;
use crate::domain::payment::{Mandate, Payment, PaymentType, SiMode, SiSource, StandingInstruction};
use vault_api::token_id::{self, TokenRef};
use vault_api::{Instrument, TokenKind};

/// Where the card of a payment comes from, as the request names it.
pub enum Source {
    Card(Box<CardInput>),
    /// A single-use token.
    Token(String),
    Registration(String),
    Omni(String),
    /// A SEPA bank account (direct debit).
    Account(Box<BankAccountInput>),
    /// None named: the default registration of the request's customer.
    CustomerDefault,
}

/// A mandate as requested: its reference and date of signature.
#[derive(Debug, Clone, Default)]
pub struct MandateInput {
    pub id: String,
    pub date_of_signature: String,
}

/// An initial payment (PA or DB) as requested.
pub struct NewPayment {
    pub payment_type: PaymentType,
    pub amount: i64,
    pub currency: String,
    pub source: Source,
    pub create_registration: bool,
    pub create_omni_token: bool,
    pub customer_id: String,
    pub merchant_transaction_id: String,
    pub description: String,
    pub standing_instruction: Option<StandingInstruction>,
    /// Required over a bank account.
    pub mandate: Option<MandateInput>,
}

/// A source that passed validation: a raw card is parsed, a stored token's id
/// has its kind's shape.
pub enum ValidSource {
    Card(Box<Card>),
    SingleUse(String),
    Stored(TokenKind, String),
    Account(Box<BankAccount>),
    /// The default registration of the payment's customer, which the vault
    /// names before the payment is written (`Stored` from then on).
    CustomerDefault,
}

impl ValidSource {
    /// The token the payment is made over, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Self::Card(_) | Self::Account(_) | Self::CustomerDefault => None,
            Self::SingleUse(t) | Self::Stored(_, t) => Some(t),
        }
    }
}

/// An initial payment that may go ahead.
pub struct ValidPayment {
    pub payment_type: PaymentType,
    pub money: Money,
    pub source: ValidSource,
    /// The durable token to create once the payment is approved.
    pub tokenize: Option<TokenKind>,
    pub merchant_initiated: bool,
    /// The merchant's texts, checked: UTF-8 without control characters, at
    /// most 255 characters, no card number.
    pub customer_id: String,
    pub merchant_transaction_id: String,
    pub description: String,
    pub standing_instruction: Option<StandingInstruction>,
    pub mandate: Option<Mandate>,
}

/// What a SEPA direct debit must be: a DB, in EUR, with a mandate.
pub fn account_rules(payment_type: PaymentType, currency: &str, mandate: Option<&Mandate>) -> Result<(), PaymentError> {
    if payment_type != PaymentType::DB {
        return Err(PaymentError::InvalidArgument("a bank account is paid by PAYMENT_TYPE_DB (SEPA direct debit)"));
    }
    if currency != "EUR" {
        return Err(PaymentError::InvalidMoney(common::money::MoneyError::InvalidCurrency));
    }
    if mandate.is_none() {
        return Err(PaymentError::InvalidMandate("a SEPA direct debit needs a mandate{id, date_of_signature}"));
    }
    Ok(())
}

/// Whether the instrument a registration turned out to hold may pay
/// `payment`: an account by `account_rules`, a card without a mandate.
pub fn instrument_rules(payment: &Payment, instrument: &Instrument) -> Result<(), PaymentError> {
    match instrument {
        Instrument::Account(_) => account_rules(payment.payment_type, &payment.currency, payment.mandate.as_ref()),
        Instrument::Card(_) if payment.mandate.is_some() => {
            Err(PaymentError::InvalidArgument("a mandate applies only to a bank account"))
        }
        Instrument::Card(_) => Ok(()),
    }
}

/// Caller-supplied text of `field` (`common::field`'s rules).
pub fn check_text(value: &str, field: &'static str) -> Result<(), PaymentError> {
    common::field::check(value).map_err(|fault| match fault {
        FieldFault::Malformed => PaymentError::InvalidText(field),
        FieldFault::CardNumber => PaymentError::CardNumberInText(field),
    })
}

/// A durable token id of `kind` by the vault's own classification, or
/// `NotFound` (an id of another shape names nothing).
pub fn stored_token(kind: TokenKind, id: &str) -> Result<(), PaymentError> {
    let shaped = token_id::classify(id) == Some(TokenRef::Durable(kind));
    shaped.then_some(()).ok_or(PaymentError::Vault(vault_api::VaultError::NotFound))
}

/// Validates an initial payment at `now`.
pub fn payment(req: NewPayment, now: Millis) -> Result<ValidPayment, PaymentError> {
    if !matches!(req.payment_type, PaymentType::PA | PaymentType::DB) {
        return Err(PaymentError::InvalidArgument("payment_type must be PAYMENT_TYPE_PA or PAYMENT_TYPE_DB"));
    }
    let tokenize = match (req.create_registration, req.create_omni_token) {
        (true, true) => return Err(PaymentError::InvalidArgument("ask for a registration or an omni token, not both")),
        (true, false) => Some(TokenKind::Registration),
        (false, true) => Some(TokenKind::Omni),
        (false, false) => None,
    };
    // A zero-amount PA that stores the card is an account verification.
    let verification = req.payment_type == PaymentType::PA && tokenize.is_some();
    let money = Money::new(req.amount, Currency::parse(&req.currency)?, verification)?;
    check_text(&req.customer_id, "customer_id")?;
    check_text(&req.merchant_transaction_id, "merchant_transaction_id")?;
    check_text(&req.description, "description")?;
    if matches!(req.source, Source::CustomerDefault) && req.customer_id.is_empty() {
        return Err(PaymentError::InvalidArgument(
            "one of card, token, registration_id or omni_token is required, or a customer_id to pay with its default",
        ));
    }
    let stored = matches!(req.source, Source::Registration(_) | Source::Omni(_) | Source::CustomerDefault);
    let mandate = match &req.mandate {
        Some(m) => Some(Mandate::parse(&m.id, &m.date_of_signature, now).map_err(PaymentError::InvalidMandate)?),
        None => None,
    };
    match (&req.source, &mandate) {
        (Source::Account(_), _) => {
            account_rules(req.payment_type, money.currency.code(), mandate.as_ref())?;
            if tokenize == Some(TokenKind::Omni) {
                return Err(PaymentError::InvalidArgument("a bank account can be stored as a registration only"));
            }
        }
        (Source::Registration(_) | Source::CustomerDefault, Some(m)) => {
            account_rules(req.payment_type, money.currency.code(), Some(m))?
        }
        (_, Some(_)) => return Err(PaymentError::InvalidArgument("a mandate applies only to a bank account")),
        _ => {}
    }
    if tokenize.is_some() && stored {
        return Err(PaymentError::InvalidArgument("tokenizing needs a card or a single-use token as the source"));
    }
    let merchant_initiated = req.standing_instruction.as_ref().is_some_and(|si| si.source == SiSource::Mit);
    if let Some(si) = &req.standing_instruction {
        check_text(&si.initial_transaction_id, "standing_instruction.initial_transaction_id")?;
        if si.mode == SiMode::Initial && si.source == SiSource::Mit {
            return Err(PaymentError::InvalidArgument("an INITIAL standing instruction is cardholder-initiated"));
        }
        if si.source == SiSource::Mit && !stored {
            return Err(PaymentError::InvalidArgument("a merchant-initiated payment needs a stored token"));
        }
    }
    let source = match req.source {
        Source::Card(input) => ValidSource::Card(Box::new(Card::validate(&input, now)?)),
        Source::Token(t) => ValidSource::SingleUse(t),
        Source::Registration(id) => {
            stored_token(TokenKind::Registration, &id)?;
            ValidSource::Stored(TokenKind::Registration, id)
        }
        Source::Omni(id) => {
            stored_token(TokenKind::Omni, &id)?;
            ValidSource::Stored(TokenKind::Omni, id)
        }
        Source::Account(input) => ValidSource::Account(Box::new(BankAccount::validate(&input)?)),
        Source::CustomerDefault => ValidSource::CustomerDefault,
    };
    Ok(ValidPayment {
        payment_type: req.payment_type,
        money,
        source,
        tokenize,
        merchant_initiated,
        customer_id: req.customer_id,
        merchant_transaction_id: req.merchant_transaction_id,
        description: req.description,
        standing_instruction: req.standing_instruction,
        mandate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::SiType;

    fn request(source: Source) -> NewPayment {
        NewPayment {
            payment_type: PaymentType::DB,
            amount: 1000,
            currency: "EUR".into(),
            source,
            create_registration: false,
            create_omni_token: false,
            customer_id: String::new(),
            merchant_transaction_id: String::new(),
            description: String::new(),
            standing_instruction: None,
            mandate: None,
        }
    }

    fn account() -> Source {
        Source::Account(Box::new(BankAccountInput::new("DE89 3704 0044 0532 0130 00", "", "Jane Doe", "")))
    }

    fn mandate() -> Option<MandateInput> {
        Some(MandateInput { id: "MNDT-1".into(), date_of_signature: "2020-01-31".into() })
    }

    #[test]
    fn a_direct_debit_is_a_db_in_eur_with_a_mandate() {
        let now = 1_796_256_000_000;
        let ok = payment(NewPayment { mandate: mandate(), ..request(account()) }, now);
        assert!(matches!(ok.map(|v| v.source), Ok(ValidSource::Account(_))));
        let refuse = |req: NewPayment| match payment(req, now) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert!(matches!(refuse(request(account())), PaymentError::InvalidMandate(_)));
        let bad_date = Some(MandateInput { id: "MNDT-1".into(), date_of_signature: "31/01/2020".into() });
        assert!(matches!(
            refuse(NewPayment { mandate: bad_date, ..request(account()) }),
            PaymentError::InvalidMandate(_)
        ));
        assert!(matches!(
            refuse(NewPayment { payment_type: PaymentType::PA, mandate: mandate(), ..request(account()) }),
            PaymentError::InvalidArgument(_)
        ));
        assert!(matches!(
            refuse(NewPayment { currency: "USD".into(), mandate: mandate(), ..request(account()) }),
            PaymentError::InvalidMoney(_)
        ));
        assert!(matches!(
            refuse(NewPayment { create_omni_token: true, mandate: mandate(), ..request(account()) }),
            PaymentError::InvalidArgument(_)
        ));
        let bad_iban =
            Source::Account(Box::new(BankAccountInput::new("DE00 3704 0044 0532 0130 00", "", "Jane Doe", "")));
        assert!(matches!(
            refuse(NewPayment { mandate: mandate(), ..request(bad_iban) }),
            PaymentError::InvalidAccount(common::bank::AccountError::Iban(_))
        ));
        let token = Source::Token("tokn_test_abcdefghijklmnopqrstuvwx".into());
        assert!(matches!(
            refuse(NewPayment { mandate: mandate(), ..request(token) }),
            PaymentError::InvalidArgument(_)
        ));
    }

    fn refused(req: NewPayment) -> PaymentError {
        match payment(req, 0) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn refuses_before_any_side_effect() {
        let token = || Source::Token("tokn_test_abcdefghijklmnopqrstuvwx".into());
        assert!(matches!(
            refused(NewPayment { payment_type: PaymentType::CP, ..request(token()) }),
            PaymentError::InvalidArgument(_)
        ));
        assert!(matches!(refused(NewPayment { amount: 0, ..request(token()) }), PaymentError::InvalidMoney(_)));
        // Zero is an account verification only on a PA that stores the card.
        assert!(matches!(
            refused(NewPayment { amount: 0, create_registration: true, ..request(token()) }),
            PaymentError::InvalidMoney(_)
        ));
        assert!(matches!(
            refused(NewPayment { payment_type: PaymentType::PA, amount: 0, ..request(token()) }),
            PaymentError::InvalidMoney(_)
        ));
        assert!(matches!(refused(request(Source::CustomerDefault)), PaymentError::InvalidArgument(_)));
        assert!(matches!(
            refused(NewPayment {
                customer_id: "cus_1".into(),
                create_omni_token: true,
                ..request(Source::CustomerDefault)
            }),
            PaymentError::InvalidArgument(_)
        ));
        assert!(matches!(
            refused(NewPayment { description: "4242424242424242".into(), ..request(token()) }),
            PaymentError::CardNumberInText("description")
        ));
        for nul in ["a\0b", "tab\there", "line\nbreak"] {
            assert!(matches!(
                refused(NewPayment { description: nul.into(), ..request(token()) }),
                PaymentError::InvalidText("description")
            ));
            assert!(matches!(
                refused(NewPayment { customer_id: nul.into(), ..request(token()) }),
                PaymentError::InvalidText("customer_id")
            ));
        }
        assert!(matches!(
            refused(NewPayment { create_registration: true, create_omni_token: true, ..request(token()) }),
            PaymentError::InvalidArgument(_)
        ));
        let mit = StandingInstruction {
            mode: SiMode::Repeated,
            kind: SiType::Recurring,
            source: SiSource::Mit,
            initial_transaction_id: String::new(),
        };
        assert!(matches!(
            refused(NewPayment { standing_instruction: Some(mit), ..request(token()) }),
            PaymentError::InvalidArgument(_)
        ));
        assert!(matches!(
            refused(request(Source::Registration("not-a-registration".into()))),
            PaymentError::Vault(vault_api::VaultError::NotFound)
        ));
    }

    #[test]
    fn a_valid_request_names_what_to_tokenize() {
        let valid = payment(
            NewPayment {
                create_omni_token: true,
                ..request(Source::Token("tokn_test_abcdefghijklmnopqrstuvwx".into()))
            },
            0,
        )
        .unwrap_or_else(|_| panic!("refused"));
        assert_eq!(valid.tokenize, Some(TokenKind::Omni));
        assert_eq!(valid.source.token(), Some("tokn_test_abcdefghijklmnopqrstuvwx"));
        assert_eq!(valid.money.amount, 1000);
        let verification = payment(
            NewPayment {
                payment_type: PaymentType::PA,
                amount: 0,
                create_registration: true,
                ..request(Source::Token("tokn_test_abcdefghijklmnopqrstuvwx".into()))
            },
            0,
        )
        .unwrap_or_else(|_| panic!("refused"));
        assert_eq!((verification.money.amount, verification.tokenize), (0, Some(TokenKind::Registration)));
        let by_customer = payment(NewPayment { customer_id: "cus_1".into(), ..request(Source::CustomerDefault) }, 0)
            .unwrap_or_else(|_| panic!("refused"));
        assert!(matches!(by_customer.source, ValidSource::CustomerDefault));
    }
}
