//! A model-based test (proptest) of a payment's life against the store, on
//! PostgreSQL (a schema per case) and SQLite (a file per case).
//!
//! Each case is a random sequence of steps driven through the real
//! payments-svc handlers (`PaymentsService`, so the idempotency protocol, the
//! detached work and the domain flows are the production ones) over a real
//! `SqlStore` and an in-process vault-svc reached over mTLS: PA and DB over a
//! fresh single-use token, a token already used, or a card (some asking for a
//! registration); CP, RV and RF on earlier payments; the same request again
//! with its key (after it ended, or concurrently with itself); the key with
//! another request; the clock moved past every lease, with zero, one or two
//! reconcilers (racing a client's retry). Every operation's acquirer outcome
//! is scripted (approve, decline, timeout-processed, timeout-not-processed,
//! an inquiry that cannot say yet) and any step's process may crash after its
//! Nth store write (`e2e::model`); the next step is another process.
//!
//! After every step, and after the reconciler has finished everything, the
//! store is checked directly (SQL) against the acquirer's own book: captured
//! ≤ authorized and equal to the approved and pending captures; refunded ≤
//! captured and equal to the approved and pending refunds; a reversed PA has
//! nothing captured; no payment approved, declined or failed that the acquirer
//! did not approve, decline or never process; no request executed twice at
//! the acquirer, none sent without its record; one ledger line per answered
//! payment and none for the others; a single-use token consumed by at most
//! one payment; every answer a client got agrees with the store; no key in
//! flight past its lease once a reconciler passed. At the end: nothing
//! pending or unfinished, no key in flight, the acquirer's approvals are
//! exactly the store's, and the vault's charge status and registrations agree.
//!
//! `PROPTEST_CASES` sets the number of cases per backend (default 32).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio_util::task::TaskTracker;
use tonic::{Code, Request, Status};

use common::auth::DirectoryHandle;
use common::clock::{Clock, ManualClock};
use e2e::model::{Book, Crash, CrashStore, CrashVault, Decision, Life, Outcome, Script, ScriptedAcquirer, reference};
use e2e::{Db, Store, TestDatabase, TestVault, authed, card, create_request};
use payments_svc::acquirer::Operation;
use payments_svc::domain::flows::Payments;
use payments_svc::domain::reconcile::Schedule;
use payments_svc::domain::references::References;
use payments_svc::grpc::Shared;
use payments_svc::grpc::payments::PaymentsService;
use payments_svc::storage::sql::SqlStore;
use proto::payments::v1 as pb;
use proto::payments::v1::payments_server::Payments as _;
use vault_api::{CallContext, GrpcVault, Scope, TokenKind, Vault, VaultEndpoint};

const LEASE: Duration = Duration::from_secs(30);
/// Past every lease taken before it (leases are stored in whole seconds).
const PAST_LEASE_MS: i64 = 31_000;
const ACQUIRER_TIMEOUT: Duration = Duration::from_millis(20);
/// Each call's `grpc-timeout`: an in-flight duplicate gives up after ~350 ms.
const CALL_TIMEOUT: &str = "500m";

// ---------------------------------------------------------------------------
// What a case is made of.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PA,
    DB,
}

#[derive(Debug, Clone)]
enum Source {
    NewToken,
    /// A single-use token an earlier payment of the case was made over.
    UsedToken(Index),
    Card,
}

#[derive(Debug, Clone)]
enum Step {
    Pay {
        kind: Kind,
        amount: i64,
        source: Source,
        register: bool,
        script: Script,
        crash: Option<Crash>,
        twice: bool,
    },
    Capture {
        of: Index,
        percent: i64,
        script: Script,
        crash: Option<Crash>,
        twice: bool,
    },
    Reverse {
        of: Index,
        script: Script,
        crash: Option<Crash>,
        twice: bool,
    },
    Refund {
        of: Index,
        percent: i64,
        script: Script,
        crash: Option<Crash>,
        twice: bool,
    },
    /// The same key and request again (twice: concurrently with itself).
    Retry {
        of: Index,
        crash: Option<Crash>,
        twice: bool,
    },
    /// The same key with another request.
    Reuse {
        of: Index,
    },
    /// The clock moves past every lease; `reconcilers` passes run at once
    /// (the first may crash), with a client's retry among them.
    Tick {
        reconcilers: usize,
        crash: Option<Crash>,
        retry: Option<Index>,
    },
}

fn script() -> impl Strategy<Value = Script> {
    let outcome = prop_oneof![
        5 => Just(Outcome::Approve),
        2 => Just(Outcome::Decline),
        2 => Just(Outcome::TimeoutProcessed),
        2 => Just(Outcome::TimeoutNotProcessed),
    ];
    (outcome, select(vec![0u64, 1, 3, 10, 25]), prop::bool::weighted(0.2))
        .prop_map(|(outcome, latency_ms, slow_inquiry)| Script { outcome, latency_ms, slow_inquiry })
}

fn crash() -> impl Strategy<Value = Option<Crash>> {
    prop::option::weighted(
        0.3,
        (1u32..=5, any::<bool>()).prop_map(|(after_writes, immediate)| Crash { after_writes, immediate }),
    )
}

fn twice() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.15)
}

fn pay() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![Just(Kind::PA), Just(Kind::DB)];
    let source = prop_oneof![4 => Just(Source::NewToken), 1 => any::<Index>().prop_map(Source::UsedToken), 2 => Just(Source::Card)];
    (kind, 1i64..=50, source, prop::bool::weighted(0.25), script(), crash(), twice()).prop_map(
        |(kind, hundreds, source, register, script, crash, twice)| Step::Pay {
            kind,
            amount: hundreds * 100,
            source,
            register,
            script,
            crash,
            twice,
        },
    )
}

fn percent() -> impl Strategy<Value = i64> {
    select(vec![20i64, 50, 100, 120])
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => pay(),
        4 => (any::<Index>(), percent(), script(), crash(), twice())
            .prop_map(|(of, percent, script, crash, twice)| Step::Capture { of, percent, script, crash, twice }),
        1 => (any::<Index>(), script(), crash(), twice())
            .prop_map(|(of, script, crash, twice)| Step::Reverse { of, script, crash, twice }),
        3 => (any::<Index>(), percent(), script(), crash(), twice())
            .prop_map(|(of, percent, script, crash, twice)| Step::Refund { of, percent, script, crash, twice }),
        3 => (any::<Index>(), crash(), twice()).prop_map(|(of, crash, twice)| Step::Retry { of, crash, twice }),
        1 => any::<Index>().prop_map(|of| Step::Reuse { of }),
        3 => (select(vec![0usize, 1, 1, 2]), crash(), prop::option::weighted(0.6, any::<Index>()))
            .prop_map(|(reconcilers, crash, retry)| Step::Tick { reconcilers, crash, retry }),
    ]
}

/// A case: a jitter seed and its steps, the first of them a payment.
fn case() -> impl Strategy<Value = (u64, Vec<Step>)> {
    (any::<u64>(), pay(), prop::collection::vec(step(), 1..=7))
        .prop_map(|(seed, first, rest)| (seed, std::iter::once(first).chain(rest).collect()))
}

// ---------------------------------------------------------------------------
// The platform around the store: a vault, its merchant, processes.

/// What every case shares: the vault (with its SQLite durable store) and the
/// merchant payments authenticates.
struct Env {
    vault: TestVault,
    client: GrpcVault,
    directory: DirectoryHandle,
    /// One reference key for every process of a case, as a deployment keeps it.
    references: Arc<References>,
    skey: String,
    pkey: String,
    merchant_id: String,
}

impl Env {
    async fn start() -> Self {
        let vault = TestVault::start(Store::Memory).await;
        let issued = vault.ca.client("payments-svc").unwrap();
        let client = GrpcVault::connect_lazy(&VaultEndpoint {
            url: format!("https://localhost:{}", vault.internal_addr.port()),
            domain: "localhost".into(),
            ca_pem: vault.ca.ca_pem.clone().into_bytes(),
            cert_pem: issued.cert_pem.into_bytes(),
            key_pem: issued.key_pem.into_bytes(),
        })
        .unwrap();
        let directory = DirectoryHandle::load(&vault.directory_file).unwrap();
        let skey = vault.merchant.test_secret.expose().to_owned();
        let pkey = vault.merchant.test_public.expose().to_owned();
        let merchant_id = vault.merchant.id.clone();
        let references = Arc::new(References::new(common::keys::KeySet::random()));
        Self { vault, client, directory, references, skey, pkey, merchant_id }
    }

    fn scope(&self) -> Scope<'_> {
        Scope { merchant_id: &self.merchant_id, livemode: false }
    }

    /// Whose idempotency keys (as the handlers name them).
    fn owner(&self) -> String {
        format!("{}:test", self.merchant_id)
    }

    async fn single_use_token(&self) -> String {
        let request = authed(&self.pkey, create_request(card("4242424242424242", "123")));
        self.vault.tokens().create_token(request).await.unwrap().into_inner().id
    }
}

type ModelStore = CrashStore<SqlStore>;
type ModelVault = CrashVault<GrpcVault>;

/// One payments-svc process: its handlers, its domain, its detached work.
struct Process {
    life: Arc<Life>,
    service: PaymentsService<ModelStore, ModelVault, ScriptedAcquirer>,
    payments: Arc<Payments<ModelStore, ModelVault, ScriptedAcquirer>>,
    tracker: TaskTracker,
}

impl Process {
    async fn call(&self, env: &Env, key: &str, body: &Body) -> Result<pb::Payment, Status> {
        fn request<T>(env: &Env, key: &str, message: T) -> Request<T> {
            let mut request = authed(&env.skey, message);
            request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
            request.metadata_mut().insert("grpc-timeout", CALL_TIMEOUT.parse().unwrap());
            request
        }
        let answer = match body {
            Body::Create(r) => self.service.create_payment(request(env, key, r.clone())).await,
            Body::Capture(r) => self.service.capture_payment(request(env, key, r.clone())).await,
            Body::Reverse(r) => self.service.reverse_payment(request(env, key, r.clone())).await,
            Body::Refund(r) => self.service.refund_payment(request(env, key, r.clone())).await,
        };
        answer.map(tonic::Response::into_inner)
    }

    /// Waits until the work this process detached is done.
    async fn settle(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

// One per request the model sends: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Body {
    Create(pb::CreatePaymentRequest),
    Capture(pb::CapturePaymentRequest),
    Reverse(pb::ReversePaymentRequest),
    Refund(pb::RefundPaymentRequest),
}

impl Body {
    fn method(&self) -> &'static str {
        match self {
            Self::Create(_) => "CreatePayment",
            Self::Capture(_) => "CapturePayment",
            Self::Reverse(_) => "ReversePayment",
            Self::Refund(_) => "RefundPayment",
        }
    }

    /// Another request (its hash differs).
    fn altered(&self) -> Self {
        match self.clone() {
            Self::Create(r) => Self::Create(pb::CreatePaymentRequest { amount: r.amount + 1, ..r }),
            Self::Capture(r) => Self::Capture(pb::CapturePaymentRequest { amount: r.amount + 1, ..r }),
            Self::Reverse(r) => Self::Reverse(pb::ReversePaymentRequest { id: format!("{}0", r.id) }),
            Self::Refund(r) => Self::Refund(pb::RefundPaymentRequest { amount: r.amount + 1, ..r }),
        }
    }
}

/// A request of the case, under its key, and every answer it got.
#[derive(Debug)]
struct Sent {
    key: String,
    /// What the store keeps of the key (keyed under the reference key).
    stored_key: String,
    body: Body,
    /// The payment id the key stands for.
    id: String,
    answers: Vec<Result<pb::Payment, Status>>,
}

impl Sent {
    fn amount(&self) -> i64 {
        match &self.body {
            Body::Create(r) => r.amount,
            Body::Capture(r) => r.amount,
            Body::Refund(r) => r.amount,
            Body::Reverse(_) => 0,
        }
    }
}

// ---------------------------------------------------------------------------
// What the store holds, read with SQL.

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    reference_id: Option<String>,
    amount: i64,
    status: String,
    result_code: String,
    captured: i64,
    refunded: i64,
    /// 0 or 1.
    reversed: i64,
    recovery: String,
    token: Option<String>,
    card_bin: Option<String>,
    registration_id: Option<String>,
    tokenize: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Line {
    kind: String,
    payment_id: String,
    amount: i64,
    result_code: String,
    token: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Key {
    key: String,
    state: String,
    locked_until: i64,
}

#[derive(Debug)]
struct Snapshot {
    rows: Vec<Row>,
    lines: Vec<Line>,
    keys: Vec<Key>,
}

/// Every row a query answers, by column name.
async fn fetch<T>(pool: &sqlx::AnyPool, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    sqlx::query_as(sql).fetch_all(pool).await.unwrap()
}

impl Snapshot {
    async fn read(store: &SqlStore) -> Self {
        let pool = store.pool();
        let rows = fetch(
            pool,
            "SELECT id, payment_type AS kind, reference_id, amount, status, result_code, captured_amount AS captured, \
             refunded_amount AS refunded, reversed, recovery_point AS recovery, token, card_bin, registration_id, \
             tokenize FROM payments ORDER BY id",
        );
        let lines = fetch(
            pool,
            "SELECT transaction_type AS kind, payment_id, amount, result_code, token FROM transactions ORDER BY seq",
        );
        let keys = fetch(pool, "SELECT key, state, locked_until FROM idempotency_keys");
        Self { rows: rows.await, lines: lines.await, keys: keys.await }
    }

    fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }

    fn children<'a>(&'a self, id: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.reference_id.as_deref() == Some(id) && r.kind == kind)
    }

    fn unfinished(&self) -> usize {
        self.rows.iter().filter(|r| r.recovery != "finished" || r.status == "pending").count()
    }

    fn in_flight(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(|k| k.state == "in_flight")
    }
}

/// Approved or pending: what holds a reservation on its original.
fn holds(row: &Row) -> bool {
    row.status == "approved" || row.status == "pending"
}

fn status_name(status: i32) -> &'static str {
    match pb::PaymentStatus::try_from(status) {
        Ok(pb::PaymentStatus::Pending) => "pending",
        Ok(pb::PaymentStatus::Approved) => "approved",
        Ok(pb::PaymentStatus::Declined) => "declined",
        Ok(pb::PaymentStatus::Failed) => "failed",
        _ => "unspecified",
    }
}

// ---------------------------------------------------------------------------
// The invariants.

/// What holds after every step. `settled`: everything was reconciled, so
/// nothing may be left pending or in flight.
fn check(s: &Snapshot, book: &Book, sent: &[Sent], tokens: &[String], settled: bool) -> Result<(), TestCaseError> {
    amounts(s, settled)?;
    acquirer(s, book, settled)?;
    ledger(s)?;
    single_use(s, book, tokens)?;
    answers(s, sent)?;
    for request in sent {
        let recorded = s.keys.iter().any(|k| k.key == request.stored_key);
        // A request told only to retry (its key's first write cut by a crash
        // or the deadline) may have left nothing, and then nothing at all.
        let only_retry = !request.answers.is_empty()
            && request
                .answers
                .iter()
                .all(|a| a.as_ref().is_err_and(|s| matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)));
        if only_retry && !recorded {
            prop_assert!(s.row(&request.id).is_none(), "a payment without its key: {request:?}");
            continue;
        }
        prop_assert!(recorded, "a request's key is not recorded: {request:?}");
    }
    if settled {
        prop_assert_eq!(s.unfinished(), 0, "unfinished payments after reconciliation: {:#?}", s.rows);
        let in_flight: Vec<_> = s.in_flight().collect();
        prop_assert!(in_flight.is_empty(), "keys in flight after reconciliation: {in_flight:?}");
    }
    Ok(())
}

/// captured ≤ authorized, refunded ≤ captured, each equal to what its
/// follow-ups hold; a reversed PA has nothing captured.
fn amounts(s: &Snapshot, settled: bool) -> Result<(), TestCaseError> {
    for p in &s.rows {
        match p.kind.as_str() {
            "PA" => {
                prop_assert!(p.captured <= p.amount, "captured > authorized: {p:?}");
                let captures: i64 = s.children(&p.id, "CP").filter(|c| holds(c)).map(|c| c.amount).sum();
                prop_assert_eq!(p.captured, captures, "PA captured ≠ its approved and pending captures: {:?}", p);
                if settled {
                    let approved: i64 =
                        s.children(&p.id, "CP").filter(|c| c.status == "approved").map(|c| c.amount).sum();
                    prop_assert_eq!(p.captured, approved, "PA captured ≠ its approved captures: {:?}", p);
                }
                let reversals = s.children(&p.id, "RV").filter(|c| holds(c)).count();
                prop_assert!(reversals <= 1, "reversed twice: {p:?}");
                prop_assert_eq!(p.reversed == 1, reversals == 1, "reversed flag ≠ its reversals: {:?}", p);
                prop_assert!(!(p.reversed == 1 && p.captured > 0), "reversed and captured: {p:?}");
                if p.status != "approved" {
                    prop_assert_eq!(s.children(&p.id, "CP").count() + s.children(&p.id, "RV").count(), 0);
                }
            }
            "DB" | "CP" => {
                let captured = if p.status == "approved" { p.amount } else { 0 };
                prop_assert_eq!(p.captured, captured, "captured amount of a {} ≠ its approval: {:?}", p.kind, p);
                prop_assert!(p.refunded <= p.captured, "refunded > captured: {p:?}");
                let refunds: i64 = s.children(&p.id, "RF").filter(|c| holds(c)).map(|c| c.amount).sum();
                prop_assert_eq!(p.refunded, refunds, "refunded ≠ its approved and pending refunds: {:?}", p);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The store against the acquirer's book: nothing approved, declined or
/// failed that the acquirer did not approve, decline or never process;
/// nothing sent twice or without its record; the acquirer's own totals
/// within the limits (and, settled, equal to the store's).
fn acquirer(s: &Snapshot, book: &Book, settled: bool) -> Result<(), TestCaseError> {
    for p in &s.rows {
        let decided = book.decided(&p.id);
        match p.status.as_str() {
            "approved" => prop_assert_eq!(decided, Some(Decision::Approved), "approved without the acquirer: {:?}", p),
            "declined" => {
                prop_assert_eq!(decided, Some(Decision::Declined), "declined, not so at the acquirer: {:?}", p)
            }
            "failed" => prop_assert_eq!(decided, None, "failed, yet the acquirer processed it: {:?}", p),
            "pending" => prop_assert!(!settled, "pending after reconciliation: {p:?}"),
            other => prop_assert!(false, "unknown status {other}: {p:?}"),
        }
    }
    for (id, entry) in &book.entries {
        prop_assert!(entry.executed <= 1, "sent to the acquirer {} times: {id} {entry:?}", entry.executed);
        if entry.executed > 0 {
            prop_assert!(s.row(id).is_some(), "sent to the acquirer without a record: {id} {entry:?}");
        }
    }
    // The acquirer's approved follow-ups, per original reference.
    let approved = |operation: Operation| {
        let mut by_original: HashMap<&str, (i64, usize)> = HashMap::new();
        for entry in book.entries.values() {
            if entry.operation == Some(operation) && entry.decided == Some(Decision::Approved) {
                let total = by_original.entry(entry.original_reference.as_deref().unwrap_or_default()).or_default();
                total.0 += entry.amount;
                total.1 += 1;
            }
        }
        by_original
    };
    let (captures, reversals, refunds) =
        (approved(Operation::Capture), approved(Operation::Reverse), approved(Operation::Refund));
    for (operation, totals) in [("CP", &captures), ("RV", &reversals), ("RF", &refunds)] {
        for original in totals.keys() {
            let found = s.rows.iter().find(|r| reference(&r.id) == *original);
            prop_assert!(found.is_some(), "acquirer approved a {operation} on an unknown original {original}");
            let found = found.unwrap();
            prop_assert_eq!(
                book.decided(&found.id),
                Some(Decision::Approved),
                "{} on an original the acquirer did not approve",
                operation
            );
        }
    }
    for p in &s.rows {
        let reference = reference(&p.id);
        let (captured, _) = captures.get(reference.as_str()).copied().unwrap_or_default();
        let (_, reversed) = reversals.get(reference.as_str()).copied().unwrap_or_default();
        let (refunded, _) = refunds.get(reference.as_str()).copied().unwrap_or_default();
        match p.kind.as_str() {
            "PA" => {
                prop_assert!(captured <= p.amount, "the acquirer captured {captured} of {p:?}");
                prop_assert!(
                    reversed <= 1 && !(reversed == 1 && captured > 0),
                    "the acquirer reversed a captured PA: {p:?}"
                );
                if settled {
                    prop_assert_eq!(p.captured, captured, "PA captured ≠ the acquirer's captures: {:?}", p);
                    prop_assert_eq!(p.reversed == 1, reversed == 1, "PA reversed ≠ the acquirer's: {:?}", p);
                }
            }
            "DB" | "CP" => {
                prop_assert!(refunded <= p.amount, "the acquirer refunded {refunded} of {p:?}");
                if settled {
                    prop_assert_eq!(p.refunded, refunded, "refunded ≠ the acquirer's refunds: {:?}", p);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One ledger line per payment the acquirer answered (approved or
/// declined), none for the others; one RG line per registration created.
fn ledger(s: &Snapshot) -> Result<(), TestCaseError> {
    for p in &s.rows {
        let own: Vec<_> = s.lines.iter().filter(|l| l.payment_id == p.id && l.kind == p.kind).collect();
        let answered = p.status == "approved" || p.status == "declined";
        prop_assert_eq!(own.len(), usize::from(answered), "ledger lines of {:?}: {:?}", p, own);
        for line in own {
            prop_assert_eq!(line.amount, p.amount, "ledger amount of {:?}", p);
            prop_assert_eq!(&line.result_code, &p.result_code, "ledger result of {:?}", p);
        }
        let created: Vec<_> = s.lines.iter().filter(|l| l.payment_id == p.id && l.kind == "RG").collect();
        let registered = p.tokenize == "registration" && p.registration_id.is_some();
        prop_assert_eq!(created.len(), usize::from(registered), "RG lines of {:?}: {:?}", p, created);
        if let Some(line) = created.first() {
            prop_assert_eq!(Some(&line.token), p.registration_id.as_ref());
        }
    }
    for line in s.lines.iter().filter(|l| ["PA", "DB", "CP", "RV", "RF"].contains(&l.kind.as_str())) {
        let found = s.row(&line.payment_id).is_some_and(|p| p.kind == line.kind);
        prop_assert!(found, "a ledger line without its payment: {line:?}");
    }
    Ok(())
}

/// A single-use token is consumed (card obtained, acquirer asked) by at
/// most one payment.
fn single_use(s: &Snapshot, book: &Book, tokens: &[String]) -> Result<(), TestCaseError> {
    for token in tokens {
        let users: Vec<_> =
            s.rows.iter().filter(|r| r.token.as_ref() == Some(token) && r.reference_id.is_none()).collect();
        let carded = users.iter().filter(|u| u.card_bin.is_some()).count();
        prop_assert!(carded <= 1, "token {token} gave its card to {carded} payments: {users:?}");
        let sent = users.iter().filter(|u| book.entries.get(&u.id).is_some_and(|e| e.executed > 0)).count();
        prop_assert!(sent <= 1, "token {token} charged by {sent} payments: {users:?}");
    }
    Ok(())
}

/// Every answer a client got is the store's: its key's payment id, and a
/// final status never contradicted by the store or by another answer.
fn answers(s: &Snapshot, sent: &[Sent]) -> Result<(), TestCaseError> {
    for request in sent {
        let mut final_status = None;
        for answer in &request.answers {
            match answer {
                Ok(payment) => {
                    prop_assert_eq!(&payment.id, &request.id, "an answer for another payment: {:?}", request);
                    let status = status_name(payment.status);
                    let row = s.row(&payment.id);
                    prop_assert!(row.is_some(), "an answer without a record: {request:?}");
                    let row = row.unwrap();
                    prop_assert_eq!(payment.amount, row.amount);
                    if status != "pending" {
                        prop_assert_eq!(status, row.status.as_str(), "an answer the store contradicts: {:?}", request);
                        prop_assert!(final_status.is_none_or(|f| f == status), "two final answers: {request:?}");
                        final_status = Some(status);
                    }
                }
                Err(status) => {
                    prop_assert_ne!(status.code(), tonic::Code::Internal, "an internal error: {:?}", request);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running a case.

struct Case<'e> {
    env: &'e Env,
    store: SqlStore,
    clock: ManualClock,
    book: Arc<Mutex<Book>>,
    sent: Vec<Sent>,
    tokens: Vec<String>,
    seed: u64,
}

impl Case<'_> {
    /// A fresh payments-svc process on the case's database.
    fn process(&mut self, crash: Option<Crash>) -> Process {
        self.seed = self.seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let life = Life::new(crash, self.seed);
        let store = Arc::new(CrashStore::new(self.store.clone(), life.clone()));
        let vault = Arc::new(CrashVault::new(self.env.client.clone(), life.clone()));
        let acquirer = Arc::new(ScriptedAcquirer::new(self.book.clone(), life.clone()));
        let tracker = TaskTracker::new();
        let payments = Arc::new(
            Payments::new(store, vault, acquirer, Arc::new(self.clock.clone()), ACQUIRER_TIMEOUT)
                .with_lease(LEASE)
                .with_tracker(tracker.clone()),
        );
        let shared = Shared {
            payments: payments.clone(),
            directory: self.env.directory.clone(),
            references: self.env.references.clone(),
            max_deadline: Duration::from_secs(2),
            tracker: tracker.clone(),
        };
        Process { life, service: PaymentsService(Arc::new(shared)), payments, tracker }
    }

    fn snapshot_check(&self, snapshot: &Snapshot, settled: bool) -> Result<(), TestCaseError> {
        check(snapshot, &self.book.lock().unwrap(), &self.sent, &self.tokens, settled)
    }

    /// A new request under a new key, scripted at the acquirer, sent.
    async fn send_new(&mut self, body: Body, script: Script, crash: Option<Crash>, twice: bool) {
        let key = format!("k-{}", common::ids::hex(8));
        let version = self.env.references.current();
        let (id, stored_key) = (
            version.payment_id(&self.env.owner(), &key, body.method()),
            version.idempotency_key(&self.env.owner(), &key),
        );
        self.book.lock().unwrap().script(&id, script);
        self.sent.push(Sent { key, stored_key, body, id, answers: Vec::new() });
        self.send(self.sent.len() - 1, crash, twice).await;
    }

    /// Sends request `index` again under its key (`twice`: two at once).
    async fn send(&mut self, index: usize, crash: Option<Crash>, twice: bool) {
        let process = self.process(crash);
        let (key, body) = (self.sent[index].key.clone(), self.sent[index].body.clone());
        let answers = if twice {
            let (a, b) = tokio::join!(process.call(self.env, &key, &body), process.call(self.env, &key, &body));
            vec![a, b]
        } else {
            vec![process.call(self.env, &key, &body).await]
        };
        process.settle().await;
        self.sent[index].answers.extend(answers);
    }

    /// Earlier payments of `kinds`, by their requests.
    /// The request `of` picks among those of `kinds` sent so far, if any.
    fn target(&self, kinds: &[&str], of: Index) -> Option<&Sent> {
        let targets = self.of_kind(kinds);
        (!targets.is_empty()).then(|| &self.sent[targets[of.index(targets.len())]])
    }

    fn of_kind(&self, kinds: &[&str]) -> Vec<usize> {
        let kind = |b: &Body| match b {
            Body::Create(r) if r.payment_type == pb::PaymentType::Pa as i32 => "PA",
            Body::Create(_) => "DB",
            Body::Capture(_) => "CP",
            Body::Reverse(_) => "RV",
            Body::Refund(_) => "RF",
        };
        (0..self.sent.len()).filter(|&i| kinds.contains(&kind(&self.sent[i].body))).collect()
    }

    /// The request a client retries: as clients do, one that has not had a
    /// final answer yet, if there is any.
    fn retried(&self, of: Index) -> usize {
        let final_answer = |s: &Sent| {
            s.answers.iter().any(|a| a.as_ref().is_ok_and(|p| p.status != pb::PaymentStatus::Pending as i32))
        };
        let open: Vec<usize> = (0..self.sent.len()).filter(|&i| !final_answer(&self.sent[i])).collect();
        if open.is_empty() { of.index(self.sent.len()) } else { open[of.index(open.len())] }
    }

    async fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step.clone() {
            Step::Pay { kind, amount, source, register, script, crash, twice } => {
                let source = match source {
                    Source::Card => pb::create_payment_request::Source::Card(pb::Card {
                        number: "4242424242424242".into(),
                        expiration_month: 12,
                        expiration_year: 2040,
                        name: "Jane Doe".into(),
                        security_code: "123".into(),
                        ..Default::default()
                    }),
                    Source::UsedToken(i) if !self.tokens.is_empty() => {
                        pb::create_payment_request::Source::Token(self.tokens[i.index(self.tokens.len())].clone())
                    }
                    Source::NewToken | Source::UsedToken(_) => {
                        let token = self.env.single_use_token().await;
                        self.tokens.push(token.clone());
                        pb::create_payment_request::Source::Token(token)
                    }
                };
                let body = Body::Create(pb::CreatePaymentRequest {
                    payment_type: match kind {
                        Kind::PA => pb::PaymentType::Pa,
                        Kind::DB => pb::PaymentType::Db,
                    } as i32,
                    amount,
                    currency: "EUR".into(),
                    source: Some(source),
                    create_registration: register,
                    customer_id: format!("cus_{}", common::ids::hex(8)),
                    ..Default::default()
                });
                self.send_new(body, script, crash, twice).await;
            }
            Step::Capture { of, percent, script, crash, twice } => {
                let Some(target) = self.target(&["PA"], of) else { return Ok(()) };
                let amount = (target.amount() * percent / 100).max(1);
                let body = Body::Capture(pb::CapturePaymentRequest { id: target.id.clone(), amount });
                self.send_new(body, script, crash, twice).await;
            }
            Step::Reverse { of, script, crash, twice } => {
                let Some(target) = self.target(&["PA"], of) else { return Ok(()) };
                let body = Body::Reverse(pb::ReversePaymentRequest { id: target.id.clone() });
                self.send_new(body, script, crash, twice).await;
            }
            Step::Refund { of, percent, script, crash, twice } => {
                let Some(target) = self.target(&["DB", "CP"], of) else { return Ok(()) };
                let amount = (target.amount() * percent / 100).max(1);
                let body = Body::Refund(pb::RefundPaymentRequest { id: target.id.clone(), amount });
                self.send_new(body, script, crash, twice).await;
            }
            Step::Retry { of, crash, twice } => {
                let index = self.retried(of);
                self.send(index, crash, twice).await;
            }
            Step::Reuse { of } => {
                let index = of.index(self.sent.len());
                let (key, body) = (self.sent[index].key.clone(), self.sent[index].body.altered());
                let process = self.process(None);
                let answer = process.call(self.env, &key, &body).await;
                process.settle().await;
                let refused = answer.as_ref().err().map(e2e::reason);
                prop_assert_eq!(
                    refused.as_deref(),
                    Some("idempotency_key_reused"),
                    "a key reused for another request: {:?}",
                    answer
                );
            }
            Step::Tick { reconcilers, crash, retry } => {
                self.clock.advance_ms(PAST_LEASE_MS);
                self.env.vault.clock.advance_ms(PAST_LEASE_MS);
                let now = self.clock.now_ms();
                let passes: Vec<Process> = (0..reconcilers).map(|i| self.process(crash.filter(|_| i == 0))).collect();
                let retry = match retry {
                    Some(of) => {
                        let index = self.retried(of);
                        Some((index, self.process(None), self.sent[index].key.clone(), self.sent[index].body.clone()))
                    }
                    None => None,
                };
                let reconciled =
                    futures::future::join_all(passes.iter().map(|p| p.payments.reconcile(Schedule::default())));
                let retried = async {
                    match &retry {
                        Some((_, process, key, body)) => Some(process.call(self.env, key, body).await),
                        None => None,
                    }
                };
                let (reconciled, retried) = tokio::join!(reconciled, retried);
                for process in passes.iter().chain(retry.as_ref().map(|r| &r.1)) {
                    process.settle().await;
                }
                if let (Some((index, ..)), Some(answer)) = (&retry, retried) {
                    self.sent[*index].answers.push(answer);
                }
                // A reconciler that ran its pass through released every key
                // whose lease had run out.
                let swept = passes.iter().zip(&reconciled).any(|(p, r)| r.is_ok() && !p.life.crashed());
                if swept {
                    let snapshot = Snapshot::read(&self.store).await;
                    let stale: Vec<_> =
                        snapshot.in_flight().filter(|k| k.locked_until < now.div_euclid(1000)).collect();
                    prop_assert!(
                        stale.is_empty(),
                        "keys in flight past their lease after a reconciler pass: {stale:?}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Restarts and reconciles until nothing is left to do (a few passes at most).
    async fn settle_all(&mut self) -> Snapshot {
        for _ in 0..6 {
            self.clock.advance_ms(PAST_LEASE_MS);
            self.env.vault.clock.advance_ms(PAST_LEASE_MS);
            let process = self.process(None);
            let pass = process.payments.reconcile(Schedule::default()).await;
            process.settle().await;
            let snapshot = Snapshot::read(&self.store).await;
            if pass.is_ok() && snapshot.unfinished() == 0 && snapshot.in_flight().next().is_none() {
                return snapshot;
            }
        }
        Snapshot::read(&self.store).await
    }

    /// The vault agrees: a used token's charge status follows its payment's life
    /// (PA `pending`, captured `successful`, reversed `reversed`; DB
    /// `successful`; declined or never processed `failed`); a
    /// payment's registration is the one the vault holds for its customer.
    async fn check_vault(&self, s: &Snapshot) -> Result<(), TestCaseError> {
        for token in &self.tokens {
            let request = authed(&self.env.pkey, proto::vault::v1::GetTokenRequest { id: token.clone() });
            let view = self.env.vault.tokens().get_token(request).await.unwrap().into_inner();
            let users: Vec<_> =
                s.rows.iter().filter(|r| r.token.as_ref() == Some(token) && r.reference_id.is_none()).collect();
            if users.iter().any(|u| u.card_bin.is_some()) {
                prop_assert!(view.used, "token {token} gave its card but is not used: {users:?}");
            }
            if view.used {
                // Omise's charge status through the payment's life.
                let expected = match users.iter().find(|u| u.status == "approved") {
                    None => "failed",
                    Some(u) if u.kind == "DB" || u.amount == 0 => "successful",
                    Some(u) if s.children(&u.id, "CP").any(|c| c.status == "approved") => "successful",
                    Some(u) if s.children(&u.id, "RV").any(|c| c.status == "approved") => "reversed",
                    Some(_) => "pending",
                };
                prop_assert_eq!(view.charge_status.as_str(), expected, "charge status of {}: {:?}", token, users);
            }
        }
        let ctx = CallContext::default();
        for sent in &self.sent {
            let Body::Create(request) = &sent.body else { continue };
            if !request.create_registration {
                continue;
            }
            let (held, _) = self
                .env
                .client
                .list(self.env.scope(), TokenKind::Registration, &request.customer_id, 10, "", &ctx)
                .await
                .unwrap();
            prop_assert!(held.len() <= 1, "two registrations for one payment: {held:?}");
            if let Some(registration) = s.row(&sent.id).and_then(|r| r.registration_id.clone()) {
                prop_assert_eq!(
                    held.first().map(|t| &t.id),
                    Some(&registration),
                    "the payment's registration is not the vault's"
                );
            }
        }
        Ok(())
    }
}

async fn run_case(env: &Env, db: Db, seed: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let database = TestDatabase::new(db).await;
    let store = SqlStore::connect(&database.url, 8, Duration::from_secs(5)).await.unwrap();
    let mut case = Case {
        env,
        store: store.clone(),
        clock: ManualClock::starting_now(),
        book: Arc::default(),
        sent: Vec::new(),
        tokens: Vec::new(),
        seed,
    };
    let outcome = async {
        for (n, step) in steps.iter().enumerate() {
            case.run(step).await.map_err(|e| TestCaseError::fail(format!("step {n} ({step:?}): {e}")))?;
            let snapshot = Snapshot::read(&case.store).await;
            case.snapshot_check(&snapshot, false)
                .map_err(|e| TestCaseError::fail(format!("after step {n} ({step:?}): {e}")))?;
        }
        let settled = case.settle_all().await;
        case.snapshot_check(&settled, true).map_err(|e| TestCaseError::fail(format!("after reconciliation: {e}")))?;
        case.check_vault(&settled).await.map_err(|e| TestCaseError::fail(format!("the vault, at the end: {e}")))
    }
    .await;
    store.pool().close().await;
    drop(database);
    outcome
}

fn model(db: Db) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(32);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let env = runtime.block_on(Env::start());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(seed, steps)| runtime.block_on(run_case(&env, db, seed, steps)));
    runtime.block_on(env.vault.stop());
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn a_payments_life_keeps_its_invariants_on_postgres() {
    model(Db::Postgres);
}

#[test]
fn a_payments_life_keeps_its_invariants_on_sqlite() {
    model(Db::Sqlite);
}
