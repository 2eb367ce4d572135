//! What may be shown about a card: the contract's [`MaskedCard`] (brand, BIN,
//! last four, expiry, holder name) and what only the vault adds to it, the
//! fingerprint and the billing country. Never the number, never the security
//! code. Sealed as one flat JSON object under vault.proto's `CardMetadata`
//! names, as it always was.
use serde::{Deserialize, Serialize};

use common::card::Card;
use vault_api::MaskedCard;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMeta {
    #[serde(flatten)]
    pub masked: MaskedCard,
    pub fingerprint: String,
    pub country: String,
}

impl CardMeta {
    pub fn of(card: &Card, fingerprint: String) -> Self {
        Self { masked: MaskedCard::of(card), fingerprint, country: card.billing.country.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata sealed before `CardMeta` reused `MaskedCard` still opens, and
    /// new metadata is sealed byte for byte as before.
    #[test]
    fn the_sealed_form_is_unchanged() {
        let sealed = r#"{"brand":"visa","bin":"424242","last_digits":"4242","expiration_month":12,"expiration_year":2040,"name":"Ada Lovelace","fingerprint":"fp","country":"GB"}"#;
        let meta: CardMeta = serde_json::from_str(sealed).unwrap();
        assert_eq!((meta.masked.last4.as_str(), meta.masked.exp_month, meta.masked.exp_year), ("4242", 12, 2040));
        assert_eq!((meta.fingerprint.as_str(), meta.country.as_str()), ("fp", "GB"));
        assert_eq!(serde_json::to_string(&meta).unwrap(), sealed);
    }
}
