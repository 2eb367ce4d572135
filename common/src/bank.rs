//! Bank accounts for SEPA direct debit: the IBAN (`iban`: registry length,
//! mod 97-10 check digits, what may be shown, the leak-scan detector), the
//! BIC's shape, and the holder. Each fault is its own error, so the services
//! answer `invalid_iban`, `invalid_bic` or `invalid_account_holder`.
pub mod iban;
pub mod registry;

pub use iban::{Iban, IbanError, find_ibans};

/// A bank account as a caller sends it (zeroized on drop).
#[derive(Clone, Default, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct BankAccountInput {
    pub iban: String,
    /// Optional where the IBAN suffices (SEPA since 2016).
    pub bic: String,
    pub holder: String,
    /// The holder's country (ISO 3166-1 alpha-2); the IBAN's when empty.
    pub country: String,
}

/// A validated bank account. Serialized (inside the vault's sealed records
/// only) with its IBAN validated again when read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankAccount {
    pub iban: Iban,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl AccountError {
    /// The `ErrorInfo` reason of the fault.
    pub fn reason(&self) -> crate::reason::Reason {
        use crate::reason::Reason;
        match self {
            Self::Iban(_) => Reason::InvalidIban,
            Self::Bic => Reason::InvalidBic,
            Self::Holder | Self::Country => Reason::InvalidAccountHolder,
        }
    }
}

/// The longest holder name SEPA carries (pain.008 `Nm`).
pub const MAX_HOLDER: usize = 70;

impl BankAccountInput {
    pub fn new(iban: &str, bic: &str, holder: &str, country: &str) -> Self {
        Self { iban: iban.into(), bic: bic.into(), holder: holder.into(), country: country.into() }
    }
}

impl std::fmt::Debug for BankAccountInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BankAccountInput(…)")
    }
}

/// What the platform shows of a bank account outside the vault, never the
/// IBAN. Serialized under the names of vault.proto's `AccountMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaskedAccount {
    pub brand: String,
    #[serde(rename = "last_digits")]
    pub last4: String,
    pub country: String,
    #[serde(default)]
    pub bank_code: String,
    pub holder: String,
    #[serde(default)]
    pub bic: String,
}

/// The brand OPP gives a SEPA direct-debit account.
pub const BRAND: &str = "DIRECTDEBIT_SEPA";

impl BankAccount {
    /// What may be shown of the account: brand, last four, country, bank
    /// code, holder, BIC.
    pub fn masked(&self) -> MaskedAccount {
        MaskedAccount {
            brand: BRAND.into(),
            last4: self.iban.last4().into(),
            country: self.iban.country().into(),
            bank_code: self.iban.bank_code().unwrap_or_default().into(),
            holder: self.holder.clone(),
            bic: self.bic.clone().unwrap_or_default(),
        }
    }

    /// The account as a caller would send it again.
    pub fn input(&self) -> BankAccountInput {
        BankAccountInput {
            iban: self.iban.expose().into(),
            bic: self.bic.clone().unwrap_or_default(),
            holder: self.holder.clone(),
            country: self.country.clone(),
        }
    }

    pub fn validate(input: &BankAccountInput) -> Result<Self, AccountError> {
        let iban = Iban::parse(&input.iban)?;
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

    fn input(iban: &str, bic: &str, holder: &str) -> BankAccountInput {
        BankAccountInput { iban: iban.into(), bic: bic.into(), holder: holder.into(), country: String::new() }
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
        let mut country = input("DE89370400440532013000", "", "Jane");
        country.country = "Germany".into();
        assert_eq!(BankAccount::validate(&country), Err(AccountError::Country));
    }
}
