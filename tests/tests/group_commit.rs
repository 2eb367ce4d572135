//! Group commit under a crash: writers on both services' stores, their writes
//! carried many to a transaction, while a private PostgreSQL cluster is
//! SIGKILLed in the middle of batches and started again. Afterwards every
//! acknowledged write is there, nothing is half written (a payment at its
//! final point has its ledger line and one short of it has none; a token has
//! its creation event, a use its DT event), writes were acknowledged on both
//! sides of the crash, and transactions did carry several writes each. Then
//! the failure rules, on PostgreSQL and SQLite: a write the store refuses (a
//! NUL byte, a duplicate id) fails alone while its batch lands, and a write
//! whose caller gave up while it waited in the queue is never made, and the
//! first write after a restart of PostgreSQL lands (a committer's kept
//! connection is replaced); closing the pool takes the kept connections back;
//! a write that panics fails alone and its committer goes on; and payments'
//! and the vault's writes batched into one statement are answered each as if
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::database::GroupCommit;
use common::store::StoreError;
use e2e::procs::PgServer;
use tokio::time::Instant;

/// Small batches waited for, two committers: batches form even at this load.
fn batching() -> GroupCommit {
    GroupCommit { max_batch: 16, max_wait_us: 2_000, committers: 2, timeout_ms: 2_000 }
}

const WRITERS: usize = 24;

/// What the writers saw: the writes acknowledged, and how many failed.
#[derive(Default)]
struct Journal {
    acknowledged: HashSet<String>,
    failed: usize,
    after_restart: usize,
}

/// Runs `write` from `WRITERS` tasks for `before` and kills the cluster,
/// starts it again after `down`, and goes on for `after`. A write failing
/// with anything but `Unavailable` fails the test. `write(w, i)` names what it
/// wrote; the journal records it when acknowledged.
async fn through_a_crash<F, Fut>(pg: &mut PgServer, write: F) -> Journal
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<String, StoreError>> + Send,
{
    let journal = Arc::new(Mutex::new(Journal::default()));
    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let write = Arc::new(write);
    let stop = Instant::now() + Duration::from_secs(6);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (journal, restarted, write) = (journal.clone(), restarted.clone(), write.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop {
                i += 1;
                let deadline = Instant::now() + Duration::from_millis(1_500);
                let outcome = common::deadline::within(deadline, write(w, i)).await;
                let failed = {
                    let mut journal = journal.lock().unwrap();
                    match outcome {
                        Ok(name) => {
                            journal.acknowledged.insert(name);
                            if restarted.load(std::sync::atomic::Ordering::SeqCst) {
                                journal.after_restart += 1;
                            }
                            false
                        }
                        Err(StoreError::Unavailable(_)) => {
                            journal.failed += 1;
                            true
                        }
                        Err(other) => panic!("a write failed with {other:?}, not as an outage"),
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = journal.lock().unwrap().acknowledged.len();
    assert!(before > WRITERS, "writes were acknowledged before the crash: {before}");
    pg.kill9();
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.start().await;
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let journal = Arc::try_unwrap(journal).ok().unwrap().into_inner().unwrap();
    assert!(journal.failed > 0, "the crash was felt");
    assert!(journal.after_restart > WRITERS, "writes were acknowledged after the restart: {}", journal.after_restart);
    journal
}

/// How many transactions of `table` wrote more than one of its rows (rows
/// written by one transaction share its `xmin`).
async fn shared_transactions(pool: &sqlx::AnyPool, table: &str) -> i64 {
    let sql =
        format!("SELECT COUNT(*) FROM (SELECT xmin::text FROM {table} GROUP BY xmin::text HAVING COUNT(*) > 1) t");
    sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap()
}

/// A DB payment written ahead, as a flow writes it before asking the vault.
fn pending_payment(id: &str) -> payments_svc::domain::payment::Payment {
    use payments_svc::domain::payment::{Outcome, Payment, PaymentType, RecoveryPoint, Status};
    Payment {
        id: id.into(),
        merchant_id: "mrch_1".into(),
        livemode: false,
        payment_type: PaymentType::DB,
        reference_id: None,
        amount: 1_000,
        currency: "EUR".into(),
        status: Status::Pending,
        result: Outcome { code: "000.200.000".into(), description: "pending".into() },
        token: Some("tokn_1".into()),
        registration_id: None,
        omni_token: None,
        card: None,
        account: None,
        mandate: None,
        standing_instruction: None,
        captured_amount: 0,
        refunded_amount: 0,
        reversed: false,
        acquirer_reference: None,
        customer_id: String::new(),
        merchant_transaction_id: String::new(),
        description: String::new(),
        created_at: 1_795_392_000_000,
        recovery: RecoveryPoint::Started,
        source_kind: None,
        tokenize: None,
    }
}

/// `started` approved and finished, with its DB ledger line.
fn approved(
    started: &payments_svc::domain::payment::Payment,
) -> (payments_svc::domain::payment::Payment, payments_svc::domain::payment::LedgerEntry) {
    use payments_svc::domain::payment::{LedgerEntry, LedgerKind, MaskedCard, Outcome, Payment, PaymentType};
    use payments_svc::domain::payment::{RecoveryPoint, Status};
    let card = MaskedCard {
        brand: "visa".into(),
        bin: "424242".into(),
        last4: "4242".into(),
        exp_month: 12,
        exp_year: 2030,
        name: String::new(),
    };
    let finished = Payment {
        status: Status::Approved,
        result: Outcome { code: "000.100.110".into(), description: "ok".into() },
        captured_amount: 1_000,
        card: Some(card.clone()),
        recovery: RecoveryPoint::Finished,
        ..started.clone()
    };
    let line = LedgerEntry {
        id: format!("{}-DB", started.id),
        merchant_id: "mrch_1".into(),
        livemode: false,
        transaction_type: LedgerKind::of_payment(PaymentType::DB),
        payment_id: started.id.clone(),
        reference_id: String::new(),
        amount: 1_000,
        currency: "EUR".into(),
        result: finished.result.clone(),
        token: "tokn_1".into(),
        card,
        created_at: finished.created_at,
    };
    (finished, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_written_ahead_and_advanced_survive_a_crash_mid_batch() {
    use payments_svc::domain::payment::RecoveryPoint;
    use payments_svc::domain::store::{Begun, PaymentStore, Step};
    use payments_svc::storage::sql::SqlStore;

    let mut pg = PgServer::new().await;
    let url = pg.url("postgres");
    let store = SqlStore::open(&url, 8, Duration::from_secs(1), &batching()).await.unwrap();
    let writer = store.clone();
    // Each write names what it made durable: `begun:<id>` or `finished:<id>`.
    let journal = through_a_crash(&mut pg, move |w, i| {
        let (store, id) = (writer.clone(), format!("pay_{w}_{i}"));
        async move {
            let started = pending_payment(&id);
            if i % 2 == 1 {
                // Every other payment is only written ahead.
                return match store.begin(&started, None, 0).await? {
                    Begun::New => Ok(format!("begun:{id}")),
                    other => panic!("a fresh id was {other:?}"),
                };
            }
            assert!(matches!(store.begin(&started, None, 0).await?, Begun::New));
            let (finished, line) = approved(&started);
            let ledger = [line];
            let step = Step { from: RecoveryPoint::Started, ledger: &ledger, release: None, lease_until: 0 };
            assert!(store.advance(&finished, step).await?, "the payment was where it was written");
            Ok(format!("finished:{id}"))
        }
    })
    .await;

    let pool = store.pool();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT p.id, p.recovery_point, (SELECT COUNT(*) FROM transactions t WHERE t.payment_id = p.id) FROM payments p",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let stored: std::collections::HashMap<_, _> =
        rows.iter().map(|(id, point, lines)| (id.clone(), (point.clone(), *lines))).collect();
    for name in &journal.acknowledged {
        let (what, id) = name.split_once(':').unwrap();
        let Some((point, lines)) = stored.get(id) else { panic!("acknowledged {name} is not stored") };
        if what == "finished" {
            assert_eq!((point.as_str(), *lines), ("finished", 1), "acknowledged {name}");
        }
    }
    for (id, (point, lines)) in &stored {
        let expected = i64::from(point == "finished");
        assert_eq!(*lines, expected, "{id} at {point} has {lines} ledger lines: half written");
    }
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = t.payment_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "no ledger line without its payment");
    assert!(shared_transactions(pool, "transactions").await > 0, "advances shared transactions");
    assert!(shared_transactions(pool, "payments").await > 0, "payments shared transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_their_uses_survive_a_crash_mid_batch() {
    use vault_api::TokenKind;
    use vault_svc::domain::audit::AuditEntry;
    use vault_svc::domain::store::cards::{CardRow, CardStore, Instrument, Lookup, Scope, UseRetention};
    use vault_svc::storage::sql::SqlStore;

    const T0: i64 = 1_795_392_000_000;
    let mut pg = PgServer::new().await;
    let url = pg.url("postgres");
    let store = SqlStore::open(&url, 8, Duration::from_secs(1), &batching()).await.unwrap();
    let audit = |event_type: &'static str, token_id: &str| AuditEntry {
        at: T0,
        event_type,
        merchant_id: "mrch_1".into(),
        token_id: token_id.into(),
        actor: "payments-svc".into(),
        correlation_id: String::new(),
        outcome: "success".into(),
    };
    let writer = store.clone();
    // `token:<id>` (created) or `used:<id>` (created, then used once).
    let journal = through_a_crash(&mut pg, move |w, i| {
        let (store, id) = (writer.clone(), format!("tokn_{w}_{i}"));
        async move {
            let row = CardRow {
                id: id.clone(),
                merchant_id: "mrch_1".into(),
                livemode: false,
                kind: TokenKind::Registration,
                instrument: Instrument::Card,
                customer_id: format!("cus_{w}_{i}"),
                fingerprint: format!("fp_{w}_{i}"),
                meta: b"sealed-meta".to_vec(),
                card: b"sealed-card".to_vec(),
                dek_version: 1,
                created_at: T0,
                last_used_at: None,
                retain_until: T0 + 1_000 * 86_400_000,
                extended: false,
            };
            assert_eq!(store.insert(&row, None, &audit("RG", &id)).await?, Some(true), "a new customer's first token");
            if i % 2 == 1 {
                return Ok(format!("token:{id}"));
            }
            let scope = Scope { merchant_id: "mrch_1", livemode: false };
            let retention = UseRetention { until: T0, extended_until: T0 };
            let used = store.use_token(scope, &id, T0 + 1_000, retention, None, &audit("DT", &id)).await?;
            assert!(matches!(used, Lookup::Found(_)), "the token just made is found");
            Ok(format!("used:{id}"))
        }
    })
    .await;

    let pool = store.pool();
    let tokens: HashSet<String> =
        sqlx::query_scalar("SELECT id FROM card_tokens").fetch_all(pool).await.unwrap().into_iter().collect();
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT token_id, event_type FROM audit_events").fetch_all(pool).await.unwrap();
    let created: HashSet<&str> = events.iter().filter(|(_, e)| e == "RG").map(|(t, _)| t.as_str()).collect();
    let used: HashSet<&str> = events.iter().filter(|(_, e)| e == "DT").map(|(t, _)| t.as_str()).collect();
    for name in &journal.acknowledged {
        let (what, id) = name.split_once(':').unwrap();
        assert!(tokens.contains(id), "acknowledged {name}: its token is stored");
        if what == "used" {
            assert!(used.contains(id), "acknowledged {name}: its DT event is stored");
        }
    }
    for id in &tokens {
        assert!(created.contains(id.as_str()), "{id} is stored without its creation event");
    }
    let last_used: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, last_used_at FROM card_tokens").fetch_all(pool).await.unwrap();
    for (id, last_used_at) in last_used {
        assert_eq!(last_used_at.is_some(), used.contains(id.as_str()), "{id}: a use and its DT event go together");
    }
    assert!(shared_transactions(pool, "audit_events").await > 0, "writes shared transactions");
}

/// A write PostgreSQL refuses (a NUL byte), batched with others: only its
/// caller sees the error, every other write of the batch lands, and nothing
/// of the refused one is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_alone_and_its_batch_lands() {
    use payments_svc::domain::store::{Begun, PaymentStore};
    use payments_svc::storage::sql::SqlStore;

    let database = e2e::TestDatabase::new(e2e::Db::Postgres).await;
    // Writes wait 50 ms for each other: the twenty below share a batch.
    let waiting = GroupCommit { max_batch: 64, max_wait_us: 50_000, committers: 1, timeout_ms: 5_000 };
    let store = SqlStore::open(&database.url, 4, Duration::from_secs(5), &waiting).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let mut p = pending_payment(&format!("pay_{i}"));
        if i == 7 {
            p.description = "bad\0text".into();
        }
        calls.push(tokio::spawn(async move { store.begin(&p, None, 0).await }));
    }
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 7 {
            assert!(matches!(outcome, Err(StoreError::Invalid(_))), "the NUL byte is refused: {outcome:?}");
        } else {
            assert!(matches!(outcome, Ok(Begun::New)), "pay_{i}: {outcome:?}");
        }
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM payments ORDER BY id").fetch_all(store.pool()).await.unwrap();
    assert_eq!(ids.len(), 19, "every other write landed: {ids:?}");
    assert!(!ids.contains(&"pay_7".to_string()), "nothing of the refused write");
}

/// A vault store whose committer waits `wait_ms` for writes to batch.
async fn waiting_vault(db: e2e::Db, wait_ms: u64) -> (vault_svc::storage::sql::SqlStore, e2e::TestDatabase) {
    let database = e2e::TestDatabase::new(db).await;
    let waiting = GroupCommit { max_batch: 64, max_wait_us: wait_ms * 1_000, committers: 1, timeout_ms: 5_000 };
    let store =
        vault_svc::storage::sql::SqlStore::open(&database.url, 4, Duration::from_secs(5), &waiting).await.unwrap();
    (store, database)
}

fn token_row(id: &str, customer: &str) -> vault_svc::domain::store::cards::CardRow {
    vault_svc::domain::store::cards::CardRow {
        id: id.into(),
        merchant_id: "mrch_1".into(),
        livemode: false,
        kind: vault_api::TokenKind::Registration,
        instrument: vault_svc::domain::store::cards::Instrument::Card,
        customer_id: customer.into(),
        fingerprint: format!("fp-{customer}"),
        meta: b"sealed-meta".to_vec(),
        card: b"sealed-card".to_vec(),
        dek_version: 1,
        created_at: 1_795_392_000_000,
        last_used_at: None,
        retain_until: 1_795_392_000_000 + 1_000 * 86_400_000,
        extended: false,
    }
}

fn created(token_id: &str) -> vault_svc::domain::audit::AuditEntry {
    vault_svc::domain::audit::AuditEntry {
        at: 1_795_392_000_000,
        event_type: "RG",
        merchant_id: "mrch_1".into(),
        token_id: token_id.into(),
        actor: "payments-svc".into(),
        correlation_id: String::new(),
        outcome: "created".into(),
    }
}

/// A write that fails on the store (a duplicate id), batched with nineteen
/// others, on both backends: only it fails, as a conflict, and the batch
/// lands with each token's event.
async fn a_conflicting_write_fails_alone(db: e2e::Db) {
    use vault_svc::domain::store::cards::CardStore;
    let (store, _database) = waiting_vault(db, 50).await;
    assert_eq!(store.insert(&token_row("dup", "cus_dup"), None, &created("dup")).await.unwrap(), Some(true));
    let mut calls = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let id = if i == 7 { "dup".to_string() } else { format!("tok_{i}") };
        calls.push(tokio::spawn(async move {
            store.insert(&token_row(&id, &format!("cus_{i}")), None, &created(&id)).await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let outcome = call.await.unwrap();
        if i == 7 {
            assert!(matches!(outcome, Err(StoreError::Conflict(_))), "the duplicate id: {outcome:?}");
        } else {
            assert_eq!(outcome, Ok(Some(true)), "tok_{i}");
        }
    }
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM card_tokens").fetch_one(store.pool()).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(store.pool()).await.unwrap();
    assert_eq!((tokens, events), (20, 20), "the first token and nineteen more, each with its event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_write_fails_alone_on_postgres() {
    a_conflicting_write_fails_alone(e2e::Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_write_fails_alone_on_sqlite() {
    a_conflicting_write_fails_alone(e2e::Db::Sqlite).await;
}

/// A caller whose deadline passes while its write waits for its batch is
/// answered `Unavailable` in time, and the write is never made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_in_the_queue_is_not_made() {
    use vault_svc::domain::store::cards::CardStore;
    let (store, _database) = waiting_vault(e2e::Db::Postgres, 300).await;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(50);
    let outcome =
        common::deadline::within(deadline, store.insert(&token_row("late", "cus_late"), None, &created("late"))).await;
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_millis(250), "answered by its deadline: {:?}", started.elapsed());
    // The committer's wait ends; the abandoned write is skipped, and a later one lands.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.insert(&token_row("next", "cus_next"), None, &created("next")).await.unwrap(), Some(true));
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM card_tokens").fetch_all(store.pool()).await.unwrap();
    assert_eq!(ids, ["next"], "the write given up in the queue was not made");
}

/// A committer keeps its connection from batch to batch. When PostgreSQL is
/// killed and started again under it, the next write still lands at its
/// first try: the kept connection's BEGIN fails, nothing was written, and it
/// is replaced by a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_after_a_restart_lands() {
    use vault_svc::domain::store::cards::CardStore;
    let mut pg = PgServer::new().await;
    let url = pg.url("postgres");
    let one = GroupCommit { max_batch: 64, max_wait_us: 0, committers: 1, timeout_ms: 2_000 };
    let store = vault_svc::storage::sql::SqlStore::open(&url, 4, Duration::from_secs(2), &one).await.unwrap();
    for i in 0..3 {
        let id = format!("before_{i}");
        assert_eq!(store.insert(&token_row(&id, &id), None, &created(&id)).await, Ok(Some(true)));
    }
    pg.kill9();
    pg.start().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let (row, event) = (token_row("after", "after"), created("after"));
    let after = common::deadline::within(deadline, store.insert(&row, None, &event)).await;
    assert_eq!(after, Ok(Some(true)), "the first write after the restart");
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM card_tokens ORDER BY id").fetch_all(store.pool()).await.unwrap();
    assert_eq!(ids, ["after", "before_0", "before_1", "before_2"]);
}

/// Closing the pool does not wait for ever on the connections the committers
/// keep: they give them back, and a write after the close fails as an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pool_takes_back_the_kept_connections() {
    use vault_svc::domain::store::cards::CardStore;
    let (store, _database) = waiting_vault(e2e::Db::Postgres, 0).await;
    assert_eq!(store.insert(&token_row("kept", "kept"), None, &created("kept")).await, Ok(Some(true)));
    let closed = tokio::time::timeout(Duration::from_secs(5), store.pool().close()).await;
    assert!(closed.is_ok(), "the pool closed with the committer's connection given back");
    let (row, event) = (token_row("late", "late"), created("late"));
    let late = tokio::time::timeout(Duration::from_secs(5), store.insert(&row, None, &event)).await;
    assert!(matches!(late, Ok(Err(StoreError::Unavailable(_)))), "{late:?}");
}

/// A write that panics mid-transaction fails alone: its caller is answered
/// INTERNAL (`Corrupt`), what it wrote is rolled back, the writes batched with
/// it land, and the committer — the only one — goes on serving. Its
/// connection is closed rather than handed back to the pool inside the open
/// transaction, where the pool's next user would write into it and never
/// commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_panics_fails_alone_and_the_committer_goes_on() {
    use common::database::committer::Committer;
    use futures::future::BoxFuture;
    use sqlx::AnyConnection;

    fn insert<'c>(id: &'c i64, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO marks (id) VALUES ($1)").bind(*id).execute(&mut *conn).await.unwrap();
            Ok(())
        })
    }
    fn insert_then_panic<'c>(id: &'c i64, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO marks (id) VALUES ($1)").bind(*id).execute(&mut *conn).await.unwrap();
            panic!("a job that panics after its statement");
        })
    }

    let database = e2e::TestDatabase::new(e2e::Db::Postgres).await;
    // Two connections, one committer: it keeps its connection.
    let (pool, _) = common::database::connect(&database.url, 2, Duration::from_secs(5)).await.unwrap();
    sqlx::query("CREATE TABLE marks (id BIGINT PRIMARY KEY)").execute(&pool).await.unwrap();
    let one = GroupCommit { max_batch: 64, max_wait_us: 200_000, committers: 1, timeout_ms: 2_000 };
    let committer = Committer::start(pool.clone(), &one);

    let alone = committer.write(1_i64, insert_then_panic).await;
    assert!(matches!(alone, Err(StoreError::Corrupt(_))), "{alone:?}");
    // The pool's next user commits what it writes.
    sqlx::query("INSERT INTO marks (id) VALUES (2)").execute(&pool).await.unwrap();
    // A batch of nine with a panicking write in the middle (the committer
    // waits 200 ms to gather them).
    let writes = (10..19_i64).map(|id| {
        let committer = committer.clone();
        tokio::spawn(async move {
            let job = if id == 14 { insert_then_panic } else { insert };
            (id, committer.write(id, job).await)
        })
    });
    for write in futures::future::join_all(writes).await {
        let (id, outcome) = write.unwrap();
        match id {
            14 => assert!(matches!(outcome, Err(StoreError::Corrupt(_))), "{outcome:?}"),
            _ => assert_eq!(outcome, Ok(()), "write {id}"),
        }
    }
    assert_eq!(committer.write(20_i64, insert).await, Ok(()), "the committer still serves");

    let (other, _) = common::database::connect(&database.url, 1, Duration::from_secs(5)).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM marks ORDER BY id").fetch_all(&other).await.unwrap();
    assert_eq!(ids, [2, 10, 11, 12, 13, 15, 16, 17, 18, 20], "the panicked writes rolled back, the rest committed");
}

/// Payments written ahead, and moved, in one batch are one statement each
/// (`begin_payments`, `advance_payments`), with every caller answered as if
/// its write had run alone: a new id `New`, an id already stored `Existing`
/// (or `Refused`, another merchant's), a move whether it moved, and the
/// moved ones get their ledger lines (and only they); each batch is one
/// transaction — not rolled back and re-run alone — and two moves of one
/// payment in the same batch still move it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_batched_together_are_answered_each_as_alone() {
    use payments_svc::domain::payment::RecoveryPoint;
    use payments_svc::domain::store::{Begun, PaymentStore, Step};
    use payments_svc::storage::sql::SqlStore;

    let database = e2e::TestDatabase::new(e2e::Db::Postgres).await;
    // One committer that waits 200 ms to gather: the moves below are one batch.
    let gather = GroupCommit { max_batch: 64, max_wait_us: 200_000, committers: 1, timeout_ms: 5_000 };
    let store = SqlStore::open(&database.url, 4, Duration::from_secs(5), &gather).await.unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("pay_batched_{i}")).collect();
    assert_eq!(store.begin(&pending_payment("pay_stored"), None, 0).await.unwrap(), Begun::New);
    let mut others = pending_payment("pay_others");
    others.merchant_id = "mrch_2".into();
    assert_eq!(store.begin(&others, None, 0).await.unwrap(), Begun::New);
    let begins = ids.iter().map(String::as_str).chain(["pay_stored", "pay_others"]).map(|id| {
        let (store, payment) = (store.clone(), pending_payment(id));
        tokio::spawn(async move { (payment.id.clone(), store.begin(&payment, None, 0).await.unwrap()) })
    });
    for begun in futures::future::join_all(begins).await {
        let (id, begun) = begun.unwrap();
        match id.as_str() {
            "pay_stored" => assert!(matches!(&begun, Begun::Existing(p) if p.id == id), "{begun:?}"),
            "pay_others" => assert_eq!(begun, Begun::Refused),
            _ => assert_eq!(begun, Begun::New, "{id}"),
        }
    }
    let inserts: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM payments WHERE id LIKE 'pay_batched_%'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(inserts, 1, "the batch's payments were written by one transaction");
    let advance = |id: String, from: RecoveryPoint| {
        let store = store.clone();
        tokio::spawn(async move {
            let (finished, line) = approved(&pending_payment(&id));
            let ledger = [line];
            let step = Step { from, ledger: &ledger, release: None, lease_until: 0 };
            (id, store.advance(&finished, step).await.unwrap())
        })
    };
    // One batch of eleven: pay_batched_1 is moved from a point it is not at.
    let first = ids[1..].iter().map(|id| {
        let from = if *id == ids[1] { RecoveryPoint::CardObtained } else { RecoveryPoint::Started };
        advance(id.clone(), from)
    });
    for outcome in futures::future::join_all(first).await {
        let (id, moved) = outcome.unwrap();
        assert_eq!(moved, id != ids[1], "{id}");
    }
    // Then a batch with two moves of pay_batched_0.
    let twice = [advance(ids[0].clone(), RecoveryPoint::Started), advance(ids[0].clone(), RecoveryPoint::Started)];
    let twice: Vec<bool> = futures::future::join_all(twice).await.into_iter().map(|o| o.unwrap().1).collect();
    assert_eq!(twice.iter().filter(|m| **m).count(), 1, "a payment moved twice in one batch moves once: {twice:?}");
    let pool = store.pool();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT p.id, p.recovery_point, (SELECT COUNT(*) FROM transactions t WHERE t.payment_id = p.id) \
         FROM payments p ORDER BY p.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, point, lines) in rows.iter().filter(|(id, ..)| id.starts_with("pay_batched_")) {
        let expected = if *id == ids[1] { ("started", 0) } else { ("finished", 1) };
        assert_eq!((point.as_str(), *lines), expected, "{id}");
    }
    let card: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT card_last4, card_name, captured_amount FROM payments WHERE id = $1 LIMIT 1")
            .bind(ids[2].as_str())
            .fetch_all(pool)
            .await
            .map(|r: Vec<(Option<String>, Option<String>, i64)>| {
                r.into_iter().map(|(l, n, a)| (l.unwrap_or_default(), n, a)).collect()
            })
            .unwrap();
    assert_eq!(card, [("4242".to_owned(), Some(String::new()), 1_000)], "the move's values were written");
    // The first batch was one transaction, not rolled back and retried alone.
    let transactions: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM transactions WHERE payment_id <> $1")
            .bind(ids[0].as_str())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(transactions, 1, "the batch's ledger lines were written by one transaction");
}

/// Durable tokens used in one batch are one statement (`mark_used_many`):
/// each caller gets its own token back as used (or `None`: no such token, or
/// not of the instrument asked for), a DT event is written for each use and
/// only for those, in one transaction; two uses of one token in a batch are
/// both answered, each with its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_batched_together_are_answered_each_as_alone() {
    use vault_svc::domain::store::cards::{CardStore, Instrument, Scope, TokenWrite, UseRetention};

    let (store, _database) = waiting_vault(e2e::Db::Postgres, 200).await;
    let ids: Vec<String> = (0..8).map(|i| format!("tok_used_{i}")).collect();
    for id in &ids {
        assert_eq!(store.insert(&token_row(id, id), None, &created(id)).await, Ok(Some(true)));
    }
    let now = 1_795_392_000_000 + 60_000;
    let using = |id: String, only: Option<Instrument>| {
        let store = store.clone();
        tokio::spawn(async move {
            let audit = vault_svc::domain::audit::AuditEntry {
                at: now,
                event_type: "DT",
                merchant_id: "mrch_1".into(),
                token_id: id.clone(),
                actor: "payments-svc".into(),
                correlation_id: format!("corr-{id}"),
                outcome: "ok".into(),
            };
            let scope = Scope { merchant_id: "mrch_1", livemode: false };
            let retention = UseRetention { until: now + 1_000, extended_until: now + 2_000 };
            let used = store.mark_used(TokenWrite { scope, id: &id, audit: &audit }, now, retention, only).await;
            (id, used.unwrap())
        })
    };
    // One batch: seven uses of live cards, one of a card as an account, one
    // of a token that does not exist.
    let first = ids[..7]
        .iter()
        .map(|id| using(id.clone(), None))
        .chain([using(ids[7].clone(), Some(Instrument::Account)), using("tok_none".into(), None)]);
    for outcome in futures::future::join_all(first).await {
        let (id, used) = outcome.unwrap();
        if ids[..7].contains(&id) {
            let row = used.unwrap_or_else(|| panic!("{id} was not used"));
            assert_eq!((row.id.as_str(), row.last_used_at), (id.as_str(), Some(now)), "its own token, as used");
            assert_eq!(row.card, b"sealed-card", "{id}");
        } else {
            assert_eq!(used, None, "{id}");
        }
    }
    let pool = store.pool();
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT token_id, correlation_id FROM audit_events WHERE event_type = 'DT' ORDER BY token_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected: Vec<(String, String)> = ids[..7].iter().map(|id| (id.clone(), format!("corr-{id}"))).collect();
    assert_eq!(events, expected, "a DT event for each use, and only for those");
    let transactions: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM audit_events WHERE event_type = 'DT'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(transactions, 1, "the batch's uses were one transaction, not re-run alone");

    // Then a batch with two uses of one token.
    let twice = [using(ids[0].clone(), None), using(ids[0].clone(), None)];
    for outcome in futures::future::join_all(twice).await {
        let (id, used) = outcome.unwrap();
        assert!(used.is_some_and(|row| row.id == id), "both uses are answered with the token");
    }
    let uses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE event_type = 'DT' AND token_id = $1")
        .bind(ids[0].as_str())
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(uses, 3, "each use has its event");
}

/// A batch that is one statement (its `OneStatement` says so) runs without
/// BEGIN and COMMIT on a connection in use, and still commits as one (the
/// private cluster logs every statement, so the test reads which were sent).
/// A statement the database refuses wrote nothing, so its writes run again
/// alone and only the refused one fails. A connection idle for longer than
/// the warm window goes through BEGIN again (a server that restarted
/// meanwhile is found out before anything is written), as does a committer's
/// first write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_one_statement_runs_without_begin_on_a_connection_in_use() {
    use common::database::committer::Committer;
    use futures::future::BoxFuture;
    use sqlx::AnyConnection;

    /// The ids as one `INSERT`.
    fn insert_all<'c>(ids: &'c [&'c i64], conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Vec<()>, StoreError>> {
        Box::pin(async move {
            let list = ids.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",");
            sqlx::query("INSERT INTO marks (id) SELECT unnest(string_to_array($1, ','))::bigint")
                .bind(list)
                .execute(&mut *conn)
                .await
                .map_err(common::database::classify)?;
            Ok(ids.iter().map(|_| ()).collect())
        })
    }
    fn one_statement(_: &[&i64], _: &AnyConnection) -> bool {
        true
    }

    let pg = PgServer::new().await;
    let url = pg.url("postgres");
    let (pool, _) = common::database::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
    sqlx::query("CREATE TABLE marks (id BIGINT PRIMARY KEY)").execute(&pool).await.unwrap();
    sqlx::query("ALTER SYSTEM SET log_statement = 'all'").execute(&pool).await.unwrap();
    sqlx::query("SELECT pg_reload_conf()").execute(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // What the server was sent since the last look: the BEGINs, and whether
    // the inserts were among it.
    let log = pg.log_file();
    let mut seen = std::fs::read_to_string(&log).unwrap().len();
    let mut begins = move || {
        let text = std::fs::read_to_string(&log).unwrap();
        let new = text[seen..].to_owned();
        seen = text.len();
        assert!(new.contains("INSERT INTO marks"), "the inserts were logged:\n{new}");
        new.lines().filter(|line| line.contains("statement: BEGIN")).count()
    };

    // Two connections, one committer: it keeps its connection; it gathers
    // for 20 ms, well within the warm window.
    let one = GroupCommit { max_batch: 64, max_wait_us: 20_000, committers: 1, timeout_ms: 2_000 };
    let committer = Committer::start(pool.clone(), &one);
    let batch = |ids: Vec<i64>| {
        let writes = ids.into_iter().map(|id| {
            let committer = committer.clone();
            tokio::spawn(async move { (id, committer.write_batched(id, insert_all, one_statement).await) })
        });
        futures::future::join_all(writes)
    };

    assert_eq!(committer.write_batched(1_i64, insert_all, one_statement).await, Ok(()));
    assert_eq!(begins(), 1, "the committer's first write begins a transaction");
    for write in batch((10..15).collect()).await {
        let (id, outcome) = write.unwrap();
        assert_eq!(outcome, Ok(()), "write {id}");
    }
    assert_eq!(begins(), 0, "a batch on the connection just used is its statement alone");
    // 12 is stored already: the statement is refused, and its writes run again alone.
    for write in batch(vec![20, 21, 12, 22]).await {
        let (id, outcome) = write.unwrap();
        match id {
            12 => assert!(matches!(outcome, Err(StoreError::Conflict(_))), "{outcome:?}"),
            _ => assert_eq!(outcome, Ok(()), "write {id}"),
        }
    }
    assert_eq!(begins(), 0, "the writes run again alone are their statements too");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committer.write_batched(30_i64, insert_all, one_statement).await, Ok(()));
    assert_eq!(begins(), 1, "after an idle spell the connection is tried with BEGIN");

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM marks ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(ids, [1, 10, 11, 12, 13, 14, 20, 21, 22, 30], "every write but the refused one, once");
    assert_eq!(shared_transactions(&pool, "marks").await, 1, "the five of one batch were one transaction");
}

/// A committer's kept connection plans with sequential scans and hash and
/// merge joins off for its whole life (`batched::PIN_SESSION`), so it never
/// goes back to the pool: once the committer stops (its last handle dropped,
/// the queue empty), the connection is closed, and every connection the
/// pool's other users get plans as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_committer_hands_no_pinned_connection_back_to_the_pool() {
    use common::database::committer::Committer;
    use futures::future::BoxFuture;
    use sqlx::AnyConnection;

    fn insert<'c>(id: &'c i64, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO marks (id) VALUES ($1)")
                .bind(*id)
                .execute(&mut *conn)
                .await
                .map_err(common::database::classify)?;
            Ok(())
        })
    }

    let database = e2e::TestDatabase::new(e2e::Db::Postgres).await;
    // Two connections, one committer: it keeps one of them.
    let (pool, _) = common::database::connect(&database.url, 2, Duration::from_secs(5)).await.unwrap();
    sqlx::query("CREATE TABLE marks (id BIGINT PRIMARY KEY)").execute(&pool).await.unwrap();
    let one = GroupCommit { max_batch: 64, max_wait_us: 0, committers: 1, timeout_ms: 2_000 };
    let committer = Committer::start(pool.clone(), &one);
    assert_eq!(committer.write(1_i64, insert).await, Ok(()));
    drop(committer);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut settings = Vec::new();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = pool.acquire().await.unwrap();
        let seqscan: String =
            sqlx::query_scalar("SELECT current_setting('enable_seqscan')").fetch_one(&mut *conn).await.unwrap();
        settings.push(seqscan);
        held.push(conn);
    }
    assert_eq!(settings, ["on", "on"], "no connection of the pool kept the committer's planner settings");
}
