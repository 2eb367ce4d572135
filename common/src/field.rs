//! Caller-supplied text fields, as every service checks them before any side
//! effect: at most `MAX_CHARS` characters, no NUL or other control character
//! (a store would refuse them only after the acquirer was called), and never
//! a card number (`card::contains_pan`). Each service names the field in its
//! own error.

/// The longest text field payvault takes, in characters.
pub const MAX_CHARS: usize = 255;

/// Why a text field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFault {
    /// Too long, or holding a control character.
    Malformed,
    /// Holding a card number.
    CardNumber,
}

/// Checks `value` against the rules above.
pub fn check(value: &str) -> Result<(), FieldFault> {
    if value.chars().count() > MAX_CHARS || value.chars().any(char::is_control) {
        return Err(FieldFault::Malformed);
    }
    if crate::card::contains_pan(value) {
        return Err(FieldFault::CardNumber);
    }
    Ok(())
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
    }
}
