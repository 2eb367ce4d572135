//! Payment flows end to end: both services on loopback ports, real Redis and
//! PostgreSQL, payments calling the vault over mTLS, the test acquirer. Each
//! test follows a flow from the reference docs (Omise, OPP, Till).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use e2e::{TestPlatform, authed, reason};
use proto::payments::v1::{self as pb, PaymentType};
use tonic::Code;

const SUCCESS_TEST: &str = "000.100.110";

fn pay(
    kind: PaymentType,
    amount: i64,
    currency: &str,
    source: pb::create_payment_request::Source,
) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        payment_type: kind as i32,
        amount,
        currency: currency.into(),
        source: Some(source),
        ..Default::default()
    }
}

fn with_card(number: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::Card(pb::Card {
        number: number.into(),
        expiration_month: 12,
        expiration_year: 2035,
        name: "Jane Doe".into(),
        security_code: "123".into(),
        ..Default::default()
    })
}

fn token(t: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::Token(t.into())
}

fn registration(r: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::RegistrationId(r.into())
}

fn omni(o: &str) -> pb::create_payment_request::Source {
    pb::create_payment_request::Source::OmniToken(o.into())
}

/// A card as a registration stores it: no security code.
fn stored_card(number: &str, expiration_month: i32, expiration_year: i32) -> pb::Card {
    pb::Card { number: number.into(), expiration_month, expiration_year, name: "Jane Doe".into(), ..Default::default() }
}

fn register(card: pb::Card, customer_id: &str, verify: bool) -> pb::CreateRegistrationRequest {
    pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Card(card)),
        customer_id: customer_id.into(),
        verify,
    }
}

fn si(mode: pb::StandingInstructionMode, source: pb::StandingInstructionSource) -> Option<pb::StandingInstruction> {
    Some(pb::StandingInstruction {
        mode: mode as i32,
        r#type: pb::StandingInstructionType::Unscheduled as i32,
        source: source as i32,
        initial_transaction_id: String::new(),
    })
}

fn by_payment(id: &str) -> pb::ListTransactionsRequest {
    pb::ListTransactionsRequest { payment_id: id.into(), ..Default::default() }
}

fn by_token(t: &str) -> pb::ListTransactionsRequest {
    pb::ListTransactionsRequest { token: t.into(), ..Default::default() }
}

#[tokio::test]
async fn omise_single_payment_with_a_token_and_no_second_charge() {
    let p = TestPlatform::start().await;
    let t = p.single_use_token("4242424242424242").await;
    // Omise sends lowercase codes: taken in any case, kept upper-case.
    let payment = p.create_payment(pay(PaymentType::Db, 1000, "thb", token(&t))).await.unwrap();
    assert_eq!(payment.result.as_ref().unwrap().code, SUCCESS_TEST);
    assert_eq!(payment.currency, "THB");
    assert_eq!((payment.payment_type(), payment.amount, payment.captured_amount), (PaymentType::Db, 1000, 1000));
    assert_eq!(payment.id.len(), 32);
    let c = payment.card.unwrap();
    assert_eq!((c.brand.as_str(), c.last_digits.as_str()), ("visa", "4242"));

    assert!(p.vault.get_token(&p.pkey(), &t).await.unwrap().used);
    let again = p.create_payment(pay(PaymentType::Db, 1000, "THB", token(&t))).await.unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (Code::FailedPrecondition, "used_token"));
    assert_eq!(p.ledger(by_token(&t)).await, ["DB"], "one charge, no second");
    p.stop().await;
}

#[tokio::test]
async fn declines_are_normal_responses_and_timeouts_are_never_approved() {
    let p = TestPlatform::start().await;
    let cases = [
        ("4000000000000002", 1000, "800.100.100"),
        ("4111111111140011", 1000, "800.100.203"),
        ("4111111111130012", 1000, "800.100.165"),
        ("4111111111110014", 1000, "800.100.152"),
        ("4242424242424242", 1099, "000.200.000"),
    ];
    for (number, amount, code) in cases {
        let t = p.single_use_token(number).await;
        let payment = p.create_payment(pay(PaymentType::Db, amount, "EUR", token(&t))).await.unwrap();
        assert_eq!(payment.result.unwrap().code, code, "{number} {amount}");
        assert_eq!(payment.captured_amount, 0, "nothing captured on {code}");
        // The payment reached the acquirer: the token is consumed all the same.
        let reuse = p.create_payment(pay(PaymentType::Db, 1000, "EUR", token(&t))).await.unwrap_err();
        assert_eq!(reason(&reuse), "used_token");
        let refund = p.refund(&payment.id, 1).await.unwrap_err();
        assert_eq!(reason(&refund), "invalid_state_transition", "a declined payment cannot be refunded");
    }
    p.stop().await;
}

#[tokio::test]
async fn validation_refuses_bad_requests_without_consuming_the_token() {
    let p = TestPlatform::start().await;
    let t = p.single_use_token("4242424242424242").await;
    let cases = [
        (pay(PaymentType::Db, 0, "EUR", token(&t)), "invalid_amount"),
        (pay(PaymentType::Db, -5, "EUR", token(&t)), "invalid_amount"),
        (pay(PaymentType::Db, i64::MAX, "EUR", token(&t)), "invalid_amount"),
        (pay(PaymentType::Db, 100, "XYZ", token(&t)), "invalid_currency"),
        (pay(PaymentType::Unspecified, 100, "EUR", token(&t)), "invalid_argument"),
        (pay(PaymentType::Cp, 100, "EUR", token(&t)), "invalid_argument"),
        (pay(PaymentType::Db, 100, "EUR", with_card("4242424242424241")), "invalid_card"),
        (pb::CreatePaymentRequest { source: None, ..pay(PaymentType::Db, 100, "EUR", token(&t)) }, "invalid_argument"),
    ];
    for (request, expected) in cases {
        let err = p.create_payment(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, expected));
    }
    let jpy = p.create_payment(pay(PaymentType::Db, 500, "JPY", token(&t))).await.unwrap();
    assert_eq!(
        (jpy.currency.as_str(), jpy.result.unwrap().code.as_str()),
        ("JPY", SUCCESS_TEST),
        "the token was still usable"
    );
    let pkey = p.payments().get_payment(authed(&p.pkey(), pb::GetPaymentRequest { id: jpy.id })).await.unwrap_err();
    assert_eq!((pkey.code(), reason(&pkey).as_str()), (Code::PermissionDenied, "permission_denied"));
    p.stop().await;
}

#[tokio::test]
async fn partial_captures_up_to_the_authorization_then_refunds_up_to_the_capture() {
    let p = TestPlatform::start().await;
    let pa = p.create_payment(pay(PaymentType::Pa, 1000, "EUR", with_card("5555555555554444"))).await.unwrap();
    assert_eq!((pa.payment_type(), pa.captured_amount), (PaymentType::Pa, 0));
    let cp1 = p.capture(&pa.id, 400).await.unwrap();
    assert_eq!((cp1.payment_type(), cp1.reference_id.as_str(), cp1.amount), (PaymentType::Cp, pa.id.as_str(), 400));
    p.capture(&pa.id, 600).await.unwrap();
    let over = p.capture(&pa.id, 1).await.unwrap_err();
    assert_eq!((over.code(), reason(&over).as_str()), (Code::FailedPrecondition, "amount_exceeds_authorized"));
    let reverse = p.reverse(&pa.id).await.unwrap_err();
    assert_eq!(reason(&reverse), "invalid_state_transition", "a captured PA cannot be reversed");
    let read = p.get_payment(&pa.id).await.unwrap();
    assert_eq!((read.captured_amount, read.reversed), (1000, false), "the refused calls changed nothing");

    let rf = p.refund(&cp1.id, 300).await.unwrap();
    assert_eq!((rf.payment_type(), rf.reference_id.as_str()), (PaymentType::Rf, cp1.id.as_str()));
    p.refund(&cp1.id, 100).await.unwrap();
    let too_much = p.refund(&cp1.id, 1).await.unwrap_err();
    assert_eq!(reason(&too_much), "amount_exceeds_authorized", "refunds stop at the captured amount");
    let cp = p.get_payment(&cp1.id).await.unwrap();
    assert_eq!((cp.captured_amount, cp.refunded_amount), (400, 400));
    let on_pa = p.refund(&pa.id, 1).await.unwrap_err();
    assert_eq!(reason(&on_pa), "invalid_state_transition", "a PA is captured, not refunded");
    assert_eq!(p.ledger(by_payment(&pa.id)).await, ["PA", "CP", "CP"]);
    p.stop().await;
}

#[tokio::test]
async fn a_reversed_authorization_cannot_be_captured_and_a_race_has_one_winner() {
    let p = TestPlatform::start().await;
    let authorize = || pay(PaymentType::Pa, 500, "USD", with_card("4242424242424242"));
    let pa = p.create_payment(authorize()).await.unwrap();
    let rv = p.reverse(&pa.id).await.unwrap();
    assert_eq!((rv.payment_type(), rv.result.unwrap().code.as_str()), (PaymentType::Rv, SUCCESS_TEST));
    let cp = p.capture(&pa.id, 100).await.unwrap_err();
    assert_eq!(reason(&cp), "invalid_state_transition");
    let twice = p.reverse(&pa.id).await.unwrap_err();
    assert_eq!(reason(&twice), "invalid_state_transition");

    // A concurrent capture and reversal of one PA: exactly one succeeds, every time.
    for _ in 0..8 {
        let pa = p.create_payment(authorize()).await.unwrap();
        let (captured, reversed) = tokio::join!(p.capture(&pa.id, 500), p.reverse(&pa.id));
        assert!(
            captured.is_ok() != reversed.is_ok(),
            "capture {:?} / reverse {:?}",
            captured.is_ok(),
            reversed.is_ok()
        );
        let read = p.get_payment(&pa.id).await.unwrap();
        assert!(read.captured_amount == 0 || !read.reversed);
    }
    p.stop().await;
}

#[tokio::test]
async fn save_card_for_later_then_one_click_with_several_cards_per_customer() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    // Omise's "save card for later": a single-use token attached to a customer.
    let t = p.single_use_token("4242424242424242").await;
    let request = pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Token(t.clone())),
        customer_id: "cus_1".into(),
        verify: false,
    };
    let first = p.create_registration(request).await.unwrap();
    assert_eq!(first.id.len(), 32);
    let verified = register(stored_card("5555555555554444", 1, 2031), "cus_1", true);
    let second = p.create_registration(verified).await.unwrap();
    assert_eq!(second.result.unwrap().code, SUCCESS_TEST);
    let list = p
        .registrations()
        .list_registrations(authed(
            &skey,
            pb::ListRegistrationsRequest { customer_id: "cus_1".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: HashSet<_> = list.registrations.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, HashSet::from([first.id.clone(), second.id.clone()]));
    assert!(list.registrations.iter().all(|r| !r.brand.is_empty() && r.last_digits.len() == 4));

    // One click: a PA over the stored card, then its capture.
    let one_click = pb::CreatePaymentRequest {
        standing_instruction: si(pb::StandingInstructionMode::Repeated, pb::StandingInstructionSource::Cit),
        ..pay(PaymentType::Pa, 2500, "EUR", registration(&first.id))
    };
    let pa = p.create_payment(one_click).await.unwrap();
    assert_eq!((pa.result.unwrap().code.as_str(), pa.registration_id.as_str()), (SUCCESS_TEST, first.id.as_str()));
    p.capture(&pa.id, 2500).await.unwrap();

    let declined_verification = register(stored_card("4000000000000002", 1, 2031), "cus_1", true);
    let refused = p.create_registration(declined_verification).await.unwrap();
    assert!(
        refused.id.is_empty() && refused.result.unwrap().code.starts_with("800."),
        "no registration for a declined card"
    );
    assert_eq!(p.ledger(by_token(&first.id)).await, ["RG", "PA", "CP"]);
    p.stop().await;
}

#[tokio::test]
async fn card_on_file_cit_then_mit_and_mit_refused_without_cit() {
    let p = TestPlatform::start().await;
    let initial = pb::CreatePaymentRequest {
        create_registration: true,
        customer_id: "cus_9".into(),
        standing_instruction: si(pb::StandingInstructionMode::Initial, pb::StandingInstructionSource::Cit),
        ..pay(PaymentType::Db, 1500, "EUR", with_card("4012888888881881"))
    };
    let cit = p.create_payment(initial).await.unwrap();
    assert_eq!(cit.result.as_ref().unwrap().code, SUCCESS_TEST);
    assert_eq!(cit.registration_id.len(), 32, "tokenized during the payment");
    let mit = |r: &str| pb::CreatePaymentRequest {
        standing_instruction: si(pb::StandingInstructionMode::Repeated, pb::StandingInstructionSource::Mit),
        ..pay(PaymentType::Db, 990, "EUR", registration(r))
    };
    let repeat = p.create_payment(mit(&cit.registration_id)).await.unwrap();
    assert_eq!(repeat.result.unwrap().code, SUCCESS_TEST);
    // A MIT naming its initial transaction: the CIT on its token is taken; a made-up id, a
    // payment that is no INITIAL CIT, or the CIT of another token is refused.
    let naming = |r: &str, initial: &str| {
        let mut request = mit(r);
        request.standing_instruction.as_mut().unwrap().initial_transaction_id = initial.into();
        request
    };
    let named = p.create_payment(naming(&cit.registration_id, &cit.id)).await.unwrap();
    assert_eq!(named.result.unwrap().code, SUCCESS_TEST);
    for made_up in ["not-a-payment", repeat.id.as_str()] {
        let refused = p.create_payment(naming(&cit.registration_id, made_up)).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "mit_without_cit"));
    }

    let standalone = register(stored_card("4242424242424242", 1, 2031), "cus_9", false);
    let no_cit = p.create_registration(standalone).await.unwrap();
    for refused in [mit(&no_cit.id), naming(&no_cit.id, &cit.id)] {
        let refused = p.create_payment(refused).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "mit_without_cit"));
    }
    assert_eq!(p.ledger(by_token(&no_cit.id)).await, ["RG"], "nothing was charged");
    assert_eq!(p.ledger(by_token(&cit.registration_id)).await, ["RG", "DB", "DB"]);
    p.stop().await;
}

#[tokio::test]
async fn omni_tokens_write_tk_dt_dl_and_a_deleted_token_cannot_pay() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let first = pb::CreatePaymentRequest {
        create_omni_token: true,
        ..pay(PaymentType::Db, 700, "EUR", with_card("4111111111111111"))
    };
    let paid = p.create_payment(first).await.unwrap();
    assert!(paid.omni_token.starts_with("omni_test_"), "{}", paid.omni_token);
    p.create_payment(pay(PaymentType::Db, 300, "EUR", omni(&paid.omni_token))).await.unwrap();
    let delete = authed(&skey, pb::DeleteOmniTokenRequest { id: paid.omni_token.clone() });
    assert!(p.omni().delete_omni_token(delete).await.unwrap().into_inner().deleted);
    let refused = p.create_payment(pay(PaymentType::Db, 300, "EUR", omni(&paid.omni_token))).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::NotFound, "token_deleted"));
    let types = p.ledger(by_token(&paid.omni_token)).await;
    assert_eq!(types, ["TK", "DT", "DB", "DL"], "{types:?}");

    let standalone = pb::CreateOmniTokenRequest {
        card: Some(pb::Card { name: "J D".into(), ..stored_card("5555555555554444", 3, 2032) }),
        customer_id: "cus_o".into(),
        verify: false,
    };
    let o = p.omni().create_omni_token(authed(&skey, standalone)).await.unwrap().into_inner();
    assert!(o.id.starts_with("omni_test_"));
    assert_eq!(p.ledger(by_token(&o.id)).await, ["TK"]);
    p.stop().await;
}

#[tokio::test]
async fn registration_deletion_refuses_payment_and_extension_lasts_24_months() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let request = register(stored_card("4242424242424242", 12, 2030), "cus_x", false);
    let reg = p.create_registration(request).await.unwrap();
    let extend = authed(&skey, pb::ExtendRegistrationRequest { id: reg.id.clone() });
    let extended = p.registrations().extend_registration(extend).await.unwrap().into_inner();
    assert!(extended.extended);
    assert!(extended.retain_until.unwrap().seconds > reg.retain_until.unwrap().seconds);
    let delete = authed(&skey, pb::DeleteRegistrationRequest { id: reg.id.clone() });
    assert!(p.registrations().delete_registration(delete).await.unwrap().into_inner().deleted);
    let refused = p.create_payment(pay(PaymentType::Db, 100, "EUR", registration(&reg.id))).await.unwrap_err();
    assert_eq!(reason(&refused), "token_deleted");
    assert_eq!(p.ledger(by_token(&reg.id)).await, ["RG", "DR"]);
    p.stop().await;
}

#[tokio::test]
async fn sixteen_identical_requests_with_one_key_make_one_payment() {
    let p = TestPlatform::start().await;
    let t = p.single_use_token("4242424242424242").await;
    let request = pay(PaymentType::Db, 4200, "EUR", token(&t));
    let calls = (0..16).map(|_| {
        let mut client = p.payments();
        let mut r = authed(&p.skey(), request.clone());
        r.metadata_mut().insert("idempotency-key", "order-42".parse().unwrap());
        async move { client.create_payment(r).await }
    });
    let results = futures::future::join_all(calls).await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok().map(|r| r.get_ref().clone())).collect();
    assert_eq!(
        ok.len(),
        16,
        "every duplicate got the first answer: {:?}",
        results.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>()
    );
    assert!(ok.iter().all(|r| *r == ok[0]), "identical responses");
    assert_eq!(p.ledger(by_token(&t)).await, ["DB"], "exactly one payment");

    let mut different = authed(&p.skey(), pay(PaymentType::Db, 4300, "EUR", token(&t)));
    different.metadata_mut().insert("idempotency-key", "order-42".parse().unwrap());
    let err = p.payments().create_payment(different).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "idempotency_key_reused"));
    p.stop().await;
}

#[tokio::test]
async fn a_duplicate_that_cannot_wait_for_the_first_is_told_the_key_is_in_use() {
    let p = TestPlatform::start().await;
    // An amount ending in 99: the acquirer never answers, the first request runs into its timeout.
    let request = || {
        let mut r = authed(&p.skey(), pay(PaymentType::Db, 1099, "EUR", with_card("4242424242424242")));
        r.metadata_mut().insert("idempotency-key", "slow-1".parse().unwrap());
        r
    };
    let (mut a, mut b) = (p.payments(), p.payments());
    let first = a.create_payment(request());
    // The duplicate comes once the first has claimed the key (150 ms, time
    // enough on a loaded machine) and gives up (its 300 ms deadline leaves it
    // 150 ms to wait) long before the first's acquirer timeout (1 s) ends it.
    let duplicate = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let mut r = request();
        r.set_timeout(std::time::Duration::from_millis(300));
        b.create_payment(r).await
    };
    let (first, duplicate) = tokio::join!(first, duplicate);
    let first = first.unwrap().into_inner();
    assert_eq!(first.result.unwrap().code, "000.200.000", "pending, not approved");
    assert_eq!(first.status, pb::PaymentStatus::Pending as i32);
    let err = duplicate.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::Aborted, "idempotency_key_in_use"));
    // Once the first has given its answer, a retry with the key resumes the
    // same payment: the acquirer, asked what became of it, says it was
    // processed (an amount ending in 99), and that is the final answer.
    let retry = p.payments().create_payment(request()).await.unwrap().into_inner();
    assert_eq!((retry.id.as_str(), retry.status), (first.id.as_str(), pb::PaymentStatus::Approved as i32));
    assert_eq!(retry.result.unwrap().code, "000.100.110");
    let replay = p.payments().create_payment(request()).await.unwrap().into_inner();
    assert_eq!((replay.id, replay.status), (first.id, pb::PaymentStatus::Approved as i32), "then replayed");
    p.stop().await;
}

#[tokio::test]
async fn a_vault_outage_is_unavailable_and_records_nothing() {
    let p = TestPlatform::start_with_vault_down().await;
    let t = p.single_use_token("4242424242424242").await;
    let mut request = authed(&p.skey(), pay(PaymentType::Db, 100, "EUR", token(&t)));
    request.set_timeout(std::time::Duration::from_secs(3));
    let err = p.payments().create_payment(request).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::Unavailable, "vault_unavailable"));
    assert!(p.ledger(by_token(&t)).await.is_empty());
    p.stop().await;
}

#[tokio::test]
async fn card_numbers_in_text_fields_are_refused_before_any_side_effect() {
    // As people paste them: with the CVV or expiry after, with dots, in a sentence.
    let hostile = [
        "4242 4242 4242 4242 737",
        "4242424242424242 1230",
        "4242.4242.4242.4242",
        "order 4012 8888 8888 1881 737",
        "Jane 4242 4242 4242 4242 737",
    ];
    let p = TestPlatform::start().await;
    let t = p.single_use_token("4242424242424242").await;
    for text in hostile {
        let base = || pay(PaymentType::Db, 100, "EUR", token(&t));
        for request in e2e::text_in_each_field(text, base) {
            let err = p.create_payment(request).await.unwrap_err();
            assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "card_number_in_text"), "{text}");
            assert!(!err.message().contains(text), "the message never echoes it");
        }
        let base_card = || match with_card("5555555555554444") {
            pb::create_payment_request::Source::Card(c) => c,
            _ => unreachable!("with_card gives a card"),
        };
        for c in e2e::text_in_each_card_field(text, base_card) {
            let source = pb::create_payment_request::Source::Card(c);
            let err = p.create_payment(pay(PaymentType::Db, 100, "EUR", source)).await.unwrap_err();
            assert_eq!(reason(&err), "card_number_in_text", "a card field: {text}");
            assert!(!err.message().contains(text), "the message never echoes it");
        }
        for header in ["idempotency-key", "x-correlation-id"] {
            let mut request = authed(&p.skey(), base());
            request.metadata_mut().insert(header, text.parse().unwrap());
            let err = p.payments().create_payment(request).await.unwrap_err();
            assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "card_number_in_text"), "{header}");
        }
    }
    // Our own kind of ids pass: a UUID and 32 hex with long digit runs.
    for key in ["123e4567-e89b-12d3-a456-426614174000", "3f2a4242424242424242b1c0ffee0000"] {
        let mut request = authed(&p.skey(), pay(PaymentType::Pa, 100, "EUR", with_card("4242424242424242")));
        request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
        p.payments().create_payment(request).await.expect(key);
    }
    let paid = p.create_payment(pay(PaymentType::Db, 100, "EUR", token(&t))).await.unwrap();
    assert_eq!(paid.status(), pb::PaymentStatus::Approved, "nothing consumed the token before");
    p.stop().await;
}

#[tokio::test]
async fn oversized_metadata_is_refused_on_its_own_call_and_the_connection_lives() {
    let p = TestPlatform::start().await;
    let mut client = p.payments();
    let request = || authed(&p.skey(), pay(PaymentType::Pa, 100, "EUR", with_card("4242424242424242")));
    let long_key = "k".repeat(300);
    let mut too_long = request();
    too_long.metadata_mut().insert("idempotency-key", long_key.parse().unwrap());
    let err = client.create_payment(too_long).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "invalid_argument"));
    for (header, size) in [("idempotency-key", 16 * 1024), ("x-padding", 64 * 1024)] {
        let mut big = request();
        big.metadata_mut().insert(header, "k".repeat(size).parse().unwrap());
        let err = client.create_payment(big).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::ResourceExhausted, "metadata_too_large"), "{header}");
        // The same connection goes on serving.
        let fine = client.create_payment(request()).await.unwrap().into_inner();
        assert_eq!(fine.status(), pb::PaymentStatus::Approved);
    }
    p.stop().await;
}

/// Omise's "charge the customer": with no source, a payment uses the customer's
/// default registration, the first one until another is made default.
#[tokio::test]
async fn a_customer_pays_with_its_default_registration_the_first_or_the_chosen() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let by_customer = |customer_id: &str| pb::CreatePaymentRequest {
        payment_type: PaymentType::Db as i32,
        amount: 1200,
        currency: "thb".into(),
        customer_id: customer_id.into(),
        ..Default::default()
    };
    let refused = p.create_payment(by_customer("cus_d")).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::NotFound, "not_found"), "no card on file");
    let no_one = pb::CreatePaymentRequest { customer_id: String::new(), ..by_customer("") };
    assert_eq!(p.create_payment(no_one).await.unwrap_err().code(), Code::InvalidArgument);

    let first =
        p.create_registration(register(stored_card("4242424242424242", 1, 2031), "cus_d", false)).await.unwrap();
    let second =
        p.create_registration(register(stored_card("5555555555554444", 1, 2031), "cus_d", false)).await.unwrap();
    assert!(first.is_default && !second.is_default, "the first registration is the default");
    let defaults = || async {
        let list = pb::ListRegistrationsRequest { customer_id: "cus_d".into(), ..Default::default() };
        let list = p.registrations().list_registrations(authed(&skey, list)).await.unwrap().into_inner();
        assert_eq!(list.registrations.len(), 2);
        list.registrations.into_iter().filter(|r| r.is_default).map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(defaults().await, [first.id.as_str()]);
    let paid = p.create_payment(by_customer("cus_d")).await.unwrap();
    assert_eq!(paid.status, pb::PaymentStatus::Approved as i32);
    assert_eq!((paid.registration_id.as_str(), paid.currency.as_str()), (first.id.as_str(), "THB"));
    assert_eq!(paid.card.unwrap().last_digits, "4242");

    let chosen = authed(&skey, pb::SetDefaultRegistrationRequest { id: second.id.clone() });
    let chosen = p.registrations().set_default_registration(chosen).await.unwrap().into_inner();
    assert!(chosen.is_default && chosen.id == second.id);
    assert_eq!(defaults().await, [second.id.as_str()]);
    let paid = p.create_payment(by_customer("cus_d")).await.unwrap();
    assert_eq!(paid.registration_id, second.id);

    // Another customer has none; a default is a registration of this merchant's customer.
    assert_eq!(p.create_payment(by_customer("cus_other")).await.unwrap_err().code(), Code::NotFound);
    let omni = pb::CreatePaymentRequest {
        create_omni_token: true,
        customer_id: "cus_d".into(),
        ..pay(PaymentType::Db, 100, "EUR", with_card("4111111111111111"))
    };
    let omni = p.create_payment(omni).await.unwrap().omni_token;
    let not_a_registration = authed(&skey, pb::SetDefaultRegistrationRequest { id: omni });
    let refused = p.registrations().set_default_registration(not_a_registration).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // The default deleted, the first is the default again.
    let delete = authed(&skey, pb::DeleteRegistrationRequest { id: second.id.clone() });
    assert!(p.registrations().delete_registration(delete).await.unwrap().into_inner().deleted);
    let paid = p.create_payment(by_customer("cus_d")).await.unwrap();
    assert_eq!(paid.registration_id, first.id);
    assert_eq!(p.ledger(by_token(&second.id)).await, ["RG", "DB", "DR"]);
    assert_eq!(p.ledger(by_token(&first.id)).await, ["RG", "DB", "DB"]);
    p.stop().await;
}

/// OPP's and Till's account verification: a PA of 0 that stores the card, in
/// the ledger with its result, the token stored only when it is approved.
#[tokio::test]
async fn zero_amount_verification_stores_the_card_only_when_approved_and_is_in_the_ledger() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let verify = |source, registration: bool| pb::CreatePaymentRequest {
        create_registration: registration,
        create_omni_token: !registration,
        customer_id: "cus_v".into(),
        ..pay(PaymentType::Pa, 0, "EUR", source)
    };
    let verified = p.create_payment(verify(with_card("4242424242424242"), true)).await.unwrap();
    assert_eq!(verified.status, pb::PaymentStatus::Approved as i32);
    assert_eq!((verified.amount, verified.result.as_ref().unwrap().code.as_str()), (0, SUCCESS_TEST));
    assert_eq!(verified.registration_id.len(), 32);
    let lines = authed(&skey, by_payment(&verified.id));
    let lines = p.payments().list_transactions(lines).await.unwrap().into_inner().transactions;
    let lines: Vec<_> = lines
        .iter()
        .map(|t| (t.transaction_type.as_str(), t.amount, t.result.as_ref().unwrap().code.as_str()))
        .collect();
    assert_eq!(lines, [("PA", 0, SUCCESS_TEST), ("RG", 0, SUCCESS_TEST)]);
    let capture = p.capture(&verified.id, 1).await.unwrap_err();
    assert_eq!(reason(&capture), "amount_exceeds_authorized", "a verification authorizes nothing");

    let t = p.single_use_token("5555555555554444").await;
    let omni = p.create_payment(verify(token(&t), false)).await.unwrap();
    assert!(omni.omni_token.starts_with("omni_test_"), "{}", omni.omni_token);
    assert_eq!(p.ledger(by_payment(&omni.id)).await, ["PA", "TK"]);

    let declined = p.create_payment(verify(with_card("4000000000000002"), true)).await.unwrap();
    assert_eq!(declined.status, pb::PaymentStatus::Declined as i32);
    assert!(declined.registration_id.is_empty());
    assert_eq!(p.ledger(by_payment(&declined.id)).await, ["PA"], "the decline is recorded, nothing stored");
    let list = pb::ListRegistrationsRequest { customer_id: "cus_v".into(), ..Default::default() };
    let list = p.registrations().list_registrations(authed(&skey, list)).await.unwrap().into_inner();
    assert_eq!(
        list.registrations.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [verified.registration_id.as_str()]
    );

    // Zero is a verification only on a PA that stores the card.
    for refused in [
        pay(PaymentType::Pa, 0, "EUR", with_card("4242424242424242")),
        pb::CreatePaymentRequest {
            create_registration: true,
            ..pay(PaymentType::Db, 0, "EUR", with_card("4242424242424242"))
        },
    ] {
        let refused = p.create_payment(refused).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "invalid_amount"));
    }

    // CreateOmniToken{verify} and CreateRegistration{verify} are the same PA of 0.
    let create = |number: &str| pb::CreateOmniTokenRequest {
        card: Some(stored_card(number, 6, 2032)),
        customer_id: "cus_v".into(),
        verify: true,
    };
    let o = p.omni().create_omni_token(authed(&skey, create("4111111111111111"))).await.unwrap().into_inner();
    assert!(o.id.starts_with("omni_test_") && o.result.unwrap().code == SUCCESS_TEST);
    let refused = p.omni().create_omni_token(authed(&skey, create("4000000000000002"))).await.unwrap().into_inner();
    assert!(refused.id.is_empty() && refused.result.unwrap().code.starts_with("800."));
    let reg = p.create_registration(register(stored_card("4012888888881881", 6, 2032), "cus_v", true)).await.unwrap();
    let rg = authed(&skey, by_token(&reg.id));
    let rg = p.payments().list_transactions(rg).await.unwrap().into_inner().transactions;
    assert_eq!(rg.len(), 1);
    assert_eq!(p.ledger(by_payment(&rg[0].payment_id)).await, ["PA", "RG"], "the verification is a payment");
    let verification = p.get_payment(&rg[0].payment_id).await.unwrap();
    assert_eq!((verification.payment_type, verification.amount), (PaymentType::Pa as i32, 0));
    p.stop().await;
}

/// Till's one-click form and extension, on payments-svc as for registrations.
#[tokio::test]
async fn omni_tokens_are_listed_for_a_customer_and_extended() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let create = |number: &str, customer_id: &str| pb::CreateOmniTokenRequest {
        card: Some(stored_card(number, 12, 2030)),
        customer_id: customer_id.into(),
        verify: false,
    };
    let a = p.omni().create_omni_token(authed(&skey, create("4242424242424242", "cus_t"))).await.unwrap().into_inner();
    let b = p.omni().create_omni_token(authed(&skey, create("5555555555554444", "cus_t"))).await.unwrap().into_inner();
    p.omni().create_omni_token(authed(&skey, create("4111111111111111", "cus_u"))).await.unwrap();
    let reg = p.create_registration(register(stored_card("4012888888881881", 1, 2031), "cus_t", false)).await.unwrap();
    let list = pb::ListOmniTokensRequest { customer_id: "cus_t".into(), ..Default::default() };
    let list = p.omni().list_omni_tokens(authed(&skey, list)).await.unwrap().into_inner();
    let listed: HashSet<_> =
        list.omni_tokens.iter().map(|o| (o.id.clone(), o.last_digits.clone(), o.expiration_year)).collect();
    let expected = HashSet::from([(a.id.clone(), "4242".to_owned(), 2030), (b.id.clone(), "4444".to_owned(), 2030)]);
    assert_eq!(listed, expected, "this customer's omni tokens, not its registrations");
    assert!(list.omni_tokens.iter().all(|o| !o.brand.is_empty()));

    let extend = |id: &str| authed(&skey, pb::ExtendOmniTokenRequest { id: id.into() });
    let extended = p.omni().extend_omni_token(extend(&a.id)).await.unwrap().into_inner();
    assert!(extended.extended);
    // 12/2030: 14 months → 1 Feb 2032; 24 months → 1 Dec 2032.
    assert_eq!(a.retain_until.unwrap().seconds, 1_959_206_400);
    assert_eq!(extended.retain_until.unwrap().seconds, 1_985_472_000);
    assert_eq!(p.omni().extend_omni_token(extend(&reg.id)).await.unwrap_err().code(), Code::NotFound);
    let registration = authed(&skey, pb::ExtendRegistrationRequest { id: a.id });
    assert_eq!(p.registrations().extend_registration(registration).await.unwrap_err().code(), Code::NotFound);
    p.stop().await;
}

/// Omise's billing fields on a card (a street that no other test uses, so a
/// scan of payments' database can look for it).
fn billed(number: &str) -> pb::Card {
    pb::Card {
        city: "Bangkok".into(),
        country: "th".into(),
        postal_code: "10320".into(),
        state: "Krung Thep".into(),
        street1: "1448/4 Praditmanutham Road".into(),
        street2: "Floor 7, Unit B".into(),
        phone_number: "+66 2 123 4567".into(),
        ..stored_card(number, 12, 2035)
    }
}

/// The billing fields of a card's metadata, in the order `billed` sets them.
fn billing_of(c: &pb::CardMetadata) -> [&str; 7] {
    [&c.city, &c.country, &c.postal_code, &c.state, &c.street1, &c.street2, &c.phone_number].map(String::as_str)
}

const BILLED: [&str; 7] =
    ["Bangkok", "TH", "10320", "Krung Thep", "1448/4 Praditmanutham Road", "Floor 7, Unit B", "+66 2 123 4567"];

/// Every billing field travels with the card to the vault and comes back on
/// the registration and omni token (the vault's metadata); a replay of the
/// same idempotent call shows them too, though payments-svc keeps none of
/// them in its database; a payment's card never shows them.
#[tokio::test]
async fn billing_fields_go_to_the_vault_and_come_back_but_stay_out_of_payments_database() {
    let p = TestPlatform::start().await;
    let skey = p.skey();
    let scope = |id: &str| proto::vault::v1::DescribeTokenRequest {
        merchant_id: p.vault.merchant.id.clone(),
        id: id.into(),
        ..Default::default()
    };

    let keyed = || {
        let mut request = authed(&skey, register(billed("4242424242424242"), "cus_bill", false));
        request.metadata_mut().insert("idempotency-key", "billing-reg-1".parse().unwrap());
        request
    };
    let registration = p.registrations().create_registration(keyed()).await.unwrap().into_inner();
    assert_eq!(billing_of(registration.card.as_ref().unwrap()), BILLED);
    let replayed = p.registrations().create_registration(keyed()).await.unwrap().into_inner();
    assert_eq!(replayed, registration, "the replay is the first answer, billing included");
    let described = p.vault.vault().describe_token(scope(&registration.id)).await.unwrap().into_inner();
    let card = described.card.unwrap();
    assert_eq!(
        [&card.city, &card.country, &card.postal_code, &card.state, &card.street1, &card.street2, &card.phone_number]
            .map(String::as_str),
        BILLED
    );

    let omni = pb::CreateOmniTokenRequest { card: Some(billed("5555555555554444")), ..Default::default() };
    let omni = p.omni().create_omni_token(authed(&skey, omni)).await.unwrap().into_inner();
    assert_eq!(billing_of(omni.card.as_ref().unwrap()), BILLED);

    // A payment with a card that asks for an omni token: the token has them, the payment does not.
    let paid = pb::CreatePaymentRequest {
        create_omni_token: true,
        ..pay(PaymentType::Db, 700, "EUR", pb::create_payment_request::Source::Card(billed("4111111111111111")))
    };
    let paid = p.create_payment(paid).await.unwrap();
    assert_eq!(paid.status(), pb::PaymentStatus::Approved);
    assert_eq!(billing_of(paid.card.as_ref().unwrap()), [""; 7], "a payment's card has no address");
    let token = p.vault.vault().describe_token(scope(&paid.omni_token)).await.unwrap().into_inner();
    assert_eq!(token.card.unwrap().street1, BILLED[4]);

    let store =
        payments_svc::storage::sql::SqlStore::connect(&p.payments_database_url, 2, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    for table in ["payments", "transactions", "idempotency_keys"] {
        let values = e2e::table_values(store.pool(), &[table]).await;
        let saw = [&registration.id, &paid.id].iter().any(|id| values.iter().any(|v| v.contains(id.as_str())));
        assert!(saw, "the scan saw {table}'s rows");
        for field in ["Praditmanutham", "Floor 7, Unit B", "+66 2 123 4567", "Krung Thep"] {
            assert!(!values.iter().any(|v| v.contains(field)), "payments' {table} holds {field:?}");
        }
    }
    p.stop().await;
}

/// Each billing field's refusal has its own reason and names the field, and
/// comes before any side effect: no payment, no ledger line, no token.
#[tokio::test]
async fn bad_billing_fields_are_refused_with_their_reason_before_anything_happens() {
    let p = TestPlatform::start().await;
    let pkey = p.pkey();
    let with = |set: &dyn Fn(&mut pb::Card)| {
        let mut card = billed("4242424242424242");
        set(&mut card);
        card
    };
    let cases: [(pb::Card, &str, &str); 5] = [
        (with(&|c| c.country = "XX".into()), "invalid_country", "card.country"),
        (with(&|c| c.country = "UK".into()), "invalid_country", "card.country"),
        (with(&|c| c.street1 = "4242 4242 4242 4242".into()), "card_number_in_text", "card.street1"),
        (with(&|c| c.city = "Bang\0kok".into()), "invalid_billing_address", "card.city"),
        (with(&|c| c.phone_number = "9".repeat(256)), "invalid_billing_address", "card.phone_number"),
    ];
    for (card, expected, field) in cases {
        let source = pb::create_payment_request::Source::Card(card.clone());
        let refusals = [
            p.create_payment(pay(PaymentType::Db, 100, "EUR", source)).await.unwrap_err(),
            p.create_registration(register(card.clone(), "cus_bad", false)).await.unwrap_err(),
            p.create_registration(register(card.clone(), "cus_bad", true)).await.unwrap_err(),
            p.omni()
                .create_omni_token(authed(
                    &p.skey(),
                    pb::CreateOmniTokenRequest { card: Some(card.clone()), ..Default::default() },
                ))
                .await
                .unwrap_err(),
        ];
        for err in refusals {
            assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, expected), "{field}");
            assert_eq!(common::grpc::error_field(&err).as_deref(), Some(field));
            assert!(err.message().contains(field) && !err.message().contains("4242"), "{}", err.message());
        }
        // The vault's public CreateToken refuses it the same way.
        let as_vault_card = proto::vault::v1::Card {
            number: card.number.clone(),
            expiration_month: card.expiration_month,
            expiration_year: card.expiration_year,
            name: card.name.clone(),
            city: card.city.clone(),
            country: card.country.clone(),
            postal_code: card.postal_code.clone(),
            state: card.state.clone(),
            street1: card.street1.clone(),
            street2: card.street2.clone(),
            phone_number: card.phone_number.clone(),
            ..Default::default()
        };
        let err = p.vault.create_token(&pkey, as_vault_card).await.unwrap_err();
        assert_eq!((reason(&err).as_str(), common::grpc::error_field(&err).as_deref()), (expected, Some(field)));
    }
    let listed = p
        .registrations()
        .list_registrations(authed(
            &p.skey(),
            pb::ListRegistrationsRequest { customer_id: "cus_bad".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.registrations.is_empty(), "nothing was stored");
    let since = pb::ListTransactionsRequest {
        from: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
        to: Some(prost_types::Timestamp { seconds: i64::from(i32::MAX), nanos: 0 }),
        ..Default::default()
    };
    assert!(p.ledger(since).await.is_empty(), "no payment, no ledger line");
    assert!(e2e::redis_values(p.vault.redis_prefix.as_deref().unwrap()).await.is_empty(), "no single-use token");
    p.stop().await;
}
