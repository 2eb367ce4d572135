//! The port payments' domain owns for its store: payments, the transaction
//! ledger and idempotency records, as single-statement primitives in domain
//! types. The state machine's guards live in the conditional updates
//! (`reserve_*`) and in the schema's CHECK constraints, so two racing requests
//! can never both move one payment past its limits. Adapters (`storage`)
//! import this; the domain never imports `storage`.
use std::future::Future;

use common::clock::Millis;

pub use common::store::StoreError;

use super::payment::{LedgerEntry, LedgerRecord, Payment, Scope};

/// What the ledger is asked for.
#[derive(Debug, Clone)]
pub enum LedgerQuery<'a> {
    /// A payment's own entries and those of payments referencing it.
    Payment(&'a str),
    Token(&'a str),
    Between(Millis, Millis),
}

/// The state of an idempotency key when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// This request holds the key now.
    Acquired,
    InFlight {
        request_hash: String,
    },
    Done {
        request_hash: String,
        response: Vec<u8>,
    },
}

pub trait PaymentStore: Send + Sync + 'static {
    /// Stores a payment with its ledger entries in one commit.
    fn insert(&self, payment: &Payment, ledger: &[LedgerEntry]) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, scope: Scope<'_>, id: &str) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// Adds `amount` to an approved, unreversed PA's captured amount if it
    /// stays within the authorized amount; `false` (nothing changed) otherwise.
    fn reserve_capture(
        &self,
        scope: Scope<'_>,
        id: &str,
        amount: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks an approved PA with nothing captured as reversed; `false` otherwise.
    fn reserve_reversal(&self, scope: Scope<'_>, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds `amount` to an approved DB's or CP's refunded amount if it stays
    /// within its captured amount; `false` otherwise.
    fn reserve_refund(
        &self,
        scope: Scope<'_>,
        id: &str,
        amount: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Undoes a reservation whose acquirer call did not succeed.
    fn release(
        &self,
        id: &str,
        captured: i64,
        refunded: i64,
        reversed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `token` has an approved INITIAL CIT payment on record.
    fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn record(&self, entry: &LedgerEntry) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn ledger(
        &self,
        scope: Scope<'_>,
        query: LedgerQuery<'_>,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LedgerRecord>, StoreError>> + Send;

    /// Claims `key` for a request, or says who has it.
    fn acquire_key(
        &self,
        merchant_id: &str,
        key: &str,
        method: &str,
        request_hash: &str,
        now: Millis,
    ) -> impl Future<Output = Result<KeyState, StoreError>> + Send;

    /// Stores the response of the request that holds `key`.
    fn complete_key(
        &self,
        merchant_id: &str,
        key: &str,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets `key` go after a failure that a retry may fix.
    fn release_key(&self, merchant_id: &str, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
