//! The operators' assets in deploy/observability read only metrics the
//! services export, and the gauges they chart move. Both real binaries run
//! with their `/metrics` ports; a payment makes every series exist; each
//! metric name in the Grafana dashboard's and the alert rules' PromQL is then
//! looked up in the two scrapes. A payment left pending at the acquirer
//! raises `payments_pending` (and holds its key in flight) until the
//! reconciler resolves it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::procs::util::poll;
use e2e::procs::{Platform, PlatformOptions, recovery_env};
use e2e::prometheus::{self, Scrape};
use proto::payments::v1 as pb;

/// Made by Prometheus for every target it scrapes; no service exports it.
const MADE_BY_PROMETHEUS: &[&str] = &["up"];

const LEASE: Duration = Duration::from_secs(2);
const RECONCILE_INTERVAL: Duration = Duration::from_millis(200);
/// The test acquirer processes an amount ending in 99 but never answers.
const UNANSWERED: i64 = 1099;
const CARD: &str = "4242424242424242";
const IDEMPOTENCY_KEY: &str = "obs-assets-key-7f3a";

/// Both services with metrics, a fast reconciler and the vault's in-process sweeper.
async fn platform() -> Platform {
    let sweeper = vec![("VAULT__RETENTION__SWEEP_INTERVAL_SECS".to_owned(), "1".to_owned())];
    let options = PlatformOptions {
        metrics: true,
        payments_env: recovery_env(LEASE, RECONCILE_INTERVAL),
        vault_env: sweeper,
        ..PlatformOptions::default()
    };
    Platform::start(options).await
}

async fn pay(p: &Platform, amount: i64) -> pb::Payment {
    let request = pb::CreatePaymentRequest {
        payment_type: pb::PaymentType::Db as i32,
        amount,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::Card(pb::Card {
            number: CARD.into(),
            expiration_month: 12,
            expiration_year: 2035,
            name: "Jane Doe".into(),
            security_code: "123".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut request = e2e::authed(&p.keys.skey, request);
    request.metadata_mut().insert("idempotency-key", format!("{IDEMPOTENCY_KEY}-{amount}").parse().unwrap());
    p.payments_client().create_payment(request).await.expect("CreatePayment").into_inner()
}

fn asset(name: &str) -> String {
    let path = format!("{}/../deploy/observability/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every metric name the dashboard and the alert rules read.
fn asset_metric_names() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(&asset("grafana-dashboard.json")).expect("dashboard JSON");
    let dashboard = prometheus::dashboard_exprs(&dashboard);
    let rules = prometheus::rule_exprs(&asset("alerts.yaml"));
    assert!(dashboard.len() >= 15 && rules.len() >= 10, "saw {} + {} expressions", dashboard.len(), rules.len());
    dashboard.iter().chain(&rules).flat_map(|expr| prometheus::metric_names(expr)).collect()
}

fn scrape(port: u16) -> Scrape {
    Scrape::get(port).expect("/metrics answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_read_is_exported() {
    let p = platform().await;
    let ports = p.metrics.expect("metrics ports");
    assert_eq!(pay(&p, 1000).await.status, pb::PaymentStatus::Approved as i32);
    let wanted = asset_metric_names();
    let missing = |exported: &BTreeSet<String>| -> Vec<String> {
        let allowed = |n: &String| MADE_BY_PROMETHEUS.contains(&n.as_str());
        wanted.iter().filter(|n| !exported.contains(*n) && !allowed(n)).cloned().collect()
    };
    let exported = || {
        let (vault, payments) = (scrape(ports.vault), scrape(ports.payments));
        (vault.names().into_iter().chain(payments.names()).collect::<BTreeSet<_>>(), vault.0 + &payments.0)
    };
    // The samplers and the reconciler's first pass run at start: a few seconds at most.
    let found =
        poll(Duration::from_secs(15), || async { Some(exported()).filter(|(names, _)| missing(names).is_empty()) });
    let (names, text) = found.await.unwrap_or_else(|| {
        let (names, _) = exported();
        panic!("the assets read metrics no service exports: {:?}\nexported: {names:?}", missing(&names))
    });
    assert!(names.contains("grpc_server_request_duration_seconds_bucket"), "latency is a histogram");
    assert!(!text.contains(CARD) && !text.contains(IDEMPOTENCY_KEY), "no card number or key in a label");
    assert!(!text.contains(&p.keys.skey) && !text.contains("skey_") && !text.contains("pkey_"), "no merchant key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_left_pending_is_counted_until_the_reconciler_resolves_it() {
    let p = platform().await;
    let port = p.metrics.expect("metrics ports").payments;
    let gauge = |name: &str| scrape(port).value(name, &[]);
    let settle = Duration::from_secs(10);
    let nothing_pending = || async { gauge("payments_pending").filter(|&v| v == 0.0) };
    poll(settle, nothing_pending).await.expect("nothing pending at start");

    let paying = async {
        let payment = pay(&p, UNANSWERED).await;
        assert_eq!(payment.status, pb::PaymentStatus::Pending as i32, "the acquirer never answered");
    };
    let key_held = poll(settle, || async { gauge("idempotency_keys_in_flight").filter(|&v| v >= 1.0) });
    let ((), held) = tokio::join!(paying, key_held);
    assert_eq!(held, Some(1.0), "the key is counted in flight while its call waits for the acquirer");

    let pending = poll(settle, || async { gauge("payments_pending").filter(|&v| v >= 1.0) }).await;
    assert_eq!(pending, Some(1.0), "the pending payment is counted");
    assert!(gauge("payments_pending_oldest_age_seconds").is_some_and(|age| age >= 0.0));
    // Its lease runs out; the reconciler's next pass asks the acquirer and approves it.
    poll(settle, nothing_pending).await.expect("the reconciler resolves it");
    let resolved = scrape(port).value("reconciler_payments_total", &[("outcome", "resolved")]);
    assert!(resolved.is_some_and(|n| n >= 1.0), "{resolved:?}");
    assert_eq!(gauge("idempotency_keys_in_flight"), Some(0.0));
}
