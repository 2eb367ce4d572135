//! The one card-number detector: reads text as DLP scanners and PCI assessors
//! do, so every caller-supplied text that is stored, logged or echoed can be
//! refused (`card_number_in_text`) before a card number rests outside the vault.
//!
//! The text is read as tokens: maximal runs of ASCII letters and digits, so a
//! run of digits inside a hex id, a UUID group or a base36 id is part of a
//! longer token and never a card number. All-digit tokens joined by one space,
//! dash or dot form a chain; a card number is found where, from any token of
//! a chain,
//! - a token of 13 or more digits begins with 13–19 digits that are a card
//!   number (the rest may be the expiry or the CVV typed without a separator:
//!   `42424242424242421230` is caught), or
//! - consecutive tokens have the lengths people type — 4-4-4-4, 4-4-4-4-1..3,
//!   4-4-4-1..3, 4-6-4, 4-6-5 — and their digits are a card number; what
//!   follows (a CVV, an expiry) does not hide it.
//!
//! "A card number" is what the network table says: 13–19 digits in a
//! network's range, of a length it issues, Luhn-valid where it requires it
//! (UnionPay does not). Luhn-valid numbers in no network's range, such as
//! millisecond timestamps, are not cards here; `naive_pans` still finds them.
//! A token right after a `+` never starts a card number: it is a phone number
//! in international form (`+4915112345678`), never how a card is written.
//!
//! `naive_pans` is the strict but noisy second opinion for leak scans: every
//! Luhn-valid run of 13–19 consecutive digits, inside longer runs included.
//! Rules, examples and the choices behind them: docs/CARD_NETWORKS.md.
use std::ops::{ControlFlow, Range};

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::networks::{self, Verdict};

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

/// The group lengths people type a card number in, longest first so a
/// 19-digit card written 4-4-4-4-3 is read whole.
const LAYOUTS: &[&[usize]] = &[
    &[4, 4, 4, 4, 3],
    &[4, 4, 4, 4, 2],
    &[4, 4, 4, 4, 1],
    &[4, 4, 4, 4],
    &[4, 6, 5],
    &[4, 4, 4, 3],
    &[4, 6, 4],
    &[4, 4, 4, 2],
    &[4, 4, 4, 1],
];

/// The most tokens a layout spans.
const MAX_GROUPS: usize = 5;

/// True when the text holds a card number as `find_pans` reads it. Used to
/// refuse card numbers pasted into free-text fields.
pub fn contains_pan(text: &str) -> bool {
    scan(text, |_| ControlFlow::Break(())).is_break()
}

/// `text` as it may be logged: request-supplied identifiers pass through this
/// so a card number pasted into the wrong field never reaches a log line.
pub fn loggable(text: &str) -> &str {
    if contains_pan(text) || crate::field::contains_iban(text) { "[redacted]" } else { text }
}

/// The digits of every card number in `text`, read as the module describes.
pub fn find_pans(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut found = Vec::new();
    let _ = scan(text, |digits| {
        found.push(String::from_utf8_lossy(digits).into_owned());
        ControlFlow::Continue(())
    });
    found.into_iter()
}

/// Every Luhn-valid run of 13–19 consecutive digits in `text`, wherever it
/// stands (inside a hex id too), without looking at networks or separators:
/// the leak scans' strict, noisy second opinion. Runs found do not overlap;
/// at each position the longest Luhn-valid run is taken.
pub fn naive_pans(text: &str) -> impl Iterator<Item = String> + '_ {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for digits in runs(bytes, |b| b.is_ascii_digit()) {
        let run = &bytes[digits];
        let mut at = 0;
        while at + MIN_DIGITS <= run.len() {
            let longest =
                (MIN_DIGITS..=MAX_DIGITS.min(run.len() - at)).rev().find(|&n| networks::luhn(&run[at..at + n]));
            match longest {
                Some(n) => {
                    found.push(String::from_utf8_lossy(&run[at..at + n]).into_owned());
                    at += n;
                }
                None => at += 1,
            }
        }
    }
    found.into_iter()
}

/// An all-digit token: its byte range and whether a `+` stands right before it.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    after_plus: bool,
}

impl Group {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// A candidate's digits, gathered from its groups; wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Digits {
    buf: [u8; MAX_DIGITS],
    len: usize,
}

impl Digits {
    fn gather(bytes: &[u8], groups: &[Group]) -> Option<Self> {
        let mut digits = Self { buf: [0; MAX_DIGITS], len: 0 };
        for g in groups {
            let part = &bytes[g.start..g.end];
            digits.buf.get_mut(digits.len..digits.len + part.len())?.copy_from_slice(part);
            digits.len += part.len();
        }
        Some(digits)
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn is_card(digits: &[u8]) -> bool {
    (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && matches!(networks::check(digits), Verdict::Card(_))
}

/// The maximal runs of bytes that are `within`, left to right.
fn runs(bytes: &[u8], within: fn(&u8) -> bool) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = i + bytes.get(i..)?.iter().position(within)?;
        let end = bytes[start..].iter().position(|b| !within(b)).map_or(bytes.len(), |n| start + n);
        i = end;
        Some(start..end)
    })
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// Calls `found` with the digits of each card number, left to right, until it
/// breaks. One pass over the bytes; a window of at most `MAX_GROUPS` groups of
/// the current chain, so nothing is allocated.
fn scan(text: &str, mut found: impl FnMut(&[u8]) -> ControlFlow<()>) -> ControlFlow<()> {
    let bytes = text.as_bytes();
    let mut window = [Group::default(); MAX_GROUPS];
    let mut held = 0;
    for token in runs(bytes, |b| b.is_ascii_alphanumeric()) {
        let (start, end) = (token.start, token.end);
        let all_digits = bytes[token].iter().all(u8::is_ascii_digit);
        let joined = held > 0 && window[held - 1].end + 1 == start && is_separator(bytes[start - 1]);
        if !all_digits || !joined {
            while held > 0 {
                advance(bytes, &mut window, &mut held, &mut found)?;
            }
        }
        if all_digits {
            if held == MAX_GROUPS {
                advance(bytes, &mut window, &mut held, &mut found)?;
            }
            window[held] = Group { start, end, after_plus: start > 0 && bytes[start - 1] == b'+' };
            held += 1;
        }
    }
    while held > 0 {
        advance(bytes, &mut window, &mut held, &mut found)?;
    }
    ControlFlow::Continue(())
}

/// Reads a card number starting at the window's first group, reports it, and
/// drops the groups it used (or just the first group when there is none).
fn advance(
    bytes: &[u8],
    window: &mut [Group; MAX_GROUPS],
    held: &mut usize,
    found: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let used = match card_at(bytes, &window[..*held]) {
        Some((used, digits)) => {
            found(digits.as_slice())?;
            used
        }
        None => 1,
    };
    window.copy_within(used..*held, 0);
    *held -= used;
    ControlFlow::Continue(())
}

/// The card number that starts at `groups[0]`, if any: how many groups it
/// spans and its digits.
fn card_at(bytes: &[u8], groups: &[Group]) -> Option<(usize, Digits)> {
    let first = *groups.first()?;
    if first.after_plus {
        return None;
    }
    if first.len() >= MIN_DIGITS {
        let run = &bytes[first.start..first.end];
        let n = (MIN_DIGITS..=MAX_DIGITS.min(run.len())).rev().find(|&n| is_card(&run[..n]))?;
        let head = Group { end: first.start + n, ..first };
        return Some((1, Digits::gather(bytes, &[head])?));
    }
    if first.len() != 4 {
        return None;
    }
    LAYOUTS.iter().find_map(|layout| {
        let span = groups.get(..layout.len())?;
        if !span.iter().zip(layout.iter()).all(|(g, &len)| g.len() == len) {
            return None;
        }
        let digits = Digits::gather(bytes, span)?;
        is_card(digits.as_slice()).then_some((layout.len(), digits))
    })
}

#[cfg(test)]
mod tests;
