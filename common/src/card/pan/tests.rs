//! The detector's tests: hostile spellings are found, ids and other
//! digit-bearing text are left alone (100,000 random ids of each kind), and a
//! property over the whole network table.
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::card::CardNumber;
use crate::card::networks::{Iin, NETWORKS, lookup};
use crate::ids;

fn pans(text: &str) -> Vec<String> {
    find_pans(text).collect()
}

#[test]
fn hostile_spellings_are_found() {
    let cases = [
        ("Jane 4242 4242 4242 4242 737", "4242424242424242"),
        ("4242 4242 4242 4242 737", "4242424242424242"),
        ("4242424242424242 1230", "4242424242424242"),
        ("4242.4242.4242.4242", "4242424242424242"),
        ("order 4012 8888 8888 1881 737", "4012888888881881"),
        ("4242-4242-4242-4242-737", "4242424242424242"),
        ("4242.4242.4242.4242.737", "4242424242424242"),
        ("4242 4242-4242.4242", "4242424242424242"),
        ("4242 4242 4242 4242 12/30", "4242424242424242"),
        ("4242424242424242 12/30", "4242424242424242"),
        ("4242424242424242.00", "4242424242424242"),
        // Expiry or CVV typed straight after the number.
        ("42424242424242421230", "4242424242424242"),
        ("4242424242424242737", "4242424242424242"),
        ("card 4111-1111-1111-1111, exp 12/30, cvv 123", "4111111111111111"),
        ("4111 1111 1111 1111 123", "4111111111111111"),
        ("pay with 5555 5555 5555 4444.", "5555555555554444"),
        ("(4000 0000 0000 0002)", "4000000000000002"),
        ("pan=4242424242424242&cvv=737", "4242424242424242"),
        ("x_4242424242424242_y", "4242424242424242"),
        ("-4242424242424242", "4242424242424242"),
        ("Zoë·4242424242424242", "4242424242424242"),
        ("4242424242424242 is my card", "4242424242424242"),
        ("my card is\n4242424242424242\n", "4242424242424242"),
        ("1 4242 4242 4242 4242", "4242424242424242"),
        ("+1 4242 4242 4242 4242", "4242424242424242"),
        ("amex 3782 822463 10005", "378282246310005"),
        ("3782-822463-10005-1234", "378282246310005"),
        ("3782 8224 6310 005", "378282246310005"),
        ("diners 3056 930902 5904", "30569309025904"),
        ("visa13 4222 2222 2222 2", "4222222222222"),
        ("4222222222222", "4222222222222"),
        ("4242 4242 4242 4242 428", "4242424242424242428"),
        ("2223 0031 2200 3222", "2223003122003222"),
        // UnionPay needs no Luhn digit; Mir, Elo, Hipercard and RuPay are in the table.
        ("unionpay 6200 0000 0000 0001", "6200000000000001"),
        ("mir 2204 0000 0000 0000", "2204000000000000"),
        ("elo 6362-9700-0045-7013", "6362970000457013"),
        ("6062825624254001", "6062825624254001"),
        ("rupay 6521.0000.0000.0007", "6521000000000007"),
    ];
    for (text, pan) in cases {
        assert_eq!(pans(text), vec![pan.to_owned()], "{text:?}");
        assert!(contains_pan(text), "{text:?}");
        assert_eq!(loggable(text), "[redacted]", "{text:?}");
    }
    assert_eq!(
        pans("jcb 3530111333300000, discover 6011 1111 1111 1117"),
        vec!["3530111333300000".to_owned(), "6011111111111117".to_owned()]
    );
}

#[test]
fn ids_and_other_digits_are_left_alone() {
    let texts = [
        "tokn_test_5a8b2 2026-11-23T02:31:38Z 123456789012",
        "424242******4242",
        "4242 42** **** 4242",
        "3f2a4242424242424242b1",
        "123e4567-e89b-12d3-a456-426614174000",
        "4242424242424241",
        "4242 4242",
        "+1 415-555-0100",
        "(415) 555-0100",
        "415.555.0100",
        "+44 20 7946 0958",
        "+49 1511 2345678",
        // Luhn-valid 13 digits from 4, and 14 from 62: phone numbers after a '+'.
        "+4915112345678",
        "tel:+62812345678901",
        "0049 151 12345678",
        "2026-11-23",
        "2026-11-23T02:31:38.123456789Z",
        "23.11.2026 02:31",
        "Mon, 23 Nov 2026 02:31:38 +0000",
        "1,234,567.89",
        "USD 4242.42",
        "12 345 678,90 EUR",
        "amount=424242424242",
        "192.168.100.200",
        "v1.2.3.4",
        // Millisecond and nanosecond timestamps: Luhn may hold, no network's range.
        "1795392000000",
        "1795392000000000000",
        "9999999999999995",
        "",
    ];
    for text in texts {
        assert!(pans(text).is_empty(), "{text:?}: {:?}", pans(text));
        assert!(!contains_pan(text), "{text:?}");
        assert_eq!(loggable(text), text);
    }
}

#[test]
fn the_naive_detector_finds_luhn_runs_anywhere() {
    assert_eq!(naive_pans("3f2a4242424242424242b1").collect::<Vec<_>>(), vec!["4242424242424242"]);
    assert!(!contains_pan("3f2a4242424242424242b1"));
    assert_eq!(naive_pans("9999999999999995").collect::<Vec<_>>(), vec!["9999999999999995"]);
    assert_eq!(naive_pans("4242424242424242737").collect::<Vec<_>>(), vec!["4242424242424242"]);
    assert_eq!(naive_pans("424242******4242 4242 4242 4242 4242").count(), 0);
    assert_eq!(naive_pans("tokn_test_5a8b2 2026-11-23T02:31:38Z 123456789012").count(), 0);
}

const HEX: &[u8] = b"0123456789abcdef";
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Lowercase hex of `bytes`, a dash before the bytes at `dashes`.
fn hex(bytes: &[u8], dashes: &[usize]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + dashes.len());
    for (i, b) in bytes.iter().enumerate() {
        if dashes.contains(&i) {
            out.push('-');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

fn hex32(rng: &mut SmallRng) -> String {
    hex(&rng.random::<u128>().to_le_bytes(), &[])
}

fn uuid_v4(rng: &mut SmallRng) -> String {
    let mut bytes = rng.random::<u128>().to_le_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex(&bytes, &[4, 6, 8, 10])
}

fn ulid(rng: &mut SmallRng) -> String {
    let millis: u128 = rng.random_range(1_600_000_000_000..1_900_000_000_000);
    let value = (millis << 80) | (rng.random::<u128>() >> 48);
    (0..26).rev().map(|i| CROCKFORD[((value >> (5 * i)) & 31) as usize] as char).collect()
}

/// 20–32 base36 characters; bytes of 252 and up are skipped so each character is uniform.
fn base36(rng: &mut SmallRng) -> String {
    let len = rng.random_range(20..=32);
    let mut id = String::with_capacity(len);
    while id.len() < len {
        let bytes = rng.random::<u128>().to_le_bytes();
        let chars = bytes.iter().filter(|&&b| b < 252).map(|&b| BASE36[usize::from(b % 36)] as char);
        id.extend(chars.take(len - id.len()));
    }
    id
}

type MakeId = fn(&mut SmallRng) -> String;

#[test]
fn random_ids_are_never_card_numbers() {
    const EACH: usize = 100_000;
    let mut rng = SmallRng::seed_from_u64(0x7061_7976_6175_6c74);
    let kinds: [(&str, MakeId); 4] = [("uuid v4", uuid_v4), ("32 hex", hex32), ("ulid", ulid), ("base36", base36)];
    let started = Instant::now();
    let mut naive_hits = 0;
    for (kind, make) in kinds {
        for _ in 0..EACH {
            let id = make(&mut rng);
            assert!(!contains_pan(&id), "{kind} {id}");
            naive_hits += naive_pans(&id).count();
        }
    }
    eprintln!("{} random ids scanned in {:?}", 4 * EACH, started.elapsed());
    // The ids did hold Luhn-valid digit runs (about 1 in 430 32-hex ids does):
    // the detector saw them and read them as parts of ids.
    assert!(naive_hits > 100, "only {naive_hits} naive hits: the ids did not test the detector");
}

#[test]
fn generated_ids_agree_with_both_detectors() {
    for _ in 0..10_000 {
        for id in [ids::hex(16), ids::base36(24), ids::base36(32), format!("tokn_test_{}", ids::base36(24))] {
            assert!(ids::is_card_safe(&id), "{id}");
            assert!(!contains_pan(&id), "{id}");
            assert_eq!(naive_pans(&id).count(), 0, "{id}");
        }
    }
}

/// The Luhn check digit that completes `payload`.
fn check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A card number the table accepts: a prefix from `range`, random digits, a
/// length the owning network (the most specific range) issues within 13–19,
/// the Luhn digit — broken, where the network does not require it, when
/// `break_luhn`.
fn card_number(range: Iin, pick: u64, body: &[u8], length: Index, break_luhn: bool) -> String {
    let prefix = range.lo + (pick % u64::from(range.hi - range.lo + 1)) as u32;
    let mut digits: Vec<u8> = prefix.to_string().bytes().map(|b| b - b'0').collect();
    digits.extend(body.iter().take(6 - digits.len()));
    let six: Vec<u8> = digits.iter().map(|d| d + b'0').collect();
    let network = lookup(&six).expect("the range's own prefix matches");
    let lengths: Vec<usize> = (13..=19).filter(|&n| network.lengths.contains(n)).collect();
    let len = lengths[length.index(lengths.len())];
    digits.extend(body.iter().skip(6).take(len - 1 - digits.len()));
    let check = check_digit(&digits);
    digits.push(if break_luhn && !network.luhn { (check + 1) % 10 } else { check });
    digits.iter().map(|d| char::from(d + b'0')).collect()
}

fn any_card_number() -> impl Strategy<Value = String> {
    let ranges: Vec<Iin> = NETWORKS.iter().flat_map(|n| n.iins.iter().copied()).collect();
    (select(ranges), any::<u64>(), prop::collection::vec(0u8..10, 19), any::<Index>(), any::<bool>())
        .prop_map(|(range, pick, body, length, break_luhn)| card_number(range, pick, &body, length, break_luhn))
}

/// `digits` in one of the groupings people type for its length.
fn typed(digits: &str, layout: Index, separators: &[char]) -> String {
    let len = digits.len();
    let mut layouts = vec![vec![len]];
    match len {
        13..=15 => layouts.push(vec![4, 4, 4, len - 12]),
        16 => layouts.push(vec![4, 4, 4, 4]),
        _ => layouts.push(vec![4, 4, 4, 4, len - 16]),
    }
    if len == 14 {
        layouts.push(vec![4, 6, 4]);
    }
    if len == 15 {
        layouts.push(vec![4, 6, 5]);
    }
    let groups = &layouts[layout.index(layouts.len())];
    let mut out = String::new();
    let mut at = 0;
    for (i, &n) in groups.iter().enumerate() {
        if i > 0 {
            out.push(separators[i - 1]);
        }
        out.push_str(&digits[at..at + n]);
        at += n;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_card_number_typed_any_way_is_found(
        pan in any_card_number(),
        layout in any::<Index>(),
        separators in prop::collection::vec(select(vec![' ', '-', '.']), 4),
        lead in "([A-Za-z]{1,8}[ :=,;(#/_*]){0,3}",
        extra in select(vec!["", " 737", "-1230", " 12/30", ".123", " 1234"]),
        tail in "([ ,;)!?/\\]][A-Za-z]{0,8}){0,3}",
    ) {
        prop_assert!(CardNumber::parse(&pan).is_ok(), "{pan} is not a card number");
        let text = format!("{lead}{}{extra}{tail}", typed(&pan, layout, &separators));
        let found = pans(&text);
        prop_assert!(found.iter().any(|p| p.starts_with(&pan)), "{text:?}: {found:?}");
        prop_assert!(contains_pan(&text));
    }

    #[test]
    fn digits_touching_letters_are_never_a_card_number(
        token in "([a-zA-Z][0-9]{13,30}|[0-9]{13,30}[a-zA-Z])[0-9a-zA-Z]{0,8}",
        lead in "[ :=_-]?",
    ) {
        let text = format!("{lead}{token}");
        prop_assert!(!contains_pan(&text), "{text:?}");
    }
}
