//! No card number, security code or API key may reach a log line, a span, an
//! error message or a store. These tests capture every log event at TRACE
//! level (ours and the libraries', rustls at DEBUG) while they drive the vault
//! through successes and failures — single-use and durable tokens, card
//! numbers pasted into the wrong fields — then scan the logs, the error
//! messages, Redis and the database (PostgreSQL in one test, SQLite in the
//! other) for Luhn-valid 13–19 digit runs, mod-97-valid IBANs (bank accounts
//! registered, paid from and pasted into text fields) and for the keys they
//! used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::card::{find_pans, naive_pans};
use e2e::{Store, TestVault, authed, card, delete_request, detokenize_request, extend_request, tokenize_single_use};
use proto::vault::v1::TokenKind;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    /// Installs the test's subscriber: everything at TRACE except rustls,
    /// whose TRACE events dump handshake bytes in hex (random digit runs that
    /// may pass Luhn; never card data).
    fn install() -> Self {
        let capture = Capture::default();
        tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,rustls=debug"))
            .with_ansi(false)
            .init();
        capture
    }

    /// Everything logged so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// No card number in `text` (named `what` in the failure) by the strict
/// detector (as DLP scanners read text) nor by the naive one (any Luhn-valid
/// run of 13–19 digits, wherever it stands), and none of `secrets`.
fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    let masked = |p: String| format!("{}…{}", &p[..6], &p[p.len() - 4..]);
    let pans: Vec<String> = find_pans(text).map(masked).collect();
    assert!(pans.is_empty(), "card numbers in {what}: {pans:?}");
    // rustls at DEBUG prints certificates' DER as hex, whose ASN.1 tags and
    // lengths form digit runs (never card data): its lines are left to the
    // strict scan.
    let ours: String = text.lines().filter(|line| !line.contains(" rustls::")).collect::<Vec<_>>().join("\n");
    let naive: Vec<String> = naive_pans(&ours).map(masked).collect();
    assert!(naive.is_empty(), "Luhn-valid digit runs in {what}: {naive:?}");
    let ibans: Vec<String> = common::bank::find_ibans(text).collect();
    assert!(ibans.is_empty(), "IBANs in {what}: {ibans:?}");
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "an API key appears in {what}");
    }
}

const CARDS: &[(&str, &str)] = &[
    ("4242424242424242", "123"),
    ("5555555555554444", "456"),
    ("378282246310005", "7890"),
    ("4111111111111111", ""),
    ("6011111111111117", "321"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_with_redis_and_postgres() {
    scan(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_with_the_embedded_stores_and_sqlite() {
    scan(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_through_payments() {
    use proto::payments::v1::{self as ppb, PaymentType};
    let capture = Capture::install();
    let p = e2e::TestPlatform::start().await;
    let mut errors = Vec::new();
    let raw = |number: &str| {
        ppb::create_payment_request::Source::Card(ppb::Card {
            number: number.into(),
            expiration_month: 12,
            expiration_year: 2035,
            name: "Jane Doe".into(),
            security_code: "123".into(),
            ..Default::default()
        })
    };
    let pay = |kind: PaymentType, amount: i64, source| ppb::CreatePaymentRequest {
        payment_type: kind as i32,
        amount,
        currency: "EUR".into(),
        source: Some(source),
        ..Default::default()
    };
    for number in ["4242424242424242", "5555555555554444", "4000000000000002", "4111111111140011"] {
        let created = ppb::CreatePaymentRequest {
            create_registration: true,
            customer_id: "cus_s".into(),
            ..pay(PaymentType::Db, 1000, raw(number))
        };
        p.create_payment(created).await.unwrap();
        let omni = ppb::CreatePaymentRequest { create_omni_token: true, ..pay(PaymentType::Pa, 1099, raw(number)) };
        p.create_payment(omni).await.unwrap();
        let t = p.single_use_token(number).await;
        p.create_payment(pay(PaymentType::Db, 500, ppb::create_payment_request::Source::Token(t))).await.unwrap();
    }
    // Card numbers where they do not belong.
    let mut misplaced = pay(PaymentType::Db, 100, raw("4242424242424242"));
    misplaced.description = "card 4111 1111 1111 1111".into();
    errors.push(p.create_payment(misplaced).await.unwrap_err().message().to_owned());
    let mut misplaced = pay(PaymentType::Db, 100, raw("4242424242424242"));
    misplaced.customer_id = "5555555555554444".into();
    errors.push(p.create_payment(misplaced).await.unwrap_err().message().to_owned());
    let bad = pay(PaymentType::Db, 100, ppb::create_payment_request::Source::RegistrationId("4242424242424242".into()));
    errors.push(p.create_payment(bad).await.unwrap_err().message().to_owned());
    let bad = pay(PaymentType::Db, 100, raw("4242424242424241"));
    errors.push(p.create_payment(bad).await.unwrap_err().message().to_owned());
    errors.push(p.get_payment("4242424242424242").await.unwrap_err().message().to_owned());
    // Every hostile spelling in every text field and header, and keyed
    // payments whose stored responses the scan reads too.
    let hostile = ["4242 4242 4242 4242 737", "4242424242424242 1230", "4242.4242.4242.4242", "x 4012-8888-8888-1881"];
    for text in hostile {
        let base = || pay(PaymentType::Db, 100, raw("4242424242424242"));
        for request in e2e::text_in_each_field(text, base) {
            errors.push(p.create_payment(request).await.unwrap_err().message().to_owned());
        }
        let card = || match raw("4242424242424242") {
            ppb::create_payment_request::Source::Card(c) => c,
            _ => unreachable!("raw gives a card"),
        };
        for c in e2e::text_in_each_card_field(text, card) {
            let request = pay(PaymentType::Db, 100, ppb::create_payment_request::Source::Card(c));
            errors.push(p.create_payment(request).await.unwrap_err().message().to_owned());
        }
        for header in ["idempotency-key", "x-correlation-id", "x-request-id"] {
            let mut request = authed(&p.skey(), base());
            request.metadata_mut().insert(header, text.parse().unwrap());
            errors.push(p.payments().create_payment(request).await.unwrap_err().message().to_owned());
        }
    }
    for key in ["order-1", "123e4567-e89b-12d3-a456-426614174000"] {
        let mut keyed = authed(&p.skey(), pay(PaymentType::Pa, 100, raw("5555555555554444")));
        keyed.metadata_mut().insert("idempotency-key", key.parse().unwrap());
        p.payments().create_payment(keyed).await.unwrap();
    }

    // SEPA direct debits: registrations, payments (tokenizing during one
    // too, declines included), IBANs misplaced or malformed, keyed requests.
    let account = |iban: &str| ppb::BankAccount { iban: iban.into(), holder: "Jane Doe".into(), ..Default::default() };
    let mandate = || Some(ppb::Mandate { id: "MNDT-1".into(), date_of_signature: "2025-01-15".into() });
    let debit = |iban: &str| ppb::CreatePaymentRequest {
        mandate: mandate(),
        ..pay(PaymentType::Db, 1000, ppb::create_payment_request::Source::BankAccount(account(iban)))
    };
    for iban in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "DE35370400440532013002"] {
        let registration = ppb::CreateRegistrationRequest {
            source: Some(ppb::create_registration_request::Source::BankAccount(account(iban))),
            customer_id: "cus_s".into(),
            verify: false,
        };
        let registered = p.create_registration(registration).await.unwrap();
        let over = ppb::CreatePaymentRequest {
            mandate: mandate(),
            ..pay(PaymentType::Db, 700, ppb::create_payment_request::Source::RegistrationId(registered.id))
        };
        p.create_payment(over).await.unwrap();
        p.create_payment(ppb::CreatePaymentRequest {
            create_registration: true,
            customer_id: "cus_d".into(),
            ..debit(iban)
        })
        .await
        .unwrap();
        let mut keyed = authed(&p.skey(), debit(iban));
        keyed.metadata_mut().insert("idempotency-key", format!("dd-{}", &iban[..4]).parse().unwrap());
        p.payments().create_payment(keyed).await.unwrap();
    }
    for text in ["GB82 WEST 1234 5698 7654 32", "iban de89370400440532013000"] {
        for request in e2e::text_in_each_field(text, || debit("DE89370400440532013000")) {
            errors.push(p.create_payment(request).await.unwrap_err().message().to_owned());
        }
        let misplaced = ppb::CreatePaymentRequest {
            mandate: Some(ppb::Mandate { id: text.into(), date_of_signature: "2025-01-15".into() }),
            ..debit("DE89370400440532013000")
        };
        errors.push(p.create_payment(misplaced).await.unwrap_err().message().to_owned());
        let holder = ppb::CreatePaymentRequest {
            source: Some(ppb::create_payment_request::Source::BankAccount(ppb::BankAccount {
                holder: text.into(),
                ..account("DE89370400440532013000")
            })),
            ..debit("DE89370400440532013000")
        };
        errors.push(p.create_payment(holder).await.unwrap_err().message().to_owned());
    }
    for bad in ["DE89370400440532013001", "DE8937040044053201300", "GB82WEST1234569876543X"] {
        errors.push(p.create_payment(debit(bad)).await.unwrap_err().message().to_owned());
    }
    let by_iban =
        pay(PaymentType::Db, 100, ppb::create_payment_request::Source::RegistrationId("DE89370400440532013000".into()));
    errors.push(p.create_payment(by_iban).await.unwrap_err().message().to_owned());
    errors.push(p.get_payment("DE89370400440532013000").await.unwrap_err().message().to_owned());

    let payments_store =
        payments_svc::storage::sql::SqlStore::connect(&p.payments_database_url, 2, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    let mut stored = e2e::table_values(payments_store.pool(), &["payments", "transactions", "idempotency_keys"]).await;
    assert!(stored.iter().any(|v| v == "cus_s"), "the scan must see the payments");
    assert!(stored.iter().any(|v| v == "DIRECTDEBIT_SEPA"), "the scan must see the direct debits");
    assert!(stored.iter().any(|v| v == "MNDT-1"), "the scan must see the mandates");
    for key in ["order-1", "123e4567-e89b-12d3-a456-426614174000"] {
        assert!(!stored.iter().any(|v| v.contains(key)), "idempotency key {key} is stored as sent");
    }
    assert!(stored.iter().any(|v| v.starts_with("v1:")), "the scan must see the keyed idempotency records");
    stored.extend(e2e::database_values(&p.vault.sql().await).await);
    stored.extend(e2e::redis_values(p.vault.redis_prefix.as_deref().unwrap()).await);
    let secrets = [p.skey()];
    p.stop().await;
    let logs = capture.text();
    assert!(logs.contains("payment"), "the capture must hold the services' logs");
    for (what, text) in
        [("logs", logs.as_str()), ("error messages", &errors.join("\n")), ("stores", &stored.join("\n"))]
    {
        assert_clean(what, text, &secrets);
    }
}

async fn scan(store: Store) {
    let capture = Capture::install();

    let vault = TestVault::start(store).await;
    let pkey = vault.merchant.test_public.expose().to_owned();
    let mut errors: Vec<String> = Vec::new();

    for (number, cvv) in CARDS {
        let t = vault.create_token(&pkey, card(number, cvv)).await.unwrap();
        vault.get_token(&pkey, &t.id).await.unwrap();
        vault.vault().detokenize(detokenize_request(&vault.merchant.id, &t.id, "pay_1")).await.unwrap();
        let used = vault.vault().detokenize(detokenize_request(&vault.merchant.id, &t.id, "pay_2")).await.unwrap_err();
        errors.push(used.message().to_owned());
    }

    // Failures that carry card data in the request.
    let mut pan_as_name = card("4242424242424242", "123");
    pan_as_name.name = "4000 0000 0000 0002".into();
    let mut expired = card("5555555555554444", "123");
    expired.expiration_year = 2001;
    let failing = [card("4242424242424241", "123"), card("378282246310005", "123"), pan_as_name, expired];
    for c in failing {
        let e = vault.create_token(&pkey, c).await.unwrap_err();
        errors.push(e.message().to_owned());
    }
    // A card number sent where a token id or merchant id belongs.
    for (merchant, token) in
        [(vault.merchant.id.as_str(), "4242424242424242"), ("4111111111111111", "tokn_test_abcdefghijklmnopqrstuvwx")]
    {
        let e = vault.vault().detokenize(detokenize_request(merchant, token, "pay_9")).await.unwrap_err();
        errors.push(e.message().to_owned());
    }
    let e = vault.get_token(&pkey, "4242424242424242").await.unwrap_err();
    errors.push(e.message().to_owned());
    // A secret key sent to the wrong port, and a bad key.
    let refused = e2e::VaultClient::new(vault.internal_channel(None))
        .detokenize(authed(
            vault.merchant.test_secret.expose(),
            detokenize_request(&vault.merchant.id, "tokn_test_x", "p"),
        ))
        .await
        .unwrap_err();
    errors.push(refused.message().to_owned());
    let e = vault.get_token("pkey_test_4242424242424242", "x").await.unwrap_err();
    errors.push(e.message().to_owned());

    // Durable tokens: from card data and from a single-use token; used, extended, deleted.
    let mut internal = vault.vault();
    for (i, (number, cvv)) in CARDS.iter().enumerate() {
        let kind = if i % 2 == 0 { TokenKind::Registration } else { TokenKind::Omni };
        let t = internal
            .tokenize(e2e::tokenize_card(&vault.merchant.id, kind, card(number, cvv), "cus_1"))
            .await
            .unwrap()
            .into_inner();
        internal.detokenize(detokenize_request(&vault.merchant.id, &t.id, "")).await.unwrap();
        internal.extend_token(extend_request(&vault.merchant.id, &t.id)).await.unwrap();
        if i == 0 {
            internal.delete_token(delete_request(&vault.merchant.id, &t.id)).await.unwrap();
        }
    }
    let single = vault.create_token(&pkey, card("4012888888881881", "777")).await.unwrap();
    let from_single = tokenize_single_use(&vault.merchant.id, TokenKind::Omni, &single.id, "cus_2", "pay_x");
    internal.tokenize(from_single).await.unwrap();
    let mut bad =
        e2e::tokenize_card(&vault.merchant.id, TokenKind::Omni, card("4242424242424242", ""), "4111111111111111");
    errors.push(internal.tokenize(bad.clone()).await.unwrap_err().message().to_owned());
    bad.customer_id = "cus_1".into();
    bad.consumer_ref = "5555 5555 5555 4444".into();
    errors.push(internal.tokenize(bad).await.unwrap_err().message().to_owned());

    // Bank accounts: registered, detokenized, extended, deleted; refused; an IBAN as an id.
    let account = |iban: &str, holder: &str| proto::vault::v1::TokenizeRequest {
        merchant_id: vault.merchant.id.clone(),
        kind: TokenKind::Registration as i32,
        source: Some(proto::vault::v1::tokenize_request::Source::BankAccount(proto::vault::v1::BankAccount {
            iban: iban.into(),
            holder: holder.into(),
            ..Default::default()
        })),
        customer_id: "cus_1".into(),
        ..Default::default()
    };
    for iban in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"] {
        let t = internal.tokenize(account(iban, "Jane Doe")).await.unwrap().into_inner();
        internal.detokenize(detokenize_request(&vault.merchant.id, &t.id, "")).await.unwrap();
        internal.extend_token(extend_request(&vault.merchant.id, &t.id)).await.unwrap();
        if iban.starts_with("FR") {
            internal.delete_token(delete_request(&vault.merchant.id, &t.id)).await.unwrap();
        }
    }
    for (iban, holder) in [("DE89370400440532013001", "Jane Doe"), ("DE89370400440532013000", "NL91ABNA0417164300")] {
        errors.push(internal.tokenize(account(iban, holder)).await.unwrap_err().message().to_owned());
    }
    let e = internal.detokenize(detokenize_request(&vault.merchant.id, "DE89370400440532013000", "")).await;
    errors.push(e.unwrap_err().message().to_owned());

    let mut stored = match &vault.redis_prefix {
        Some(prefix) => e2e::redis_values(prefix).await,
        None => Vec::new(),
    };
    let database = e2e::database_values(&vault.sql().await).await;
    assert!(database.iter().any(|v| v == "cus_1"), "the scan must see the stored tokens");
    stored.extend(database);
    for reference in ["pay_1", "pay_2", "pay_x"] {
        assert!(!stored.iter().any(|v| v.contains(reference)), "consumer_ref {reference} is stored as sent");
    }
    let keys: Vec<String> = [&vault.merchant, &vault.other_merchant]
        .iter()
        .flat_map(|m| [&m.test_public, &m.test_secret, &m.live_public, &m.live_secret])
        .map(|k| k.expose().to_owned())
        .collect();
    vault.stop().await;

    let logs = capture.text();
    if let Ok(path) = std::env::var("LOG_SCAN_DUMP") {
        std::fs::write(path, &logs).unwrap();
    }
    assert!(logs.contains("token detokenized"), "the capture must hold the vault's own logs");
    assert!(logs.contains("account=true"), "the capture must hold the accounts' tokenizations");
    for (what, text) in [("logs", logs.as_str()), ("error messages", &errors.join("\n")), ("redis", &stored.join("\n"))]
    {
        assert_clean(what, text, &keys);
        assert!(!text.to_lowercase().contains("security_code:"), "a security code field appears in {what}");
    }
}
