//! Conversions between generated messages and domain types.
use prost_types::Timestamp;

use common::card::{Billing, Card, CardInput};
use common::clock::Millis;
use proto::vault::v1 as pb;

use crate::domain::VaultError;
use crate::domain::audit::AuditRecord;
use crate::domain::card_meta::CardMeta;
use crate::domain::card_token::StoredView;
use crate::domain::single_use::{Detokenized, TokenView};
use crate::domain::token_id::TokenKind;

pub fn timestamp(ms: Millis) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// An absent timestamp is 0.
pub fn millis(ts: Option<&Timestamp>) -> Millis {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

pub fn kind(value: i32) -> Result<TokenKind, VaultError> {
    match pb::TokenKind::try_from(value) {
        Ok(pb::TokenKind::Registration) => Ok(TokenKind::Registration),
        Ok(pb::TokenKind::Omni) => Ok(TokenKind::Omni),
        _ => Err(VaultError::InvalidArgument("kind must be TOKEN_KIND_REGISTRATION or TOKEN_KIND_OMNI")),
    }
}

fn pb_kind(kind: TokenKind) -> i32 {
    match kind {
        TokenKind::Registration => pb::TokenKind::Registration as i32,
        TokenKind::Omni => pb::TokenKind::Omni as i32,
    }
}

pub fn stored_token(v: StoredView) -> pb::StoredToken {
    pb::StoredToken {
        id: v.id,
        kind: pb_kind(v.kind),
        merchant_id: v.merchant_id,
        customer_id: v.customer_id,
        card: Some(card_metadata(v.card)),
        created_at: Some(timestamp(v.created_at)),
        last_used_at: v.last_used_at.map(timestamp),
        retain_until: Some(timestamp(v.retain_until)),
        extended: v.extended,
        livemode: v.livemode,
    }
}

pub fn token_summary(v: StoredView) -> pb::TokenSummary {
    pb::TokenSummary {
        id: v.id,
        kind: pb_kind(v.kind),
        brand: v.card.brand,
        last_digits: v.card.last_digits,
        expiration_month: i32::from(v.card.expiration_month),
        expiration_year: i32::from(v.card.expiration_year),
    }
}

pub fn audit_event(e: AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id,
        event_type: e.event_type,
        merchant_id: e.merchant_id,
        token_id: e.token_id,
        actor: e.actor,
        correlation_id: e.correlation_id,
        outcome: e.outcome,
        at: Some(timestamp(e.at)),
    }
}

/// Takes the card's strings out of the message (the message is left empty).
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

pub fn card_metadata(m: CardMeta) -> pb::CardMetadata {
    pb::CardMetadata {
        brand: m.brand,
        bin: m.bin,
        last_digits: m.last_digits,
        expiration_month: i32::from(m.expiration_month),
        expiration_year: i32::from(m.expiration_year),
        name: m.name,
        fingerprint: m.fingerprint,
        country: m.country,
    }
}

pub fn token(t: TokenView) -> pb::Token {
    pb::Token {
        id: t.id,
        livemode: t.livemode,
        used: t.used,
        charge_status: t.charge_status,
        created_at: Some(timestamp(t.created_at)),
        expires_at: Some(timestamp(t.expires_at)),
        card: Some(card_metadata(t.card)),
    }
}

pub fn card(c: &Card) -> pb::Card {
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

pub fn detokenized(d: Detokenized) -> pb::DetokenizeResponse {
    pb::DetokenizeResponse { card: Some(card(&d.card)), metadata: Some(card_metadata(d.meta)), livemode: d.livemode }
}
