//! Bank accounts for SEPA direct debit: the IBAN (`iban`: registry length,
//! mod 97-10 check digits, what may be shown, the leak-scan detector), the
//! BIC's shape, and the holder. Each fault is its own error, so the services
//! answer `invalid_iban`, `invalid_bic` or `invalid_account_holder`.
pub mod iban;
pub mod registry;

pub use iban::{Iban, IbanError, find_ibans};

/// A bank account as a caller sends it.
#[derive(Debug, Clone, Default)]
pub struct BankAccountInput<'a> {
    pub iban: &'a str,
    /// Optional where the IBAN suffices (SEPA since 2016).
    pub bic: &'a str,
    pub holder: &'a str,
    /// The holder's country (ISO 3166-1 alpha-2); the IBAN's when empty.
    pub country: &'a str,
}

/// A validated bank account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub iban: Iban,
    pub bic: Option<String>,
    pub holder: String,
    pub country: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("invalid IBAN: {0}")]
    Iban(#[from] IbanError),
    #[error("the BIC must be 8 or 11 letters and digits naming the IBAN's country")]
    Bic,
    #[error("the account holder must be 1 to 70 characters of text")]
    Holder,
    #[error("the account's country must be an ISO 3166-1 alpha-2 code")]
    Country,
}

/// The longest holder name SEPA carries (pain.008 `Nm`).
pub const MAX_HOLDER: usize = 70;

impl BankAccount {
    pub fn validate(input: &BankAccountInput<'_>) -> Result<Self, AccountError> {
        let iban = Iban::parse(input.iban)?;
        let bic = match input.bic.trim() {
            "" => None,
            bic => Some(check_bic(bic, iban.country())?),
        };
        let holder = input.holder.trim();
        let holder_ok = !holder.is_empty()
            && holder.chars().count() <= MAX_HOLDER
            && crate::field::check(holder).is_ok()
            && find_ibans(&holder.to_uppercase()).next().is_none();
        if !holder_ok {
            return Err(AccountError::Holder);
        }
        let country = match input.country.trim() {
            "" => iban.country().to_owned(),
            c if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
            _ => return Err(AccountError::Country),
        };
        Ok(Self { iban, bic, holder: holder.to_owned(), country })
    }
}

/// A BIC: 4 letters (bank), 2 letters (country, the IBAN's), 2 letters or
/// digits (location), optionally 3 more (branch); upper-cased.
fn check_bic(bic: &str, iban_country: &str) -> Result<String, AccountError> {
    let bic = bic.to_ascii_uppercase();
    let b = bic.as_bytes();
    let shape = matches!(b.len(), 8 | 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..].iter().all(u8::is_ascii_alphanumeric);
    if !shape || &bic[4..6] != iban_country {
        return Err(AccountError::Bic);
    }
    Ok(bic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(iban: &'a str, bic: &'a str, holder: &'a str) -> BankAccountInput<'a> {
        BankAccountInput { iban, bic, holder, country: "" }
    }

    #[test]
    fn a_valid_account_with_or_without_its_bic() {
        let account = BankAccount::validate(&input("DE89370400440532013000", "cobadeffxxx", "Jane Doe")).unwrap();
        assert_eq!((account.bic.as_deref(), account.country.as_str()), (Some("COBADEFFXXX"), "DE"));
        assert!(BankAccount::validate(&input("DE89370400440532013000", "", "Jane Doe")).unwrap().bic.is_none());
    }

    #[test]
    fn each_field_has_its_error() {
        let bad_iban = BankAccount::validate(&input("DE00370400440532013000", "", "Jane Doe"));
        assert_eq!(bad_iban, Err(AccountError::Iban(IbanError::CheckDigits)));
        for bic in ["COBADEFF1", "COBAFRFF", "C0BADEFF", "COBADEFFXX"] {
            assert_eq!(
                BankAccount::validate(&input("DE89370400440532013000", bic, "Jane")),
                Err(AccountError::Bic),
                "{bic}"
            );
        }
        for holder in ["", "  ", "Jane\u{0}Doe", &"x".repeat(71), "DE89370400440532013000"] {
            let refused = BankAccount::validate(&input("DE89370400440532013000", "", holder));
            assert_eq!(refused, Err(AccountError::Holder), "{holder:?}");
        }
        let country = BankAccountInput { country: "Germany", ..input("DE89370400440532013000", "", "Jane") };
        assert_eq!(BankAccount::validate(&country), Err(AccountError::Country));
    }
}
