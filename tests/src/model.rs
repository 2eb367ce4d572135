//! The moving parts of the model-based payment test (`tests/payment_model.rs`):
//! a payments process that can crash, and an acquirer that keeps the truth.
//!
//! A process's [`Life`] ends after its Nth store write: either right after
//! that write commits (nothing of the process happens afterwards, as after a
//! `kill -9` between two recovery points), or when it tries the next one (the
//! vault or the acquirer may still have been called in between, as when a
//! process dies before it commits what it just learnt). [`CrashStore`] and
//! [`CrashVault`] refuse every call of a dead process; [`ScriptedAcquirer`]
//! sends nothing for it. Writes are jittered (mostly by a millisecond or two), so
//! concurrent workers interleave differently from run to run.
//!
//! [`ScriptedAcquirer`] answers each operation (by payment id) as the test
//! scripted it (approve, decline, time out after processing, time out without
//! processing; an inquiry that cannot say yet) and records in its [`Book`]
//! what it really did: how often each request was executed and what it
//! decided. The store is checked against that book, never against the
//! service's own account of itself.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::clock::Millis;
use common::result_code;
use payments_svc::acquirer::{Acquirer, AcquirerOutcome, AcquirerRequest, Inquiry, Operation};
use payments_svc::domain::idempotency::Claim;
use payments_svc::domain::payment::{LedgerEntry, LedgerRecord, Payment, Reservation, Scope};
use payments_svc::domain::store::{Backlog, Begun, KeyState, LedgerQuery, PaymentStore, Step, StoreError};
use vault_api::{CallContext, ChargeReport, StoredToken, TokenKind, TokenSource, Vault, VaultError};

/// Where a process dies: after its `after_writes`-th store write, at once
/// (`immediate`) or when it attempts the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub after_writes: u32,
    pub immediate: bool,
}

/// Whether a process still runs, and its write count.
#[derive(Debug)]
pub struct Life {
    writes_left: AtomicI64,
    immediate: bool,
    dead: AtomicBool,
    jitter: AtomicU64,
}

fn died() -> StoreError {
    StoreError::Unavailable("the process crashed".into())
}

impl Life {
    pub fn new(crash: Option<Crash>, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            writes_left: AtomicI64::new(crash.map_or(i64::MAX, |c| i64::from(c.after_writes))),
            immediate: crash.is_some_and(|c| c.immediate),
            dead: AtomicBool::new(false),
            jitter: AtomicU64::new(seed | 1),
        })
    }

    pub fn alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    /// Whether the process died (its crash point was reached).
    pub fn crashed(&self) -> bool {
        !self.alive()
    }

    /// Mostly none or a millisecond or two, now and then 10 ms (a slow
    /// commit), from a xorshift of the process's seed.
    fn pause(&self) -> Duration {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        Duration::from_millis([0, 0, 0, 1, 2, 10][(x % 6) as usize])
    }

    async fn write<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        tokio::time::sleep(self.pause()).await;
        if !self.alive() {
            return Err(died());
        }
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.dead.store(true, Ordering::SeqCst);
            return Err(died());
        }
        let result = work.await;
        if self.immediate && self.writes_left.load(Ordering::SeqCst) <= 0 {
            self.dead.store(true, Ordering::SeqCst);
        }
        result
    }

    async fn read<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        if !self.alive() {
            return Err(died());
        }
        work.await
    }
}

/// A `PaymentStore` that stops with its process's [`Life`].
pub struct CrashStore<S> {
    inner: S,
    life: Arc<Life>,
}

impl<S> CrashStore<S> {
    pub fn new(inner: S, life: Arc<Life>) -> Self {
        Self { inner, life }
    }
}

impl<S: PaymentStore> PaymentStore for CrashStore<S> {
    async fn begin(
        &self,
        payment: &Payment,
        reservation: Option<Reservation>,
        lease_until: Millis,
    ) -> Result<Begun, StoreError> {
        self.life.write(self.inner.begin(payment, reservation, lease_until)).await
    }

    async fn advance(&self, next: &Payment, step: Step<'_>) -> Result<bool, StoreError> {
        self.life.write(self.inner.advance(next, step)).await
    }

    async fn unfinished(&self, now: Millis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        self.life.read(self.inner.unfinished(now, limit)).await
    }

    async fn take_lease(&self, id: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        self.life.write(self.inner.take_lease(id, now, until)).await
    }

    async fn renew_lease(&self, id: &str, until: Millis) -> Result<(), StoreError> {
        self.life.write(self.inner.renew_lease(id, until)).await
    }

    async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Option<Payment>, StoreError> {
        self.life.read(self.inner.get(scope, id)).await
    }

    async fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> Result<bool, StoreError> {
        self.life.read(self.inner.has_initial_cit(scope, token)).await
    }

    async fn record(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        self.life.write(self.inner.record(entry)).await
    }

    async fn ledger(
        &self,
        scope: Scope<'_>,
        query: LedgerQuery<'_>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        self.life.read(self.inner.ledger(scope, query, after_seq, limit)).await
    }

    async fn acquire_key(&self, claim: &Claim<'_>, now: Millis, lease_until: Millis) -> Result<KeyState, StoreError> {
        self.life.write(self.inner.acquire_key(claim, now, lease_until)).await
    }

    async fn renew_key(&self, merchant_id: &str, key: &str, lease_until: Millis) -> Result<(), StoreError> {
        self.life.write(self.inner.renew_key(merchant_id, key, lease_until)).await
    }

    async fn sweep_keys(&self, now: Millis, purge_before: Millis) -> Result<(u64, u64), StoreError> {
        self.life.write(self.inner.sweep_keys(now, purge_before)).await
    }

    async fn complete_key(&self, merchant_id: &str, key: &str, response: &[u8]) -> Result<(), StoreError> {
        self.life.write(self.inner.complete_key(merchant_id, key, response)).await
    }

    async fn release_key(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        self.life.write(self.inner.release_key(merchant_id, key)).await
    }

    async fn has_key(&self, merchant_id: &str, key: &str) -> Result<bool, StoreError> {
        self.life.read(self.inner.has_key(merchant_id, key)).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.life.read(self.inner.backlog()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.life.read(self.inner.ping()).await
    }
}

/// A `Vault` that a dead process can no longer reach.
pub struct CrashVault<V> {
    inner: V,
    life: Arc<Life>,
}

impl<V> CrashVault<V> {
    pub fn new(inner: V, life: Arc<Life>) -> Self {
        Self { inner, life }
    }

    /// `call`, made only while the process lives (a dead one's vault is away).
    async fn alive<T>(&self, call: impl Future<Output = Result<T, VaultError>>) -> Result<T, VaultError> {
        if self.life.alive() { call.await } else { Err(VaultError::Unavailable) }
    }
}

impl<V: Vault> Vault for CrashVault<V> {
    async fn detokenize(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        expect: Option<vault_api::InstrumentKind>,
        ctx: &CallContext,
    ) -> Result<vault_api::Instrument, VaultError> {
        self.alive(self.inner.detokenize(scope, token, consumer_ref, expect, ctx)).await
    }

    async fn report_charges(&self, reports: &[ChargeReport], ctx: &CallContext) -> Result<Vec<bool>, VaultError> {
        self.alive(self.inner.report_charges(reports, ctx)).await
    }

    async fn tokenize(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        source: TokenSource<'_>,
        customer_id: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, VaultError> {
        self.alive(self.inner.tokenize(scope, kind, source, customer_id, consumer_ref, ctx)).await
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
        ctx: &CallContext,
    ) -> Result<(Vec<StoredToken>, String), VaultError> {
        self.alive(self.inner.list(scope, kind, customer_id, page_size, page_token, ctx)).await
    }

    async fn delete(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<bool, VaultError> {
        self.alive(self.inner.delete(scope, id, ctx)).await
    }

    async fn extend(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        self.alive(self.inner.extend(scope, id, ctx)).await
    }

    async fn describe(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        self.alive(self.inner.describe(scope, id, ctx)).await
    }

    async fn default_registration(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, VaultError> {
        self.alive(self.inner.default_registration(scope, customer_id, ctx)).await
    }

    async fn set_default(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        self.alive(self.inner.set_default(scope, id, ctx)).await
    }
}

/// What the acquirer does with one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Decline,
    /// Approved, but the answer never arrives.
    TimeoutProcessed,
    /// Lost before the acquirer saw it.
    TimeoutNotProcessed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub outcome: Outcome,
    /// How long a request travels before the acquirer decides it.
    pub latency_ms: u64,
    /// The first inquiry gets no answer (the acquirer cannot say yet).
    pub slow_inquiry: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self { outcome: Outcome::Approve, latency_ms: 0, slow_inquiry: false }
    }
}

/// What the acquirer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Declined,
}

/// One request as the acquirer knows it, by payment id.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub script: Script,
    pub operation: Option<Operation>,
    pub amount: i64,
    /// The acquirer reference of the original, for CP, RV and RF.
    pub original_reference: Option<String>,
    /// How often the request was sent (more than once is a double charge).
    pub executed: u32,
    pub inquiries: u32,
    /// `None`: it never reached the acquirer (or was lost on the way).
    pub decided: Option<Decision>,
}

/// The acquirer's own record of everything it was asked.
#[derive(Debug, Default)]
pub struct Book {
    pub entries: HashMap<String, Entry>,
}

impl Book {
    /// What the acquirer will do when `payment_id` is sent.
    pub fn script(&mut self, payment_id: &str, script: Script) {
        self.entries.entry(payment_id.to_owned()).or_default().script = script;
    }

    pub fn decided(&self, payment_id: &str) -> Option<Decision> {
        self.entries.get(payment_id).and_then(|e| e.decided)
    }
}

pub fn reference(payment_id: &str) -> String {
    format!("ref_{payment_id}")
}

/// The acquirer as one process sees it: the shared [`Book`], and the
/// process's life (a dead process sends nothing).
pub struct ScriptedAcquirer {
    book: Arc<Mutex<Book>>,
    life: Arc<Life>,
}

impl ScriptedAcquirer {
    pub fn new(book: Arc<Mutex<Book>>, life: Arc<Life>) -> Self {
        Self { book, life }
    }

    fn answer(payment_id: &str, decided: Option<Decision>) -> AcquirerOutcome {
        match decided {
            Some(Decision::Approved) => {
                AcquirerOutcome::Approved { result: result_code::success(false), reference: reference(payment_id) }
            }
            Some(Decision::Declined) => AcquirerOutcome::Declined { result: result_code::DECLINED },
            None => AcquirerOutcome::NotProcessed,
        }
    }
}

impl Acquirer for ScriptedAcquirer {
    async fn execute(&self, request: AcquirerRequest<'_>) -> AcquirerOutcome {
        if !self.life.alive() {
            return AcquirerOutcome::TimedOut;
        }
        let latency = self.book.lock().unwrap().entries.get(request.payment_id).map_or(0, |e| e.script.latency_ms);
        tokio::time::sleep(Duration::from_millis(latency)).await;
        let outcome = {
            let mut book = self.book.lock().unwrap();
            let entry = book.entries.entry(request.payment_id.to_owned()).or_default();
            entry.executed += 1;
            entry.operation = Some(request.operation);
            entry.amount = request.money.amount;
            entry.original_reference = request.original_reference.map(str::to_owned);
            entry.decided = match entry.script.outcome {
                Outcome::Approve | Outcome::TimeoutProcessed => Some(Decision::Approved),
                Outcome::Decline => Some(Decision::Declined),
                Outcome::TimeoutNotProcessed => None,
            };
            match entry.script.outcome {
                Outcome::Approve | Outcome::Decline => Some(Self::answer(request.payment_id, entry.decided)),
                Outcome::TimeoutProcessed | Outcome::TimeoutNotProcessed => None,
            }
        };
        match outcome {
            Some(outcome) => outcome,
            // No answer: the service's acquirer timeout ends the wait.
            None => std::future::pending().await,
        }
    }

    async fn inquire(&self, inquiry: Inquiry<'_>) -> AcquirerOutcome {
        if !self.life.alive() {
            return AcquirerOutcome::TimedOut;
        }
        let mut book = self.book.lock().unwrap();
        let entry = book.entries.entry(inquiry.payment_id.to_owned()).or_default();
        entry.inquiries += 1;
        if entry.script.slow_inquiry && entry.inquiries == 1 {
            return AcquirerOutcome::TimedOut;
        }
        Self::answer(inquiry.payment_id, entry.decided)
    }
}
