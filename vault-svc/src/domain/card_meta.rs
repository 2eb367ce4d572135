//! What may be shown about a card: brand, BIN, last four, expiry, holder name,
//! fingerprint, billing country. Never the number, never the security code.
use serde::{Deserialize, Serialize};

use common::card::Card;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMeta {
    pub brand: String,
    pub bin: String,
    pub last_digits: String,
    pub expiration_month: u8,
    pub expiration_year: u16,
    pub name: String,
    pub fingerprint: String,
    pub country: String,
}

impl CardMeta {
    pub fn of(card: &Card, fingerprint: String) -> Self {
        Self {
            brand: card.number.brand().as_str().to_owned(),
            bin: card.number.bin().to_owned(),
            last_digits: card.number.last4().to_owned(),
            expiration_month: card.expiry.month,
            expiration_year: card.expiry.year,
            name: card.name.clone(),
            fingerprint,
            country: card.billing.country.clone(),
        }
    }
}
