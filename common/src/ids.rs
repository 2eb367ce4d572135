//! Random identifiers from the thread-local CSPRNG (ChaCha, seeded by the OS).
//! No id payvault makes contains a run of 13 or more digits (rejection
//! sampling), so no id is ever mistaken for a card number, by our own checks
//! or by a DLP scan of logs and databases.
use rand::Rng;

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// The shortest run of digits that may be a card number.
pub const CARD_LIKE_DIGITS: usize = 13;

/// The longest run of ASCII digits in `s`.
pub fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

/// Whether `s` has no run of digits long enough to look like a card number.
pub fn is_card_safe(s: &str) -> bool {
    longest_digit_run(s) < CARD_LIKE_DIGITS
}

/// Draws from `make` until the value is card-safe (for 32 hex characters,
/// about one draw in 430 is redrawn).
fn card_safe(mut make: impl FnMut() -> String) -> String {
    loop {
        let id = make();
        if is_card_safe(&id) {
            return id;
        }
    }
}

/// `len` random lowercase base36 characters (≈5.17 bits each), card-safe.
pub fn base36(len: usize) -> String {
    card_safe(|| {
        let mut rng = rand::rng();
        (0..len).map(|_| BASE36[rng.random_range(0..BASE36.len())] as char).collect()
    })
}

/// `bytes` random bytes as lowercase hex, card-safe.
pub fn hex(bytes: usize) -> String {
    card_safe(|| {
        let mut buf = vec![0u8; bytes];
        rand::rng().fill(buf.as_mut_slice());
        ::hex::encode(buf)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_requested_shape() {
        let id = super::base36(24);
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_ne!(super::base36(24), id);
        assert_eq!(super::hex(16).len(), 32);
    }

    #[test]
    fn ids_never_carry_a_card_length_digit_run() {
        for _ in 0..20_000 {
            assert!(super::is_card_safe(&super::hex(16)));
            assert!(super::is_card_safe(&super::base36(32)));
        }
        assert_eq!(super::longest_digit_run("ab4242424242424242cd12"), 16);
        assert!(!super::is_card_safe("4242424242424"));
        assert!(super::is_card_safe("424242424242x"));
    }
}
