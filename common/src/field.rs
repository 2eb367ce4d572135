//! Caller-supplied text fields, as every service checks them before any side
//! effect: at most `MAX_CHARS` characters, no NUL or other control character
//! (a store would refuse them only after the acquirer was called), and never
//! a card number (`card::contains_pan`) or an IBAN (`bank::find_ibans`, read
//! in upper case): an account number pasted into a text field is refused as a
//! card number is, with the same fault. Each service names the field in its
//! own error.

/// The longest text field payvault takes, in characters.
pub const MAX_CHARS: usize = 255;

/// Why a text field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFault {
    /// Too long, or holding a control character.
    Malformed,
    /// Holding a card number or an IBAN.
    CardNumber,
}

/// Checks `value` against the rules above.
pub fn check(value: &str) -> Result<(), FieldFault> {
    if value.chars().count() > MAX_CHARS || value.chars().any(char::is_control) {
        return Err(FieldFault::Malformed);
    }
    if crate::card::contains_pan(value) || contains_iban(value) {
        return Err(FieldFault::CardNumber);
    }
    Ok(())
}

/// The fewest letters and digits an IBAN of the registry has (Norway's 15).
const SHORTEST_IBAN: usize = 15;

/// Whether `value` holds an IBAN, in any case. The check runs on every text
/// field of every call: ASCII text too short to hold one, or with no lower
/// case to fold, is read as it is, without a copy.
pub fn contains_iban(value: &str) -> bool {
    if value.is_ascii() {
        if value.bytes().filter(u8::is_ascii_alphanumeric).count() < SHORTEST_IBAN {
            return false;
        }
        if !value.bytes().any(|b| b.is_ascii_lowercase()) {
            return crate::bank::find_ibans(value).next().is_some();
        }
    }
    let upper = zeroize::Zeroizing::new(value.to_uppercase());
    crate::bank::find_ibans(&upper).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_control_characters_and_card_numbers_are_refused() {
        assert_eq!(check("order-17"), Ok(()));
        assert_eq!(check(&"x".repeat(MAX_CHARS)), Ok(()));
        assert_eq!(check(&"x".repeat(MAX_CHARS + 1)), Err(FieldFault::Malformed));
        for bad in ["a\0b", "tab\there", "line\nbreak"] {
            assert_eq!(check(bad), Err(FieldFault::Malformed), "{bad:?}");
        }
        assert_eq!(check("card 4242 4242 4242 4242 737"), Err(FieldFault::CardNumber));
        assert_eq!(check("iban de89 3704 0044 0532 0130 00"), Err(FieldFault::CardNumber));
        assert_eq!(check("GB82WEST12345698765432"), Err(FieldFault::CardNumber));
        assert_eq!(check("DE89370400440532013001"), Ok(()), "check digits wrong: not an IBAN");
        assert_eq!(check("no93 8601 1117 947"), Err(FieldFault::CardNumber), "the shortest IBAN, lower case");
        assert_eq!(check("NO9386011117947"), Err(FieldFault::CardNumber));
    }

    #[test]
    fn the_shortest_iban_bounds_the_scan() {
        let shortest = crate::bank::registry::FORMATS.iter().map(|f| f.length).min();
        assert_eq!(shortest, Some(SHORTEST_IBAN));
    }
}
