//! Bank accounts (OPP's non-card registrations, paid by SEPA direct debit)
//! end to end: both services on loopback ports, real Redis and PostgreSQL,
//! payments calling the vault over mTLS, the test acquirer deciding by IBAN.
//! Each test follows a flow of the registration guide: standalone
//! registration then a payment, tokenization during a payment, a repeated
//! payment under its mandate, deregistration, extension, retention by last use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::clock::Clock;
use e2e::{TestPlatform, authed, reason};
use proto::payments::v1::{self as pb, PaymentType};
use proto::vault::v1 as vpb;
use tonic::Code;
use vault_svc::domain::audit::Actor;
use vault_svc::domain::retention;

const SUCCESS_TEST: &str = "000.100.110";
const DAY: i64 = 24 * 3600 * 1000;

fn account(iban: &str) -> pb::BankAccount {
    pb::BankAccount { iban: iban.into(), bic: String::new(), holder: "Jane Doe".into(), country: String::new() }
}

fn register_account(iban: &str, customer_id: &str) -> pb::CreateRegistrationRequest {
    pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::BankAccount(account(iban))),
        customer_id: customer_id.into(),
        verify: false,
    }
}

fn mandate() -> Option<pb::Mandate> {
    Some(pb::Mandate { id: "MNDT-2026-0001".into(), date_of_signature: "2025-01-15".into() })
}

fn debit(source: pb::create_payment_request::Source, mandate: Option<pb::Mandate>) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        payment_type: PaymentType::Db as i32,
        amount: 2500,
        currency: "EUR".into(),
        source: Some(source),
        mandate,
        ..Default::default()
    }
}

fn registration(id: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::RegistrationId(id.into())
}

fn raw(iban: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::BankAccount(account(iban))
}

/// A registration's retention as seconds, read through the vault.
async fn described(p: &TestPlatform, id: &str) -> vpb::StoredToken {
    let request = vpb::DescribeTokenRequest {
        merchant_id: p.vault.merchant.id.clone(),
        id: id.into(),
        livemode: false,
        customer_id: String::new(),
    };
    p.vault.vault().describe_token(request).await.unwrap().into_inner()
}

fn secs(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref().map_or(0, |t| t.seconds)
}

async fn audit(p: &TestPlatform, token_id: &str) -> Vec<String> {
    let request = vpb::ListAuditEventsRequest {
        merchant_id: p.vault.merchant.id.clone(),
        token_id: token_id.into(),
        ..Default::default()
    };
    let events = p.vault.vault().list_audit_events(request).await.unwrap().into_inner().events;
    events.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn a_registered_account_shows_its_metadata_never_its_iban_and_pays_with_a_mandate() {
    let p = TestPlatform::start().await;
    let reg = p.create_registration(register_account("DE89 3704 0044 0532 0130 00", "cus_1")).await.unwrap();
    assert!(reg.card.is_none(), "an account, not a card");
    let a = reg.account.clone().unwrap();
    assert_eq!(
        (a.brand.as_str(), a.last_digits.as_str(), a.country.as_str(), a.bank_code.as_str(), a.holder.as_str()),
        ("DIRECTDEBIT_SEPA", "3000", "DE", "37040044", "Jane Doe")
    );
    assert!(!format!("{reg:?}").contains("0532013000"), "never the IBAN");
    assert_eq!(reg.result.unwrap().code, SUCCESS_TEST);

    // The same IBAN for the same customer is the same registration.
    let again = p.create_registration(register_account("de89370400440532013000", "cus_1")).await.unwrap();
    assert_eq!(again.id, reg.id);

    let paid = p.create_payment(debit(registration(&reg.id), mandate())).await.unwrap();
    assert_eq!(
        (paid.status(), paid.result.as_ref().unwrap().code.as_str()),
        (pb::PaymentStatus::Approved, SUCCESS_TEST)
    );
    assert_eq!(paid.account.as_ref().unwrap().last_digits, "3000");
    assert!(paid.card.is_none());
    assert_eq!(paid.mandate, mandate(), "stored with the payment");
    assert_eq!(p.get_payment(&paid.id).await.unwrap().mandate, mandate());

    // A repeated payment over the stored account, under its mandate.
    let repeated = pb::CreatePaymentRequest {
        standing_instruction: Some(e2e::repeated_cit(&paid.id)),
        ..debit(registration(&reg.id), mandate())
    };
    assert_eq!(p.create_payment(repeated).await.unwrap().status(), pb::PaymentStatus::Approved);

    // Without its mandate, refused: nothing charged, and the vault left the account unused
    // (no DT event, its retention not moved).
    let vault_side = async |p: &TestPlatform, id: &str| {
        let described = described(p, id).await;
        (audit(p, id).await, secs(&described.last_used_at), secs(&described.retain_until))
    };
    let before = vault_side(&p, &reg.id).await;
    p.vault.clock.advance_ms(24 * 3600 * 1000);
    let refused = p.create_payment(debit(registration(&reg.id), None)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "invalid_mandate"));
    assert_eq!(vault_side(&p, &reg.id).await, before, "the refused debit did not use the account");
    // A card under a mandate: refused the same way, the card left unused.
    let card = pb::Card {
        number: "4242424242424242".into(),
        expiration_month: 12,
        expiration_year: 2040,
        name: "Jane Doe".into(),
        ..Default::default()
    };
    let registered = pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Card(card)),
        customer_id: "cus_1".into(),
        verify: false,
    };
    let card = p.create_registration(registered).await.unwrap().id;
    let before = vault_side(&p, &card).await;
    let refused = p.create_payment(debit(registration(&card), mandate())).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(vault_side(&p, &card).await, before, "the refused debit did not use the card");
    let bad_date = Some(pb::Mandate { id: "MNDT-1".into(), date_of_signature: "15.01.2025".into() });
    let refused = p.create_payment(debit(registration(&reg.id), bad_date)).await.unwrap_err();
    assert_eq!(reason(&refused), "invalid_mandate");
    // A DB in EUR only; a PA is not a direct debit.
    let usd = pb::CreatePaymentRequest { currency: "USD".into(), ..debit(registration(&reg.id), mandate()) };
    assert_eq!(reason(&p.create_payment(usd).await.unwrap_err()), "invalid_currency");
    let pa =
        pb::CreatePaymentRequest { payment_type: PaymentType::Pa as i32, ..debit(registration(&reg.id), mandate()) };
    assert_eq!(p.create_payment(pa).await.unwrap_err().code(), Code::InvalidArgument);

    let by_token = pb::ListTransactionsRequest { token: reg.id.clone(), ..Default::default() };
    // Each registration call is on the ledger (the second found the first), as for cards.
    assert_eq!(p.ledger(by_token).await, ["RG", "RG", "DB", "DB"]);
    let query = pb::ListTransactionsRequest { payment_id: paid.id.clone(), ..Default::default() };
    let mut lines = p.payments().list_transactions(authed(&p.skey(), query)).await.unwrap().into_inner();
    let line = lines.transactions.remove(0);
    assert_eq!((line.account.unwrap().brand.as_str(), line.card.is_none()), ("DIRECTDEBIT_SEPA", true));
    p.stop().await;
}

#[tokio::test]
async fn invalid_accounts_are_refused_each_with_its_reason() {
    let p = TestPlatform::start().await;
    let cases = [
        (account("DE00 3704 0044 0532 0130 00"), "invalid_iban"),
        (account("DE89 3704 0044 0532 0130"), "invalid_iban"),
        (account("XX89 3704 0044 0532 0130 00"), "invalid_iban"),
        (pb::BankAccount { bic: "COBAFRFF".into(), ..account("DE89370400440532013000") }, "invalid_bic"),
        (pb::BankAccount { bic: "COBADE".into(), ..account("DE89370400440532013000") }, "invalid_bic"),
        (pb::BankAccount { holder: String::new(), ..account("DE89370400440532013000") }, "invalid_account_holder"),
        (
            pb::BankAccount { holder: "GB82 WEST 1234 5698 7654 32".into(), ..account("DE89370400440532013000") },
            "invalid_account_holder",
        ),
    ];
    for (bank_account, expected) in cases {
        let request = pb::CreateRegistrationRequest {
            source: Some(pb::create_registration_request::Source::BankAccount(bank_account.clone())),
            customer_id: "cus_1".into(),
            verify: false,
        };
        let err = p.create_registration(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, expected), "{bank_account:?}");
        assert!(!err.message().contains("3704"), "the message never echoes the IBAN");
        let err = p.create_payment(debit(pb::create_payment_request::Source::BankAccount(bank_account), mandate()));
        assert_eq!(reason(&err.await.unwrap_err()), expected);
    }
    // An IBAN pasted into a text field is refused as a card number is.
    for text in ["GB82 WEST 1234 5698 7654 32", "pay de89370400440532013000 please"] {
        let request =
            pb::CreatePaymentRequest { description: text.into(), ..debit(raw("DE89370400440532013000"), mandate()) };
        assert_eq!(reason(&p.create_payment(request).await.unwrap_err()), "card_number_in_text", "{text}");
        let request = pb::CreateRegistrationRequest {
            customer_id: text.into(),
            ..register_account("DE89370400440532013000", "")
        };
        assert_eq!(reason(&p.create_registration(request).await.unwrap_err()), "card_number_in_text", "{text}");
    }
    p.stop().await;
}

#[tokio::test]
async fn declines_by_iban_and_tokenization_during_a_payment() {
    let p = TestPlatform::start().await;
    let cases = [
        ("DE89370400440532013000", SUCCESS_TEST),
        ("GB82WEST12345698765432", SUCCESS_TEST),
        ("FR1420041010050500013M02606", SUCCESS_TEST),
        ("NL91ABNA0417164300", SUCCESS_TEST),
        ("DE62370400440532013001", "800.100.202"),
        ("DE35370400440532013002", "800.100.203"),
        ("DE08370400440532013003", "800.100.205"),
    ];
    for (iban, code) in cases {
        let paid = p.create_payment(debit(raw(iban), mandate())).await.unwrap();
        assert_eq!(paid.result.unwrap().code, code, "{iban}");
        assert_eq!(paid.captured_amount, if code == SUCCESS_TEST { 2500 } else { 0 }, "{iban}");
        assert!(paid.registration_id.is_empty(), "nothing stored without create_registration");
    }
    // Without a mandate a raw account is refused before anything happens.
    let err = p.create_payment(debit(raw("DE89370400440532013000"), None)).await.unwrap_err();
    assert_eq!(reason(&err), "invalid_mandate");

    // Tokenization during the payment: the registration exists once it is approved.
    let request = pb::CreatePaymentRequest {
        create_registration: true,
        customer_id: "cus_2".into(),
        ..debit(raw("FR14 2004 1010 0505 0001 3M02 606"), mandate())
    };
    let paid = p.create_payment(request).await.unwrap();
    assert_eq!(paid.status(), pb::PaymentStatus::Approved);
    assert_eq!(paid.account.as_ref().unwrap().bank_code, "20041");
    let stored = described(&p, &paid.registration_id).await;
    assert_eq!(stored.account.unwrap().last_digits, "2606");
    let declined = pb::CreatePaymentRequest {
        create_registration: true,
        customer_id: "cus_2".into(),
        ..debit(raw("DE35370400440532013002"), mandate())
    };
    assert!(p.create_payment(declined).await.unwrap().registration_id.is_empty(), "a decline stores nothing");
    let omni = pb::CreatePaymentRequest { create_omni_token: true, ..debit(raw("DE89370400440532013000"), mandate()) };
    assert_eq!(p.create_payment(omni).await.unwrap_err().code(), Code::InvalidArgument, "registrations only");
    p.stop().await;
}

#[tokio::test]
async fn refunds_follow_sepa_rules_partial_up_to_the_debit_and_no_reversal() {
    let p = TestPlatform::start().await;
    let paid = p.create_payment(debit(raw("DE89370400440532013000"), mandate())).await.unwrap();
    let refund = p.refund(&paid.id, 1000).await.unwrap();
    assert_eq!(refund.status(), pb::PaymentStatus::Approved);
    assert_eq!(refund.account.unwrap().last_digits, "3000", "the refund shows the account");
    assert_eq!(p.refund(&paid.id, 1500).await.unwrap().status(), pb::PaymentStatus::Approved);
    assert_eq!(reason(&p.refund(&paid.id, 1).await.unwrap_err()), "amount_exceeds_authorized");
    assert_eq!(reason(&p.reverse(&paid.id).await.unwrap_err()), "invalid_state_transition", "a DB is not reversed");
    assert_eq!(reason(&p.capture(&paid.id, 100).await.unwrap_err()), "invalid_state_transition");
    let by_payment = pb::ListTransactionsRequest { payment_id: paid.id.clone(), ..Default::default() };
    assert_eq!(p.ledger(by_payment).await, ["DB", "RF", "RF"]);
    p.stop().await;
}

#[tokio::test]
async fn accounts_list_beside_cards_and_are_kept_fourteen_months_after_their_last_use() {
    let p = TestPlatform::start().await;
    let card = pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Card(pb::Card {
            number: "4242424242424242".into(),
            expiration_month: 12,
            expiration_year: 2040,
            name: "Jane Doe".into(),
            ..Default::default()
        })),
        customer_id: "cus_3".into(),
        verify: false,
    };
    let card = p.create_registration(card).await.unwrap();
    let reg = p.create_registration(register_account("GB82 WEST 1234 5698 7654 32", "cus_3")).await.unwrap();
    let list = pb::ListRegistrationsRequest { customer_id: "cus_3".into(), ..Default::default() };
    let listed = p.registrations().list_registrations(authed(&p.skey(), list)).await.unwrap().into_inner();
    let mut shown: Vec<(String, String, bool)> =
        listed.registrations.iter().map(|r| (r.brand.clone(), r.last_digits.clone(), r.account.is_some())).collect();
    shown.sort();
    assert_eq!(
        shown,
        [("DIRECTDEBIT_SEPA".to_owned(), "5432".to_owned(), true), ("visa".to_owned(), "4242".to_owned(), false)]
    );
    assert!(listed.registrations.iter().any(|r| r.id == card.id));

    // Fourteen months after creation (its first use), then after each payment.
    let created = described(&p, &reg.id).await;
    let days = |from: i64, to: i64| (to - from) / 86_400;
    let kept = days(secs(&created.created_at), secs(&created.retain_until));
    assert!((425..=427).contains(&kept), "14 months after creation: {kept} days");
    p.vault.clock.advance_ms(100 * DAY);
    p.create_payment(debit(registration(&reg.id), mandate())).await.unwrap();
    let used = described(&p, &reg.id).await;
    assert_eq!(secs(&used.last_used_at), p.vault.clock.now_ms() / 1000);
    let moved = days(secs(&used.last_used_at), secs(&used.retain_until));
    assert!((425..=427).contains(&moved), "14 months after the last use: {moved} days");
    assert!(used.retain_until.as_ref().unwrap().seconds > created.retain_until.as_ref().unwrap().seconds);
    let shown = pb::ExtendRegistrationRequest { id: reg.id.clone() };
    let extended = p.registrations().extend_registration(authed(&p.skey(), shown)).await.unwrap().into_inner();
    assert!(extended.extended);
    assert!(extended.last_used_at.is_some());
    let span = days(secs(&used.last_used_at), secs(&extended.retain_until));
    assert!((729..=732).contains(&span), "24 months after the last use when extended: {span} days");

    // The sweeper applies both rules: a card by its expiry, the account by its last use.
    p.vault.clock.advance_ms(15 * 31 * DAY);
    let store = p.vault.sql().await;
    let actor = Actor { name: "retention-sweeper".into(), correlation_id: "sweep-1".into() };
    assert_eq!(retention::sweep(&store, p.vault.clock.now_ms(), 10, &actor).await.unwrap(), 0, "extended: kept");
    p.vault.clock.advance_ms(10 * 31 * DAY);
    assert_eq!(retention::sweep(&store, p.vault.clock.now_ms(), 10, &actor).await.unwrap(), 1);
    assert_eq!(audit(&p, &reg.id).await.last().unwrap(), "DR");
    let gone = p.create_payment(debit(registration(&reg.id), mandate())).await.unwrap_err();
    assert_eq!(reason(&gone), "token_deleted");
    let kept = p.create_payment(pb::CreatePaymentRequest {
        payment_type: PaymentType::Db as i32,
        amount: 100,
        currency: "EUR".into(),
        source: Some(registration(&card.id)),
        ..Default::default()
    });
    assert_eq!(kept.await.unwrap().status(), pb::PaymentStatus::Approved, "the card expires in 2040");
    p.stop().await;
}

#[tokio::test]
async fn a_direct_debit_unanswered_by_the_acquirer_is_pending_until_reconciled_by_inquiry() {
    let p = TestPlatform::start().await;
    let amount = |amount, iban| pb::CreatePaymentRequest { amount, ..debit(raw(iban), mandate()) };
    // …99: processed, unanswered; the inquiry knows the account by its masked form.
    let approved = p.create_payment(amount(2599, "DE89370400440532013000")).await.unwrap();
    let declined = p.create_payment(amount(2599, "DE62370400440532013001")).await.unwrap();
    // …98: never processed.
    let lost = p.create_payment(amount(2598, "DE89370400440532013000")).await.unwrap();
    for payment in [&approved, &declined, &lost] {
        assert_eq!(payment.status(), pb::PaymentStatus::Pending);
        assert_eq!(payment.result.as_ref().unwrap().code, "000.200.000");
    }
    p.vault.clock.advance_ms(31_000);
    let expected = [
        (&approved, pb::PaymentStatus::Approved, SUCCESS_TEST),
        (&declined, pb::PaymentStatus::Declined, "800.100.202"),
        (&lost, pb::PaymentStatus::Failed, "900.100.400"),
    ];
    for (payment, status, code) in expected {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = p.get_payment(&payment.id).await.unwrap();
            if now.status() != pb::PaymentStatus::Pending {
                assert_eq!((now.status(), now.result.unwrap().code.as_str()), (status, code));
                assert_eq!(now.account.unwrap().last_digits, payment.account.as_ref().unwrap().last_digits);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{} never reconciled", payment.id);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    p.stop().await;
}

fn with_key<T>(skey: &str, key: &str, request: T) -> tonic::Request<T> {
    let mut request = authed(skey, request);
    request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn a_keyed_registration_and_direct_debit_replay_their_first_answer() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let (mut registrations, mut payments) = (p.registrations(), p.payments());
    let register = || with_key(&skey, "reg-1", register_account("DE89370400440532013000", "cus_5"));
    let first = registrations.create_registration(register()).await.unwrap().into_inner();
    let replay = registrations.create_registration(register()).await.unwrap().into_inner();
    assert_eq!((replay.id.as_str(), replay.account.as_ref()), (first.id.as_str(), first.account.as_ref()));
    let pay = |m| with_key(&skey, "dd-1", debit(registration(&first.id), m));
    let paid = payments.create_payment(pay(mandate())).await.unwrap().into_inner();
    let again = payments.create_payment(pay(mandate())).await.unwrap().into_inner();
    assert_eq!(again, paid, "one debit, replayed");
    let other = payments.create_payment(pay(None)).await.unwrap_err();
    assert_eq!(reason(&other), "idempotency_key_reused");
    let by_token = pb::ListTransactionsRequest { token: first.id.clone(), ..Default::default() };
    assert_eq!(p.ledger(by_token).await, ["RG", "DB"]);
    p.stop().await;
}

#[tokio::test]
async fn deregistration_deletes_the_account_and_the_ledger_shows_dr() {
    let p = TestPlatform::start().await;
    let reg = p.create_registration(register_account("NL91 ABNA 0417 1643 00", "cus_4")).await.unwrap();
    let delete = pb::DeleteRegistrationRequest { id: reg.id.clone() };
    let deleted = p.registrations().delete_registration(authed(&p.skey(), delete.clone())).await.unwrap();
    assert!(deleted.into_inner().deleted);
    let again = p.registrations().delete_registration(authed(&p.skey(), delete)).await.unwrap();
    assert!(!again.into_inner().deleted, "deleting twice is not an error");
    let by_token = pb::ListTransactionsRequest { token: reg.id.clone(), ..Default::default() };
    assert_eq!(p.ledger(by_token).await, ["RG", "DR"]);
    assert_eq!(audit(&p, &reg.id).await, ["RG", "DR"]);
    let gone = p.create_payment(debit(registration(&reg.id), mandate())).await.unwrap_err();
    assert_eq!(reason(&gone), "token_deleted");
    p.stop().await;
}

/// The issue's check, over the real binaries (vault-svc and payments-svc
/// processes on PostgreSQL and Redis, as `scripts/run` starts them but with
/// the production stores): registration, invalid IBAN, a debit with and
/// without its mandate, the account beside a card, deletion, and no IBAN in
/// either process's logs or in payments' database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_check_over_the_real_binaries() {
    use e2e::procs::platform::{Platform, PlatformOptions};
    let p = Platform::start(PlatformOptions::default()).await;
    let skey = p.keys.skey.clone();
    let mut registrations = e2e::RegistrationsClient::new(p.payments.channel());
    let mut payments = p.payments_client();
    let reg = registrations
        .create_registration(authed(&skey, register_account("GB82 WEST 1234 5698 7654 32", "cus_bin")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reg.account.as_ref().unwrap().bank_code, "WEST");
    let invalid =
        registrations.create_registration(authed(&skey, register_account("GB00WEST12345698765432", "cus_bin")));
    assert_eq!(reason(&invalid.await.unwrap_err()), "invalid_iban");
    let paid = payments.create_payment(authed(&skey, debit(registration(&reg.id), mandate()))).await.unwrap();
    assert_eq!(paid.into_inner().status(), pb::PaymentStatus::Approved);
    let refused = payments.create_payment(authed(&skey, debit(registration(&reg.id), None))).await.unwrap_err();
    assert_eq!(reason(&refused), "invalid_mandate");
    let card = pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Card(pb::Card {
            number: "5555555555554444".into(),
            expiration_month: 12,
            expiration_year: 2040,
            name: "Jane Doe".into(),
            ..Default::default()
        })),
        customer_id: "cus_bin".into(),
        verify: false,
    };
    registrations.create_registration(authed(&skey, card)).await.unwrap();
    let list = pb::ListRegistrationsRequest { customer_id: "cus_bin".into(), ..Default::default() };
    let listed = registrations.list_registrations(authed(&skey, list)).await.unwrap().into_inner().registrations;
    let mut brands: Vec<&str> = listed.iter().map(|r| r.brand.as_str()).collect();
    brands.sort();
    assert_eq!(brands, ["DIRECTDEBIT_SEPA", "mastercard"]);
    let delete = pb::DeleteRegistrationRequest { id: reg.id.clone() };
    assert!(registrations.delete_registration(authed(&skey, delete)).await.unwrap().into_inner().deleted);

    let url = p.payments_database_url();
    let store =
        payments_svc::storage::sql::SqlStore::connect(&url, 2, std::time::Duration::from_secs(5)).await.unwrap();
    let stored = e2e::table_values(store.pool(), &["payments", "transactions", "idempotency_keys"]).await;
    assert!(stored.iter().any(|v| v == "WEST"), "the scan must see the direct debit");
    let stored = stored.join("\n");
    assert_eq!(common::bank::find_ibans(&stored.to_uppercase()).count(), 0, "IBANs in payments' database");
    assert!(!stored.contains("12345698765432"));
    for (service, logs) in [("payments-svc", p.payments.logs()), ("vault-svc", p.vault.logs())] {
        assert!(!logs.is_empty(), "{service} logged");
        assert_eq!(common::bank::find_ibans(&logs.to_uppercase()).count(), 0, "IBANs in {service}'s logs");
        assert!(!logs.contains("12345698765432"), "{service}");
    }
}
