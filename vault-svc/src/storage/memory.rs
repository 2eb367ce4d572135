//! The embedded single-node token store: a map in this process with the same
//! semantics as Redis (TTL, atomic consume, replay window). Used when no
//! `REDIS_URL` is configured; it does not survive a restart and is not shared
//! between replicas, which the service says in its first log line.
use std::collections::HashMap;
use std::sync::Mutex;

use common::clock::Millis;
use vault_api::ChargeStatus;

use crate::domain::store::{Claim, Consumed, NewSingleUse, SingleUseRecord, StoreError, TokenStore};

#[derive(Debug)]
struct Entry {
    merchant_id: String,
    expires_at: Millis,
    retain_until: Millis,
    meta: Vec<u8>,
    card: Option<Vec<u8>>,
    /// When the card blob goes (consumption + replay window).
    card_until: Millis,
    used: Option<(String, Millis)>,
    charge_status: Option<ChargeStatus>,
}

#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        f(&mut self.entries.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Drops everything past retention, as Redis's TTL would.
    pub fn purge(&self, now: Millis) -> usize {
        self.with(|map| {
            let before = map.len();
            map.retain(|_, e| e.retain_until > now);
            before - map.len()
        })
    }
}

/// The live entry for `id`, honouring retention as Redis's TTL would.
fn live<'m>(map: &'m mut HashMap<String, Entry>, id: &str, now: Millis) -> Option<&'m mut Entry> {
    if map.get(id).is_some_and(|e| e.retain_until <= now) {
        map.remove(id);
    }
    let entry = map.get_mut(id)?;
    if entry.card_until <= now {
        entry.card = None;
    }
    Some(entry)
}

impl TokenStore for MemoryTokenStore {
    async fn create(&self, t: &NewSingleUse) -> Result<bool, StoreError> {
        Ok(self.with(|map| {
            if live(map, &t.id, t.created_at).is_some() {
                return false;
            }
            map.insert(
                t.id.clone(),
                Entry {
                    merchant_id: t.merchant_id.clone(),
                    expires_at: t.expires_at,
                    retain_until: t.retain_until,
                    meta: t.meta.clone(),
                    card: Some(t.card.clone()),
                    card_until: t.expires_at,
                    used: None,
                    charge_status: None,
                },
            );
            true
        }))
    }

    async fn get(&self, id: &str, merchant_id: &str, now: Millis) -> Result<Option<SingleUseRecord>, StoreError> {
        Ok(self.with(|map| {
            let e = live(map, id, now).filter(|e| e.merchant_id == merchant_id)?;
            Some(SingleUseRecord {
                expires_at: e.expires_at,
                meta: e.meta.clone(),
                used: e.used.is_some(),
                charge_status: e.charge_status,
            })
        }))
    }

    async fn consume_claim(&self, claim: Claim<'_>, now: Millis, replay_ms: Millis) -> Result<Consumed, StoreError> {
        let Claim { id, merchant_id, consumer } = claim;
        Ok(self.with(|map| {
            let Some(e) = live(map, id, now).filter(|e| e.merchant_id == merchant_id) else {
                return Consumed::NotFound;
            };
            if let Some((by, at)) = &e.used {
                return match &e.card {
                    Some(card) if by == consumer && now < at + replay_ms => {
                        Consumed::Replay { meta: e.meta.clone(), card: card.clone() }
                    }
                    _ => Consumed::AlreadyUsed,
                };
            }
            if now >= e.expires_at {
                e.card = None;
                return Consumed::Expired;
            }
            let Some(card) = e.card.clone() else { return Consumed::Expired };
            e.used = Some((consumer.to_owned(), now));
            e.card_until = now + replay_ms;
            Consumed::Fresh { meta: e.meta.clone(), card }
        }))
    }

    async fn record_charge(&self, claim: Claim<'_>, status: ChargeStatus) -> Result<bool, StoreError> {
        Ok(self.with(|map| {
            let Some(e) = map.get_mut(claim.id).filter(|e| e.merchant_id == claim.merchant_id) else { return false };
            if e.used.as_ref().is_none_or(|(by, _)| by != claim.consumer) {
                return false;
            }
            match e.charge_status {
                Some(shown) if shown == status => true,
                Some(shown) if shown.stage() >= status.stage() => false,
                _ => {
                    e.charge_status = Some(status);
                    true
                }
            }
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
