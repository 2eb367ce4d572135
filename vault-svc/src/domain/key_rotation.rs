//! Key rotation. `rotate_kek` re-wraps every data key under the newest KEK
//! version (the KEK file gains that version first). `reencrypt` moves every
//! durable record to a new data-key version, in batches, while the service
//! keeps serving: each record is re-sealed only if unchanged since it was read,
//! old versions stay readable throughout, and a run killed part-way is resumed
//! by the next run (the unfinished run and the versions it created are in the
//! database), never started twice.
use common::clock::Millis;

use super::audit::{Actor, AuditEntry};
use super::card_token::aad;
use super::error::VaultError;
use super::store::cards::{CardStore, KeyStore};
use crate::crypto::KeyRing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    pub rotation_id: i64,
    pub resumed: bool,
    pub records: usize,
}

pub async fn rotate_kek(keys: &KeyRing, actor: &Actor) -> Result<usize, VaultError> {
    Ok(keys.rewrap_all(actor).await?)
}

pub async fn reencrypt<C: CardStore>(
    cards: &C,
    key_store: &dyn KeyStore,
    keys: &KeyRing,
    now: Millis,
    batch: u32,
    actor: &Actor,
) -> Result<ReencryptReport, VaultError> {
    let (rotation_id, resumed) = match key_store.open_rotation().await? {
        Some(id) => (id, true),
        None => (key_store.start_rotation(now).await?, false),
    };
    let mut records = 0;
    for merchant in keys.merchants().await? {
        let target = keys.data_key_for_rotation(&merchant, rotation_id, actor).await?;
        let mut moved = 0;
        loop {
            let rows = cards.sealed_below(&merchant, target, batch.max(1)).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let meta_aad = aad(&row.merchant_id, &row.id, row.kind, row.instrument, "meta");
                let card_aad = aad(&row.merchant_id, &row.id, row.kind, row.instrument, "card");
                let meta = keys.seal_with(target, meta_aad, &keys.open(meta_aad, &row.meta).await?).await?;
                let card = keys.seal_with(target, card_aad, &keys.open(card_aad, &row.card).await?).await?;
                if cards.reseal(&row, &meta, &card, target).await? {
                    moved += 1;
                }
            }
        }
        records += moved;
        cards
            .record(&AuditEntry::new(
                now,
                "KE",
                &merchant,
                &format!("data:{target}"),
                actor,
                &format!("{moved} records re-encrypted"),
            ))
            .await?;
    }
    key_store.finish_rotation(rotation_id, now).await?;
    Ok(ReencryptReport { rotation_id, resumed, records })
}
