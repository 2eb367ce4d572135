//! The `PaymentStore` conformance suite, on a real PostgreSQL (a schema per
//! test) and on SQLite (a file per test): payments and their guards, the
//! ledger, idempotency keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use e2e::{Db, TestDatabase};
use payments_svc::domain::payment::{
    LedgerEntry, MaskedCard, Outcome, Payment, PaymentType, Scope, SiMode, SiSource, SiType, StandingInstruction,
    Status,
};
use payments_svc::storage::sql::SqlStore;
use payments_svc::storage::{KeyState, LedgerQuery, PaymentStore};

const T0: i64 = 1_795_392_000_000;
const M: Scope<'static> = Scope { merchant_id: "mrch_1", livemode: false };

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
    }
}

fn entry(p: &Payment, kind: &'static str) -> LedgerEntry {
    LedgerEntry {
        id: format!("{}-{kind}", p.id),
        merchant_id: p.merchant_id.clone(),
        livemode: false,
        transaction_type: kind,
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
    s.insert(&pa, &[entry(&pa, "PA")]).await.unwrap();
    assert_eq!(s.get(M, "pa1").await.unwrap(), Some(pa.clone()));
    assert_eq!(s.get(Scope { merchant_id: "mrch_2", livemode: false }, "pa1").await.unwrap(), None);
    assert_eq!(s.get(Scope { merchant_id: "mrch_1", livemode: true }, "pa1").await.unwrap(), None);
    assert!(s.has_initial_cit(M, "reg_1").await.unwrap());
    assert!(!s.has_initial_cit(M, "reg_2").await.unwrap());
    let declined = Payment {
        standing_instruction: pa.standing_instruction.clone(),
        token: Some("reg_3".into()),
        ..payment("pa2", PaymentType::PA, 10, Status::Declined)
    };
    s.insert(&declined, &[]).await.unwrap();
    assert!(!s.has_initial_cit(M, "reg_3").await.unwrap(), "only an approved CIT counts");
}

async fn captures_stay_within_the_authorization(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    s.insert(&pa, &[]).await.unwrap();
    assert!(s.reserve_capture(M, "pa1", 600).await.unwrap());
    assert!(!s.reserve_capture(M, "pa1", 500).await.unwrap());
    assert!(s.reserve_capture(M, "pa1", 400).await.unwrap());
    assert!(!s.reserve_capture(M, "pa1", 1).await.unwrap());
    s.release("pa1", 400, 0, false).await.unwrap();
    assert!(s.reserve_capture(M, "pa1", 400).await.unwrap());
    assert!(!s.reserve_reversal(M, "pa1").await.unwrap(), "captured: no reversal");
    assert_eq!(s.get(M, "pa1").await.unwrap().unwrap().captured_amount, 1000);
    let declined = payment("pa2", PaymentType::PA, 1000, Status::Declined);
    s.insert(&declined, &[]).await.unwrap();
    assert!(!s.reserve_capture(M, "pa2", 1).await.unwrap(), "a declined PA cannot be captured");
    let db = payment("db1", PaymentType::DB, 1000, Status::Approved);
    s.insert(&db, &[]).await.unwrap();
    assert!(!s.reserve_capture(M, "db1", 1).await.unwrap(), "only a PA is captured");
    // The schema itself refuses a capture beyond the authorization.
    assert!(
        sqlx::query("UPDATE payments SET captured_amount = 2000 WHERE id = 'pa1'").execute(s.pool()).await.is_err()
    );
}

async fn reversal_only_before_capture(s: SqlStore) {
    s.insert(&payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await.unwrap();
    assert!(s.reserve_reversal(M, "pa1").await.unwrap());
    assert!(!s.reserve_reversal(M, "pa1").await.unwrap(), "once");
    assert!(!s.reserve_capture(M, "pa1", 1).await.unwrap(), "reversed: no capture");
    s.release("pa1", 0, 0, true).await.unwrap();
    assert!(s.reserve_capture(M, "pa1", 1).await.unwrap());
}

async fn refunds_stay_within_the_capture(s: SqlStore) {
    s.insert(&payment("db1", PaymentType::DB, 1000, Status::Approved), &[]).await.unwrap();
    assert!(s.reserve_refund(M, "db1", 700).await.unwrap());
    assert!(!s.reserve_refund(M, "db1", 400).await.unwrap());
    assert!(s.reserve_refund(M, "db1", 300).await.unwrap());
    assert!(!s.reserve_refund(M, "db1", 1).await.unwrap());
    s.insert(&payment("pa1", PaymentType::PA, 1000, Status::Approved), &[]).await.unwrap();
    assert!(!s.reserve_refund(M, "pa1", 1).await.unwrap(), "a PA is not refunded");
    assert!(
        sqlx::query("UPDATE payments SET refunded_amount = 1001 WHERE id = 'db1'").execute(s.pool()).await.is_err()
    );
}

async fn capture_and_reversal_race_has_one_winner(s: SqlStore) {
    let s = Arc::new(s);
    for i in 0..10 {
        let id = format!("pa{i}");
        s.insert(&payment(&id, PaymentType::PA, 1000, Status::Approved), &[]).await.unwrap();
        let (a, b) = (s.clone(), s.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (captured, reversed) = tokio::join!(
            tokio::spawn(async move { a.reserve_capture(M, &ida, 1000).await.unwrap() }),
            tokio::spawn(async move { b.reserve_reversal(M, &idb).await.unwrap() }),
        );
        assert!(captured.unwrap() != reversed.unwrap(), "exactly one of capture and reversal");
    }
}

async fn ledger_by_payment_token_and_time(s: SqlStore) {
    let pa = payment("pa1", PaymentType::PA, 1000, Status::Approved);
    let cp = Payment { reference_id: Some("pa1".into()), ..payment("cp1", PaymentType::CP, 400, Status::Approved) };
    s.insert(&pa, &[entry(&pa, "PA")]).await.unwrap();
    s.insert(&cp, &[entry(&cp, "CP")]).await.unwrap();
    let rg = LedgerEntry { token: "reg_9".into(), ..entry(&pa, "RG") };
    s.record(&LedgerEntry { id: "rg".into(), payment_id: String::new(), ..rg }).await.unwrap();
    let types = |records: Vec<payments_svc::domain::payment::LedgerRecord>| {
        records.into_iter().map(|r| r.transaction_type).collect::<Vec<_>>()
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

async fn idempotency_keys_hold_one_request(s: SqlStore) {
    assert_eq!(s.acquire_key("m", "k", "Create", "h1", T0).await.unwrap(), KeyState::Acquired);
    assert_eq!(
        s.acquire_key("m", "k", "Create", "h1", T0).await.unwrap(),
        KeyState::InFlight { request_hash: "h1".into() }
    );
    s.complete_key("m", "k", b"response").await.unwrap();
    assert_eq!(
        s.acquire_key("m", "k", "Create", "h1", T0).await.unwrap(),
        KeyState::Done { request_hash: "h1".into(), response: b"response".to_vec() }
    );
    s.release_key("m", "k").await.unwrap();
    assert!(
        matches!(s.acquire_key("m", "k", "Create", "h1", T0).await.unwrap(), KeyState::Done { .. }),
        "a done key stays"
    );
    assert_eq!(s.acquire_key("m", "k2", "Create", "h", T0).await.unwrap(), KeyState::Acquired);
    s.release_key("m", "k2").await.unwrap();
    assert_eq!(
        s.acquire_key("m", "k2", "Create", "h", T0).await.unwrap(),
        KeyState::Acquired,
        "a released key is free"
    );
    assert_eq!(
        s.acquire_key("other", "k", "Create", "h1", T0).await.unwrap(),
        KeyState::Acquired,
        "keys are per owner"
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::store(super::Db::Postgres).await.0).await } )*
        }
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::store(super::Db::Sqlite).await.0).await } )*
        }
    };
}

conformance!(
    insert_then_get,
    captures_stay_within_the_authorization,
    reversal_only_before_capture,
    refunds_stay_within_the_capture,
    capture_and_reversal_race_has_one_winner,
    ledger_by_payment_token_and_time,
    idempotency_keys_hold_one_request,
);
