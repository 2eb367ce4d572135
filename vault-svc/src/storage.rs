//! Where tokens live: the adapters of the domain's store ports
//! (`domain::store`). `redis` (production) and `memory` (the embedded
//! single-node run) implement `TokenStore`; `sql`, on PostgreSQL or the
//! embedded SQLite, implements `CardStore` and `KeyStore`. The rules around
//! them live in `domain`.
use common::clock::Millis;

use crate::domain::store::{Consumed, NewSingleUse, SingleUseRecord, StoreError, TokenStore};

pub mod memory;
pub mod redis;
pub mod sql;

/// The store chosen by configuration at start-up.
#[derive(Debug)]
pub enum ConfiguredStore {
    Memory(memory::MemoryTokenStore),
    Redis(redis::RedisTokenStore),
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

    async fn consume(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        now: Millis,
        replay_ms: Millis,
    ) -> Result<Consumed, StoreError> {
        match self {
            Self::Memory(s) => s.consume(id, merchant_id, consumer, now, replay_ms).await,
            Self::Redis(s) => s.consume(id, merchant_id, consumer, now, replay_ms).await,
        }
    }

    async fn set_charge_status(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.set_charge_status(id, merchant_id, consumer, status).await,
            Self::Redis(s) => s.set_charge_status(id, merchant_id, consumer, status).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.ping().await,
            Self::Redis(s) => s.ping().await,
        }
    }
}
