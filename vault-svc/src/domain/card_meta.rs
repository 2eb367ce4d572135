//! What may be shown about a card: the contract's [`MaskedCard`] (brand, BIN,
//! last four, expiry, holder name) and what only the vault adds to it, the
//! fingerprint and the billing address (Omise's fields, as validated). Never
//! the number, never the security code. Sealed as one flat JSON object under
//! vault.proto's `CardMetadata` names, as it always was: `country` always,
//! the other billing fields only when given, so metadata sealed before they
//! were kept still opens (they read as empty) and a card without them seals
//! byte for byte as before.
use serde::{Deserialize, Serialize};

use common::card::{Billing, Card};
use vault_api::MaskedCard;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMeta {
    #[serde(flatten)]
    pub masked: MaskedCard,
    pub fingerprint: String,
    pub country: String,
    #[serde(flatten)]
    pub address: Address,
}

/// The billing fields besides the country.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub city: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub street1: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub street2: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone_number: String,
}

impl CardMeta {
    pub fn of(card: &Card, fingerprint: String) -> Self {
        let b = &card.billing;
        Self {
            masked: MaskedCard::of(card),
            fingerprint,
            country: b.country.clone(),
            address: Address {
                city: b.city.clone(),
                postal_code: b.postal_code.clone(),
                state: b.state.clone(),
                street1: b.street1.clone(),
                street2: b.street2.clone(),
                phone_number: b.phone_number.clone(),
            },
        }
    }

    /// The billing fields as the contract carries them.
    pub fn billing(&self) -> Billing {
        let a = &self.address;
        Billing {
            city: a.city.clone(),
            country: self.country.clone(),
            postal_code: a.postal_code.clone(),
            state: a.state.clone(),
            street1: a.street1.clone(),
            street2: a.street2.clone(),
            phone_number: a.phone_number.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata sealed before `CardMeta` reused `MaskedCard` (and before it
    /// kept more than the country) still opens, and metadata of a card with
    /// no other billing field is sealed byte for byte as before.
    #[test]
    fn the_sealed_form_is_unchanged() {
        let sealed = r#"{"brand":"visa","bin":"424242","last_digits":"4242","expiration_month":12,"expiration_year":2040,"name":"Ada Lovelace","fingerprint":"fp","country":"GB"}"#;
        let meta: CardMeta = serde_json::from_str(sealed).unwrap();
        assert_eq!((meta.masked.last4.as_str(), meta.masked.exp_month, meta.masked.exp_year), ("4242", 12, 2040));
        assert_eq!((meta.fingerprint.as_str(), meta.country.as_str()), ("fp", "GB"));
        assert_eq!(meta.address, Address::default());
        assert_eq!(serde_json::to_string(&meta).unwrap(), sealed);
    }

    #[test]
    fn every_billing_field_is_sealed_and_read_back() {
        let mut meta: CardMeta = serde_json::from_str(
            r#"{"brand":"visa","bin":"424242","last_digits":"4242","expiration_month":12,"expiration_year":2040,"name":"A","fingerprint":"fp","country":"TH"}"#,
        )
        .unwrap();
        meta.address = Address {
            city: "Bangkok".into(),
            postal_code: "10320".into(),
            state: "Bangkok".into(),
            street1: "1448/4 Praditmanutham Road".into(),
            street2: "Floor 7".into(),
            phone_number: "+66 2 123 4567".into(),
        };
        let back: CardMeta = serde_json::from_str(&serde_json::to_string(&meta).unwrap()).unwrap();
        assert_eq!(back, meta);
        let billing = back.billing();
        assert_eq!((billing.country.as_str(), billing.street2.as_str()), ("TH", "Floor 7"));
    }
}
