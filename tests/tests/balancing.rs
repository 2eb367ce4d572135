//! payments-svc spreads its vault calls over every vault replica
//! (vault_api::client::balance): two real vault-svc processes over one Redis
//! and one PostgreSQL, one payments-svc given both; each vault's own
//! `grpc_server_requests_total` shows it took payments' calls, and after one
//! is killed (-9) every payment still succeeds, on the survivor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use e2e::procs::load::db_over;
use e2e::procs::{Platform, PlatformOptions};
use proto::payments::v1 as pb;

/// The calls `addr`'s vault served on its internal `Vault` service, by its
/// Prometheus counter (summed over methods and codes).
async fn vault_calls(addr: SocketAddr) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the vault's metrics port");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter(|l| l.starts_with("grpc_server_requests_total{") && l.contains("/payvault.vault.v1.Vault/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `n` approved debits, one after another, each over a fresh single-use token
/// (so each detokenizes in the vault, and reports the charge).
async fn pay(platform: &Platform, n: usize, context: &str) {
    let mut payments = platform.payments_client();
    for i in 0..n {
        let token = platform.token("4242424242424242").await;
        let request = e2e::authed(&platform.keys.skey, db_over(&token, 1000 + i as i64));
        let payment =
            payments.create_payment(request).await.unwrap_or_else(|s| panic!("{context}: payment {i}: {s:?}"));
        let payment = payment.into_inner();
        assert_eq!(payment.status(), pb::PaymentStatus::Approved, "{context}: payment {i}: {payment:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_use_every_vault_and_keep_succeeding_when_one_dies() {
    let mut platform = Platform::start(PlatformOptions { vault_replicas: 2, ..PlatformOptions::default() }).await;
    let metrics = platform.vault_metrics();
    assert_eq!(metrics.len(), 2);
    // payments-svc watches each vault's health; both are SERVING within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    pay(&platform, 24, "both vaults up").await;
    let (first, second) = (vault_calls(metrics[0]).await, vault_calls(metrics[1]).await);
    eprintln!("vault calls with both up: {first} and {second}");
    assert!(first > 0 && second > 0, "both vaults take calls: {first} and {second}");

    let dead = platform.vault_peers[0].env().iter().find(|(k, _)| k == "VAULT__INTERNAL_ADDR").unwrap().1.clone();
    platform.vault_peers[0].kill9();
    pay(&platform, 24, "after the second vault was killed").await;
    let survivor = vault_calls(metrics[0]).await;
    assert!(survivor >= first + 24, "the survivor took the calls: {first} → {survivor}");
    let logs = platform.payments.logs();
    let dropped = logs.lines().any(|l| l.contains("removed from the balancer") && l.contains(&dead));
    assert!(dropped, "payments-svc says it dropped the dead vault {dead}:\n{logs}");
}
