//! IBANs: normalization (spaces dropped, upper case), the registry's country
//! and length, the ISO 7064 mod 97-10 check digits, the metadata that may be
//! shown (country, bank code, last four), and the detector leak scans run.
use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::registry;

/// A valid IBAN, normalized; zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl TryFrom<String> for Iban {
    type Error = IbanError;

    fn try_from(mut value: String) -> Result<Self, IbanError> {
        let parsed = Self::parse(&value);
        value.zeroize();
        parsed
    }
}

impl From<Iban> for String {
    fn from(iban: Iban) -> String {
        iban.0.clone()
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iban({}…{})", self.country(), self.last4())
    }
}

/// Why an IBAN is refused (never carrying the IBAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IbanError {
    #[error("the IBAN has characters other than letters, digits and spaces")]
    Characters,
    #[error("the IBAN's country has no IBANs in the registry")]
    Country,
    #[error("the IBAN's length is not its country's")]
    Length,
    #[error("the IBAN's check digits do not match")]
    CheckDigits,
}

impl Iban {
    /// Validates `text` (spaces allowed, any case).
    pub fn parse(text: &str) -> Result<Self, IbanError> {
        let mut normalized: String = text.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
        let checked = check(&normalized);
        if let Err(error) = checked {
            normalized.zeroize();
            return Err(error);
        }
        Ok(Self(normalized))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn country(&self) -> &str {
        &self.0[..2]
    }

    /// The bank identifier, where the registry defines one for the country.
    pub fn bank_code(&self) -> Option<&str> {
        let (from, to) = registry::format(self.country())?.bank_code?;
        self.0.get(4 + from..4 + to)
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

fn check(iban: &str) -> Result<(), IbanError> {
    if !iban.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IbanError::Characters);
    }
    let format = iban.get(..2).and_then(registry::format).ok_or(IbanError::Country)?;
    if iban.len() != format.length {
        return Err(IbanError::Length);
    }
    if !iban[2..4].bytes().all(|b| b.is_ascii_digit()) || mod97(iban) != Some(1) {
        return Err(IbanError::CheckDigits);
    }
    Ok(())
}

/// ISO 7064 mod 97-10 of the IBAN rearranged (first four characters moved to
/// the end, letters as 10–35); `None` for a character that is not alphanumeric.
fn mod97(iban: &str) -> Option<u32> {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    tail.chars().chain(head.chars()).try_fold(0u32, |acc, c| {
        let value = c.to_digit(36)?;
        Some(if value < 10 { (acc * 10 + value) % 97 } else { (acc * 100 + value) % 97 })
    })
}

/// Every mod-97-valid IBAN of a registry country and length in `text`,
/// contiguous or in groups of four separated by single spaces, standing on its
/// own (as leak scans read text), masked: country and last four.
pub fn find_ibans(text: &str) -> impl Iterator<Item = String> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1)).filter_map(move |start| {
        let starts = bytes[start].is_ascii_uppercase()
            && bytes[start + 1].is_ascii_uppercase()
            && (start == 0 || !bytes[start - 1].is_ascii_alphanumeric());
        if !starts {
            return None;
        }
        let format = registry::format(text.get(start..start + 2)?)?;
        let mut compact = String::with_capacity(format.length);
        let mut end = start;
        while compact.len() < format.length && end < bytes.len() {
            match bytes[end] {
                b' ' if compact.len().is_multiple_of(4)
                    && bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric) => {}
                b if b.is_ascii_alphanumeric() => compact.push(b.to_ascii_uppercase() as char),
                _ => break,
            }
            end += 1;
        }
        // Standing on its own: not the start of a longer run of letters and digits.
        if bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            compact.zeroize();
            return None;
        }
        let found = check(&compact).is_ok().then(|| format!("{}…{}", &compact[..2], &compact[compact.len() - 4..]));
        compact.zeroize();
        found
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published examples (the registry's and the banks' own).
    const EXAMPLES: &[&str] = &[
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
        "AT611904300234573201",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "NO9386011117947",
    ];

    #[test]
    fn published_examples_are_valid_and_show_only_their_metadata() {
        for example in EXAMPLES {
            let iban = Iban::parse(example).unwrap_or_else(|e| panic!("{example}: {e}"));
            assert!(!format!("{iban:?}").contains(&iban.expose()[4..12]));
        }
        let de = Iban::parse("de89 3704 0044 0532 0130 00").unwrap();
        assert_eq!((de.country(), de.bank_code(), de.last4()), ("DE", Some("37040044"), "3000"));
        let gb = Iban::parse("GB82WEST12345698765432").unwrap();
        assert_eq!(gb.bank_code(), Some("WEST"));
        assert_eq!(Iban::parse("IT60X0542811101000000123456").unwrap().bank_code(), Some("05428"));
    }

    #[test]
    fn each_fault_has_its_error() {
        assert_eq!(Iban::parse("DE89 3704 0044 0532 0130 01"), Err(IbanError::CheckDigits));
        assert_eq!(Iban::parse("DE89 3704 0044 0532 0130"), Err(IbanError::Length));
        assert_eq!(Iban::parse("XX89 3704 0044 0532 0130 00"), Err(IbanError::Country));
        assert_eq!(Iban::parse("DE89-3704-0044-0532-0130-00"), Err(IbanError::Characters));
        assert_eq!(Iban::parse(""), Err(IbanError::Country));
        assert_eq!(Iban::parse("DEXX37040044053201300"), Err(IbanError::Length));
    }

    #[test]
    fn the_detector_finds_ibans_in_text_and_not_ids() {
        let found: Vec<String> = find_ibans("pay to DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432.").collect();
        assert_eq!(found, ["DE…3000", "GB…5432"]);
        assert_eq!(find_ibans("xDE89370400440532013000 DE89370400440532013001").count(), 0);
        for _ in 0..20_000 {
            let id = crate::ids::hex(16).to_uppercase();
            assert_eq!(find_ibans(&id).count(), 0, "{id}");
        }
    }
}
