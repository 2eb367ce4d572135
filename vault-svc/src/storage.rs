//! Where tokens live: the adapters of the domain's store ports
//! (`domain::store`). `redis` (production) and `memory` (the embedded
//! single-node run) implement `TokenStore`; `sql`, on PostgreSQL or the
//! embedded SQLite, implements `CardStore` and `KeyStore`. The rules around
//! them live in `domain`.
use common::clock::Millis;
use vault_api::ChargeStatus;

use crate::domain::store::{Claim, Consumed, NewSingleUse, SingleUseRecord, StoreError, TokenStore};

pub mod memory;
pub mod redis;
pub mod sql;

/// The store chosen by configuration at start-up.
#[derive(Debug)]
pub enum ConfiguredStore {
    Memory(memory::MemoryTokenStore),
    Redis(redis::RedisTokenStore),
}

impl ConfiguredStore {
    /// Sets the store's connection gauges (Redis only: the in-process store has none).
    pub fn sample_pool(&self) {
        if let Self::Redis(s) = self {
            s.sample_pool();
        }
    }
}

impl TokenStore for ConfiguredStore {
    async fn create(&self, token: &NewSingleUse) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.create(token).await,
            Self::Redis(s) => s.create(token).await,
        }
    }

    async fn get(&self, id: &str, merchant_id: &str, now: Millis) -> Result<Option<SingleUseRecord>, StoreError> {
        match self {
            Self::Memory(s) => s.get(id, merchant_id, now).await,
            Self::Redis(s) => s.get(id, merchant_id, now).await,
        }
    }

    async fn consume_claim(&self, claim: Claim<'_>, now: Millis, replay_ms: Millis) -> Result<Consumed, StoreError> {
        match self {
            Self::Memory(s) => s.consume_claim(claim, now, replay_ms).await,
            Self::Redis(s) => s.consume_claim(claim, now, replay_ms).await,
        }
    }

    async fn record_charge(&self, claim: Claim<'_>, status: ChargeStatus) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.record_charge(claim, status).await,
            Self::Redis(s) => s.record_charge(claim, status).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.ping().await,
            Self::Redis(s) => s.ping().await,
        }
    }
}
