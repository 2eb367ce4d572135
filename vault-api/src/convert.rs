//! The one conversion between the vault's wire messages and domain types that
//! both sides of the contract need: cards (`pb::Card` ⇄ `common::card`), token
//! kinds, timestamps and card metadata. Card data passes through here in clear
//! and is never logged.
use prost_types::Timestamp;

use common::bank::{BankAccount, BankAccountInput, MaskedAccount};
use common::card::{Billing, Card, CardInput};
use common::clock::Millis;
use proto::vault::v1 as pb;

use crate::token_id::TokenKind;
use crate::vault::MaskedCard;

/// A card as the wire carries it, billing address included.
pub fn card_to_proto(c: &Card) -> pb::Card {
    pb::Card {
        number: c.number.expose().to_owned(),
        expiration_month: i32::from(c.expiry.month),
        expiration_year: i32::from(c.expiry.year),
        name: c.name.clone(),
        security_code: c.security_code.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default(),
        city: c.billing.city.clone(),
        country: c.billing.country.clone(),
        postal_code: c.billing.postal_code.clone(),
        state: c.billing.state.clone(),
        street1: c.billing.street1.clone(),
        street2: c.billing.street2.clone(),
        phone_number: c.billing.phone_number.clone(),
    }
}

/// Takes the card's strings out of the message (the message is left empty),
/// ready for `Card::validate`.
pub fn card_input(card: &mut pb::Card) -> CardInput {
    let take = std::mem::take::<String>;
    CardInput {
        number: take(&mut card.number),
        expiration_month: card.expiration_month,
        expiration_year: card.expiration_year,
        name: take(&mut card.name),
        security_code: take(&mut card.security_code),
        billing: Billing {
            city: take(&mut card.city),
            country: take(&mut card.country),
            postal_code: take(&mut card.postal_code),
            state: take(&mut card.state),
            street1: take(&mut card.street1),
            street2: take(&mut card.street2),
            phone_number: take(&mut card.phone_number),
        },
    }
}

/// A bank account as the wire carries it.
pub fn account_to_proto(a: &BankAccount) -> pb::BankAccount {
    pb::BankAccount {
        iban: a.iban.expose().to_owned(),
        bic: a.bic.clone().unwrap_or_default(),
        holder: a.holder.clone(),
        country: a.country.clone(),
    }
}

/// Takes the account's strings out of the message (left empty), ready for
/// `BankAccount::validate`.
pub fn account_input(account: &mut pb::BankAccount) -> BankAccountInput {
    let take = std::mem::take::<String>;
    BankAccountInput {
        iban: take(&mut account.iban),
        bic: take(&mut account.bic),
        holder: take(&mut account.holder),
        country: take(&mut account.country),
    }
}

/// The masked account a caller may see, from the vault's account metadata.
pub fn masked_account(m: pb::AccountMetadata) -> MaskedAccount {
    MaskedAccount {
        brand: m.brand,
        last4: m.last_digits,
        country: m.country,
        bank_code: m.bank_code,
        holder: m.holder,
        bic: m.bic,
    }
}

/// The vault's account metadata of a masked account (no fingerprint).
pub fn account_metadata(m: MaskedAccount, fingerprint: String) -> pb::AccountMetadata {
    pb::AccountMetadata {
        brand: m.brand,
        last_digits: m.last4,
        country: m.country,
        bank_code: m.bank_code,
        holder: m.holder,
        bic: m.bic,
        fingerprint,
    }
}

pub fn kind_to_proto(kind: TokenKind) -> pb::TokenKind {
    match kind {
        TokenKind::Registration => pb::TokenKind::Registration,
        TokenKind::Omni => pb::TokenKind::Omni,
    }
}

/// A wire value that is not a `TokenKind` the proto defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a TokenKind")]
pub struct UnknownKind(pub i32);

/// The kind a wire value names: `Ok(None)` for `TOKEN_KIND_UNSPECIFIED`.
pub fn kind_from_proto(value: i32) -> Result<Option<TokenKind>, UnknownKind> {
    match pb::TokenKind::try_from(value) {
        Ok(pb::TokenKind::Unspecified) => Ok(None),
        Ok(pb::TokenKind::Registration) => Ok(Some(TokenKind::Registration)),
        Ok(pb::TokenKind::Omni) => Ok(Some(TokenKind::Omni)),
        Err(_) => Err(UnknownKind(value)),
    }
}

pub fn timestamp(ms: Millis) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// An absent timestamp is 0.
pub fn millis(ts: Option<&Timestamp>) -> Millis {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The masked card a caller may see, from the vault's card metadata.
pub fn masked_card(m: Option<pb::CardMetadata>) -> MaskedCard {
    let m = m.unwrap_or_default();
    MaskedCard {
        brand: m.brand,
        bin: m.bin,
        last4: m.last_digits,
        exp_month: m.expiration_month as u8,
        exp_year: m.expiration_year as u16,
        name: m.name,
    }
}

/// The billing address in the vault's card metadata.
pub fn billing(m: &pb::CardMetadata) -> Billing {
    Billing {
        city: m.city.clone(),
        country: m.country.clone(),
        postal_code: m.postal_code.clone(),
        state: m.state.clone(),
        street1: m.street1.clone(),
        street2: m.street2.clone(),
        phone_number: m.phone_number.clone(),
    }
}

#[cfg(test)]
mod tests {
    use common::clock::Clock;

    use super::*;

    #[test]
    fn a_card_survives_the_wire() {
        let mut input = CardInput::default();
        input.number = "4242424242424242".into();
        (input.expiration_month, input.expiration_year) = (12, 2040);
        input.name = "Ada Lovelace".into();
        input.security_code = "123".into();
        input.billing.country = "GB".into();
        input.billing.city = "London".into();
        let now = common::clock::SystemClock.now_ms();
        let card = Card::validate(&input, now).unwrap();
        let mut wire = card_to_proto(&card);
        let back = Card::validate(&card_input(&mut wire), now).unwrap();
        assert!(wire.number.is_empty() && wire.security_code.is_empty(), "card_input takes the strings out");
        assert_eq!(back.number.expose(), "4242424242424242");
        assert_eq!((back.expiry.month, back.expiry.year), (12, 2040));
        assert_eq!(back.security_code.as_ref().map(|s| s.expose().to_owned()).as_deref(), Some("123"));
        assert_eq!((back.billing.country.as_str(), back.billing.city.as_str()), ("GB", "London"));
        assert_eq!(MaskedCard::of(&back).last4, "4242");
    }

    #[test]
    fn an_account_survives_the_wire() {
        let input = BankAccountInput {
            iban: "de89 3704 0044 0532 0130 00".into(),
            bic: "COBADEFFXXX".into(),
            holder: "Jane Doe".into(),
            country: String::new(),
        };
        let account = BankAccount::validate(&input).unwrap();
        let mut wire = account_to_proto(&account);
        let back = BankAccount::validate(&account_input(&mut wire)).unwrap();
        assert!(wire.iban.is_empty(), "account_input takes the strings out");
        assert_eq!(back, account);
        let shown = masked_account(account_metadata(back.masked(), String::new()));
        assert_eq!(
            (shown.brand.as_str(), shown.last4.as_str(), shown.bank_code.as_str()),
            ("DIRECTDEBIT_SEPA", "3000", "37040044")
        );
    }

    #[test]
    fn kinds_and_timestamps_round_trip() {
        for kind in [TokenKind::Registration, TokenKind::Omni] {
            assert_eq!(kind_from_proto(kind_to_proto(kind) as i32), Ok(Some(kind)));
        }
        assert_eq!(kind_from_proto(0), Ok(None));
        assert_eq!(kind_from_proto(42), Err(UnknownKind(42)));
        for ms in [0, 1, 999, 1_700_000_000_123, -1] {
            assert_eq!(millis(Some(&timestamp(ms))), ms);
        }
        assert_eq!(millis(None), 0);
    }
}
