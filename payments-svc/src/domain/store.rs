//! The port payments' domain owns for its store: payments written ahead and
//! moved through their recovery points, the transaction ledger, leases and
//! idempotency records, as primitives in domain types that each commit once.
//! The state machine's guards live in the statements' conditions (a
//! follow-up's reservation, a recovery point's expected predecessor, a lease's
//! expiry) and in the schema's CHECK constraints, so two racing workers can
//! never both move one payment past its limits. Adapters (`storage`) import
//! this; the domain never imports `storage`.
use std::future::Future;

use common::clock::Millis;

pub use common::store::StoreError;

use super::idempotency::Claim;
use super::payment::{LedgerEntry, LedgerRecord, Payment, RecoveryPoint, Reservation, Scope};

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

/// What `begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The payment is recorded now (with its reservation, for a follow-up).
    New,
    /// A payment with this id was recorded before (a retry, or work taken over).
    Existing(Box<Payment>),
    /// The follow-up's reservation does not fit its original: nothing written.
    Refused,
}

/// What one step of a payment's work writes besides the payment: where it
/// moves on from, its ledger lines, the release of a follow-up's reservation,
/// and the lease its worker keeps (0 once finished).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub from: RecoveryPoint,
    pub ledger: &'a [LedgerEntry],
    pub release: Option<Reservation>,
    pub lease_until: Millis,
}

/// The work waiting, as the reconciler's gauges show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Payments (initial and follow-ups) in status `pending`.
    pub pending: u64,
    /// When the oldest of them was created (`None`: none is pending).
    pub oldest_pending: Option<Millis>,
    /// Idempotency keys in flight (their lease may have run out).
    pub keys_in_flight: u64,
}

pub trait PaymentStore: Send + Sync + 'static {
    /// Records a payment `pending` at its first recovery point, holding a
    /// lease until `lease_until`; a follow-up's `reservation` on its original
    /// (`reference_id`) is taken in the same commit, or nothing is written.
    fn begin(
        &self,
        payment: &Payment,
        reservation: Option<Reservation>,
        lease_until: Millis,
    ) -> impl Future<Output = Result<Begun, StoreError>> + Send;

    /// Moves a payment on from recovery point `step.from` to `next`'s state,
    /// with the step's ledger lines and the release of a follow-up's
    /// reservation, in one commit; `false` (nothing written) if it is no
    /// longer at `from`. The captured amount is written only while the payment
    /// is pending (later captures move a PA's captured amount on their own).
    fn advance(&self, next: &Payment, step: Step<'_>) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Unfinished payments whose lease ran out before `now`, oldest lease first.
    fn unfinished(&self, now: Millis, limit: u32) -> impl Future<Output = Result<Vec<Payment>, StoreError>> + Send;

    /// Takes the lease of an unfinished payment whose lease ran out; `false` if another worker holds it.
    fn take_lease(&self, id: &str, now: Millis, until: Millis)
    -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Extends the lease of an unfinished payment (its owner is still working).
    fn renew_lease(&self, id: &str, until: Millis) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, scope: Scope<'_>, id: &str) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

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

    /// Claims `key` for a request until `lease_until`, or says who has it. A
    /// key released, or in flight past its lease, is taken over by the same
    /// request (same method and hash).
    fn acquire_key(
        &self,
        claim: &Claim<'_>,
        now: Millis,
        lease_until: Millis,
    ) -> impl Future<Output = Result<KeyState, StoreError>> + Send;

    /// Extends the lease of a key in flight (its owner is still working).
    fn renew_key(
        &self,
        merchant_id: &str,
        key: &str,
        lease_until: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases keys in flight past their lease and deletes records created
    /// before `purge_before`: (released, purged).
    fn sweep_keys(
        &self,
        now: Millis,
        purge_before: Millis,
    ) -> impl Future<Output = Result<(u64, u64), StoreError>> + Send;

    /// Stores the response of the request that holds `key`.
    fn complete_key(
        &self,
        merchant_id: &str,
        key: &str,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets `key` go after a failure that a retry may fix, or while its work
    /// waits for an answer: the request hash stays, so only the same request
    /// takes it again.
    fn release_key(&self, merchant_id: &str, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether a record of this key exists, in any state.
    fn has_key(&self, merchant_id: &str, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts pending payments and keys in flight, in one round trip.
    fn backlog(&self) -> impl Future<Output = Result<Backlog, StoreError>> + Send;

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
