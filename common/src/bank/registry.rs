//! The SWIFT IBAN registry, as payvault uses it: each country's IBAN length
//! and, where the registry defines a bank identifier, its position in the
//! BBAN (the characters after the country code and check digits). Sources
//! and choices: docs/BANK_ACCOUNTS.md.

/// One country's IBAN format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub country: &'static str,
    pub length: usize,
    /// The bank identifier's range in the BBAN, where the registry defines one.
    pub bank_code: Option<(usize, usize)>,
}

const fn f(country: &'static str, length: usize, bank_code: Option<(usize, usize)>) -> Format {
    Format { country, length, bank_code }
}

/// Every IBAN country of the registry (release 2024), by country code.
pub const FORMATS: &[Format] = &[
    f("AD", 24, Some((0, 4))),
    f("AE", 23, Some((0, 3))),
    f("AL", 28, Some((0, 3))),
    f("AT", 20, Some((0, 5))),
    f("AZ", 28, Some((0, 4))),
    f("BA", 20, Some((0, 3))),
    f("BE", 16, Some((0, 3))),
    f("BG", 22, Some((0, 4))),
    f("BH", 22, Some((0, 4))),
    f("BI", 27, Some((0, 5))),
    f("BR", 29, Some((0, 8))),
    f("BY", 28, Some((0, 4))),
    f("CH", 21, Some((0, 5))),
    f("CR", 22, Some((0, 4))),
    f("CY", 28, Some((0, 3))),
    f("CZ", 24, Some((0, 4))),
    f("DE", 22, Some((0, 8))),
    f("DJ", 27, Some((0, 5))),
    f("DK", 18, Some((0, 4))),
    f("DO", 28, Some((0, 4))),
    f("EE", 20, Some((0, 2))),
    f("EG", 29, Some((0, 4))),
    f("ES", 24, Some((0, 4))),
    f("FI", 18, Some((0, 3))),
    f("FK", 18, Some((0, 2))),
    f("FO", 18, Some((0, 4))),
    f("FR", 27, Some((0, 5))),
    f("GB", 22, Some((0, 4))),
    f("GE", 22, Some((0, 2))),
    f("GI", 23, Some((0, 4))),
    f("GL", 18, Some((0, 4))),
    f("GR", 27, Some((0, 3))),
    f("GT", 28, Some((0, 4))),
    f("HR", 21, Some((0, 7))),
    f("HU", 28, Some((0, 3))),
    f("IE", 22, Some((0, 4))),
    f("IL", 23, Some((0, 3))),
    f("IQ", 23, Some((0, 4))),
    f("IS", 26, Some((0, 2))),
    f("IT", 27, Some((1, 6))),
    f("JO", 30, Some((0, 4))),
    f("KW", 30, Some((0, 4))),
    f("KZ", 20, Some((0, 3))),
    f("LB", 28, Some((0, 4))),
    f("LC", 32, Some((0, 4))),
    f("LI", 21, Some((0, 5))),
    f("LT", 20, Some((0, 5))),
    f("LU", 20, Some((0, 3))),
    f("LV", 21, Some((0, 4))),
    f("LY", 25, Some((0, 3))),
    f("MC", 27, Some((0, 5))),
    f("MD", 24, Some((0, 2))),
    f("ME", 22, Some((0, 3))),
    f("MK", 19, Some((0, 3))),
    f("MN", 20, Some((0, 4))),
    f("MR", 27, Some((0, 5))),
    f("MT", 31, Some((0, 4))),
    f("MU", 30, Some((0, 6))),
    f("NI", 28, Some((0, 4))),
    f("NL", 18, Some((0, 4))),
    f("NO", 15, Some((0, 4))),
    f("OM", 23, Some((0, 3))),
    f("PK", 24, Some((0, 4))),
    f("PL", 28, Some((0, 8))),
    f("PS", 29, Some((0, 4))),
    f("PT", 25, Some((0, 4))),
    f("QA", 29, Some((0, 4))),
    f("RO", 24, Some((0, 4))),
    f("RS", 22, Some((0, 3))),
    f("RU", 33, Some((0, 9))),
    f("SA", 24, Some((0, 2))),
    f("SC", 31, Some((0, 6))),
    f("SD", 18, Some((0, 2))),
    f("SE", 24, Some((0, 3))),
    f("SI", 19, Some((0, 5))),
    f("SK", 24, Some((0, 4))),
    f("SM", 27, Some((1, 6))),
    f("SO", 23, Some((0, 4))),
    f("ST", 25, Some((0, 4))),
    f("SV", 28, Some((0, 4))),
    f("TL", 23, Some((0, 3))),
    f("TN", 24, Some((0, 2))),
    f("TR", 26, Some((0, 5))),
    f("UA", 29, Some((0, 6))),
    f("VA", 22, Some((0, 3))),
    f("VG", 24, Some((0, 4))),
    f("XK", 20, Some((0, 4))),
    f("YE", 30, Some((0, 4))),
];

/// The format of `country`'s IBANs, if it has them.
pub fn format(country: &str) -> Option<&'static Format> {
    FORMATS.iter().find(|f| f.country == country)
}

#[cfg(test)]
mod tests {
    #[test]
    fn countries_are_unique_sorted_and_bank_codes_fit_their_bban() {
        for pair in super::FORMATS.windows(2) {
            assert!(pair[0].country < pair[1].country, "{pair:?}");
        }
        for f in super::FORMATS {
            assert!((15..=34).contains(&f.length), "{f:?}");
            if let Some((from, to)) = f.bank_code {
                assert!(from < to && to <= f.length - 4, "{f:?}");
            }
        }
    }
}
