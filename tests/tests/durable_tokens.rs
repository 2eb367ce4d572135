//! Durable card tokens end to end over the internal API (mTLS as payments-svc),
//! on a real Redis and a real PostgreSQL unless a test says SQLite: the
//! registration and omni lifecycles, de-duplication, isolation, retention and
//! the sweeper, AAD binding, and key rotation with a kill in the middle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use e2e::{
    Store, TestVault, VaultClient, card, delete_request, extend_request, reason, scoped, tokenize_card,
    tokenize_single_use,
};
use proto::vault::v1::{self as pb, TokenKind};
use tonic::Code;
use tonic::transport::Channel;
use vault_svc::crypto::KeyRing;
use vault_svc::domain::audit::Actor;
use vault_svc::domain::store::cards::KeyStore;
use vault_svc::domain::{key_rotation, retention};

fn describe(merchant_id: &str, id: &str) -> pb::DescribeTokenRequest {
    pb::DescribeTokenRequest { merchant_id: merchant_id.into(), id: id.into(), livemode: false, ..Default::default() }
}

fn detok(merchant_id: &str, id: &str) -> pb::DetokenizeRequest {
    pb::DetokenizeRequest {
        merchant_id: merchant_id.into(),
        token: id.into(),
        consumer_ref: String::new(),
        livemode: false,
        instrument: String::new(),
    }
}

/// A vault on Redis and PostgreSQL, its first merchant's id and a client of
/// its internal port (as payments-svc).
async fn start() -> (TestVault, String, VaultClient<Channel>) {
    let vault = TestVault::start(Store::Redis).await;
    let (m, client) = (vault.merchant.id.clone(), vault.vault());
    (vault, m, client)
}

/// Every token of `customer_id`, one page of the default size.
fn by_customer(merchant_id: &str, customer_id: &str) -> pb::ListTokensRequest {
    pb::ListTokensRequest { merchant_id: merchant_id.into(), customer_id: customer_id.into(), ..Default::default() }
}

/// A durable token the vault must make.
async fn tokenize(
    client: &mut VaultClient<Channel>,
    request: impl tonic::IntoRequest<pb::TokenizeRequest>,
) -> pb::StoredToken {
    client.tokenize(request).await.unwrap().into_inner()
}

async fn list_tokens(client: &mut VaultClient<Channel>, request: pb::ListTokensRequest) -> pb::ListTokensResponse {
    client.list_tokens(request).await.unwrap().into_inner()
}

fn expiring(number: &str, month: i32, year: i32) -> pb::Card {
    pb::Card { expiration_month: month, expiration_year: year, ..card(number, "123") }
}

fn year_of(ts: &Option<prost_types::Timestamp>) -> String {
    let secs = ts.as_ref().unwrap().seconds;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!("{}-{:02}-{:02}", dt.year(), dt.month() as u8, dt.day())
}

async fn events(vault: &TestVault, token_id: &str) -> Vec<(String, String, String)> {
    let request = pb::ListAuditEventsRequest {
        merchant_id: vault.merchant.id.clone(),
        token_id: token_id.into(),
        ..Default::default()
    };
    let events = vault.vault().list_audit_events(request).await.unwrap().into_inner().events;
    events.into_iter().map(|e| (e.event_type, e.actor, e.correlation_id)).collect()
}

#[tokio::test]
async fn a_registration_lives_is_used_extended_and_deleted() {
    let (vault, m, mut client) = start().await;

    let request = tokenize_card(&m, TokenKind::Registration, expiring("4242424242424242", 12, 2030), "cus_42");
    let token = tokenize(&mut client, scoped(request, "corr-rg")).await;
    assert_eq!(token.id.len(), 32);
    assert!(token.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!((token.kind(), token.customer_id.as_str(), token.extended), (TokenKind::Registration, "cus_42", false));
    assert_eq!(year_of(&token.retain_until), "2032-02-01", "14 months after 12/2030, as the guide counts");
    assert!(token.last_used_at.is_none());

    let list = list_tokens(&mut client, by_customer(&m, "cus_42")).await;
    let summary = &list.tokens[..];
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (summary[0].id.as_str(), summary[0].brand.as_str(), summary[0].last_digits.as_str()),
        (token.id.as_str(), "visa", "4242")
    );
    assert_eq!((summary[0].expiration_month, summary[0].expiration_year), (12, 2030));

    let card = client.detokenize(scoped(detok(&m, &token.id), "corr-dt")).await.unwrap().into_inner().card.unwrap();
    assert_eq!(card.number, "4242424242424242");
    assert_eq!(card.security_code, "", "the security code is never stored durably");
    let described = client.describe_token(describe(&m, &token.id)).await.unwrap().into_inner();
    assert!(described.last_used_at.is_some());

    let extend = || extend_request(&m, &token.id);
    let extended = client.extend_token(scoped(extend(), "corr-ex")).await.unwrap().into_inner();
    assert!(extended.extended);
    assert_eq!(year_of(&extended.retain_until), "2032-12-01", "24 months after 12/2030");
    let again = client.extend_token(extend()).await.unwrap().into_inner();
    assert_eq!(again.retain_until, extended.retain_until, "no extension goes further");

    let delete = || delete_request(&m, &token.id);
    assert!(client.delete_token(scoped(delete(), "corr-dr")).await.unwrap().into_inner().deleted);
    assert!(!client.delete_token(delete()).await.unwrap().into_inner().deleted, "deleting twice is not an error");
    for err in [
        client.detokenize(detok(&m, &token.id)).await.unwrap_err(),
        client.describe_token(describe(&m, &token.id)).await.unwrap_err(),
        client.extend_token(extend()).await.unwrap_err(),
    ] {
        assert_eq!((err.code(), reason(&err).as_str()), (Code::NotFound, "token_deleted"));
    }
    assert!(list_tokens(&mut client, by_customer(&m, "cus_42")).await.tokens.is_empty());

    let trail = events(&vault, &token.id).await;
    let types: Vec<&str> = trail.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(types, ["RG", "DT", "EX", "EX", "DR"]);
    assert!(trail.iter().all(|(_, actor, _)| actor == "payments-svc"), "{trail:?}");
    assert_eq!(trail[0].2, "corr-rg");
    assert_eq!(trail[1].2, "corr-dt");
    vault.stop().await;
}

#[tokio::test]
async fn an_omni_token_from_a_single_use_token_consumes_it_once() {
    let vault = TestVault::start(Store::Redis).await;
    let m = vault.merchant.id.clone();
    let pkey = vault.merchant.test_public.expose();
    let single = vault.create_token(pkey, card("5555555555554444", "321")).await.unwrap();
    let request = || tokenize_single_use(&m, TokenKind::Omni, &single.id, "cus_7", "pay_123");
    let omni = vault.vault().tokenize(request()).await.unwrap().into_inner();
    assert!(omni.id.starts_with("omni_test_"), "{}", omni.id);
    assert_eq!(omni.card.as_ref().unwrap().last_digits, "4444");

    let read = vault.get_token(pkey, &single.id).await.unwrap();
    assert!(read.used, "attaching the token to a customer consumed it");
    let reuse = vault.vault().detokenize(e2e::detokenize_request(&m, &single.id, "pay_other")).await.unwrap_err();
    assert_eq!(reason(&reuse), "used_token");

    // A retry of the same call (same consumer_ref) returns the same token, even after the replay window.
    vault.clock.advance_ms(5 * 60 * 1000);
    assert_eq!(vault.vault().tokenize(request()).await.unwrap().into_inner().id, omni.id);
    let other_consumer = pb::TokenizeRequest { consumer_ref: "pay_999".into(), ..request() };
    assert_eq!(reason(&vault.vault().tokenize(other_consumer).await.unwrap_err()), "used_token");

    let card = vault.vault().detokenize(detok(&m, &omni.id)).await.unwrap().into_inner().card.unwrap();
    assert_eq!((card.number.as_str(), card.security_code.as_str()), ("5555555555554444", ""));
    assert!(vault.vault().delete_token(delete_request(&m, &omni.id)).await.unwrap().into_inner().deleted);
    let types: Vec<String> = events(&vault, &omni.id).await.into_iter().map(|(t, _, _)| t).collect();
    assert_eq!(types, ["TK", "DT", "DL"], "created, used, deleted; the retry replayed and wrote nothing");
    vault.stop().await;
}

#[tokio::test]
async fn the_same_card_for_the_same_customer_is_one_token_with_fresh_details() {
    let (vault, m, mut client) = start().await;
    let kind = TokenKind::Registration;
    let first = tokenize(&mut client, tokenize_card(&m, kind, expiring("4111111111111111", 1, 2030), "cus_1")).await;
    let mut renewed = expiring("4111 1111 1111 1111", 6, 2033);
    renewed.name = "Jane Q. Doe".into();
    let second = tokenize(&mut client, tokenize_card(&m, kind, renewed, "cus_1")).await;
    assert_eq!(second.id, first.id, "the existing token is returned");
    let meta = second.card.unwrap();
    assert_eq!((meta.expiration_month, meta.expiration_year, meta.name.as_str()), (6, 2033, "Jane Q. Doe"));
    assert_eq!(year_of(&second.retain_until), "2034-08-01", "retention follows the new expiry");
    let card = client.detokenize(detok(&m, &first.id)).await.unwrap().into_inner().card.unwrap();
    assert_eq!((card.expiration_year, card.name.as_str()), (2033, "Jane Q. Doe"));

    let others = [
        ("another customer", tokenize_card(&m, kind, expiring("4111111111111111", 1, 2030), "cus_2")),
        ("another kind", tokenize_card(&m, TokenKind::Omni, expiring("4111111111111111", 1, 2030), "cus_1")),
        ("another card", tokenize_card(&m, kind, expiring("4012888888881881", 1, 2030), "cus_1")),
    ];
    for (what, request) in others {
        assert_ne!(tokenize(&mut client, request).await.id, first.id, "{what}");
    }
    let list = list_tokens(&mut client, pb::ListTokensRequest { page_size: 1, ..by_customer(&m, "cus_1") }).await;
    assert_eq!(list.tokens.len(), 1, "several cards per customer, paged");
    assert!(!list.next_page_token.is_empty());
    vault.stop().await;
}

#[tokio::test]
async fn merchants_and_modes_never_see_each_others_tokens() {
    let (vault, m, mut client) = start().await;
    let other = vault.other_merchant.id.clone();
    let token = tokenize(&mut client, tokenize_card(&m, TokenKind::Omni, card("4242424242424242", ""), "cus_1")).await;
    let live_scope = pb::DescribeTokenRequest { livemode: true, ..describe(&m, &token.id) };
    for err in [
        client.describe_token(describe(&other, &token.id)).await.unwrap_err(),
        client.describe_token(live_scope).await.unwrap_err(),
        client.detokenize(detok(&other, &token.id)).await.unwrap_err(),
        client.extend_token(extend_request(&other, &token.id)).await.unwrap_err(),
        client.delete_token(delete_request(&other, &token.id)).await.unwrap_err(),
        client.describe_token(describe(&m, "0123456789abcdef0123456789abcdef")).await.unwrap_err(),
    ] {
        assert_eq!((err.code(), reason(&err).as_str()), (Code::NotFound, "not_found"));
    }
    assert!(list_tokens(&mut client, by_customer(&other, "cus_1")).await.tokens.is_empty());
    let audit = pb::ListAuditEventsRequest { merchant_id: other.clone(), ..Default::default() };
    assert!(client.list_audit_events(audit).await.unwrap().into_inner().events.is_empty());
    // The owner's token is untouched.
    client.detokenize(detok(&m, &token.id)).await.unwrap();

    let unspecified =
        pb::TokenizeRequest { kind: 0, ..tokenize_card(&m, TokenKind::Omni, card("4242424242424242", ""), "") };
    let err = client.tokenize(unspecified).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "invalid_argument"));
    vault.stop().await;
}

#[tokio::test]
async fn the_sweeper_deletes_due_tokens_in_batches_and_audits_each() {
    let (vault, m, mut client) = start().await;
    let (year, month) = common::clock::year_month(vault.clock.now_ms());
    let (year, month) = (year, i32::from(month));
    let mut due = Vec::new();
    for number in ["4242424242424242", "5555555555554444", "4111111111111111"] {
        let request = tokenize_card(&m, TokenKind::Registration, expiring(number, month, year), "cus_1");
        due.push(tokenize(&mut client, request).await.id);
    }
    let request = tokenize_card(&m, TokenKind::Omni, expiring("4242424242424242", month, year), "cus_1");
    let kept = tokenize(&mut client, request).await;
    client.extend_token(extend_request(&m, &kept.id)).await.unwrap();

    // Sixteen months on, the non-extended ones are past their 14 months.
    vault.clock.advance_ms(16 * 31 * 24 * 3600 * 1000);
    let err = client.detokenize(detok(&m, &due[0])).await.unwrap_err();
    assert_eq!(reason(&err), "token_deleted", "past retention it cannot be used even before the sweep");
    let actor = Actor { name: "retention-sweeper".into(), correlation_id: "sweep-1".into() };
    let store = vault.sql().await;
    assert_eq!(retention::sweep(&store, vault.clock.now_ms(), 2, &actor).await.unwrap(), 3);
    assert_eq!(retention::sweep(&store, vault.clock.now_ms(), 2, &actor).await.unwrap(), 0, "nothing left");
    for id in &due {
        assert_eq!(reason(&client.describe_token(describe(&m, id)).await.unwrap_err()), "token_deleted");
        let trail = events(&vault, id).await;
        assert_eq!(trail.last().unwrap(), &("DR".to_owned(), "retention-sweeper".to_owned(), "sweep-1".to_owned()));
    }
    client.detokenize(detok(&m, &kept.id)).await.expect("the extended token is kept");
    vault.stop().await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
    let (vault, m, mut client) = start().await;
    let a =
        tokenize(&mut client, tokenize_card(&m, TokenKind::Registration, card("4242424242424242", ""), "cus_a")).await;
    let b =
        tokenize(&mut client, tokenize_card(&m, TokenKind::Registration, card("5555555555554444", ""), "cus_b")).await;
    let store = vault.sql().await;
    sqlx::query("UPDATE card_tokens SET card = (SELECT card FROM card_tokens WHERE id = $1) WHERE id = $2")
        .bind(&a.id)
        .bind(&b.id)
        .execute(store.pool())
        .await
        .unwrap();
    let err = client.detokenize(detok(&m, &b.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "B's row with A's ciphertext fails authentication");
    assert!(!err.message().contains("4242"));
    assert_eq!(
        client.detokenize(detok(&m, &a.id)).await.unwrap().into_inner().card.unwrap().number,
        "4242424242424242"
    );
    vault.stop().await;
}

#[tokio::test]
async fn reencryption_killed_midway_leaves_everything_readable_and_resumes() {
    let (vault, m, mut client) = start().await;
    let numbers = ["4242424242424242", "5555555555554444", "4111111111111111", "4012888888881881", "378282246310005"];
    let mut ids = Vec::new();
    for (i, number) in numbers.iter().cycle().take(40).enumerate() {
        let request = tokenize_card(&m, TokenKind::Registration, card(number, ""), &format!("cus_{i}"));
        ids.push((tokenize(&mut client, request).await.id, *number));
    }
    let store = Arc::new(vault.sql().await);
    let ring =
        Arc::new(KeyRing::new(vault.keks.clone(), store.clone() as Arc<dyn KeyStore>, Arc::new(vault.clock.clone())));
    let actor = Actor { name: "key-operator".into(), correlation_id: "rot-1".into() };

    // Run with batches of one and kill it part-way.
    let run = {
        let (store, ring, actor, now) = (store.clone(), ring.clone(), actor.clone(), vault.clock.now_ms());
        tokio::spawn(async move { key_rotation::reencrypt(&*store, &*store, &ring, now, 1, &actor).await })
    };
    let moved = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM card_tokens WHERE dek_version = 2")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    while moved().await < 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.abort();
    let _ = run.await;
    let partial = moved().await;
    assert!((10..40).contains(&partial), "killed mid-way: {partial} of 40 moved");

    // The service keeps serving every record, old and new versions alike.
    for (id, number) in &ids {
        assert_eq!(&client.detokenize(detok(&m, id)).await.unwrap().into_inner().card.unwrap().number, number);
    }
    let report = key_rotation::reencrypt(&*store, &*store, &ring, vault.clock.now_ms(), 7, &actor).await.unwrap();
    assert!(report.resumed, "the unfinished run is resumed, not started again");
    assert_eq!(moved().await, 40);
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM data_keys WHERE merchant_id = $1 AND purpose = 'data' ORDER BY version",
    )
    .bind(&m)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(versions, vec![1, 2], "one new version, not one per run");
    for (id, number) in &ids {
        assert_eq!(&client.detokenize(detok(&m, id)).await.unwrap().into_inner().card.unwrap().number, number);
    }

    // KEK rotation: every data key moves under KEK v2; a ring that knows both reads everything.
    let rotated = vault.keks.with_new_version();
    let ring2 = KeyRing::new(rotated.clone(), store.clone() as Arc<dyn KeyStore>, Arc::new(vault.clock.clone()));
    let rewrapped = key_rotation::rotate_kek(&ring2, &actor).await.unwrap();
    assert!(rewrapped >= 3, "data v1, v2 and the fingerprint key: {rewrapped}");
    let under_old: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE kek_version = 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(under_old, 0);
    let aad = vault_svc::crypto::Aad { merchant_id: &m, token_id: "probe", kind: "probe" };
    let (sealed, _) = ring2.seal(aad, b"probe").await.unwrap();
    assert_eq!(ring2.open(aad, &sealed).await.unwrap().as_slice(), b"probe");
    let only_new = vault_svc::crypto::KekSet::parse(&format!(
        "v2:{}",
        rotated.to_text().lines().last().unwrap().split_once(':').unwrap().1
    ))
    .unwrap();
    let ring_new_only = KeyRing::new(only_new, store.clone() as Arc<dyn KeyStore>, Arc::new(vault.clock.clone()));
    assert_eq!(ring_new_only.open(aad, &sealed).await.unwrap().as_slice(), b"probe", "KEK v1 is no longer needed");
    vault.stop().await;
}

#[tokio::test]
async fn listing_one_kind_pages_over_that_kind_only() {
    let (vault, m, mut client) = start().await;
    let mut registrations = Vec::new();
    for number in ["4242424242424242", "5555555555554444", "4111111111111111"] {
        for kind in [TokenKind::Registration, TokenKind::Omni] {
            let t = tokenize(&mut client, tokenize_card(&m, kind, card(number, ""), "cus_1")).await;
            if kind == TokenKind::Registration {
                registrations.push(t.id);
            }
        }
    }
    registrations.sort();
    let page = |kind: TokenKind, page_token: String| pb::ListTokensRequest {
        page_size: 2,
        page_token,
        kind: kind as i32,
        ..by_customer(&m, "cus_1")
    };

    let first = list_tokens(&mut client, page(TokenKind::Registration, String::new())).await;
    assert_eq!(first.tokens.len(), 2, "a full page");
    assert!(!first.next_page_token.is_empty());
    let last = list_tokens(&mut client, page(TokenKind::Registration, first.next_page_token)).await;
    assert_eq!(last.next_page_token, "", "the last page says so");
    let listed: Vec<_> = first.tokens.iter().chain(&last.tokens).map(|t| t.id.clone()).collect();
    assert_eq!(listed, registrations);
    assert!(first.tokens.iter().chain(&last.tokens).all(|t| t.kind() == TokenKind::Registration));

    let omni = list_tokens(&mut client, page(TokenKind::Omni, String::new())).await;
    assert!(omni.tokens.len() == 2 && omni.tokens.iter().all(|t| t.kind() == TokenKind::Omni));
    let all = pb::ListTokensRequest { page_size: 10, ..page(TokenKind::Unspecified, String::new()) };
    assert_eq!(list_tokens(&mut client, all).await.tokens.len(), 6, "unspecified lists every kind");
    let bad = pb::ListTokensRequest { kind: 42, ..page(TokenKind::Unspecified, String::new()) };
    assert_eq!(client.list_tokens(bad).await.unwrap_err().code(), Code::InvalidArgument);
    vault.stop().await;
}

/// A `Tokenize` request storing a bank account as a registration.
fn tokenize_account(merchant_id: &str, iban: &str, customer_id: &str) -> pb::TokenizeRequest {
    pb::TokenizeRequest {
        merchant_id: merchant_id.into(),
        kind: TokenKind::Registration as i32,
        source: Some(pb::tokenize_request::Source::BankAccount(pb::BankAccount {
            iban: iban.into(),
            bic: "COBADEFFXXX".into(),
            holder: "Jane Doe".into(),
            country: String::new(),
        })),
        customer_id: customer_id.into(),
        consumer_ref: String::new(),
        livemode: false,
    }
}

#[tokio::test]
async fn a_bank_account_is_a_registration_sealed_apart_from_cards_and_re_encrypted_with_them() {
    let (vault, m, mut client) = start().await;
    let account = tokenize(&mut client, tokenize_account(&m, "DE89 3704 0044 0532 0130 00", "cus_a")).await;
    assert!(account.card.is_none());
    let meta = account.account.clone().unwrap();
    assert_eq!(
        (meta.brand.as_str(), meta.last_digits.as_str(), meta.bank_code.as_str(), meta.bic.as_str()),
        ("DIRECTDEBIT_SEPA", "3000", "37040044", "COBADEFFXXX")
    );
    assert!(!meta.fingerprint.is_empty());
    // De-duplicated by IBAN per customer; another customer has its own.
    let again = tokenize(&mut client, tokenize_account(&m, "de89370400440532013000", "cus_a")).await;
    assert_eq!(again.id, account.id);
    let other = tokenize(&mut client, tokenize_account(&m, "DE89370400440532013000", "cus_b")).await;
    assert_ne!(other.id, account.id);
    // Registrations only.
    let omni =
        pb::TokenizeRequest { kind: TokenKind::Omni as i32, ..tokenize_account(&m, "DE89370400440532013000", "") };
    assert_eq!(reason(&client.tokenize(omni).await.unwrap_err()), "invalid_argument");
    let bad = client.tokenize(tokenize_account(&m, "DE89370400440532013001", "cus_a")).await.unwrap_err();
    assert_eq!(reason(&bad), "invalid_iban");

    // Detokenize gives the account back (and only on this mTLS port), never a card.
    let back = client.detokenize(detok(&m, &account.id)).await.unwrap().into_inner();
    assert_eq!(back.bank_account.unwrap().iban, "DE89370400440532013000");
    assert!(back.card.is_none() && back.metadata.is_none());
    assert_eq!(back.account.unwrap().last_digits, "3000");

    // The AAD binds the kind: an account's ciphertext in a card's row, or an account's row read as
    // a card's, does not decrypt.
    let card =
        tokenize(&mut client, tokenize_card(&m, TokenKind::Registration, card("4242424242424242", ""), "cus_a")).await;
    let store = vault.sql().await;
    sqlx::query("UPDATE card_tokens SET card = (SELECT card FROM card_tokens WHERE id = $1) WHERE id = $2")
        .bind(&account.id)
        .bind(&card.id)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(client.detokenize(detok(&m, &card.id)).await.unwrap_err().code(), Code::Internal);
    sqlx::query("UPDATE card_tokens SET instrument = 'card' WHERE id = $1")
        .bind(&other.id)
        .execute(store.pool())
        .await
        .unwrap();
    let err = client.detokenize(detok(&m, &other.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(!err.message().contains("3000"));

    // Re-encryption moves account rows with the rest; they stay readable.
    let store = Arc::new(store);
    let ring =
        Arc::new(KeyRing::new(vault.keks.clone(), store.clone() as Arc<dyn KeyStore>, Arc::new(vault.clock.clone())));
    let actor = Actor { name: "key-operator".into(), correlation_id: "rot-1".into() };
    let sealed = sqlx::query_scalar::<_, Vec<u8>>("SELECT card FROM card_tokens WHERE id = $1")
        .bind(&account.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    // The corrupted rows would stop the run: put them out of its way first.
    for id in [&card.id, &other.id] {
        client.delete_token(delete_request(&m, id)).await.unwrap();
    }
    key_rotation::reencrypt(&*store, &*store, &ring, vault.clock.now_ms(), 10, &actor).await.unwrap();
    let resealed = sqlx::query_scalar::<_, Vec<u8>>("SELECT card FROM card_tokens WHERE id = $1")
        .bind(&account.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_ne!(resealed, sealed, "re-encrypted under the new data key");
    let back = client.detokenize(detok(&m, &account.id)).await.unwrap().into_inner();
    assert_eq!(back.bank_account.unwrap().iban, "DE89370400440532013000");
    vault.stop().await;
}
