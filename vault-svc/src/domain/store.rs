//! The ports the vault's domain owns: what it needs from its stores, in its
//! own types. `TokenStore` holds single-use tokens in one-round-trip
//! primitives (create, read, consume atomically); `cards` holds the durable
//! store's contract (`CardStore`, `KeyStore`). Adapters live in `storage` and
//! import these; the domain never imports `storage`. Each trait has one
//! conformance suite run against every backend.
use std::future::Future;

use common::clock::Millis;

pub use common::store::StoreError;

pub mod cards;

/// A new single-use token. `meta` and `card` are sealed (encrypted) blobs.
#[derive(Debug, Clone)]
pub struct NewSingleUse {
    pub id: String,
    pub merchant_id: String,
    pub created_at: Millis,
    /// Usable until then; the card blob is dropped by the store at this time.
    pub expires_at: Millis,
    /// Metadata is kept until then.
    pub retain_until: Millis,
    pub meta: Vec<u8>,
    pub card: Vec<u8>,
}

/// A single-use token as read back (never the card blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleUseRecord {
    pub expires_at: Millis,
    pub meta: Vec<u8>,
    pub used: bool,
    /// Reported by the consumer's payment, if any.
    pub charge_status: Option<String>,
}

/// The result of an atomic consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// This call consumed the token.
    Fresh {
        meta: Vec<u8>,
        card: Vec<u8>,
    },
    /// The same consumer asked again within the replay window.
    Replay {
        meta: Vec<u8>,
        card: Vec<u8>,
    },
    AlreadyUsed,
    Expired,
    NotFound,
}

pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token; `false` if the id already exists (nothing changes).
    fn create(&self, token: &NewSingleUse) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Reads a token of `merchant_id`; another merchant's token is `None`.
    fn get(
        &self,
        id: &str,
        merchant_id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Option<SingleUseRecord>, StoreError>> + Send;

    /// Atomically marks the token used by `consumer` and returns its blobs.
    /// Exactly one of any number of concurrent consumers gets `Fresh`; the same
    /// consumer within `replay_ms` of that gets `Replay`; everyone else
    /// `AlreadyUsed`. After consumption the card blob is kept only `replay_ms`.
    fn consume(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        now: Millis,
        replay_ms: Millis,
    ) -> impl Future<Output = Result<Consumed, StoreError>> + Send;

    /// Records `status` on a token used by `consumer`; `false` if it is not
    /// this merchant's or another consumer used it.
    fn set_charge_status(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        status: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Checks the store answers (for health reporting).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
