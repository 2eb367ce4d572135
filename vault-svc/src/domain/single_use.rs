//! Single-use tokens (Omise's model): created from card data with a public key,
//! usable once within 30 minutes, metadata kept 7 days. Consumption is atomic
//! in the store; a consumer may repeat its own consumption within two minutes
//! (a retried payment) and gets the same card back. The store keeps the
//! consumer's reference keyed (`KeyRing::reference`), never as sent.
//!
//! `charge_status` (Omise's) follows the payment made with the token: the
//! consumer reports `pending`, `successful`, `reversed` or `failed` as the
//! payment moves on, and a report never moves it back a stage (the store's
//! rule, `ChargeStatus::stage`); a token no payment reported on shows
//! `unknown`, or `expired` once it is past its usable window unused (worked
//! out when it is read, not stored).
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use common::card::{Card, CardInput};
use common::clock::{Millis, SharedClock};
use vault_api::{ChargeStatus, token_id};

use super::card_meta::CardMeta;
use super::error::VaultError;
use super::store::{Consumed, NewSingleUse, TokenStore};
use crate::crypto::{Aad, KeyRing};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub usable_ms: Millis,
    pub retain_ms: Millis,
    pub replay_ms: Millis,
}

impl Default for Policy {
    fn default() -> Self {
        Self { usable_ms: 30 * 60 * 1000, retain_ms: 7 * 24 * 3600 * 1000, replay_ms: 2 * 60 * 1000 }
    }
}

/// A token as its merchant may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub id: String,
    pub livemode: bool,
    pub used: bool,
    pub charge_status: ChargeStatus,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub card: CardMeta,
}

/// The card behind a consumed token.
#[derive(Debug)]
pub struct Detokenized {
    pub card: Card,
    pub meta: CardMeta,
    pub livemode: bool,
}

/// The sealed metadata record.
#[derive(Serialize, Deserialize)]
struct Meta {
    livemode: bool,
    created_at: Millis,
    card: CardMeta,
}

const META: &str = "single_use_meta";
const CARD: &str = "single_use_card";

pub struct SingleUseTokens<S> {
    store: S,
    keys: Arc<KeyRing>,
    clock: SharedClock,
    policy: Policy,
}

impl<S: TokenStore> SingleUseTokens<S> {
    pub fn new(store: S, keys: Arc<KeyRing>, clock: SharedClock, policy: Policy) -> Self {
        Self { store, keys, clock, policy }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn create(&self, merchant_id: &str, livemode: bool, input: &CardInput) -> Result<TokenView, VaultError> {
        let now = self.clock.now_ms();
        let card = Card::validate(input, now)?;
        let id = token_id::new_single_use(livemode);
        let fingerprint = self.keys.fingerprint(merchant_id, card.number.expose()).await?;
        let meta = Meta { livemode, created_at: now, card: CardMeta::of(&card, fingerprint) };
        let aad = |kind| Aad { merchant_id, token_id: &id, kind };
        let meta_plain = Zeroizing::new(serde_json::to_vec(&meta).map_err(|_| VaultError::Corrupt)?);
        let card_plain = Zeroizing::new(serde_json::to_vec(&card).map_err(|_| VaultError::Corrupt)?);
        let record = NewSingleUse {
            id: id.clone(),
            merchant_id: merchant_id.to_owned(),
            created_at: now,
            expires_at: now + self.policy.usable_ms,
            retain_until: now + self.policy.retain_ms,
            meta: self.keys.seal(aad(META), &meta_plain).await?.0,
            card: self.keys.seal(aad(CARD), &card_plain).await?.0,
        };
        if !self.store.create(&record).await? {
            // A 124-bit random id collided: refuse rather than overwrite.
            return Err(VaultError::Corrupt);
        }
        Ok(TokenView {
            id,
            livemode,
            used: false,
            charge_status: ChargeStatus::Unknown,
            created_at: now,
            expires_at: record.expires_at,
            card: meta.card,
        })
    }

    pub async fn get(&self, merchant_id: &str, livemode: bool, id: &str) -> Result<TokenView, VaultError> {
        if token_id::single_use_livemode(id) != Some(livemode) {
            return Err(VaultError::TokenNotFound);
        }
        let now = self.clock.now_ms();
        let record = self.store.get(id, merchant_id, now).await?.ok_or(VaultError::TokenNotFound)?;
        let meta = self.open_meta(merchant_id, id, &record.meta).await?;
        let charge_status = match record.charge_status {
            Some(reported) => reported,
            None if !record.used && now >= record.expires_at => ChargeStatus::Expired,
            None => ChargeStatus::Unknown,
        };
        Ok(TokenView {
            id: id.to_owned(),
            livemode: meta.livemode,
            used: record.used,
            charge_status,
            created_at: meta.created_at,
            expires_at: record.expires_at,
            card: meta.card,
        })
    }

    /// Consumes the token for `consumer_ref` and returns the card in clear.
    pub async fn detokenize(&self, merchant_id: &str, id: &str, consumer_ref: &str) -> Result<Detokenized, VaultError> {
        if consumer_ref.is_empty() {
            return Err(VaultError::InvalidArgument("consumer_ref must be 1 to 255 characters of text"));
        }
        super::card_token::check_ref(consumer_ref, "consumer_ref", "consumer_ref must be 1 to 255 characters of text")?;
        if token_id::single_use_livemode(id).is_none() {
            return Err(VaultError::TokenNotFound);
        }
        let Some(consumer) = self.keys.reference(merchant_id, consumer_ref).await? else {
            return Err(VaultError::TokenNotFound);
        };
        let now = self.clock.now_ms();
        let outcome = self.store.consume(id, merchant_id, &consumer, now, self.policy.replay_ms).await?;
        let (meta, card) = match outcome {
            Consumed::Fresh { meta, card } | Consumed::Replay { meta, card } => (meta, card),
            Consumed::AlreadyUsed => return Err(VaultError::UsedToken),
            Consumed::Expired => return Err(VaultError::TokenExpired),
            Consumed::NotFound => return Err(VaultError::TokenNotFound),
        };
        let meta = self.open_meta(merchant_id, id, &meta).await?;
        let card_plain = self.keys.open(Aad { merchant_id, token_id: id, kind: CARD }, &card).await?;
        let card: Card = serde_json::from_slice(&card_plain).map_err(|_| VaultError::Corrupt)?;
        Ok(Detokenized { card, meta: meta.card, livemode: meta.livemode })
    }

    /// Records the status of the payment that consumed the token; `true`
    /// when the token now shows it (see `TokenStore::record_charge`).
    pub async fn report_charge(
        &self,
        merchant_id: &str,
        id: &str,
        consumer_ref: &str,
        status: ChargeStatus,
    ) -> Result<bool, VaultError> {
        if !status.reportable() {
            return Err(VaultError::InvalidArgument("charge_status must be pending, successful, reversed or failed"));
        }
        if token_id::single_use_livemode(id).is_none() || consumer_ref.is_empty() {
            return Ok(false);
        }
        let Some(consumer) = self.keys.reference(merchant_id, consumer_ref).await? else { return Ok(false) };
        Ok(self.store.set_charge_status(id, merchant_id, &consumer, status).await?)
    }

    async fn open_meta(&self, merchant_id: &str, id: &str, sealed: &[u8]) -> Result<Meta, VaultError> {
        let plain = self.keys.open(Aad { merchant_id, token_id: id, kind: META }, sealed).await?;
        serde_json::from_slice(&plain).map_err(|_| VaultError::Corrupt)
    }
}
