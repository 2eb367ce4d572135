//! The single-use token capability end to end: a merchant's client creates a
//! token with its public key; payments-svc (an mTLS client named payments-svc)
//! detokenizes it exactly once, and the token's `charge_status` follows the
//! payment made with it. Runs against a real Redis and the in-process store
//! (and, for the payment's charge status, a real Redis Cluster; the rest on
//! a cluster is tests/tests/redis_cluster.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use e2e::{SilentRedis, Store, TestPlatform, TestVault, authed, card, create_request, detokenize_request, reason};
use proto::payments::v1 as ppb;
use tonic::Code;

async fn create_get_detokenize_once(store: Store) {
    let vault = TestVault::start(store).await;
    let pkey = vault.merchant.test_public.expose();
    let merchant_id = vault.merchant.id.clone();

    let token = vault.create_token(pkey, card("4242 4242 4242 4242", "123")).await.unwrap();
    assert!(token.id.starts_with("tokn_test_"), "{}", token.id);
    assert!(!token.livemode && !token.used);
    assert_eq!(token.charge_status, "unknown");
    // Omise's token object: its type, its path, and its creation to the second.
    assert_eq!((token.object.as_str(), token.location.clone()), ("token", format!("/tokens/{}", token.id)));
    assert_eq!(token.created_at.unwrap().nanos, 0);
    let meta = token.card.clone().unwrap();
    assert_eq!((meta.brand.as_str(), meta.bin.as_str(), meta.last_digits.as_str()), ("visa", "424242", "4242"));
    assert_eq!((meta.expiration_month, meta.expiration_year, meta.country.as_str()), (12, 2040, "TH"));
    assert!(!meta.fingerprint.is_empty());
    let ttl = token.expires_at.unwrap().seconds - token.created_at.unwrap().seconds;
    assert_eq!(ttl, 30 * 60);

    let read = vault.get_token(pkey, &token.id).await.unwrap();
    assert_eq!(read, token, "GetToken returns what CreateToken returned");

    // A card number as the consumer would be kept in the store: refused, nothing consumed.
    let carded = vault.vault().detokenize(detokenize_request(&merchant_id, &token.id, "4242424242424242")).await;
    let carded = carded.unwrap_err();
    assert_eq!((carded.code(), reason(&carded).as_str()), (Code::InvalidArgument, "card_number_in_text"));

    let out =
        vault.vault().detokenize(detokenize_request(&merchant_id, &token.id, "pay_1")).await.unwrap().into_inner();
    let c = out.card.unwrap();
    assert_eq!((c.number.as_str(), c.security_code.as_str(), c.name.as_str()), ("4242424242424242", "123", "Jane Doe"));
    assert_eq!((c.expiration_month, c.expiration_year), (12, 2040));
    assert_eq!(out.metadata.unwrap().last_digits, "4242");

    let again = vault.vault().detokenize(detokenize_request(&merchant_id, &token.id, "pay_2")).await.unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (Code::FailedPrecondition, "used_token"));

    let replay =
        vault.vault().detokenize(detokenize_request(&merchant_id, &token.id, "pay_1")).await.unwrap().into_inner();
    assert_eq!(replay.card.unwrap().number, "4242424242424242", "the same consumer may retry");

    let read = vault.get_token(pkey, &token.id).await.unwrap();
    assert!(read.used);

    // Past the replay window the card is gone even for the first consumer.
    vault.clock.advance_ms(2 * 60 * 1000);
    let late = vault.vault().detokenize(detokenize_request(&merchant_id, &token.id, "pay_1")).await.unwrap_err();
    assert_eq!(reason(&late), "used_token");
    vault.stop().await;
}

#[tokio::test]
async fn redis_create_get_detokenize_once() {
    create_get_detokenize_once(Store::Redis).await;
}

#[tokio::test]
async fn memory_create_get_detokenize_once() {
    create_get_detokenize_once(Store::Memory).await;
}

#[tokio::test]
async fn a_token_expires_after_thirty_minutes() {
    let vault = TestVault::start(Store::Redis).await;
    let pkey = vault.merchant.test_public.expose();
    let token = vault.create_token(pkey, card("5555555555554444", "")).await.unwrap();
    vault.clock.advance_ms(30 * 60 * 1000);
    let err = vault.vault().detokenize(detokenize_request(&vault.merchant.id, &token.id, "pay_1")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "token_expired"));
    let read = vault.get_token(pkey, &token.id).await.unwrap();
    assert!(!read.used, "an expired token's metadata is still readable and it was never used");
    assert_eq!(read.charge_status, "expired", "Omise's status of a token left unused");
    vault.stop().await;
}

/// A payment of `amount` EUR over single-use token `token`.
fn pay_with(kind: ppb::PaymentType, amount: i64, token: &str) -> ppb::CreatePaymentRequest {
    ppb::CreatePaymentRequest {
        payment_type: kind as i32,
        amount,
        currency: "EUR".into(),
        source: Some(ppb::create_payment_request::Source::Token(token.into())),
        ..Default::default()
    }
}

/// Omise's `charge_status` through each payment's life, read with GetToken
/// (public key) after each step, moments after it answers: unknown until used; a PA pending, captured
/// successful; another PA reversed; a DB successful; a decline failed; a
/// payment left pending at the acquirer pending until the reconciler learns
/// it was approved; an unused token expired after 30 minutes.
#[tokio::test]
async fn charge_status_follows_the_payment_made_with_the_token() {
    charge_status_follows_the_payment(Store::Redis).await;
}

/// The same over a Redis Cluster of three masters (a replica each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_status_follows_the_payment_on_a_redis_cluster() {
    let cluster = e2e::procs::RedisCluster::start().await;
    charge_status_follows_the_payment(Store::RedisCluster(cluster.seeds())).await;
}

async fn charge_status_follows_the_payment(store: Store) {
    use ppb::PaymentType::{Db, Pa};
    let p = TestPlatform::start_on(store).await;
    let pkey = p.pkey();
    let status = async |id: &str| p.vault.get_token(&pkey, id).await.unwrap().charge_status;
    // Reports leave the payment's response path: the token shows the status
    // moments after the payment answers.
    let shows = async |id: &str, expected: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = status(id).await;
            if now == expected || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    let unused = p.single_use_token("4242424242424242").await;
    assert_eq!(shows(&unused, "unknown").await, "unknown");

    let captured = p.single_use_token("4242424242424242").await;
    let pa = p.create_payment(pay_with(Pa, 1000, &captured)).await.unwrap();
    assert_eq!(pa.status(), ppb::PaymentStatus::Approved);
    assert_eq!(shows(&captured, "pending").await, "pending", "authorized, not charged");
    let cp = p.capture(&pa.id, 400).await.unwrap();
    assert_eq!(cp.status(), ppb::PaymentStatus::Approved);
    assert_eq!(shows(&captured, "successful").await, "successful");
    p.capture(&pa.id, 600).await.unwrap();
    p.refund(&cp.id, 100).await.unwrap();
    assert_eq!(shows(&captured, "successful").await, "successful", "a second capture or a refund changes nothing");

    let reversed = p.single_use_token("5555555555554444").await;
    let pa = p.create_payment(pay_with(Pa, 1000, &reversed)).await.unwrap();
    assert_eq!(shows(&reversed, "pending").await, "pending");
    p.reverse(&pa.id).await.unwrap();
    assert_eq!(shows(&reversed, "reversed").await, "reversed");

    let debited = p.single_use_token("4111111111111111").await;
    p.create_payment(pay_with(Db, 1000, &debited)).await.unwrap();
    assert_eq!(shows(&debited, "successful").await, "successful");

    let declined = p.single_use_token("4000000000000002").await;
    let payment = p.create_payment(pay_with(Db, 1000, &declined)).await.unwrap();
    assert_eq!(payment.status(), ppb::PaymentStatus::Declined);
    assert_eq!(shows(&declined, "failed").await, "failed");

    // An amount ending in 99: the acquirer processed it but did not answer.
    let unanswered = p.single_use_token("4242424242424242").await;
    let payment = p.create_payment(pay_with(Db, 1099, &unanswered)).await.unwrap();
    assert_eq!(payment.status(), ppb::PaymentStatus::Pending);
    assert_eq!(shows(&unanswered, "pending").await, "pending", "pending at the acquirer");
    // Past its lease the reconciler asks the acquirer, and reports the answer.
    p.vault.clock.advance_ms(31_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&unanswered).await != "successful" {
        assert!(Instant::now() < deadline, "the reconciled payment's status was never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(p.get_payment(&payment.id).await.unwrap().status(), ppb::PaymentStatus::Approved);

    // Thirty minutes on, the unused token is expired; the used ones keep theirs.
    p.vault.clock.advance_ms(30 * 60 * 1000);
    let read = p.vault.get_token(&pkey, &unused).await.unwrap();
    assert_eq!((read.charge_status.as_str(), read.used), ("expired", false));
    for (token, expected) in [(&captured, "successful"), (&reversed, "reversed"), (&declined, "failed")] {
        assert_eq!(status(token).await, expected);
    }
    p.stop().await;
}

/// The vault's side of the rule: only the token's consumer reports, only the
/// statuses a payment reaches, and a late report never moves a token back.
#[tokio::test]
async fn report_charge_takes_the_consumers_reports_in_life_order() {
    let vault = TestVault::start(Store::Redis).await;
    let pkey = vault.merchant.test_public.expose();
    let token = vault.create_token(pkey, card("4242424242424242", "123")).await.unwrap();
    vault.vault().detokenize(detokenize_request(&vault.merchant.id, &token.id, "pay_1")).await.unwrap();
    let report = |consumer_ref: &str, charge_status: &str| {
        let mut client = vault.vault();
        let report = proto::vault::v1::ChargeReport {
            merchant_id: vault.merchant.id.clone(),
            token: token.id.clone(),
            consumer_ref: consumer_ref.into(),
            charge_status: charge_status.into(),
        };
        let request = proto::vault::v1::ReportChargesRequest { reports: vec![report] };
        async move { client.report_charges(request).await.map(|r| r.into_inner().recorded[0]) }
    };
    for bad in ["unknown", "expired", "Successful", "refunded", ""] {
        let err = report("pay_1", bad).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "invalid_argument"), "{bad:?}");
    }
    assert!(!report("pay_2", "pending").await.unwrap(), "not the consumer");
    assert!(report("pay_1", "pending").await.unwrap());
    assert!(report("pay_1", "reversed").await.unwrap());
    assert!(!report("pay_1", "pending").await.unwrap(), "a late pending is not recorded");
    assert!(!report("pay_1", "successful").await.unwrap());
    assert_eq!(vault.get_token(pkey, &token.id).await.unwrap().charge_status, "reversed");
    vault.stop().await;
}

/// Many reports in one call, answered in order; one invalid status refuses
/// the whole call before anything is recorded, as does a call over the limit.
#[tokio::test]
async fn report_charges_answers_each_report_in_order_or_none() {
    use proto::vault::v1::{ChargeReport, ReportChargesRequest};
    let vault = TestVault::start(Store::Redis).await;
    let pkey = vault.merchant.test_public.expose();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let token = vault.create_token(pkey, card("4242424242424242", "123")).await.unwrap();
        vault.vault().detokenize(detokenize_request(&vault.merchant.id, &token.id, &format!("pay_{i}"))).await.unwrap();
        tokens.push(token.id);
    }
    let report = |i: usize, consumer_ref: &str, charge_status: &str| ChargeReport {
        merchant_id: vault.merchant.id.clone(),
        token: tokens[i].clone(),
        consumer_ref: consumer_ref.into(),
        charge_status: charge_status.into(),
    };
    let send = |reports: Vec<ChargeReport>| {
        let mut client = vault.vault();
        async move { client.report_charges(ReportChargesRequest { reports }).await.map(|r| r.into_inner().recorded) }
    };
    let refused = send(vec![report(0, "pay_0", "successful"), report(1, "pay_1", "refunded")]).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "invalid_argument"));
    assert_eq!(vault.get_token(pkey, &tokens[0]).await.unwrap().charge_status, "unknown", "nothing recorded");
    let too_many = (0..501).map(|_| report(0, "pay_0", "pending")).collect();
    assert_eq!(send(too_many).await.unwrap_err().code(), Code::InvalidArgument, "over 500 reports");

    let recorded =
        send(vec![report(0, "pay_0", "successful"), report(1, "pay_x", "failed"), report(2, "pay_2", "pending")])
            .await
            .unwrap();
    assert_eq!(recorded, [true, false, true], "each report answered in order");
    let status = |i: usize| {
        let id = tokens[i].clone();
        let vault = &vault;
        async move { vault.get_token(pkey, &id).await.unwrap().charge_status }
    };
    assert_eq!(
        (status(0).await, status(1).await, status(2).await),
        ("successful".into(), "unknown".into(), "pending".into())
    );
    vault.stop().await;
}

#[tokio::test]
async fn concurrent_detokenizations_have_exactly_one_winner() {
    let vault = TestVault::start(Store::Redis).await;
    let token = vault.create_token(vault.merchant.test_public.expose(), card("4111111111111111", "999")).await.unwrap();
    let calls = (0..16).map(|i| {
        let mut client = vault.vault();
        let request = detokenize_request(&vault.merchant.id, &token.id, &format!("pay_{i}"));
        async move { client.detokenize(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let used = results.iter().filter(|r| r.as_ref().is_err_and(|e| reason(e) == "used_token")).count();
    assert_eq!((won, used), (1, 15));
    vault.stop().await;
}

#[tokio::test]
async fn invalid_cards_are_refused_with_their_own_reason_and_nothing_is_stored() {
    let vault = TestVault::start(Store::Redis).await;
    let pkey = vault.merchant.test_public.expose();
    let mut expired = card("4242424242424242", "123");
    expired.expiration_year = 2020;
    let mut bad_month = card("4242424242424242", "123");
    bad_month.expiration_month = 13;
    let mut no_name = card("4242424242424242", "123");
    no_name.name = " ".into();
    let cases = [
        (card("4242424242424241", "123"), "invalid_card"),
        (card("1234", "123"), "invalid_card"),
        (card("378282246310005", "123"), "invalid_security_code"),
        (card("4242424242424242", "12345"), "invalid_security_code"),
        (expired, "invalid_expiration_date"),
        (bad_month, "invalid_expiration_date"),
        (no_name, "invalid_name"),
    ];
    for (c, expected) in cases {
        let err = vault.create_token(pkey, c).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, expected));
        assert!(!err.message().contains("4242424242424242") && !err.message().contains("378282246310005"));
    }
    let missing = vault
        .tokens()
        .create_token(authed(pkey, proto::vault::v1::CreateTokenRequest { card: None }))
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "invalid_card");
    assert!(e2e::redis_values(vault.redis_prefix.as_deref().unwrap()).await.is_empty(), "nothing was written");
    vault.stop().await;
}

#[tokio::test]
async fn keys_scope_tokens_to_their_merchant_and_mode() {
    let vault = TestVault::start(Store::Redis).await;
    // A token of the merchant's test mode; below, every other key and scope is refused it.
    let token = vault.create_token(vault.merchant.test_public.expose(), card("4242424242424242", "")).await.unwrap();

    let unauthenticated = vault
        .tokens()
        .get_token(tonic::Request::new(proto::vault::v1::GetTokenRequest { id: token.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(
        (unauthenticated.code(), reason(&unauthenticated).as_str()),
        (Code::Unauthenticated, "authentication_failure")
    );
    let wrong_key = vault.get_token("pkey_test_notakey", &token.id).await.unwrap_err();
    assert_eq!(wrong_key.code(), Code::Unauthenticated);
    // Omise's token endpoints take the public key only: the secret key is refused.
    let secret = vault.merchant.test_secret.expose();
    let refused = [
        vault.get_token(secret, &token.id).await.unwrap_err(),
        vault.create_token(secret, card("4242424242424242", "123")).await.unwrap_err(),
    ];
    for err in refused {
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "permission_denied"));
    }

    for key in [vault.other_merchant.test_public.expose(), vault.merchant.live_public.expose()] {
        let err = vault.get_token(key, &token.id).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::NotFound, "token_not_found"));
    }
    let foreign =
        vault.vault().detokenize(detokenize_request(&vault.other_merchant.id, &token.id, "pay_1")).await.unwrap_err();
    assert_eq!(reason(&foreign), "token_not_found");
    let unknown = vault
        .vault()
        .detokenize(detokenize_request(&vault.merchant.id, "tokn_test_000000000000000000000000", "p"))
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown), "token_not_found");
    // The foreign attempt did not consume it.
    vault.vault().detokenize(detokenize_request(&vault.merchant.id, &token.id, "pay_1")).await.unwrap();

    let live = vault.create_token(vault.merchant.live_public.expose(), card("4242424242424242", "")).await.unwrap();
    assert!(live.livemode && live.id.starts_with("tokn_") && !live.id.starts_with("tokn_test_"));
    vault.stop().await;
}

#[tokio::test]
async fn the_internal_port_admits_only_allowed_platform_clients() {
    let vault = TestVault::start(Store::Memory).await;
    let token = vault.create_token(vault.merchant.test_public.expose(), card("4242424242424242", "123")).await.unwrap();
    let request = || detokenize_request(&vault.merchant.id, &token.id, "pay_1");
    let stranger_ca = vault_svc::dev::DevCa::generate().unwrap();

    let refused = [
        ("no client certificate", vault.internal_channel(None)),
        ("a name not on the allow-list", vault.internal_channel(Some((&vault.ca, "checkout-web")))),
        ("a certificate from another CA", vault.internal_channel(Some((&stranger_ca, "payments-svc")))),
    ];
    for (what, channel) in refused {
        let mut client = e2e::VaultClient::new(channel);
        let err = client.detokenize(authed(vault.merchant.test_secret.expose(), request())).await.expect_err(what);
        assert!(matches!(err.code(), Code::Unavailable | Code::Unknown | Code::Internal), "{what}: {err:?}");
    }
    // A plaintext client is refused too.
    let plaintext = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", vault.internal_addr.port()))
        .unwrap()
        .connect_lazy();
    assert!(e2e::VaultClient::new(plaintext).detokenize(request()).await.is_err());

    // None of that consumed the token.
    let ok = vault.vault().detokenize(request()).await.unwrap().into_inner();
    assert_eq!(ok.card.unwrap().security_code, "123");
    vault.stop().await;
}

#[tokio::test]
async fn a_silent_redis_gives_unavailable_within_the_deadline() {
    let silent = SilentRedis::start().await;
    let vault = TestVault::start(Store::RedisAt(silent.url.clone())).await;
    let mut request = authed(vault.merchant.test_public.expose(), create_request(card("4242424242424242", "")));
    request.set_timeout(Duration::from_millis(800));
    let started = Instant::now();
    let err = vault.tokens().create_token(request).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded), "{err:?}");
    if err.code() == Code::Unavailable {
        assert_eq!(reason(&err), "store_unavailable");
    }
    silent.close();
    vault.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};

    let vault = TestVault::start(Store::Redis).await;
    let mut health = HealthClient::new(vault.public.clone());
    let mut status = ServingStatus::Unknown;
    for _ in 0..50 {
        let request = HealthCheckRequest { service: "payvault.vault.v1.Tokens".into() };
        if let Ok(r) = health.check(request).await {
            status = r.into_inner().status();
            if status == ServingStatus::Serving {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, ServingStatus::Serving);

    let list = |channel| async move {
        let mut reflection = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies =
            reflection.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
    };
    let public = list(vault.public.clone()).await;
    assert!(
        public.iter().any(|n| n == "payvault.vault.v1.Tokens") && public.iter().any(|n| n == "grpc.health.v1.Health")
    );
    assert!(
        !public.iter().any(|n| n == "payvault.vault.v1.Vault"),
        "the public port does not advertise Vault: {public:?}"
    );
    let internal = list(vault.internal_channel(Some((&vault.ca, "payments-svc")))).await;
    assert!(internal.iter().any(|n| n == "payvault.vault.v1.Vault"), "{internal:?}");
    vault.stop().await;
}

#[tokio::test]
async fn the_public_port_can_be_served_over_tls() {
    let vault = TestVault::start_with_public_tls(Store::Memory).await;
    let pkey = vault.merchant.test_public.expose();
    let token = vault.create_token(pkey, card("4242424242424242", "")).await.unwrap();
    assert!(token.id.starts_with("tokn_test_"));
    let plaintext =
        tonic::transport::Channel::from_shared(format!("http://{}", vault.public_addr)).unwrap().connect_lazy();
    let refused = e2e::TokensClient::new(plaintext)
        .create_token(authed(pkey, create_request(card("4242424242424242", ""))))
        .await;
    assert!(refused.is_err(), "plaintext is not accepted on a TLS port");
    vault.stop().await;
}

#[tokio::test]
async fn a_restarted_redis_fails_no_call_once_it_is_back() {
    let mut redis = e2e::procs::RedisServer::new().await;
    let vault = TestVault::start(Store::RedisAt(redis.url())).await;
    let pkey = vault.merchant.test_public.expose();
    // Every pooled connection opened and in use.
    for _ in 0..32 {
        vault.create_token(pkey, card("4242424242424242", "123")).await.unwrap();
    }
    redis.kill9();
    redis.start().await;
    // Each connection broke with the restart; none may cost a caller a failure.
    for i in 0..32 {
        let token = vault.create_token(pkey, card("4242424242424242", "123")).await;
        let token = token.unwrap_or_else(|e| panic!("call {i} after the restart: {e:?}"));
        let out = vault.vault().detokenize(detokenize_request(&vault.merchant.id, &token.id, "pay_1")).await;
        assert!(out.is_ok(), "detokenize {i} after the restart: {out:?}");
    }
    vault.stop().await;
}
