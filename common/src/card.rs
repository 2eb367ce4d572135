//! Card data as a type: a `CardNumber` is parsed once (digits, then the
//! network table: brand, length per network, Luhn where the network requires
//! it) and never prints in full; a `SecurityCode` never prints at all.
//! Validation failures carry the public error reason they map to. The table
//! (`networks`) also drives the card-number detector (`pan`), re-exported here.
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::clock::{Millis, year_month};
use crate::field::FieldFault;
use crate::reason::Reason;

mod networks;
mod pan;

pub use pan::{contains_pan, find_pans, loggable, naive_pans};

/// Why card data was refused; each maps to its own public error reason, and
/// names the field it is about (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("the card number is invalid")]
    InvalidNumber,
    #[error("the card brand is not supported")]
    UnsupportedBrand,
    #[error("the expiration date is invalid or in the past")]
    InvalidExpiration,
    #[error("the security code is invalid for this card brand")]
    InvalidSecurityCode,
    #[error("the cardholder name is missing or invalid")]
    InvalidName,
    /// A billing field over `field::MAX_CHARS` characters or with a control character.
    #[error("{0} is over 255 characters or holds a control character")]
    InvalidBilling(CardField),
    /// A billing country that is not an ISO 3166-1 alpha-2 code.
    #[error("card.country is not an ISO 3166-1 alpha-2 country code")]
    InvalidCountry,
    /// A card number in the cardholder name or a billing field (never echoed).
    #[error("{0} holds a card number; card data goes only in card.number")]
    NumberInText(CardField),
}

impl CardError {
    /// The `google.rpc.ErrorInfo` reason.
    pub fn reason(self) -> Reason {
        match self {
            Self::InvalidNumber | Self::UnsupportedBrand => Reason::InvalidCard,
            Self::InvalidExpiration => Reason::InvalidExpirationDate,
            Self::InvalidSecurityCode => Reason::InvalidSecurityCode,
            Self::InvalidName => Reason::InvalidName,
            Self::InvalidBilling(_) => Reason::InvalidBillingAddress,
            Self::InvalidCountry => Reason::InvalidCountry,
            Self::NumberInText(_) => Reason::CardNumberInText,
        }
    }

    /// The request field at fault, as a `BadRequest` field violation names it
    /// (`None` for the expiry, which is two fields read together).
    pub fn field(self) -> Option<CardField> {
        match self {
            Self::InvalidNumber | Self::UnsupportedBrand => Some(CardField::Number),
            Self::InvalidExpiration => None,
            Self::InvalidSecurityCode => Some(CardField::SecurityCode),
            Self::InvalidName => Some(CardField::Name),
            Self::InvalidCountry => Some(CardField::Country),
            Self::InvalidBilling(field) | Self::NumberInText(field) => Some(field),
        }
    }
}

/// A field of the API's `Card` message, named as the request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardField {
    Number,
    SecurityCode,
    Name,
    City,
    Country,
    PostalCode,
    State,
    Street1,
    Street2,
    PhoneNumber,
}

impl CardField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "card.number",
            Self::SecurityCode => "card.security_code",
            Self::Name => "card.name",
            Self::City => "card.city",
            Self::Country => "card.country",
            Self::PostalCode => "card.postal_code",
            Self::State => "card.state",
            Self::Street1 => "card.street1",
            Self::Street2 => "card.street2",
            Self::PhoneNumber => "card.phone_number",
        }
    }
}

impl fmt::Display for CardField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A card network, named as in the API (`visa`, `mastercard`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    Unionpay,
    Maestro,
    Mir,
    Elo,
    Hipercard,
    Rupay,
}

impl Brand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Jcb => "jcb",
            Self::Diners => "diners",
            Self::Unionpay => "unionpay",
            Self::Maestro => "maestro",
            Self::Mir => "mir",
            Self::Elo => "elo",
            Self::Hipercard => "hipercard",
            Self::Rupay => "rupay",
        }
    }

    /// The network whose published range is the longest prefix of `digits`
    /// (Discover's 622126–622925 over UnionPay's 62, Elo's 401178 over Visa's 4).
    pub fn detect(digits: &str) -> Option<Self> {
        networks::lookup(digits.as_bytes()).map(|n| n.brand)
    }

    fn network(self) -> Option<&'static networks::Network> {
        networks::NETWORKS.iter().find(|n| n.brand == self)
    }

    /// Whether the network issues numbers of `len` digits.
    pub fn valid_length(self, len: usize) -> bool {
        self.network().is_some_and(|n| n.lengths.contains(len))
    }

    /// Whether the network's numbers end in a Luhn check digit (UnionPay's need not).
    pub fn requires_luhn(self) -> bool {
        self.network().is_none_or(|n| n.luhn)
    }

    pub fn security_code_len(self) -> usize {
        if self == Self::Amex { 4 } else { 3 }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True when the digit string passes the Luhn (mod 10) check.
pub fn luhn_valid(digits: &str) -> bool {
    networks::luhn(digits.as_bytes())
}

/// A validated primary account number. Zeroized on drop; `Debug` and `Display`
/// show only the BIN and the last four digits.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardNumber(String);

impl CardNumber {
    /// Parses a number given with optional spaces or dashes: 12–19 digits that
    /// the network table accepts (range, length, Luhn where required). A
    /// Luhn-valid number in no network's range is an unsupported brand.
    pub fn parse(input: &str) -> Result<Self, CardError> {
        let digits: Zeroizing<String> = Zeroizing::new(input.chars().filter(|c| !matches!(c, ' ' | '-')).collect());
        if !(12..=19).contains(&digits.len()) {
            return Err(CardError::InvalidNumber);
        }
        match networks::check(digits.as_bytes()) {
            networks::Verdict::Card(_) => Ok(Self(digits.as_str().to_owned())),
            networks::Verdict::NoNetwork => Err(CardError::UnsupportedBrand),
            networks::Verdict::Invalid => Err(CardError::InvalidNumber),
        }
    }

    /// The digits in clear: only for the vault's encryption and the acquirer call.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn brand(&self) -> Brand {
        // Parsing guarantees a brand.
        Brand::detect(&self.0).unwrap_or(Brand::Visa)
    }

    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// `424242******4242`.
    pub fn masked(&self) -> String {
        format!("{}{}{}", self.bin(), "*".repeat(self.0.len() - 10), self.last4())
    }
}

impl TryFrom<String> for CardNumber {
    type Error = CardError;
    fn try_from(mut s: String) -> Result<Self, CardError> {
        let parsed = Self::parse(&s);
        s.zeroize();
        parsed
    }
}

impl From<CardNumber> for String {
    fn from(n: CardNumber) -> String {
        n.0.clone()
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A card security code (CVV/CVC/CID). Never printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct SecurityCode(String);

impl SecurityCode {
    pub fn parse(input: &str, brand: Brand) -> Result<Self, CardError> {
        if input.len() == brand.security_code_len() && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(CardError::InvalidSecurityCode)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityCode(***)")
    }
}

/// Card expiry: the card is valid through the last day of this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub month: u8,
    pub year: u16,
}

/// How far in the future an expiry may lie before it is considered a typo.
const MAX_EXPIRY_YEARS_AHEAD: i32 = 20;

impl Expiry {
    /// Accepts two- and four-digit years; refuses past months and years more than
    /// twenty years ahead.
    pub fn parse(month: i32, year: i32, now: Millis) -> Result<Self, CardError> {
        let year = match year {
            0..=99 => 2000 + year,
            1000..=9999 => year,
            _ => return Err(CardError::InvalidExpiration),
        };
        if !(1..=12).contains(&month) {
            return Err(CardError::InvalidExpiration);
        }
        let (now_year, now_month) = year_month(now);
        let expired = (year, month) < (now_year, i32::from(now_month));
        if expired || year > now_year + MAX_EXPIRY_YEARS_AHEAD {
            return Err(CardError::InvalidExpiration);
        }
        Ok(Self { month: month as u8, year: year as u16 })
    }
}

/// Billing details (Omise's set); all optional. Each is free text under
/// `common::field`'s rules, except `country`: an ISO 3166-1 alpha-2 code from
/// the standard's list (any case given, kept upper-case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Billing {
    pub city: String,
    pub country: String,
    pub postal_code: String,
    pub state: String,
    pub street1: String,
    pub street2: String,
    pub phone_number: String,
}

impl Billing {
    /// Each field with the name the API gives it.
    pub fn fields(&self) -> [(CardField, &str); 7] {
        [
            (CardField::City, &self.city),
            (CardField::Country, &self.country),
            (CardField::PostalCode, &self.postal_code),
            (CardField::State, &self.state),
            (CardField::Street1, &self.street1),
            (CardField::Street2, &self.street2),
            (CardField::PhoneNumber, &self.phone_number),
        ]
    }

    /// Checks every field; the country comes back upper-case. A malformed
    /// field is refused before a card number in any field, as for the name.
    pub fn validate(&self) -> Result<Self, CardError> {
        let fault = |value: &str| crate::field::check(value).err();
        if let Some((field, _)) = self.fields().into_iter().find(|(_, v)| fault(v) == Some(FieldFault::Malformed)) {
            return Err(CardError::InvalidBilling(field));
        }
        if let Some((field, _)) = self.fields().into_iter().find(|(_, v)| fault(v).is_some()) {
            return Err(CardError::NumberInText(field));
        }
        let mut billing = self.clone();
        billing.country.make_ascii_uppercase();
        if !billing.country.is_empty() && rust_iso3166::from_alpha2(&billing.country).is_none() {
            return Err(CardError::InvalidCountry);
        }
        Ok(billing)
    }
}

/// Card data as it arrives from a client, before validation.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct CardInput {
    pub number: String,
    pub expiration_month: i32,
    pub expiration_year: i32,
    pub name: String,
    pub security_code: String,
    pub billing: Billing,
}

impl fmt::Debug for CardInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardInput(redacted)")
    }
}

/// A card that passed validation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub name: String,
    pub security_code: Option<SecurityCode>,
    pub billing: Billing,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card").field("number", &self.number).field("expiry", &self.expiry).finish_non_exhaustive()
    }
}

impl Card {
    /// Validates every field; the first failure decides the reason.
    pub fn validate(input: &CardInput, now: Millis) -> Result<Self, CardError> {
        let number = CardNumber::parse(&input.number)?;
        let expiry = Expiry::parse(input.expiration_month, input.expiration_year, now)?;
        let security_code = match input.security_code.as_str() {
            "" => None,
            code => Some(SecurityCode::parse(code, number.brand())?),
        };
        let name = input.name.trim();
        match crate::field::check(name) {
            _ if name.is_empty() => return Err(CardError::InvalidName),
            Err(FieldFault::Malformed) => return Err(CardError::InvalidName),
            Err(FieldFault::CardNumber) => return Err(CardError::NumberInText(CardField::Name)),
            Ok(()) => {}
        }
        let billing = input.billing.validate()?;
        Ok(Self { number, expiry, name: name.to_owned(), security_code, billing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn card(number: &str, name: &str, security_code: &str) -> Result<Card, CardError> {
        let input = CardInput {
            number: number.into(),
            expiration_month: 12,
            expiration_year: 40,
            name: name.into(),
            security_code: security_code.into(),
            billing: Billing::default(),
        };
        Card::validate(&input, SystemClock.now_ms())
    }

    /// Numbers and the brand the network table gives them: the test cards
    /// (which keep their brands), and published ranges and lengths.
    const BRANDS: &str = "
        4242424242424242 visa      4222222222222 visa         4111111111111111 visa
        4012888888881881 visa      4000000000000002 visa      4242424242424242428 visa
        5555555555554444 mastercard                           2223003122003222 mastercard
        378282246310005 amex       6011111111111117 discover  6221260000000000 discover
        6221260000000000001 discover                          3530111333300000 jcb
        3530111333300000001 jcb    30569309025904 diners      36227206271667 diners
        6759649826438453 maestro   501800000009 maestro       6400000000000003 maestro
        67590000000000005 maestro  2204000000000000 mir       6362970000457013 elo
        4011780000000006 elo       6500310000000005 elo       6062825624254001 hipercard
        3841000000000000004 hipercard                         6521000000000007 rupay
        5085000000000007 rupay     8200000000000001 rupay
        6200000000000005 unionpay  6200000000000001 unionpay  62000000000001 unionpay
        8100000000000000 unionpay";

    #[test]
    fn brands_follow_the_network_table() {
        let words: Vec<&str> = BRANDS.split_whitespace().collect();
        for pair in words.chunks(2) {
            let (n, brand) = (pair[0], pair[1]);
            assert_eq!(Brand::detect(n).map(Brand::as_str), Some(brand), "{n}");
            // UnionPay among them: 14–19 digits, no Luhn digit required.
            let parsed = CardNumber::parse(n).map(|c| c.brand());
            assert_eq!(parsed.map(Brand::as_str), Ok(brand), "{n}");
            let serialized = serde_json::to_value(parsed.unwrap()).unwrap();
            assert_eq!(serialized, brand, "{brand}");
        }
        assert_eq!(Brand::detect("9999999999999995"), None);
        assert!(!Brand::Unionpay.requires_luhn() && Brand::Mir.requires_luhn());
        assert!(Brand::Diners.valid_length(14) && !Brand::Amex.valid_length(16));
        // In a network's range but of a length it does not issue.
        assert_eq!(CardNumber::parse("6200000000001"), Err(CardError::InvalidNumber));
        assert_eq!(CardNumber::parse("6362970000000000004"), Err(CardError::InvalidNumber));
    }

    #[test]
    fn numbers_are_checked_for_luhn_length_and_brand() {
        assert!(CardNumber::parse("4242 4242 4242 4242").is_ok());
        assert!(CardNumber::parse("4242-4242-4242-4242").is_ok());
        assert_eq!(CardNumber::parse("4242424242424241"), Err(CardError::InvalidNumber));
        assert_eq!(CardNumber::parse("42424242424242a2"), Err(CardError::InvalidNumber));
        assert_eq!(CardNumber::parse(""), Err(CardError::InvalidNumber));
        // Luhn-valid but a Mastercard of 19 digits.
        assert_eq!(CardNumber::parse("5555555555554444000"), Err(CardError::InvalidNumber));
        assert_eq!(CardNumber::parse("9999999999999995"), Err(CardError::UnsupportedBrand));
    }

    #[test]
    fn a_card_number_never_prints_in_full() {
        let n = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(format!("{n}"), "424242******4242");
        assert_eq!(format!("{n:?}"), "CardNumber(424242******4242)");
        let code = SecurityCode::parse("123", Brand::Visa).unwrap();
        assert!(!format!("{code:?}").contains("123"));
        let dbg = format!("{:?}", card("4242424242424242", "Jane Doe", "123").unwrap());
        assert!(!dbg.contains("4242424242424242") && !dbg.contains("123"), "{dbg}");
    }

    #[test]
    fn expiry_accepts_two_and_four_digit_years_and_refuses_the_past() {
        // 2026-11-23T00:00:00Z
        let now = 1_795_392_000_000;
        assert_eq!(Expiry::parse(11, 26, now), Ok(Expiry { month: 11, year: 2026 }));
        assert_eq!(Expiry::parse(1, 2030, now), Ok(Expiry { month: 1, year: 2030 }));
        assert_eq!(Expiry::parse(10, 2026, now), Err(CardError::InvalidExpiration));
        assert_eq!(Expiry::parse(13, 2030, now), Err(CardError::InvalidExpiration));
        assert_eq!(Expiry::parse(0, 2030, now), Err(CardError::InvalidExpiration));
        assert_eq!(Expiry::parse(1, 2060, now), Err(CardError::InvalidExpiration));
        assert_eq!(Expiry::parse(1, 123, now), Err(CardError::InvalidExpiration));
    }

    #[test]
    fn security_code_length_follows_the_brand() {
        let amex = |code: &str| card("378282246310005", "Jane Doe", code);
        assert!(amex("1234").is_ok());
        assert_eq!(amex("123").err(), Some(CardError::InvalidSecurityCode));
        let visa = |code: &str| card("4242424242424242", "Jane Doe", code);
        assert!(visa("123").is_ok());
        assert!(visa("").is_ok());
        assert_eq!(visa("1234").err(), Some(CardError::InvalidSecurityCode));
        assert_eq!(visa("12a").err(), Some(CardError::InvalidSecurityCode));
    }

    #[test]
    fn name_is_required_and_may_not_hide_a_card_number() {
        let with_name = |name: &str| card("4242424242424242", name, "");
        assert_eq!(with_name("  ").err(), Some(CardError::InvalidName));
        // A card number in the name is refused as such (card_number_in_text).
        assert_eq!(with_name("4242 4242 4242 4242").err(), Some(CardError::NumberInText(CardField::Name)));
        assert_eq!(
            with_name("DE89 3704 0044 0532 0130 00").err(),
            Some(CardError::NumberInText(CardField::Name)),
            "an IBAN too"
        );
        assert_eq!(CardError::NumberInText(CardField::Name).reason(), "card_number_in_text");
        assert_eq!(with_name(" Jane Doe ").unwrap().name, "Jane Doe");
        assert_eq!(CardError::InvalidName.reason(), "invalid_name");
        assert_eq!(CardError::InvalidExpiration.reason(), "invalid_expiration_date");
    }

    fn with_billing(billing: Billing) -> Result<Card, CardError> {
        let input = CardInput {
            number: "4242424242424242".into(),
            expiration_month: 12,
            expiration_year: 40,
            name: "Jane Doe".into(),
            security_code: String::new(),
            billing,
        };
        Card::validate(&input, SystemClock.now_ms())
    }

    #[test]
    fn every_billing_field_is_kept_and_the_country_is_a_real_code() {
        let given = Billing {
            city: "Bangkok".into(),
            country: "th".into(),
            postal_code: "10320".into(),
            state: "Bangkok Metropolis".into(),
            street1: "1448/4 Praditmanutham Road".into(),
            street2: "Floor 7".into(),
            phone_number: "+66 2 123 4567".into(),
        };
        let card = with_billing(given.clone()).unwrap();
        let mut expected = given;
        expected.country = "TH".into();
        assert_eq!(card.billing, expected);
        assert_eq!(with_billing(Billing::default()).unwrap().billing, Billing::default(), "all optional");
        let country = |code: &str| {
            let mut b = Billing::default();
            b.country = code.into();
            with_billing(b)
        };
        for code in ["GB", "us", "Th", "ss", "AX"] {
            assert!(country(code).is_ok(), "{code}");
        }
        for code in ["XX", "xx", "UK", "EU", "XK", "T", "THA", "T1", " TH", "ﾄH"] {
            let refused = country(code).err();
            assert_eq!(refused, Some(CardError::InvalidCountry), "{code}");
        }
        assert_eq!(CardError::InvalidCountry.reason(), "invalid_country");
        assert_eq!(CardError::InvalidCountry.field(), Some(CardField::Country));
    }

    #[test]
    fn billing_fields_refuse_control_characters_long_text_and_card_numbers_naming_the_field() {
        let set = |field: CardField, value: &str| {
            let mut b = Billing::default();
            let slot = match field {
                CardField::City => &mut b.city,
                CardField::PostalCode => &mut b.postal_code,
                CardField::State => &mut b.state,
                CardField::Street1 => &mut b.street1,
                CardField::Street2 => &mut b.street2,
                CardField::PhoneNumber => &mut b.phone_number,
                _ => unreachable!(),
            };
            *slot = value.into();
            b
        };
        let fields = [
            CardField::City,
            CardField::PostalCode,
            CardField::State,
            CardField::Street1,
            CardField::Street2,
            CardField::PhoneNumber,
        ];
        for field in fields {
            for bad in ["Bang\0kok", "line\nbreak", &"x".repeat(256)] {
                assert_eq!(with_billing(set(field, bad)).err(), Some(CardError::InvalidBilling(field)), "{field}");
            }
            let carded = with_billing(set(field, "4242 4242 4242 4242")).err();
            assert_eq!(carded, Some(CardError::NumberInText(field)), "{field}");
            assert!(with_billing(set(field, &"x".repeat(255))).is_ok());
        }
        let err = CardError::NumberInText(CardField::Street1);
        assert_eq!((err.reason().as_str(), err.to_string()), ("card_number_in_text", err.to_string()));
        assert!(err.to_string().starts_with("card.street1 "), "{err}");
        assert_eq!(CardError::InvalidBilling(CardField::City).reason(), "invalid_billing_address");
        // A malformed field is named before a card number elsewhere.
        let mut both = Billing::default();
        (both.city, both.street1) = ("a\0".into(), "4242424242424242".into());
        assert_eq!(with_billing(both).err(), Some(CardError::InvalidBilling(CardField::City)));
    }

    #[test]
    fn pan_scanner_finds_card_numbers_in_text() {
        assert_eq!(find_pans("card=4242424242424242;").collect::<Vec<_>>(), vec!["4242424242424242"]);
        assert!(contains_pan("x 4111-1111-1111-1111 y"));
        assert!(!contains_pan("tokn_test_5a8b2 2026-11-23T02:31:38Z 123456789012"));
        assert!(!contains_pan("4242424242424241"));
        assert_eq!(loggable("tokn_test_abc"), "tokn_test_abc");
        assert_eq!(loggable("4242424242424242"), "[redacted]");
        assert!(!contains_pan("424242******4242"));
    }
}
