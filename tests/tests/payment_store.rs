//! The `PaymentStore` conformance suite, on a real PostgreSQL (a schema per
//! test) and on SQLite (a file per test): payments written ahead and moved
//! through their recovery points, the guards of follow-up reservations, the
//! ledger, leases, idempotency keys and their leases, and the backlog the
//! reconciler's gauges show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::text::Text;
use std::sync::Arc;

use common::keys::KeySet;
use e2e::{Db, TestDatabase};
use payments_svc::domain::PaymentError;
use payments_svc::domain::idempotency::{self, Begin, Claim};
use payments_svc::domain::payment::{
    LedgerEntry, LedgerKind, Mandate, MaskedAccount, MaskedCard, Outcome, Payment, PaymentType, RecoveryPoint,
    Reservation, Scope, SiMode, SiSource, SiType, SourceKind, StandingInstruction, Status,
};
use payments_svc::domain::references::References;
use payments_svc::domain::store::{Backlog, Begun, KeyState, LedgerQuery, PaymentStore, Step, StoreError};
use payments_svc::storage::sql::SqlStore;

const T0: i64 = 1_795_392_000_000;
const M: Scope<'static> = Scope { merchant_id: "mrch_1", livemode: false };

/// A step of work from `from` with these effects.
fn step(from: RecoveryPoint, ledger: &[LedgerEntry], release: Option<Reservation>, lease_until: i64) -> Step<'_> {
    Step { from, ledger, release, lease_until }
}

/// A migrated store and its database (dropped when the test ends).
async fn store(db: Db) -> (SqlStore, TestDatabase) {
    let database = TestDatabase::new(db).await;
    (SqlStore::connect(&database.url, 8, std::time::Duration::from_secs(5)).await.unwrap(), database)
}

fn payment(id: &str, kind: PaymentType, amount: i64, status: Status) -> Payment {
    Payment {
        id: id.into(),
        merchant_id: "mrch_1".into(),
        livemode: false,
        payment_type: kind,
        reference_id: None,
        amount,
        currency: "EUR".into(),
        status,
        result: Outcome { code: "000.100.110".into(), description: "ok".into() },
        token: Some("reg_1".into()),
        registration_id: Some("reg_1".into()),
        omni_token: None,
        card: Some(MaskedCard {
            brand: "visa".into(),
            bin: "424242".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
            name: "Jane".into(),
        }),
        account: None,
        mandate: None,
        standing_instruction: Some(StandingInstruction {
            mode: SiMode::Initial,
            kind: SiType::Unscheduled,
            source: SiSource::Cit,
            initial_transaction_id: String::new(),
        }),
        captured_amount: if kind == PaymentType::DB && status == Status::Approved { amount } else { 0 },
        refunded_amount: 0,
        reversed: false,
        acquirer_reference: Some("ref_1".into()),
        customer_id: "cus_1".into(),
        merchant_transaction_id: "order-1".into(),
        description: "".into(),
        created_at: T0,
        recovery: RecoveryPoint::Finished,
        source_kind: Some(SourceKind::Registration),
        tokenize: None,
    }
}

/// A finished payment with its ledger lines.
async fn insert(s: &SqlStore, p: &Payment, ledger: &[LedgerEntry]) {
    assert_eq!(s.begin(p, None, 0).await.unwrap(), Begun::New);
    for e in ledger {
        s.record(e).await.unwrap();
    }
}

/// A pending follow-up of `original` holding `reservation`.
fn follow_up(id: &str, original: &str, reservation: Reservation) -> Payment {
    let (kind, amount) = match reservation {
        Reservation::Capture(a) => (PaymentType::CP, a),
        Reservation::Reversal => (PaymentType::RV, 0),
        Reservation::Refund(a) => (PaymentType::RF, a),
    };
    Payment {
        reference_id: Some(original.into()),
        recovery: RecoveryPoint::Started,
        source_kind: None,
        ..payment(id, kind, amount, Status::Pending)
    }
}

/// Whether `reservation` on `original` fits (a follow-up recorded with it).
async fn reserve(s: &SqlStore, id: &str, original: &str, reservation: Reservation) -> bool {
    match s.begin(&follow_up(id, original, reservation), Some(reservation), T0 + 30_000).await.unwrap() {
        Begun::New => true,
        Begun::Refused => false,
        Begun::Existing(_) => panic!("{id} exists"),
    }
}

/// The follow-up `id` failed: its reservation is released with it.
async fn release(s: &SqlStore, id: &str, original: &str, reservation: Reservation) {
    let failed = Payment { status: Status::Failed, ..follow_up(id, original, reservation) };
    let failed = Payment { recovery: RecoveryPoint::Finished, ..failed };
    assert!(s.advance(&failed, step(RecoveryPoint::Started, &[], Some(reservation), 0)).await.unwrap());
}

fn entry(p: &Payment, kind: &'static str) -> LedgerEntry {
    LedgerEntry {
        id: format!("{}-{kind}", p.id),
        merchant_id: p.merchant_id.clone(),
        livemode: false,
        transaction_type: LedgerKind::parse(kind).expect("a ledger kind"),
        payment_id: p.id.clone(),
        reference_id: p.reference_id.clone().unwrap_or_default(),
        amount: p.amount,
        currency: p.currency.clone(),
        result: p.result.clone(),
        token: p.token.clone().unwrap_or_default(),
        card: p.card.clone().unwrap_or_default(),
        created_at: T0,
    }
}

async fn insert_then_get(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    insert(&s, &pa, &[entry(&pa, "PA")]).await;
    assert_eq!(s.get(M, "pa1").await.unwrap(), Some(pa.clone()));
    assert_eq!(s.get(Scope { merchant_id: "mrch_2", livemode: false }, "pa1").await.unwrap(), None);
    assert_eq!(s.get(Scope { merchant_id: "mrch_1", livemode: true }, "pa1").await.unwrap(), None);
    assert!(s.has_initial_cit(M, "reg_1").await.unwrap());
    assert!(!s.has_initial_cit(M, "reg_2").await.unwrap());
    let declined = Payment {
        standing_instruction: pa.standing_instruction.clone(),
        token: Some("reg_3".into()),
        registration_id: Some("reg_3".into()),
        ..payment("pa2", PaymentType::PA, 10, Status::Declined)
    };
    insert(&s, &declined, &[]).await;
    assert!(!s.has_initial_cit(M, "reg_3").await.unwrap(), "only an approved CIT counts");
    // A CIT that created its registration counts for it.
    let created = Payment {
        token: Some("tokn_test_1".into()),
        registration_id: Some("reg_4".into()),
        ..payment("pa3", PaymentType::PA, 10, Status::Approved)
    };
    insert(&s, &created, &[]).await;
    assert!(s.has_initial_cit(M, "reg_4").await.unwrap());
}

async fn captures_stay_within_the_authorization(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    insert(&s, &pa, &[]).await;
    assert!(reserve(&s, "cp1", "pa1", Reservation::Capture(600)).await);
    assert!(!reserve(&s, "cp2", "pa1", Reservation::Capture(500)).await);
    assert!(reserve(&s, "cp3", "pa1", Reservation::Capture(400)).await);
    assert!(!reserve(&s, "cp4", "pa1", Reservation::Capture(1)).await);
    release(&s, "cp3", "pa1", Reservation::Capture(400)).await;
    assert!(reserve(&s, "cp5", "pa1", Reservation::Capture(400)).await);
    assert!(!reserve(&s, "rv1", "pa1", Reservation::Reversal).await, "captured: no reversal");
    assert_eq!(s.get(M, "pa1").await.unwrap().unwrap().captured_amount, 1000);
    assert_eq!(s.get(M, "cp2").await.unwrap(), None, "a refused follow-up is not recorded");
    let declined = payment("pa2", PaymentType::PA, 1000, Status::Declined);
    insert(&s, &declined, &[]).await;
    assert!(!reserve(&s, "cp6", "pa2", Reservation::Capture(1)).await, "a declined PA cannot be captured");
    let db = payment("db1", PaymentType::DB, 1000, Status::Approved);
    insert(&s, &db, &[]).await;
    assert!(!reserve(&s, "cp7", "db1", Reservation::Capture(1)).await, "only a PA is captured");
    // The schema itself refuses a capture beyond the authorization.
    assert!(
        sqlx::query("UPDATE payments SET captured_amount = 2000 WHERE id = 'pa1'").execute(s.pool()).await.is_err()
    );
}

async fn reversal_only_before_capture(s: SqlStore) {
    insert(&s, &payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await;
    assert!(reserve(&s, "rv1", "pa1", Reservation::Reversal).await);
    assert!(!reserve(&s, "rv2", "pa1", Reservation::Reversal).await, "once");
    assert!(!reserve(&s, "cp1", "pa1", Reservation::Capture(1)).await, "reversed: no capture");
    release(&s, "rv1", "pa1", Reservation::Reversal).await;
    assert!(reserve(&s, "cp2", "pa1", Reservation::Capture(1)).await);
}

async fn refunds_stay_within_the_capture(s: SqlStore) {
    insert(&s, &payment("db1", PaymentType::DB, 1000, Status::Approved), &[]).await;
    assert!(reserve(&s, "rf1", "db1", Reservation::Refund(700)).await);
    assert!(!reserve(&s, "rf2", "db1", Reservation::Refund(400)).await);
    assert!(reserve(&s, "rf3", "db1", Reservation::Refund(300)).await);
    assert!(!reserve(&s, "rf4", "db1", Reservation::Refund(1)).await);
    insert(&s, &payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await;
    assert!(!reserve(&s, "rf5", "pa1", Reservation::Refund(1)).await, "a PA is not refunded");
    assert!(
        sqlx::query("UPDATE payments SET refunded_amount = 1001 WHERE id = 'db1'").execute(s.pool()).await.is_err()
    );
}

async fn capture_and_reversal_race_has_one_winner(s: SqlStore) {
    let s = Arc::new(s);
    for i in 0..10 {
        let id = format!("pa{i}");
        insert(&s, &payment(&id, PaymentType::PA, 1000, Status::Approved), &[]).await;
        let (a, b) = (s.clone(), s.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (captured, reversed) = tokio::join!(
            tokio::spawn(async move { reserve(&a, &format!("cp{ida}"), &ida, Reservation::Capture(1000)).await }),
            tokio::spawn(async move { reserve(&b, &format!("rv{idb}"), &idb, Reservation::Reversal).await }),
        );
        assert!(captured.unwrap() != reversed.unwrap(), "exactly one of capture and reversal");
    }
}

async fn ledger_by_payment_token_and_time(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    let cp = Payment { reference_id: Some("pa1".into()), ..payment("cp1", PaymentType::CP, 400, Status::Approved) };
    insert(&s, &pa, &[entry(&pa, "PA")]).await;
    insert(&s, &cp, &[entry(&cp, "CP")]).await;
    let rg = LedgerEntry { token: "reg_9".into(), ..entry(&pa, "RG") };
    s.record(&LedgerEntry { id: "rg".into(), payment_id: String::new(), ..rg }).await.unwrap();
    let types = |records: Vec<payments_svc::domain::payment::LedgerRecord>| {
        records.into_iter().map(|r| r.entry.transaction_type.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(types(s.ledger(M, LedgerQuery::Payment("pa1"), 0, 10).await.unwrap()), ["PA", "CP"]);
    assert_eq!(types(s.ledger(M, LedgerQuery::Token("reg_9"), 0, 10).await.unwrap()), ["RG"]);
    assert_eq!(s.ledger(M, LedgerQuery::Between(T0, T0 + 1000), 0, 10).await.unwrap().len(), 3);
    assert!(s.ledger(M, LedgerQuery::Between(T0 + 5000, T0 + 9000), 0, 10).await.unwrap().is_empty());
    let page1 = s.ledger(M, LedgerQuery::Between(0, T0 * 2), 0, 2).await.unwrap();
    let page2 = s.ledger(M, LedgerQuery::Between(0, T0 * 2), page1[1].seq, 2).await.unwrap();
    assert_eq!((page1.len(), page2.len()), (2, 1));
    let other = Scope { merchant_id: "mrch_2", livemode: false };
    assert!(s.ledger(other, LedgerQuery::Payment("pa1"), 0, 10).await.unwrap().is_empty());
}

async fn a_direct_debit_keeps_its_account_and_mandate(s: SqlStore) {
    let account = MaskedAccount {
        brand: "DIRECTDEBIT_SEPA".into(),
        last4: "3000".into(),
        country: "DE".into(),
        bank_code: "37040044".into(),
        holder: "Jane Doe".into(),
        bic: String::new(),
    };
    let mandate = Mandate { id: "MNDT-1".into(), date_of_signature: "2026-11-30".into() };
    // Over a registration: the account is learnt when the vault gives it (CardObtained).
    let started = Payment {
        recovery: RecoveryPoint::Started,
        card: None,
        mandate: Some(mandate.clone()),
        captured_amount: 0,
        ..payment("dd1", PaymentType::DB, 1000, Status::Pending)
    };
    assert_eq!(s.begin(&started, None, T0 + 30_000).await.unwrap(), Begun::New);
    assert_eq!(s.get(M, "dd1").await.unwrap().unwrap().mandate, Some(mandate.clone()), "written ahead with it");
    let obtained = Payment { recovery: RecoveryPoint::CardObtained, account: Some(account.clone()), ..started.clone() };
    assert!(s.advance(&obtained, step(RecoveryPoint::Started, &[], None, T0 + 30_000)).await.unwrap());
    let stored = s.get(M, "dd1").await.unwrap().unwrap();
    assert_eq!((stored.card, stored.account, stored.mandate), (None, Some(account.clone()), Some(mandate.clone())));
    // A raw account: known from the start.
    let raw = Payment {
        account: Some(account.clone()),
        card: None,
        mandate: Some(mandate),
        ..payment("dd2", PaymentType::DB, 500, Status::Approved)
    };
    insert(&s, &raw, &[]).await;
    assert_eq!(s.get(M, "dd2").await.unwrap(), Some(raw));
}

async fn a_payment_moves_through_its_recovery_points_once(s: SqlStore) {
    let started = Payment {
        recovery: RecoveryPoint::Started,
        status: Status::Pending,
        card: None,
        source_kind: Some(SourceKind::SingleUse),
        captured_amount: 0,
        ..payment("db1", PaymentType::DB, 1000, Status::Pending)
    };
    let lease = T0 + 30_000;
    assert_eq!(s.begin(&started, None, lease).await.unwrap(), Begun::New);
    assert_eq!(
        s.begin(&started, None, lease).await.unwrap(),
        Begun::Existing(Box::new(started.clone())),
        "a retry finds it"
    );
    let obtained =
        Payment { recovery: RecoveryPoint::CardObtained, ..payment("db1", PaymentType::DB, 1000, Status::Pending) };
    let obtained = Payment { captured_amount: 0, source_kind: Some(SourceKind::SingleUse), ..obtained };
    assert!(!s.advance(&obtained, step(RecoveryPoint::CardObtained, &[], None, lease)).await.unwrap(), "not there yet");
    assert!(s.advance(&obtained, step(RecoveryPoint::Started, &[], None, lease)).await.unwrap());
    assert!(!s.advance(&obtained, step(RecoveryPoint::Started, &[], None, lease)).await.unwrap(), "only once");
    let answered = Payment {
        status: Status::Approved,
        captured_amount: 1000,
        recovery: RecoveryPoint::AcquirerAnswered,
        ..obtained.clone()
    };
    assert!(
        s.advance(&answered, step(RecoveryPoint::CardObtained, &[entry(&answered, "DB")], None, lease)).await.unwrap()
    );
    assert_eq!(s.get(M, "db1").await.unwrap(), Some(answered.clone()));
    assert_eq!(s.ledger(M, LedgerQuery::Payment("db1"), 0, 10).await.unwrap().len(), 1);
    // While it is unfinished, its lease decides who works on it.
    assert!(s.unfinished(lease - 1000, 10).await.unwrap().is_empty(), "its owner still holds it");
    assert_eq!(s.unfinished(lease + 1000, 10).await.unwrap().len(), 1);
    assert!(!s.take_lease("db1", lease - 1000, lease + 30_000).await.unwrap());
    assert!(s.take_lease("db1", lease + 1000, lease + 30_000).await.unwrap());
    assert!(!s.take_lease("db1", lease + 1000, lease + 30_000).await.unwrap(), "taken once");
    let finished = Payment { recovery: RecoveryPoint::Finished, ..answered };
    assert!(s.advance(&finished, step(RecoveryPoint::AcquirerAnswered, &[], None, 0)).await.unwrap());
    assert!(s.unfinished(lease + 100_000, 10).await.unwrap().is_empty(), "finished work is nobody's");
}

async fn a_pending_follow_up_keeps_its_reservation(s: SqlStore) {
    insert(&s, &payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await;
    assert!(reserve(&s, "cp1", "pa1", Reservation::Capture(199)).await);
    // Its acquirer did not answer: it stays pending, the amount stays reserved.
    assert_eq!(s.get(M, "pa1").await.unwrap().unwrap().captured_amount, 199);
    assert!(!reserve(&s, "cp2", "pa1", Reservation::Capture(802)).await);
    // The inquiry found it approved: the reservation stands, with one ledger line.
    let approved = Payment {
        status: Status::Approved,
        captured_amount: 199,
        recovery: RecoveryPoint::AcquirerAnswered,
        ..follow_up("cp1", "pa1", Reservation::Capture(199))
    };
    assert!(s.advance(&approved, step(RecoveryPoint::Started, &[entry(&approved, "CP")], None, 0)).await.unwrap());
    let pa = s.get(M, "pa1").await.unwrap().unwrap();
    assert_eq!((pa.captured_amount, s.get(M, "cp1").await.unwrap().unwrap().captured_amount), (199, 199));
    // A retry of the same follow-up finds it and reserves nothing twice.
    let again = s.begin(&follow_up("cp1", "pa1", Reservation::Capture(199)), Some(Reservation::Capture(199)), 0).await;
    assert!(matches!(again.unwrap(), Begun::Existing(_)));
    assert_eq!(s.get(M, "pa1").await.unwrap().unwrap().captured_amount, 199);
}

async fn idempotency_keys_hold_one_request(s: SqlStore) {
    let lease = T0 + 30_000;
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
        KeyState::Acquired
    );
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
        KeyState::InFlight { request_hash: "h1".into() }
    );
    s.complete_key("m", "k", b"response").await.unwrap();
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
        KeyState::Done { request_hash: "h1".into(), response: b"response".to_vec() }
    );
    s.release_key("m", "k").await.unwrap();
    assert!(
        matches!(
            s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
            KeyState::Done { .. }
        ),
        "a done key stays"
    );
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k2", method: "Create", hash: "h" }, T0, lease).await.unwrap(),
        KeyState::Acquired
    );
    s.release_key("m", "k2").await.unwrap();
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k2", method: "Create", hash: "h" }, T0, lease).await.unwrap(),
        KeyState::Acquired,
        "a released key is free"
    );
    assert_eq!(
        s.acquire_key(&Claim { owner: "other", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
        KeyState::Acquired,
        "keys are per owner"
    );
}

/// A key claimed before the reference key is rotated keeps its record, its
/// request hash and its payment id after; new keys go under the new version.
async fn keys_claimed_before_a_rotation_are_found_after_it(s: SqlStore) {
    let clock: common::clock::SharedClock = Arc::new(common::clock::ManualClock::new(T0));
    let (wait, lease) = (std::time::Duration::ZERO, std::time::Duration::from_secs(30));
    let v1 = KeySet::random();
    let (before, after) = (References::new(v1.clone()), References::new(v1.with_new_version()));
    let first = idempotency::choose(&s, idempotency::claims(&before, "m", "key-1", "CreatePayment", b"req").unwrap())
        .await
        .unwrap();
    assert!(first.key.starts_with("v1:") && !first.key.contains("key-1"), "{}", first.key);
    assert_eq!(idempotency::begin(&s, &clock, &first.claim(), wait, lease).await.unwrap(), Begin::Proceed);
    s.complete_key("m", &first.key, b"answer").await.unwrap();

    let retried = idempotency::choose(&s, idempotency::claims(&after, "m", "key-1", "CreatePayment", b"req").unwrap())
        .await
        .unwrap();
    assert_eq!((&retried.key, &retried.payment_id), (&first.key, &first.payment_id), "the retry finds the v1 record");
    assert_eq!(
        idempotency::begin(&s, &clock, &retried.claim(), wait, lease).await.unwrap(),
        Begin::Replay(b"answer".to_vec())
    );
    let changed =
        idempotency::choose(&s, idempotency::claims(&after, "m", "key-1", "CreatePayment", b"other").unwrap())
            .await
            .unwrap();
    assert!(matches!(
        idempotency::begin(&s, &clock, &changed.claim(), wait, lease).await,
        Err(PaymentError::IdempotencyKeyReused)
    ));

    let new = idempotency::choose(&s, idempotency::claims(&after, "m", "key-2", "CreatePayment", b"req").unwrap())
        .await
        .unwrap();
    assert!(new.key.starts_with("v2:"), "{}", new.key);
    assert_eq!(idempotency::begin(&s, &clock, &new.claim(), wait, lease).await.unwrap(), Begin::Proceed);
    let stored: Vec<(String, String)> = sqlx::query_as("SELECT key, request_hash FROM idempotency_keys ORDER BY key")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (key, hash) in stored {
        assert!(!key.contains("key-") && hash.starts_with(&key[..3]), "{key} {hash}");
    }
}

async fn key_leases_expire_and_are_taken_over(s: SqlStore) {
    let lease = T0 + 30_000;
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, T0, lease).await.unwrap(),
        KeyState::Acquired
    );
    // While its owner's lease runs, a duplicate is told it is in flight.
    assert!(matches!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, lease - 1000, lease)
            .await
            .unwrap(),
        KeyState::InFlight { .. }
    ));
    // After it, the same request takes the work over; another request is still refused.
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h2" }, lease + 1000, lease + 30_000)
            .await
            .unwrap(),
        KeyState::InFlight { request_hash: "h1".into() }
    );
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, lease + 1000, lease + 30_000)
            .await
            .unwrap(),
        KeyState::Acquired
    );
    s.renew_key("m", "k", lease + 90_000).await.unwrap();
    assert!(
        matches!(
            s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h1" }, lease + 60_000, lease)
                .await
                .unwrap(),
            KeyState::InFlight { .. }
        ),
        "renewed"
    );
    // A released key keeps its request: only that request takes it again.
    s.release_key("m", "k").await.unwrap();
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h2" }, T0, lease).await.unwrap(),
        KeyState::InFlight { request_hash: "h1".into() }
    );
    // The sweep releases keys in flight past their lease and purges old records.
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k3", method: "Create", hash: "h" }, T0, lease).await.unwrap(),
        KeyState::Acquired
    );
    assert_eq!(s.sweep_keys(lease + 1000, T0 - 1000).await.unwrap(), (1, 0));
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k3", method: "Create", hash: "h" }, lease + 2000, lease + 30_000)
            .await
            .unwrap(),
        KeyState::Acquired
    );
    assert_eq!(s.sweep_keys(lease + 2000, T0 + 1000).await.unwrap().1, 2, "both records are past retention");
    assert_eq!(
        s.acquire_key(&Claim { owner: "m", key: "k", method: "Create", hash: "h2" }, T0, lease).await.unwrap(),
        KeyState::Acquired,
        "purged"
    );
}

/// What `payments_pending`, `payments_pending_oldest_age_seconds` and
/// `idempotency_keys_in_flight` are sampled from: pending payments (the
/// oldest's creation) and keys in flight; finished work and done keys are
/// not counted.
async fn the_backlog_counts_pending_payments_and_keys_in_flight(s: SqlStore) {
    assert_eq!(s.backlog().await.unwrap(), Backlog::default(), "an empty store");
    insert(&s, &payment("done", PaymentType::DB, 100, Status::Approved), &[]).await;
    let pending = |id: &str, created_at| Payment {
        recovery: RecoveryPoint::CardObtained,
        captured_amount: 0,
        created_at,
        ..payment(id, PaymentType::DB, 1099, Status::Pending)
    };
    let (older, newer) = (pending("older", T0), pending("newer", T0 + 5_000));
    for p in [&older, &newer] {
        assert_eq!(s.begin(p, None, T0 + 30_000).await.unwrap(), Begun::New);
    }
    for key in ["k1", "k2"] {
        let claim = Claim { owner: "m", key, method: "Create", hash: "h" };
        assert_eq!(s.acquire_key(&claim, T0, T0 + 30_000).await.unwrap(), KeyState::Acquired);
    }
    s.complete_key("m", "k2", b"answer").await.unwrap();
    let counted = Backlog { pending: 2, oldest_pending: Some(T0), keys_in_flight: 1 };
    assert_eq!(s.backlog().await.unwrap(), counted);

    let resolved = Payment { status: Status::Approved, recovery: RecoveryPoint::Finished, ..older };
    assert!(s.advance(&resolved, step(RecoveryPoint::CardObtained, &[], None, 0)).await.unwrap());
    s.release_key("m", "k1").await.unwrap();
    assert_eq!(s.backlog().await.unwrap(), Backlog { pending: 1, oldest_pending: Some(T0 + 5_000), keys_in_flight: 0 });
}

async fn a_nul_byte_in_a_text_is_invalid(s: SqlStore) {
    // PostgreSQL refuses it (22021); SQLite would store it, so the store refuses it first.
    let p = Payment { description: "order\0 42".into(), ..payment("pa1", PaymentType::PA, 1000, Status::Approved) };
    let e = s.begin(&p, None, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert!(!e.to_string().contains("order"), "the error never echoes the value: {e}");
    assert_eq!(s.get(M, "pa1").await.unwrap(), None, "nothing was written");
    let clean = payment("pa2", PaymentType::PA, 1000, Status::Approved);
    let e = s.record(&LedgerEntry { token: "reg\0".into(), ..entry(&clean, "RG") }).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
}

async fn a_check_constraint_on_input_is_invalid(s: SqlStore) {
    let p = Payment { captured_amount: 2000, ..payment("pa1", PaymentType::PA, 1000, Status::Approved) };
    let e = s.begin(&p, None, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
}

async fn a_duplicate_id_is_a_conflict(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    insert(&s, &pa, &[entry(&pa, "PA")]).await;
    let e = s.record(&entry(&pa, "PA")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(s.ledger(M, LedgerQuery::Payment("pa1"), 0, 10).await.unwrap().len(), 1);
}

async fn an_unreadable_row_is_corrupt(s: SqlStore) {
    insert(&s, &payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await;
    sqlx::query("UPDATE payments SET status = 'bogus' WHERE id = 'pa1'").execute(s.pool()).await.unwrap();
    let e = s.get(M, "pa1").await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
}

e2e::conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] crate::store =>
    insert_then_get,
    a_direct_debit_keeps_its_account_and_mandate,
    captures_stay_within_the_authorization,
    reversal_only_before_capture,
    refunds_stay_within_the_capture,
    capture_and_reversal_race_has_one_winner,
    ledger_by_payment_token_and_time,
    a_payment_moves_through_its_recovery_points_once,
    a_pending_follow_up_keeps_its_reservation,
    idempotency_keys_hold_one_request,
    key_leases_expire_and_are_taken_over,
    keys_claimed_before_a_rotation_are_found_after_it,
    the_backlog_counts_pending_payments_and_keys_in_flight,
    a_nul_byte_in_a_text_is_invalid,
    a_check_constraint_on_input_is_invalid,
    a_duplicate_id_is_a_conflict,
    an_unreadable_row_is_corrupt,
);

async fn unreachable_is_unavailable(url: &str) {
    let started = std::time::Instant::now();
    let e = SqlStore::connect(url, 2, std::time::Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_closed_postgres_port_is_unavailable() {
    unreachable_is_unavailable("postgres://postgres@127.0.0.1:1/postgres").await;
}

#[tokio::test]
async fn an_sqlite_file_that_cannot_be_opened_is_unavailable() {
    unreachable_is_unavailable("sqlite:///nonexistent-payvault-dir/payments.db?mode=rwc").await;
}
