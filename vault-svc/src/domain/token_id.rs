//! Token identifiers. Single-use tokens are `tokn_test_`/`tokn_` followed by 24
//! lowercase base36 characters: never all digits, so never mistakable for a
//! card number, and random, so they reveal nothing about the card.
use common::ids;

const PREFIX: &str = "tokn_";
const TEST: &str = "test_";
const RANDOM_LEN: usize = 24;

pub fn new_single_use(livemode: bool) -> String {
    let mode = if livemode { "" } else { TEST };
    format!("{PREFIX}{mode}{}", ids::base36(RANDOM_LEN))
}

/// The livemode a well-formed single-use token id implies; `None` if the id is
/// not one.
pub fn single_use_livemode(id: &str) -> Option<bool> {
    let rest = id.strip_prefix(PREFIX)?;
    let (livemode, random) = match rest.strip_prefix(TEST) {
        Some(random) => (false, random),
        None => (true, rest),
    };
    let well_formed = random.len() >= 20
        && random.len() <= 64
        && random.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    well_formed.then_some(livemode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::card::contains_pan;

    #[test]
    fn ids_carry_their_mode_and_are_never_card_like() {
        for livemode in [false, true] {
            for _ in 0..200 {
                let id = new_single_use(livemode);
                assert_eq!(single_use_livemode(&id), Some(livemode), "{id}");
                assert!(!contains_pan(&id), "{id}");
            }
        }
        assert!(new_single_use(false).starts_with("tokn_test_"));
        assert_eq!(single_use_livemode("tokn_test_short"), None);
        assert_eq!(single_use_livemode("4242424242424242"), None);
        assert_eq!(single_use_livemode("tokn_test_AAAAAAAAAAAAAAAAAAAAAAAA"), None);
    }
}
