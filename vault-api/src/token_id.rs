//! Token identifiers, all random so they reveal nothing about the card:
//! single-use `tokn_test_`/`tokn_` + 24 base36; registrations 32 lowercase hex
//! (OPP's format); omni tokens `omni_test_`/`omni_` + 32 base36. None is ever
//! 13–19 digits: registration ids with a run of 13 or more digits are redrawn.
//! The vault issues ids with these functions and every service classifies them
//! with [`classify`], so an id's shape has one definition.
use common::ids;

/// The kinds of durable token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// OPP's model; ledger events RG (created), DR (deregistered).
    Registration,
    /// Till's model; ledger events TK (created), DL (deleted).
    Omni,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Omni => "omni",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registration" => Some(Self::Registration),
            "omni" => Some(Self::Omni),
            _ => None,
        }
    }

    pub fn created_event(self) -> &'static str {
        match self {
            Self::Registration => "RG",
            Self::Omni => "TK",
        }
    }

    pub fn deleted_event(self) -> &'static str {
        match self {
            Self::Registration => "DR",
            Self::Omni => "DL",
        }
    }

    pub fn new_id(self, livemode: bool) -> String {
        match self {
            Self::Registration => loop {
                let id = ids::hex(16);
                if longest_digit_run(&id) < 13 {
                    break id;
                }
            },
            Self::Omni => format!("omni_{}{}", if livemode { "" } else { TEST }, ids::base36(32)),
        }
    }
}

/// What an id names, judged by its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRef {
    SingleUse { livemode: bool },
    Durable(TokenKind),
}

pub fn classify(id: &str) -> Option<TokenRef> {
    if let Some(livemode) = single_use_livemode(id) {
        return Some(TokenRef::SingleUse { livemode });
    }
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Some(TokenRef::Durable(TokenKind::Registration));
    }
    let rest = id.strip_prefix("omni_")?;
    let random = rest.strip_prefix(TEST).unwrap_or(rest);
    (random.len() == 32 && random.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
        .then_some(TokenRef::Durable(TokenKind::Omni))
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

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

    #[test]
    fn durable_ids_have_their_formats_and_classify_back() {
        for _ in 0..500 {
            let registration = TokenKind::Registration.new_id(false);
            assert_eq!(registration.len(), 32);
            assert!(longest_digit_run(&registration) < 13 && !contains_pan(&registration));
            assert_eq!(classify(&registration), Some(TokenRef::Durable(TokenKind::Registration)));
        }
        let omni = TokenKind::Omni.new_id(false);
        assert!(omni.starts_with("omni_test_") && omni.len() == "omni_test_".len() + 32);
        assert_eq!(classify(&omni), Some(TokenRef::Durable(TokenKind::Omni)));
        assert!(TokenKind::Omni.new_id(true).starts_with("omni_") && !TokenKind::Omni.new_id(true).contains("test"));
        assert_eq!(classify(&new_single_use(true)), Some(TokenRef::SingleUse { livemode: true }));
        assert_eq!(classify("4242424242424242"), None);
        assert_eq!(classify("omni_test_short"), None);
    }
}
