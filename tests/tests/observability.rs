//! What operators see: Prometheus metrics of every gRPC call, and the trace
//! context of a payment crossing into the vault (its trace id is the vault's
//! audit correlation id).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use e2e::{TestPlatform, authed, reason};
use proto::payments::v1::{self as pb, PaymentType};
use proto::vault::v1 as vpb;

fn scrape(port: u16) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    body
}

fn card_payment(amount: i64) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        payment_type: PaymentType::Db as i32,
        amount,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::Card(pb::Card {
            number: "4242424242424242".into(),
            expiration_month: 12,
            expiration_year: 2035,
            name: "Jane Doe".into(),
            security_code: "123".into(),
            ..Default::default()
        })),
        create_registration: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_counted_by_method_and_code() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    common::metrics::install(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    let p = TestPlatform::start().await;
    p.create_payment(card_payment(100)).await.unwrap();
    let refused = p.create_payment(card_payment(0)).await.unwrap_err();
    assert_eq!(reason(&refused), "invalid_amount");
    let mut body = String::new();
    for _ in 0..50 {
        body = scrape(port);
        if body.contains("code=\"3\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let create = "method=\"/payvault.payments.v1.Payments/CreatePayment\"";
    let has = |code: &str| {
        body.lines().any(|l| l.starts_with("grpc_server_requests_total") && l.contains(create) && l.contains(code))
    };
    assert!(has("code=\"0\"") && has("code=\"3\""), "{body}");
    assert!(body.contains("/payvault.vault.v1.Vault/Tokenize"), "the vault's calls are counted too");
    assert!(body.contains("grpc_server_request_duration_seconds"));
    p.stop().await;
}

#[tokio::test]
async fn a_payments_trace_id_reaches_the_vault() {
    let p = TestPlatform::start().await;
    let created = p.create_payment(card_payment(100)).await.unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let one_click = pb::CreatePaymentRequest {
        payment_type: PaymentType::Db as i32,
        amount: 200,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::RegistrationId(created.registration_id.clone())),
        ..Default::default()
    };
    let mut request = authed(&p.skey(), one_click);
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    p.payments().create_payment(request).await.unwrap();
    let audit = vpb::ListAuditEventsRequest {
        merchant_id: p.vault.merchant.id.clone(),
        token_id: created.registration_id.clone(),
        ..Default::default()
    };
    let events = p.vault.vault().list_audit_events(audit).await.unwrap().into_inner().events;
    let dt = events.iter().find(|e| e.event_type == "DT").expect("a DT event");
    assert_eq!((dt.correlation_id.as_str(), dt.actor.as_str()), (trace_id, "payments-svc"));
    p.stop().await;
}
