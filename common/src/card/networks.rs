//! The card networks as they publish their numbers: one table of issuer
//! identification number (IIN) ranges, card-number lengths and check-digit
//! rule per network. `CardNumber::parse`, `Brand::detect` and the card-number
//! detector all read this table and nothing else, so what the vault accepts as
//! a card and what the detector refuses in free text cannot drift apart.
//!
//! Ranges nest (Discover's 622126–622925 inside UnionPay's 62, Elo's six-digit
//! ranges inside Visa's 4): the longest matching prefix wins. No two ranges of
//! the same length overlap (a test holds the table to it), so the winner is
//! never a matter of row order. Sources and the reasoning behind each row are
//! in docs/CARD_NETWORKS.md.
use super::Brand;

/// Leading digits `lo..=hi`, both written with `digits` digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Iin {
    pub lo: u32,
    pub hi: u32,
    pub digits: usize,
}

/// Every range in the table is at most this many digits long.
pub(crate) const MAX_IIN_DIGITS: usize = 6;

const fn digit_count(mut n: u32) -> usize {
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

/// A range; a malformed one (bounds of different lengths, reversed, longer
/// than `MAX_IIN_DIGITS`) stops compilation, as the table is a constant.
const fn iin(lo: u32, hi: u32) -> Iin {
    let digits = digit_count(lo);
    assert!(digits == digit_count(hi) && lo <= hi && digits <= MAX_IIN_DIGITS, "malformed IIN range");
    Iin { lo, hi, digits }
}

/// One prefix.
const fn one(prefix: u32) -> Iin {
    iin(prefix, prefix)
}

/// Card-number lengths as a bit set (bit `n` set: `n` digits allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lengths(u32);

impl Lengths {
    const fn span(lo: usize, hi: usize) -> Self {
        let mut bits = 0;
        let mut n = lo;
        while n <= hi {
            bits |= 1 << n;
            n += 1;
        }
        Self(bits)
    }

    const fn of(lengths: &[usize]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < lengths.len() {
            bits |= 1 << lengths[i];
            i += 1;
        }
        Self(bits)
    }

    pub fn contains(self, len: usize) -> bool {
        len < 32 && self.0 & (1 << len) != 0
    }
}

/// A network: its brand, the ranges it is the most specific claimant of, the
/// lengths it issues and whether its numbers carry a Luhn check digit.
#[derive(Debug)]
pub(crate) struct Network {
    pub brand: Brand,
    pub iins: &'static [Iin],
    pub lengths: Lengths,
    pub luhn: bool,
}

pub(crate) const NETWORKS: &[Network] = &[
    Network { brand: Brand::Visa, iins: &[one(4)], lengths: Lengths::of(&[13, 16, 19]), luhn: true },
    Network {
        brand: Brand::Mastercard,
        iins: &[iin(51, 55), iin(2221, 2720)],
        lengths: Lengths::of(&[16]),
        luhn: true,
    },
    Network { brand: Brand::Amex, iins: &[one(34), one(37)], lengths: Lengths::of(&[15]), luhn: true },
    Network {
        brand: Brand::Discover,
        iins: &[one(6011), iin(622126, 622925), iin(644, 649), one(65)],
        lengths: Lengths::span(16, 19),
        luhn: true,
    },
    Network { brand: Brand::Jcb, iins: &[iin(3528, 3589)], lengths: Lengths::span(16, 19), luhn: true },
    Network {
        brand: Brand::Diners,
        iins: &[iin(300, 305), one(36), iin(38, 39)],
        lengths: Lengths::span(14, 19),
        luhn: true,
    },
    // Some UnionPay numbers carry no valid Luhn digit; the network does not require one.
    Network { brand: Brand::Unionpay, iins: &[one(62), one(81)], lengths: Lengths::span(14, 19), luhn: false },
    // 50 and 56–69 where no other network claims the two-digit prefix: 60 is
    // RuPay's, 62 UnionPay's and 65 Discover's (Discover's 644–649 and the
    // six-digit ranges of Elo and Hipercard win by length).
    Network {
        brand: Brand::Maestro,
        iins: &[one(50), iin(56, 59), one(61), iin(63, 64), iin(66, 69)],
        lengths: Lengths::span(12, 19),
        luhn: true,
    },
    Network { brand: Brand::Mir, iins: &[iin(2200, 2204)], lengths: Lengths::span(16, 19), luhn: true },
    Network {
        brand: Brand::Elo,
        iins: &[
            one(401178),
            one(401179),
            one(431274),
            one(438935),
            one(451416),
            one(457393),
            one(457631),
            one(457632),
            one(504175),
            iin(506699, 506778),
            iin(509000, 509999),
            one(627780),
            one(636297),
            one(636368),
            iin(650031, 650033),
            iin(650035, 650051),
            iin(650405, 650439),
            iin(650485, 650538),
            iin(650541, 650598),
            iin(650700, 650718),
            iin(650720, 650727),
            iin(650901, 650978),
            iin(651652, 651679),
            iin(655000, 655019),
            iin(655021, 655058),
        ],
        lengths: Lengths::of(&[16]),
        luhn: true,
    },
    Network {
        brand: Brand::Hipercard,
        iins: &[one(384100), one(384140), one(384160), one(606282)],
        lengths: Lengths::of(&[16, 19]),
        luhn: true,
    },
    // RuPay's published 65, 81, 353 and 356 are shared with Discover, UnionPay
    // and JCB, whose rows keep them; RuPay's own are these.
    Network {
        brand: Brand::Rupay,
        iins: &[one(60), one(82), one(508), iin(6521, 6522)],
        lengths: Lengths::of(&[16]),
        luhn: true,
    },
];

/// The network whose range is the longest prefix of `digits` (ASCII digits;
/// anything after the leading digits is ignored).
pub(crate) fn lookup(digits: &[u8]) -> Option<&'static Network> {
    let mut prefix = [0u32; MAX_IIN_DIGITS + 1];
    let mut known = 0;
    for (i, &b) in digits.iter().take(MAX_IIN_DIGITS).enumerate() {
        if !b.is_ascii_digit() {
            break;
        }
        prefix[i + 1] = prefix[i] * 10 + u32::from(b - b'0');
        known = i + 1;
    }
    let mut best: Option<(usize, &'static Network)> = None;
    for network in NETWORKS {
        for range in network.iins {
            let longer = best.is_none_or(|(digits, _)| range.digits > digits);
            if longer && range.digits <= known && (range.lo..=range.hi).contains(&prefix[range.digits]) {
                best = Some((range.digits, network));
            }
        }
    }
    best.map(|(_, network)| network)
}

/// What the table says of a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A card number of this network: its range, a length it issues, and a
    /// Luhn digit where the network requires one.
    Card(Brand),
    /// Luhn-valid, but in no network's range.
    NoNetwork,
    /// Not a card number.
    Invalid,
}

/// Judges `digits` (ASCII digits only) against the table.
pub(crate) fn check(digits: &[u8]) -> Verdict {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Verdict::Invalid;
    }
    match lookup(digits) {
        Some(n) if n.lengths.contains(digits.len()) && (!n.luhn || luhn(digits)) => Verdict::Card(n.brand),
        Some(_) => Verdict::Invalid,
        None if luhn(digits) => Verdict::NoNetwork,
        None => Verdict::Invalid,
    }
}

/// The Luhn (mod 10) check over ASCII digits; false for anything else.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_one_length_never_overlap_so_the_longest_prefix_decides() {
        let all: Vec<(Brand, Iin)> = NETWORKS.iter().flat_map(|n| n.iins.iter().map(move |r| (n.brand, *r))).collect();
        for (i, (a_brand, a)) in all.iter().enumerate() {
            for (b_brand, b) in &all[i + 1..] {
                let overlap = a.digits == b.digits && a.lo <= b.hi && b.lo <= a.hi;
                assert!(!overlap, "{a_brand} {a:?} overlaps {b_brand} {b:?}");
            }
        }
    }

    #[test]
    fn every_brand_has_one_row() {
        let brands = [
            Brand::Visa,
            Brand::Mastercard,
            Brand::Amex,
            Brand::Discover,
            Brand::Jcb,
            Brand::Diners,
            Brand::Unionpay,
            Brand::Maestro,
            Brand::Mir,
            Brand::Elo,
            Brand::Hipercard,
            Brand::Rupay,
        ];
        for brand in brands {
            assert_eq!(NETWORKS.iter().filter(|n| n.brand == brand).count(), 1, "{brand}");
        }
        assert_eq!(NETWORKS.len(), brands.len());
    }

    #[test]
    fn the_most_specific_range_wins() {
        let brand = |digits: &str| lookup(digits.as_bytes()).map(|n| n.brand);
        assert_eq!(brand("622126"), Some(Brand::Discover));
        assert_eq!(brand("622125"), Some(Brand::Unionpay));
        assert_eq!(brand("622926"), Some(Brand::Unionpay));
        assert_eq!(brand("401178"), Some(Brand::Elo));
        assert_eq!(brand("401177"), Some(Brand::Visa));
        assert_eq!(brand("644"), Some(Brand::Discover));
        assert_eq!(brand("643"), Some(Brand::Maestro));
        assert_eq!(brand("6521"), Some(Brand::Rupay));
        assert_eq!(brand("6523"), Some(Brand::Discover));
        assert_eq!(brand("650031"), Some(Brand::Elo));
        assert_eq!(brand("384100"), Some(Brand::Hipercard));
        assert_eq!(brand("384101"), Some(Brand::Diners));
        assert_eq!(brand("606282"), Some(Brand::Hipercard));
        assert_eq!(brand("606281"), Some(Brand::Rupay));
        assert_eq!(brand("2204"), Some(Brand::Mir));
        assert_eq!(brand("2205"), None);
        assert_eq!(brand("2221"), Some(Brand::Mastercard));
        assert_eq!(brand("2721"), None);
        assert_eq!(brand("3527"), None);
        assert_eq!(brand("9"), None);
        // Only the leading digits count; a short prefix decides what it can.
        assert_eq!(brand("62"), Some(Brand::Unionpay));
        assert_eq!(brand("4x2126"), Some(Brand::Visa));
        assert_eq!(brand("6x2126"), None);
        assert_eq!(brand(""), None);
    }

    #[test]
    fn the_verdict_follows_range_length_and_check_digit() {
        let v = |digits: &str| check(digits.as_bytes());
        assert_eq!(v("4242424242424242"), Verdict::Card(Brand::Visa));
        assert_eq!(v("4242424242424241"), Verdict::Invalid);
        // Luhn-valid but 17 digits: Visa issues 13, 16 and 19.
        assert_eq!(v("42424242424242426"), Verdict::Invalid);
        assert_eq!(v("9999999999999995"), Verdict::NoNetwork);
        // UnionPay needs no check digit.
        assert_eq!(v("6200000000000001"), Verdict::Card(Brand::Unionpay));
        assert_eq!(v("62000000000001"), Verdict::Card(Brand::Unionpay));
        assert_eq!(v("6200000000001"), Verdict::Invalid);
        assert_eq!(v("42424242424242a2"), Verdict::Invalid);
        assert_eq!(v(""), Verdict::Invalid);
    }
}
