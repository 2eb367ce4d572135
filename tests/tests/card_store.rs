//! The `CardStore` / `KeyStore` conformance suite: every case runs against a
//! real PostgreSQL (a fresh schema per test) and against SQLite (a fresh file
//! per test), so the production and embedded backends are held to one semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{Db, test_database};
use vault_api::TokenKind;
use vault_svc::domain::audit::{AuditEntry, AuditQuery};
use vault_svc::domain::store::StoreError;
use vault_svc::domain::store::cards::{
    CardRow, CardStore, Instrument, KeyPurpose, KeyStore, Lookup, Scope, TokenWrite, UseRetention, WrappedKey,
};
use vault_svc::storage::sql::SqlStore;

const T0: i64 = 1_795_392_000_000;
const DAY: i64 = 86_400_000;
const M1: Scope<'static> = Scope { merchant_id: "mrch_1", livemode: false };

fn row(id: &str, customer: &str, fingerprint: &str) -> CardRow {
    CardRow {
        id: id.into(),
        merchant_id: "mrch_1".into(),
        livemode: false,
        kind: TokenKind::Registration,
        instrument: Instrument::Card,
        customer_id: customer.into(),
        fingerprint: fingerprint.into(),
        meta: b"sealed-meta".to_vec(),
        card: b"sealed-card".to_vec(),
        dek_version: 1,
        created_at: T0,
        last_used_at: None,
        retain_until: T0 + 400 * DAY,
        extended: false,
    }
}

/// What a use asks of an account's retention (a card's ignores it).
const MOVED: UseRetention = UseRetention { until: T0 + 700 * DAY, extended_until: T0 + 900 * DAY };

fn audit(event_type: &'static str, token_id: &str) -> AuditEntry {
    AuditEntry {
        at: T0,
        event_type,
        merchant_id: "mrch_1".into(),
        token_id: token_id.into(),
        actor: "payments-svc".into(),
        correlation_id: "corr-1".into(),
        outcome: "success".into(),
    }
}

async fn events(s: &SqlStore, token_id: Option<&str>) -> Vec<String> {
    let q = AuditQuery { merchant_id: "mrch_1", token_id, from: 0, to: i64::MAX / 2, after_id: 0, limit: 100 };
    s.audit_events(q).await.unwrap().into_iter().map(|e| format!("{}:{}", e.event_type, e.token_id)).collect()
}

async fn insert_then_get(s: SqlStore) {
    assert_eq!(s.insert(&row("r1", "cus_1", "fp1"), Some("pay_1"), &audit("RG", "r1")).await.unwrap(), Some(true));
    assert_eq!(s.get(M1, "r1").await.unwrap(), Lookup::Found(row("r1", "cus_1", "fp1")));
    assert_eq!(s.get(Scope { merchant_id: "mrch_2", livemode: false }, "r1").await.unwrap(), Lookup::NotFound);
    assert_eq!(s.get(Scope { merchant_id: "mrch_1", livemode: true }, "r1").await.unwrap(), Lookup::NotFound);
    assert_eq!(events(&s, None).await, vec!["RG:r1"]);
    assert_eq!(s.find_by_consumer(M1, "pay_1").await.unwrap().unwrap().id, "r1");
    assert_eq!(s.find_by_consumer(M1, "pay_2").await.unwrap(), None);
}

async fn the_same_card_is_stored_once_per_customer_and_kind(s: SqlStore) {
    assert_eq!(s.insert(&row("r1", "cus_1", "fp1"), None, &audit("RG", "r1")).await.unwrap(), Some(true), "first");
    let same = s.insert(&row("r2", "cus_1", "fp1"), None, &audit("RG", "r2")).await.unwrap();
    assert_eq!(same, None, "same card, same customer");
    assert_eq!(s.get(M1, "r2").await.unwrap(), Lookup::NotFound, "nothing was written");
    assert_eq!(events(&s, None).await, vec!["RG:r1"], "and no audit event either");
    assert_eq!(s.find_same_card(M1, TokenKind::Registration, "cus_1", "fp1").await.unwrap().unwrap().id, "r1");
    let other_customer = s.insert(&row("r3", "cus_2", "fp1"), None, &audit("RG", "r3")).await.unwrap();
    assert_eq!(other_customer, Some(true), "another customer's first");
    let omni = CardRow { kind: TokenKind::Omni, ..row("o1", "cus_1", "fp1") };
    assert_eq!(s.insert(&omni, None, &audit("TK", "o1")).await.unwrap(), Some(true), "another kind's first");
    let beside = s.insert(&row("r4", "cus_1", "fp4"), None, &audit("RG", "r4")).await.unwrap();
    assert_eq!(beside, Some(false), "another card beside the customer's first");

    let refreshed = CardRow { meta: b"new-meta".to_vec(), retain_until: T0 + 500 * DAY, ..row("r1", "", "") };
    let got = s.refresh(&refreshed, T0 + 900 * DAY, &audit("RG", "r1")).await.unwrap().unwrap();
    assert_eq!(
        (got.meta.as_slice(), got.retain_until, got.customer_id.as_str()),
        (&b"new-meta"[..], T0 + 500 * DAY, "cus_1")
    );
}

async fn use_marks_and_audits_in_one_commit(s: SqlStore) {
    s.insert(&row("r1", "cus_1", "fp1"), None, &audit("RG", "r1")).await.unwrap();
    let Lookup::Found(used) = s.use_token(M1, "r1", T0 + DAY, MOVED, None, &audit("DT", "r1")).await.unwrap() else {
        panic!()
    };
    assert_eq!((used.last_used_at, used.card.as_slice()), (Some(T0 + DAY), &b"sealed-card"[..]));
    assert_eq!(events(&s, Some("r1")).await, vec!["RG:r1", "DT:r1"]);
    assert_eq!(
        s.use_token(Scope { merchant_id: "mrch_2", livemode: false }, "r1", T0, MOVED, None, &audit("DT", "r1"))
            .await
            .unwrap(),
        Lookup::NotFound
    );
    assert_eq!(s.use_token(M1, "nope", T0, MOVED, None, &audit("DT", "nope")).await.unwrap(), Lookup::NotFound);
    assert_eq!(events(&s, None).await.len(), 2, "failed uses write nothing");
    // Past retention (not yet swept) it can no longer be used.
    assert_eq!(s.use_token(M1, "r1", T0 + 400 * DAY, MOVED, None, &audit("DT", "r1")).await.unwrap(), Lookup::Deleted);
}

async fn an_accounts_retention_moves_with_its_use_in_the_same_statement(s: SqlStore) {
    let account = CardRow { instrument: Instrument::Account, ..row("a1", "cus_1", "iban-fp") };
    s.insert(&account, None, &audit("RG", "a1")).await.unwrap();
    s.insert(&row("c1", "cus_1", "card-fp"), None, &audit("RG", "c1")).await.unwrap();
    assert_eq!(s.get(M1, "a1").await.unwrap(), Lookup::Found(account.clone()), "the instrument is stored");
    let Lookup::Found(used) = s.use_token(M1, "a1", T0 + DAY, MOVED, None, &audit("DT", "a1")).await.unwrap() else {
        panic!()
    };
    assert_eq!((used.last_used_at, used.retain_until), (Some(T0 + DAY), MOVED.until), "an account's moves");
    let Lookup::Found(card) = s.use_token(M1, "c1", T0 + DAY, MOVED, None, &audit("DT", "c1")).await.unwrap() else {
        panic!()
    };
    assert_eq!(card.retain_until, T0 + 400 * DAY, "a card's follows its expiry");
    // Asked for a card, the account is left as it was: not used, no DT event.
    let only_card = Some(Instrument::Card);
    let Lookup::Found(left) = s.use_token(M1, "a1", T0 + 3 * DAY, MOVED, only_card, &audit("DT", "a1")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((left.instrument, left.last_used_at), (Instrument::Account, Some(T0 + DAY)), "left unused");
    let Lookup::Found(extended) = s.extend(M1, "a1", T0 + 800 * DAY, &audit("EX", "a1")).await.unwrap() else {
        panic!()
    };
    assert!(extended.extended);
    let only_account = Some(Instrument::Account);
    let Lookup::Found(used) =
        s.use_token(M1, "a1", T0 + 2 * DAY, MOVED, only_account, &audit("DT", "a1")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(used.retain_until, MOVED.extended_until, "extended: 24 months from the use");
    // Past its moved retention it is due, and the sweeper's delete removes it.
    let due: Vec<String> = s.due(MOVED.extended_until, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(due, ["c1", "a1"]);
    assert_eq!(events(&s, Some("a1")).await, ["RG:a1", "DT:a1", "EX:a1", "DT:a1"]);
}

async fn delete_destroys_the_card_data_once(s: SqlStore) {
    s.insert(&row("r1", "cus_1", "fp1"), None, &audit("RG", "r1")).await.unwrap();
    assert_eq!(s.delete(M1, "r1", T0, &audit("DR", "r1")).await.unwrap(), Lookup::Found(()));
    assert_eq!(s.delete(M1, "r1", T0, &audit("DR", "r1")).await.unwrap(), Lookup::Deleted);
    assert_eq!(s.delete(M1, "nope", T0, &audit("DR", "nope")).await.unwrap(), Lookup::NotFound);
    assert_eq!(s.get(M1, "r1").await.unwrap(), Lookup::Deleted);
    assert_eq!(s.use_token(M1, "r1", T0, MOVED, None, &audit("DT", "r1")).await.unwrap(), Lookup::Deleted);
    let blobs: (Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT meta, card FROM card_tokens WHERE id = 'r1'").fetch_one(s.pool()).await.unwrap();
    assert_eq!(blobs, (None, None), "the sealed card is gone from the row");
    assert_eq!(events(&s, None).await, vec!["RG:r1", "DR:r1"]);
    // The same card may be stored again after deletion.
    assert_eq!(s.insert(&row("r2", "cus_1", "fp1"), None, &audit("RG", "r2")).await.unwrap(), Some(true));
}

async fn the_audit_trail_is_append_only(s: SqlStore) {
    s.record(&audit("KC", "data:1")).await.unwrap();
    assert!(sqlx::query("UPDATE audit_events SET outcome = 'forged'").execute(s.pool()).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_events").execute(s.pool()).await.is_err());
    assert_eq!(events(&s, None).await, vec!["KC:data:1"]);
}

async fn extend_list_due_and_reseal(s: SqlStore) {
    for (id, customer) in [("a", "cus_1"), ("b", "cus_1"), ("c", "cus_1"), ("d", "cus_2")] {
        s.insert(&row(id, customer, id), None, &audit("RG", id)).await.unwrap();
    }
    let Lookup::Found(extended) = s.extend(M1, "a", T0 + 700 * DAY, &audit("EX", "a")).await.unwrap() else { panic!() };
    assert!(extended.extended && extended.retain_until == T0 + 700 * DAY);
    let page1: Vec<_> = s.list(M1, "cus_1", None, "", 2).await.unwrap().into_iter().map(|r| r.id).collect();
    let page2: Vec<_> = s.list(M1, "cus_1", None, "b", 2).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!((page1, page2), (vec!["a".to_owned(), "b".to_owned()], vec!["c".to_owned()]));
    let due: Vec<_> = s.due(T0 + 450 * DAY, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(due, vec!["b", "c", "d"], "the extended token is not due");
    assert_eq!(s.due(T0 + 450 * DAY, 2).await.unwrap().len(), 2, "batches are bounded");

    let Lookup::Found(b) = s.get(M1, "b").await.unwrap() else { panic!() };
    assert_eq!(s.sealed_below("mrch_1", 2, 10).await.unwrap().len(), 4);
    assert!(s.reseal(&b, b"m2", b"c2", 2).await.unwrap());
    assert!(!s.reseal(&b, b"m3", b"c3", 3).await.unwrap(), "b changed since it was read");
    assert_eq!(s.sealed_below("mrch_1", 2, 10).await.unwrap().len(), 3);
}

async fn data_keys_are_stored_once_and_rewrapped_conditionally(s: SqlStore) {
    let key = WrappedKey {
        merchant_id: "mrch_1".into(),
        purpose: KeyPurpose::Data,
        version: 1,
        kek_version: 1,
        wrapped: b"wrapped-1".to_vec(),
        created_at: T0,
        rotation_id: None,
    };
    assert!(s.insert_data_key(&key, &audit("KC", "data:1")).await.unwrap());
    assert!(
        !s.insert_data_key(&WrappedKey { wrapped: b"other".to_vec(), ..key.clone() }, &audit("KC", "data:1"))
            .await
            .unwrap()
    );
    assert_eq!(s.data_keys("mrch_1").await.unwrap(), vec![key.clone()]);
    let moved = WrappedKey { kek_version: 2, wrapped: b"wrapped-2".to_vec(), ..key.clone() };
    assert!(!s.rewrap(&moved, 7, &audit("KR", "data:1")).await.unwrap(), "not under KEK 7");
    assert!(s.rewrap(&moved, 1, &audit("KR", "data:1")).await.unwrap());
    assert_eq!(s.all_data_keys().await.unwrap(), vec![moved]);

    assert_eq!(s.open_rotation().await.unwrap(), None);
    let id = s.start_rotation(T0).await.unwrap();
    assert_eq!(s.open_rotation().await.unwrap(), Some(id));
    s.finish_rotation(id, T0).await.unwrap();
    assert_eq!(s.open_rotation().await.unwrap(), None);
    assert!(s.start_rotation(T0).await.unwrap() > id);
}

async fn a_nul_byte_in_a_text_is_invalid(s: SqlStore) {
    // PostgreSQL refuses it (22021); SQLite would store it, so the store refuses it first.
    let e = s.insert(&row("r1", "cus\0_1", "fp1"), None, &audit("RG", "r1")).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert!(!e.to_string().contains("cus"), "the error never echoes the value: {e}");
    assert_eq!(s.get(M1, "r1").await.unwrap(), Lookup::NotFound, "nothing was written");
    let e = s.record(&AuditEntry { outcome: "bad\0".into(), ..audit("KC", "data:1") }).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert!(events(&s, None).await.is_empty());
}

async fn a_duplicate_id_is_a_conflict(s: SqlStore) {
    assert!(s.insert(&row("r1", "cus_1", "fp1"), None, &audit("RG", "r1")).await.unwrap().is_some());
    let e = s.insert(&row("r1", "cus_2", "fp2"), None, &audit("RG", "r1")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(events(&s, None).await, vec!["RG:r1"], "no second audit event");
}

async fn an_unreadable_row_is_corrupt(s: SqlStore) {
    s.insert(&row("r1", "cus_1", "fp1"), None, &audit("RG", "r1")).await.unwrap();
    sqlx::query("UPDATE card_tokens SET kind = 'bogus' WHERE id = 'r1'").execute(s.pool()).await.unwrap();
    let e = s.get(M1, "r1").await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
}

/// A customer's default registration: the first inserted, until one is made
/// default (the last one made so wins); never an omni token, a deleted or
/// expired token, or another customer's or merchant's.
async fn the_default_is_the_first_until_one_is_chosen(s: SqlStore) {
    let at = |id: &str, created_at: i64| CardRow { created_at, ..row(id, "cus_1", id) };
    let omni = CardRow { kind: TokenKind::Omni, created_at: T0 - DAY, ..row("o1", "cus_1", "o1") };
    s.insert(&omni, None, &audit("TK", "o1")).await.unwrap();
    assert_eq!(s.default_registration(M1, "cus_1", T0).await.unwrap(), None, "an omni token is no default");
    for (id, created_at) in [("r2", T0 + 1000), ("r1", T0), ("r3", T0 + 2000)] {
        s.insert(&at(id, created_at), None, &audit("RG", id)).await.unwrap();
    }
    s.insert(&row("x1", "cus_2", "x1"), None, &audit("RG", "x1")).await.unwrap();
    let store = &s;
    let default = |now| async move { store.default_registration(M1, "cus_1", now).await.unwrap().map(|r| r.id) };
    let make_default = |scope, id| async move {
        let audit = audit("DF", id);
        store.mark_default(TokenWrite { scope, id, audit: &audit }).await.unwrap().map(|r| r.id)
    };
    assert_eq!(default(T0).await.as_deref(), Some("r2"), "the first inserted");
    assert_eq!(make_default(M1, "r3").await.as_deref(), Some("r3"));
    assert_eq!(default(T0).await.as_deref(), Some("r3"));
    make_default(M1, "r2").await.unwrap();
    assert_eq!(default(T0).await.as_deref(), Some("r2"), "the last one made default");
    assert_eq!(make_default(M1, "o1").await, None, "an omni token cannot be made default");
    let other = Scope { merchant_id: "mrch_2", livemode: false };
    assert_eq!(make_default(other, "r1").await, None, "another merchant's");
    assert_eq!(s.default_registration(other, "cus_1", T0).await.unwrap(), None);
    assert_eq!(s.default_registration(M1, "cus_2", T0).await.unwrap().unwrap().id, "x1");
    assert_eq!(events(&s, Some("r2")).await, ["RG:r2", "DF:r2"], "audited with the write");

    s.delete(M1, "r2", T0, &audit("DR", "r2")).await.unwrap();
    assert_eq!(default(T0).await.as_deref(), Some("r3"), "the default deleted: the one chosen before");
    s.delete(M1, "r3", T0, &audit("DR", "r3")).await.unwrap();
    assert_eq!(default(T0).await.as_deref(), Some("r1"), "none chosen left: the first created");
    assert_eq!(make_default(M1, "r2").await, None, "a deleted token cannot be made default");
    assert_eq!(default(T0 + 400 * DAY).await, None, "past retention, none is");
    let no_customer = CardRow { customer_id: String::new(), ..row("n1", "", "n1") };
    s.insert(&no_customer, None, &audit("RG", "n1")).await.unwrap();
    assert_eq!(make_default(M1, "n1").await, None, "no customer, nothing to be the default of");
}

e2e::conformance!(
    #[tokio::test] e2e::test_database =>
    the_default_is_the_first_until_one_is_chosen,
    insert_then_get,
    the_same_card_is_stored_once_per_customer_and_kind,
    use_marks_and_audits_in_one_commit,
    an_accounts_retention_moves_with_its_use_in_the_same_statement,
    delete_destroys_the_card_data_once,
    the_audit_trail_is_append_only,
    extend_list_due_and_reseal,
    data_keys_are_stored_once_and_rewrapped_conditionally,
    a_nul_byte_in_a_text_is_invalid,
    a_duplicate_id_is_a_conflict,
    an_unreadable_row_is_corrupt,
);

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_timeout() {
    let started = std::time::Instant::now();
    let result = SqlStore::connect("postgres://postgres@127.0.0.1:1/postgres", 2, Duration::from_millis(500)).await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

async fn unreachable_is_unavailable(url: &str) {
    let started = std::time::Instant::now();
    let e = SqlStore::connect(url, 2, Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_closed_postgres_port_is_unavailable() {
    unreachable_is_unavailable("postgres://postgres@127.0.0.1:1/postgres").await;
}

#[tokio::test]
async fn an_sqlite_file_that_cannot_be_opened_is_unavailable() {
    unreachable_is_unavailable("sqlite:///nonexistent-payvault-dir/store.db?mode=rwc").await;
}

/// The kind filter is part of the query, so a page is never cut short by
/// tokens of the other kind sorting between those asked for.
async fn list_filters_by_kind_before_the_limit(s: SqlStore) {
    let (registration, omni) = (TokenKind::Registration, TokenKind::Omni);
    let interleaved =
        [("r1", registration), ("r2", omni), ("r3", registration), ("r4", omni), ("r5", registration), ("r6", omni)];
    for (id, kind) in interleaved {
        s.insert(&CardRow { kind, ..row(id, "cus_1", id) }, None, &audit("RG", id)).await.unwrap();
    }
    let ids = |rows: Vec<CardRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let registrations = Some(TokenKind::Registration);
    assert_eq!(ids(s.list(M1, "cus_1", registrations, "", 2).await.unwrap()), ["r1", "r3"]);
    assert_eq!(ids(s.list(M1, "cus_1", registrations, "r3", 2).await.unwrap()), ["r5"]);
    assert_eq!(ids(s.list(M1, "cus_1", Some(TokenKind::Omni), "", 2).await.unwrap()), ["r2", "r4"]);
    assert_eq!(ids(s.list(M1, "cus_1", None, "", 10).await.unwrap()), ["r1", "r2", "r3", "r4", "r5", "r6"]);
}

#[tokio::test]
async fn list_filters_by_kind_before_the_limit_on_postgres() {
    list_filters_by_kind_before_the_limit(test_database(Db::Postgres).await.0).await
}

#[tokio::test]
async fn list_filters_by_kind_before_the_limit_on_sqlite() {
    list_filters_by_kind_before_the_limit(test_database(Db::Sqlite).await.0).await
}
