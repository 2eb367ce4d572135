//! Conversions between generated messages and the vault's domain types; the
//! card, token-kind and timestamp conversions are `vault_api::convert`'s, the
//! one copy both services use.
use proto::vault::v1 as pb;
use vault_api::convert;
pub use vault_api::convert::{account_input, card_input, millis, timestamp};
use vault_api::{ChargeStatus, MaskedCard, TokenKind};

use crate::domain::VaultError;
use crate::domain::account_meta::AccountMeta;
use crate::domain::audit::AuditRecord;
use crate::domain::card_meta::{Address, CardMeta};
use crate::domain::card_token::{Released, StoredView};
use crate::domain::single_use::TokenView;
use crate::domain::store::cards::Instrument;

pub fn kind(value: i32) -> Result<TokenKind, VaultError> {
    convert::kind_from_proto(value)
        .ok()
        .flatten()
        .ok_or(VaultError::InvalidArgument("kind must be TOKEN_KIND_REGISTRATION or TOKEN_KIND_OMNI"))
}

/// A reported charge status: one a payment reports (pending, successful,
/// reversed, failed).
pub fn charge_status(value: &str) -> Result<ChargeStatus, VaultError> {
    ChargeStatus::parse(value)
        .filter(|c| c.reportable())
        .ok_or(VaultError::InvalidArgument("charge_status must be pending, successful, reversed or failed"))
}

/// The instrument a Detokenize caller can use: `None` (either) when empty.
pub fn instrument(value: &str) -> Result<Option<Instrument>, VaultError> {
    match value {
        "" => Ok(None),
        other => Instrument::parse(other)
            .map(Some)
            .ok_or(VaultError::InvalidArgument("instrument must be card, account or empty")),
    }
}

/// A list filter: `None` (every kind) for `TOKEN_KIND_UNSPECIFIED`.
pub fn kind_filter(value: i32) -> Result<Option<TokenKind>, VaultError> {
    convert::kind_from_proto(value).map_err(|_| VaultError::InvalidArgument("kind is not a TokenKind"))
}

fn pb_kind(kind: TokenKind) -> i32 {
    convert::kind_to_proto(kind) as i32
}

pub fn stored_token(v: StoredView) -> pb::StoredToken {
    pb::StoredToken {
        id: v.id,
        kind: pb_kind(v.kind),
        merchant_id: v.merchant_id,
        customer_id: v.customer_id,
        card: v.account.is_none().then(|| card_metadata(v.card)),
        account: v.account.map(account_metadata),
        created_at: Some(timestamp(v.created_at)),
        last_used_at: v.last_used_at.map(timestamp),
        retain_until: Some(timestamp(v.retain_until)),
        extended: v.extended,
        livemode: v.livemode,
        is_default: v.is_default,
    }
}

pub fn token_summary(v: StoredView) -> pb::TokenSummary {
    let (brand, last_digits) = match &v.account {
        Some(a) => (a.masked.brand.clone(), a.masked.last4.clone()),
        None => (v.card.masked.brand, v.card.masked.last4),
    };
    pb::TokenSummary {
        id: v.id,
        kind: pb_kind(v.kind),
        brand,
        last_digits,
        expiration_month: i32::from(v.card.masked.exp_month),
        expiration_year: i32::from(v.card.masked.exp_year),
        is_default: v.is_default,
        account: v.account.map(account_metadata),
    }
}

pub fn account_metadata(m: AccountMeta) -> pb::AccountMetadata {
    convert::account_metadata(m.masked, m.fingerprint)
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

pub fn card_metadata(m: CardMeta) -> pb::CardMetadata {
    let MaskedCard { brand, bin, last4, exp_month, exp_year, name } = m.masked;
    let Address { city, postal_code, state, street1, street2, phone_number } = m.address;
    pb::CardMetadata {
        brand,
        bin,
        last_digits: last4,
        expiration_month: i32::from(exp_month),
        expiration_year: i32::from(exp_year),
        name,
        fingerprint: m.fingerprint,
        country: m.country,
        city,
        postal_code,
        state,
        street1,
        street2,
        phone_number,
    }
}

/// A single-use token as Omise shows one: `object`, `location`, and
/// `created_at` to the second.
pub fn token(t: TokenView) -> pb::Token {
    pb::Token {
        object: "token".into(),
        location: format!("/tokens/{}", t.id),
        id: t.id,
        livemode: t.livemode,
        used: t.used,
        charge_status: t.charge_status.as_str().into(),
        created_at: Some(timestamp(t.created_at - t.created_at.rem_euclid(1000))),
        expires_at: Some(timestamp(t.expires_at)),
        card: Some(card_metadata(t.card)),
    }
}

pub fn detokenized(d: Released) -> pb::DetokenizeResponse {
    match d {
        Released::Card(d) => pb::DetokenizeResponse {
            card: Some(convert::card_to_proto(&d.card)),
            metadata: Some(card_metadata(d.meta)),
            livemode: d.livemode,
            bank_account: None,
            account: None,
        },
        Released::Account(released) => pb::DetokenizeResponse {
            card: None,
            metadata: None,
            livemode: released.livemode,
            bank_account: Some(convert::account_to_proto(&released.account)),
            account: Some(account_metadata(released.meta)),
        },
    }
}
