//! OpenTelemetry traces against a real OTLP/gRPC receiver (the generated
//! `TraceService` server of opentelemetry-proto, nothing of ours): both
//! services, started as processes with only the standard `OTEL_*` variables,
//! export their spans to it. A DB payment over a single-use token and a
//! one-click payment are one trace each under the caller's `traceparent`:
//! the payments-svc server span, its vault client span, the vault's server
//! span beneath it, and a span per Redis and SQL round trip, with the
//! semantic-convention attributes, and nothing card-like anywhere. With the
//! collector away, payments still succeed and the processes' memory stays flat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use e2e::authed;
use e2e::procs::load::db_over;
use e2e::procs::platform::{Platform, PlatformOptions};
use e2e::procs::util::spare_port;
use proto::payments::v1 as pb;

/// A span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    /// Everything the span carries as text: name, attributes, events.
    text: String,
}

#[derive(Default, Clone)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let attrs = resource.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attrs
                .iter()
                .find(|a| a.key == "service.name")
                .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attributes: HashMap<String, String> = span
                    .attributes
                    .iter()
                    .map(|a| (a.key.clone(), text(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                    .collect();
                let events = span.events.iter().flat_map(|e| {
                    std::iter::once(e.name.clone())
                        .chain(e.attributes.iter().map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                });
                let text = std::iter::once(span.name.clone())
                    .chain(attributes.iter().map(|(k, v)| format!("{k}={v}")))
                    .chain(events)
                    .collect::<Vec<_>>()
                    .join("\n");
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes,
                    text,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Receiver {
    async fn start(port: u16) -> (Self, tokio::task::JoinHandle<()>) {
        let receiver = Self::default();
        let service = TraceServiceServer::new(receiver.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        (receiver, task)
    }

    /// The spans of `trace_id` once `enough` holds for them (or after 10 s).
    async fn trace(&self, trace_id: &str, enough: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..100 {
            let spans: Vec<Received> =
                self.0.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
            if enough(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.0.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }

    fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

fn otel_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://127.0.0.1:{port}")),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT".into(), "1000".into()),
    ]
}

/// A request carrying a `traceparent` with this trace id.
fn traced<T>(key: &str, message: T, trace_id: &str) -> tonic::Request<T> {
    let mut request = authed(key, message);
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    request
}

fn find<'a>(spans: &'a [Received], service: &str, kind: SpanKind, name: &str) -> &'a Received {
    spans
        .iter()
        .find(|s| s.service == service && s.kind == kind as i32 && s.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} span {name} from {service} in {:#?}", names(spans)))
}

fn names(spans: &[Received]) -> Vec<String> {
    spans.iter().map(|s| format!("{} {} {}", s.service, s.name, s.parent)).collect()
}

/// The chain a payment's trace must hold: payments server → vault client →
/// vault server, and store round trips on both sides.
fn assert_payment_trace(spans: &[Received], vault_method: &str, vault_store: &str, merchant_id: &str) {
    let server = find(spans, "payments-svc", SpanKind::Server, "payvault.payments.v1.Payments/CreatePayment");
    assert_eq!(server.parent, "00f067aa0ba902b7", "the payments span is the caller's child");
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "payvault.payments.v1.Payments"),
        ("rpc.method", "CreatePayment"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(server.attributes.get(key).map(String::as_str), Some(value), "{key} on {server:#?}");
    }
    let client_name = format!("payvault.vault.v1.Vault/{vault_method}");
    let client = find(spans, "payments-svc", SpanKind::Client, &client_name);
    assert!(spans.iter().any(|s| s.span_id == client.parent), "the client span sits in the payment's tree");
    assert!(client.attributes.contains_key("server.address"));
    let vault = find(spans, "vault-svc", SpanKind::Server, &client_name);
    assert_eq!(vault.parent, client.span_id, "the vault's span is the client span's child, across the processes");
    for server in [server, vault] {
        assert_eq!(server.attributes.get("merchant").map(String::as_str), Some(merchant_id), "{server:#?}");
    }
    let db = |service: &str, system: &str| {
        spans.iter().any(|s| {
            s.service == service
                && s.kind == SpanKind::Client as i32
                && s.attributes.get("db.system").map(String::as_str) == Some(system)
        })
    };
    assert!(db("payments-svc", "postgresql"), "payments' SQL round trips: {:#?}", names(spans));
    assert!(db("vault-svc", vault_store), "the vault's {vault_store} round trips: {:#?}", names(spans));
}

fn assert_nothing_card_like(spans: &[Received], secrets: &[String]) {
    let text: String = spans.iter().map(|s| s.text.clone()).collect::<Vec<_>>().join("\n");
    let strict: Vec<String> = common::card::find_pans(&text).collect();
    let carded: Vec<String> = spans
        .iter()
        .flat_map(|s| s.text.lines().map(move |line| (s, line)))
        .filter(|(_, line)| common::card::naive_pans(line).next().is_some())
        .map(|(s, line)| format!("{} {}: {}", s.service, s.name, line.split('=').next().unwrap_or_default()))
        .collect();
    assert!(strict.is_empty(), "card numbers in {} spans: {carded:#?}", strict.len());
    assert_eq!(common::card::naive_pans(&text).count(), 0, "Luhn-valid digit runs in spans: {carded:#?}");
    assert_eq!(common::bank::find_ibans(&text).count(), 0, "IBANs in spans");
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a key or idempotency key in a span");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_one_trace_across_both_services_and_holds_no_card_data() {
    let port = spare_port();
    let (receiver, _task) = Receiver::start(port).await;
    let mut payments_env = otel_env(port);
    payments_env.push(("PAYMENTS__TELEMETRY__LOG_FORMAT".into(), "json".into()));
    let options = PlatformOptions { vault_env: otel_env(port), payments_env, ..Default::default() };
    let p = Platform::start(options).await;
    let skey = p.keys.skey.clone();
    let key = "e2e-trace-key-0001".to_owned();

    // A DB payment over a single-use token.
    let token = p.token("4242424242424242").await;
    let db_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = traced(&skey, db_over(&token, 1234), db_trace);
    request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
    let paid = p.payments_client().create_payment(request).await.unwrap().into_inner();
    assert_eq!(paid.status, pb::PaymentStatus::Approved as i32);
    let enough = |vault_method: &'static str| {
        move |spans: &[Received]| {
            spans.iter().any(|s| s.service == "vault-svc" && s.name.ends_with(vault_method))
                && spans.iter().any(|s| s.service == "payments-svc" && s.name.ends_with("CreatePayment"))
        }
    };
    let spans = receiver.trace(db_trace, enough("Detokenize")).await;
    assert_payment_trace(&spans, "Detokenize", "redis", &p.keys.merchant_id);
    // One vault round trip on the response path: the token's charge status is
    // reported after the payment answered, batched, in a trace of its own.
    let report = "payvault.vault.v1.Vault/ReportCharges";
    let mut reported = Vec::new();
    for _ in 0..100 {
        reported = receiver.all().into_iter().filter(|s| s.service == "vault-svc" && s.name == report).collect();
        if !reported.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!reported.is_empty(), "the charge status was reported");
    assert!(reported.iter().all(|s| s.trace_id != db_trace), "the report is not part of the payment's trace");
    let vault_calls: Vec<String> = receiver
        .trace(db_trace, enough("Detokenize"))
        .await
        .iter()
        .filter(|s| s.service == "payments-svc" && s.kind == SpanKind::Client as i32)
        .filter(|s| s.name.starts_with("payvault.vault.v1.Vault/"))
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(vault_calls, ["payvault.vault.v1.Vault/Detokenize"], "the payment's vault calls");

    // A one-click payment: a registration, then a CIT over it.
    let card = pb::Card {
        number: "5555555555554444".into(),
        expiration_month: 12,
        expiration_year: 2031,
        name: "Jane Doe".into(),
        ..Default::default()
    };
    let register = pb::CreateRegistrationRequest {
        source: Some(pb::create_registration_request::Source::Card(card)),
        customer_id: "cus_trace".into(),
        verify: false,
    };
    let registrations = e2e::RegistrationsClient::new(p.payments.channel());
    let registration = registrations.clone().create_registration(authed(&skey, register)).await.unwrap().into_inner();
    let one_click_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let one_click = pb::CreatePaymentRequest {
        payment_type: pb::PaymentType::Db as i32,
        amount: 2500,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::RegistrationId(registration.id.clone())),
        standing_instruction: Some(pb::StandingInstruction {
            mode: pb::StandingInstructionMode::Repeated as i32,
            r#type: pb::StandingInstructionType::Unscheduled as i32,
            source: pb::StandingInstructionSource::Cit as i32,
            initial_transaction_id: String::new(),
        }),
        ..Default::default()
    };
    let paid = p.payments_client().create_payment(traced(&skey, one_click, one_click_trace)).await.unwrap();
    assert_eq!(paid.into_inner().status, pb::PaymentStatus::Approved as i32);
    let spans = receiver.trace(one_click_trace, enough("Detokenize")).await;
    assert_payment_trace(&spans, "Detokenize", "postgresql", &p.keys.merchant_id);

    // A SEPA direct debit from a raw account, stored as a registration, then one over it.
    let account =
        pb::BankAccount { iban: "DE89 3704 0044 0532 0130 00".into(), holder: "Jane Doe".into(), ..Default::default() };
    let mandate = Some(pb::Mandate { id: "MNDT-TRACE-1".into(), date_of_signature: "2025-01-15".into() });
    let sepa_trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let direct_debit = pb::CreatePaymentRequest {
        payment_type: pb::PaymentType::Db as i32,
        amount: 3000,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::BankAccount(account)),
        create_registration: true,
        customer_id: "cus_trace".into(),
        mandate: mandate.clone(),
        ..Default::default()
    };
    let paid = p.payments_client().create_payment(traced(&skey, direct_debit, sepa_trace)).await.unwrap().into_inner();
    assert_eq!(paid.status, pb::PaymentStatus::Approved as i32);
    let over = pb::CreatePaymentRequest {
        payment_type: pb::PaymentType::Db as i32,
        amount: 3100,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::RegistrationId(paid.registration_id.clone())),
        mandate,
        ..Default::default()
    };
    let sepa_over_trace = "7bf92f3577b34da6a3ce929d0e0e4739";
    let paid = p.payments_client().create_payment(traced(&skey, over, sepa_over_trace)).await.unwrap();
    assert_eq!(paid.into_inner().status, pb::PaymentStatus::Approved as i32);
    let spans = receiver.trace(sepa_over_trace, enough("Detokenize")).await;
    assert_payment_trace(&spans, "Detokenize", "postgresql", &p.keys.merchant_id);
    receiver.trace(sepa_trace, enough("Tokenize")).await;
    for (service, logs) in [("payments-svc", p.payments.logs()), ("vault-svc", p.vault.logs())] {
        assert_eq!(common::bank::find_ibans(&logs.to_uppercase()).count(), 0, "IBANs in {service}'s logs");
    }

    let secrets = [skey.clone(), p.keys.pkey.clone(), key];
    assert_nothing_card_like(&receiver.all(), &secrets);
    assert_json_logs(&p.payments.logs(), db_trace, &p.keys.merchant_id);
    assert!(!p.vault.logs().contains('\u{1b}'), "text logs to a file carry no escape codes");
}

/// payments-svc's JSON lines: every line inside a traced span names its
/// trace and span; one line per call with method, code, duration, merchant.
fn assert_json_logs(logs: &str, trace_id: &str, merchant_id: &str) {
    let lines: Vec<serde_json::Value> =
        logs.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty(), "payments-svc writes JSON lines");
    for line in lines.iter().filter(|l| l.get("span").is_some()) {
        assert!(
            line.get("trace_id").is_some() && line.get("span_id").is_some(),
            "a line in a span without ids: {line}"
        );
    }
    let call = lines
        .iter()
        .find(|l| l["trace_id"] == trace_id && l["fields"]["message"] == "call")
        .unwrap_or_else(|| panic!("no call line in trace {trace_id}"));
    let fields = &call["fields"];
    assert_eq!(fields["method"], "/payvault.payments.v1.Payments/CreatePayment");
    assert_eq!((fields["code"].as_i64(), fields["merchant"].as_str()), (Some(0), Some(merchant_id)));
    assert!(fields["duration_us"].as_u64().is_some_and(|us| us > 0), "{call}");
    assert_eq!(call["level"], "INFO");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_away_payments_succeed_and_memory_stays_flat() {
    // Nothing listens on the port: every export fails.
    let port = spare_port();
    let options = PlatformOptions { vault_env: otel_env(port), payments_env: otel_env(port), ..Default::default() };
    let p = Platform::start(options).await;
    let skey = p.keys.skey.clone();
    let pay = |round: usize| {
        let (p, skey) = (&p, &skey);
        async move {
            for _ in 0..round {
                let token = p.token("4242424242424242").await;
                let paid = p.payments_client().create_payment(authed(skey, db_over(&token, 100))).await.unwrap();
                assert_eq!(paid.into_inner().status, pb::PaymentStatus::Approved as i32);
            }
        }
    };
    pay(200).await;
    let pid = p.payments.pid().unwrap();
    let before = rss_kib(pid);
    pay(600).await;
    let after = rss_kib(pid);
    // The batch queue is bounded (2,048 spans): what the collector does not
    // take is dropped, not kept.
    assert!(after < before + 16 * 1024, "payments-svc grew from {before} KiB to {after} KiB with the collector away");
}
