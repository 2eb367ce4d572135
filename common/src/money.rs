//! Money as payvault handles it: an ISO 4217 currency with its minor-unit
//! exponent, and a non-negative, capped amount in that minor unit.
use std::fmt;

use crate::reason::Reason;

/// The largest amount accepted, in minor units: 10^15 - 1 (9 999 999 999 999.99 EUR,
/// 999 999 999 999 999 JPY). `i64::MAX` is about 9.2 × 10^18, so more than 9 000
/// such amounts (every capture and refund of a payment, and far more than any flow
/// allows) sum without overflowing `i64`; callers still use checked arithmetic.
pub const MAX_AMOUNT: i64 = 999_999_999_999_999;

/// Why an amount or a currency was refused; each maps to its own public error reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("the amount must be a positive number of minor units not above {MAX_AMOUNT}")]
    InvalidAmount,
    #[error("the currency must be an active ISO 4217 code in upper case, such as EUR")]
    InvalidCurrency,
}

impl MoneyError {
    /// The `google.rpc.ErrorInfo` reason.
    pub fn reason(self) -> Reason {
        match self {
            Self::InvalidAmount => Reason::InvalidAmount,
            Self::InvalidCurrency => Reason::InvalidCurrency,
        }
    }
}

/// An active ISO 4217 currency. Only codes in [`CURRENCIES`] can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    /// Parses an active ISO 4217 alphabetic code in any case (Omise sends `thb`;
    /// the code kept is upper-case). Codes without a minor unit (`XAU`, `XDR`,
    /// `XTS`, `XXX`, ...) are refused, and so is anything but three letters.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let mut upper: [u8; 3] = code.as_bytes().try_into().map_err(|_| MoneyError::InvalidCurrency)?;
        if !upper.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::InvalidCurrency);
        }
        upper.make_ascii_uppercase();
        CURRENCIES
            .binary_search_by(|(c, _)| c.as_bytes().cmp(&upper[..]))
            .map(|i| {
                let (code, exponent) = CURRENCIES[i];
                Currency { code, exponent }
            })
            .map_err(|_| MoneyError::InvalidCurrency)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The number of decimal digits of the minor unit: 0 for JPY, 2 for EUR, 3 for BHD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An amount in the currency's minor unit (cents for EUR, yen for JPY, fils for BHD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// Refuses negative amounts, zero unless `allow_zero` (account verification), and
    /// amounts above [`MAX_AMOUNT`].
    pub fn new(amount: i64, currency: Currency, allow_zero: bool) -> Result<Money, MoneyError> {
        let valid = match amount {
            0 => allow_zero,
            1..=MAX_AMOUNT => true,
            _ => false,
        };
        if valid { Ok(Money { amount, currency }) } else { Err(MoneyError::InvalidAmount) }
    }

    /// The amount in major units with exactly `exponent` decimals: "12.34" for 1234 EUR,
    /// "1234" for 1234 JPY, "1.234" for 1234 BHD.
    pub fn major_units(&self) -> String {
        let exponent = u32::from(self.currency.exponent);
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        let width = exponent as usize;
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.major_units(), self.currency.code)
    }
}

/// The active ISO 4217 currencies with their minor-unit exponents (ISO 4217 List One as of
/// 2026, including the fund codes such as CLF, UYW and USN, excluding the codes without a
/// minor unit: precious metals, XDR, XSU, XUA, bond-market units, XTS and XXX). Withdrawn
/// codes are refused: BGN (euro since 2026), ANG (XCG since 2025), HRK, SLL, CUC, ZWL.
/// Sorted by code: `Currency::parse` binary-searches it.
pub const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn table_is_sorted_unique_and_well_formed() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        for (code, exponent) in CURRENCIES {
            assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()), "{code}");
            assert!(*exponent <= 4, "{code}");
            assert_eq!(cur(code).code(), *code);
        }
    }

    #[test]
    fn exponents_follow_iso_4217() {
        let cases = [
            ("JPY", 0),
            ("KRW", 0),
            ("VND", 0),
            ("CLP", 0),
            ("ISK", 0),
            ("EUR", 2),
            ("USD", 2),
            ("THB", 2),
            ("GBP", 2),
            ("BHD", 3),
            ("KWD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("IQD", 3),
            ("LYD", 3),
            ("CLF", 4),
            ("UYW", 4),
        ];
        for (code, exponent) in cases {
            assert_eq!(cur(code).exponent(), exponent, "{code}");
        }
    }

    #[test]
    fn refuses_unknown_and_non_currency_codes_and_takes_any_case() {
        for code in [
            "", "EU", "EURO", " EUR", "EUR ", "ABC", "XAU", "XDR", "XTS", "XXX", "HRK", "ZWL", "BGN", "ANG", "SLL",
            "CUC", "E1R", "€UR",
        ] {
            assert_eq!(Currency::parse(code), Err(MoneyError::InvalidCurrency), "{code:?}");
        }
        for code in ["thb", "Eur", "jPY"] {
            assert_eq!(Currency::parse(code).unwrap().code(), code.to_ascii_uppercase(), "{code:?}");
        }
    }

    #[test]
    fn amount_bounds() {
        let eur = cur("EUR");
        assert_eq!(Money::new(-1, eur, true), Err(MoneyError::InvalidAmount));
        assert_eq!(Money::new(i64::MIN, eur, true), Err(MoneyError::InvalidAmount));
        assert_eq!(Money::new(0, eur, false), Err(MoneyError::InvalidAmount));
        assert_eq!(Money::new(0, eur, true).unwrap().amount, 0);
        assert_eq!(Money::new(1, eur, false).unwrap().amount, 1);
        assert_eq!(Money::new(MAX_AMOUNT, eur, false).unwrap().amount, MAX_AMOUNT);
        assert_eq!(Money::new(MAX_AMOUNT + 1, eur, false), Err(MoneyError::InvalidAmount));
        assert_eq!(Money::new(i64::MAX, eur, false), Err(MoneyError::InvalidAmount));
        // The cap leaves room to sum thousands of amounts without overflow.
        assert!(MAX_AMOUNT.checked_mul(9_000).is_some());
    }

    #[test]
    fn major_units_use_the_exponent() {
        let m = |amount, code| Money::new(amount, cur(code), true).unwrap().major_units();
        assert_eq!(m(1234, "EUR"), "12.34");
        assert_eq!(m(1234, "JPY"), "1234");
        assert_eq!(m(1234, "BHD"), "1.234");
        assert_eq!(m(1234, "CLF"), "0.1234");
        assert_eq!(m(5, "EUR"), "0.05");
        assert_eq!(m(0, "EUR"), "0.00");
        assert_eq!(m(0, "JPY"), "0");
        assert_eq!(m(100, "USD"), "1.00");
        assert_eq!(m(MAX_AMOUNT, "EUR"), "9999999999999.99");
        assert_eq!(Money::new(1234, cur("EUR"), false).unwrap().to_string(), "12.34 EUR");
    }

    #[test]
    fn errors_carry_their_reason() {
        assert_eq!(MoneyError::InvalidAmount.reason(), "invalid_amount");
        assert_eq!(MoneyError::InvalidCurrency.reason(), "invalid_currency");
    }
}
