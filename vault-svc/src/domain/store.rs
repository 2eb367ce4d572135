//! The ports the vault's domain owns: what it needs from its stores, in its
//! own types. `TokenStore` holds single-use tokens in one-round-trip
//! primitives (create, read, consume atomically); `cards` holds the durable
//! store's contract (`CardStore`, `KeyStore`). Adapters live in `storage` and
//! import these; the domain never imports `storage`. Each trait has one
//! conformance suite run against every backend.
use std::future::Future;

use common::clock::Millis;
use vault_api::ChargeStatus;

pub use common::store::StoreError;

pub mod cards;

/// What every store call returns: a future of its result that may move
/// between tasks.
pub trait StoreFuture<T>: Future<Output = Result<T, StoreError>> + Send {}

impl<T, F: Future<Output = Result<T, StoreError>> + Send> StoreFuture<T> for F {}

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
    pub charge_status: Option<ChargeStatus>,
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

/// A consumer's hold on one merchant's token: whom consuming it marks used,
/// and whom a charge report on it must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub consumer: &'a str,
}

/// Where single-use tokens live; each call is one round trip. A backend
/// implements the first five methods; `consume` and `set_charge_status` are
/// the claim forms with the claim spelled out, for callers.
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token; `false` if the id already exists (nothing changes).
    fn create(&self, token: &NewSingleUse) -> impl StoreFuture<bool>;

    /// Reads a token of `merchant_id`; another merchant's token is `None`.
    fn get(&self, id: &str, merchant_id: &str, now: Millis) -> impl StoreFuture<Option<SingleUseRecord>>;

    /// Atomically marks the token used by the claim's consumer and returns its
    /// blobs. Exactly one of any number of concurrent consumers gets `Fresh`;
    /// the same consumer within `replay_ms` of that gets `Replay`; everyone
    /// else `AlreadyUsed`. After consumption the card blob is kept only
    /// `replay_ms`.
    fn consume_claim(&self, claim: Claim<'_>, now: Millis, replay_ms: Millis) -> impl StoreFuture<Consumed>;

    /// Records `status` (a reportable one) on a token the claim's consumer
    /// used, unless the token shows a status of a later or the same stage
    /// ([`ChargeStatus::stage`]): reports that arrive out of order never move
    /// a token back. `true` when the token now shows `status` (recorded now or
    /// before); `false` if it is not the claim's merchant's, another consumer
    /// (or none) used it, or a later-stage status stays.
    fn record_charge(&self, claim: Claim<'_>, status: ChargeStatus) -> impl StoreFuture<bool>;

    /// Checks the store answers (for health reporting).
    fn ping(&self) -> impl StoreFuture<()>;

    /// [`consume_claim`](Self::consume_claim) for `consumer` on token `id` of `merchant_id`.
    fn consume(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        now: Millis,
        replay_ms: Millis,
    ) -> impl StoreFuture<Consumed> {
        async move { self.consume_claim(Claim { id, merchant_id, consumer }, now, replay_ms).await }
    }

    /// [`record_charge`](Self::record_charge) for `consumer` on token `id` of `merchant_id`.
    fn set_charge_status(
        &self,
        id: &str,
        merchant_id: &str,
        consumer: &str,
        status: ChargeStatus,
    ) -> impl StoreFuture<bool> {
        async move { self.record_charge(Claim { id, merchant_id, consumer }, status).await }
    }
}
