//! The server shell as a client sees it: health per service name follows the
//! dependencies that service needs, "" (liveness) stays SERVING, and on
//! SIGTERM NOT_SERVING holds for the pause before the port closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{SilentRedis, Store, TestVault};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

async fn status(channel: tonic::transport::Channel, service: &str) -> ServingStatus {
    let request = HealthCheckRequest { service: service.into() };
    HealthClient::new(channel).check(request).await.unwrap().into_inner().status()
}

#[tokio::test]
async fn a_silent_single_use_store_takes_tokens_and_vault_out_but_not_liveness() {
    let silent = SilentRedis::start().await;
    let vault = TestVault::start(Store::RedisAt(silent.url.clone())).await;
    // Past the first probe's one-second limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(vault.public.clone(), "payvault.vault.v1.Tokens").await, ServingStatus::NotServing);
    assert_eq!(status(vault.public.clone(), "").await, ServingStatus::Serving, "liveness");
    let internal = vault.internal_channel(Some((&vault.ca, "payments-svc")));
    assert_eq!(status(internal, "payvault.vault.v1.Vault").await, ServingStatus::NotServing);
    silent.close();
    vault.stop().await;
}

#[tokio::test]
async fn every_service_is_serving_when_its_stores_are_up() {
    let vault = TestVault::start(Store::Memory).await;
    let internal = vault.internal_channel(Some((&vault.ca, "payments-svc")));
    let mut serving = false;
    for _ in 0..50 {
        serving = status(vault.public.clone(), "payvault.vault.v1.Tokens").await == ServingStatus::Serving
            && status(internal.clone(), "payvault.vault.v1.Vault").await == ServingStatus::Serving;
        if serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving);
    vault.stop().await;
}

/// The status of `service` once it is `wanted`, or the last one seen within 5 s.
async fn settles(channel: &tonic::transport::Channel, service: &str, wanted: ServingStatus) -> ServingStatus {
    let mut seen = ServingStatus::Unknown;
    for _ in 0..50 {
        seen = status(channel.clone(), service).await;
        if seen == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test]
async fn payments_health_follows_its_database_and_the_vault() {
    use ServingStatus::{NotServing, Serving};
    let up = e2e::TestPlatform::start().await;
    for service in ["payvault.payments.v1.Payments", "payvault.payments.v1.Registrations"] {
        assert_eq!(settles(&up.payments, service, Serving).await, Serving, "{service} with the vault up");
    }
    up.stop().await;
    let down = e2e::TestPlatform::start_with_vault_down().await;
    // Once the first probes are in (services start NOT_SERVING until then).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for service in
        ["payvault.payments.v1.Payments", "payvault.payments.v1.Registrations", "payvault.payments.v1.OmniTokens"]
    {
        assert_eq!(status(down.payments.clone(), service).await, NotServing, "{service} follows the vault");
    }
    assert_eq!(status(down.payments.clone(), "").await, Serving, "liveness");
    down.stop().await;
}

#[tokio::test]
async fn the_health_port_answers_in_plaintext_while_the_public_port_is_tls() {
    use ServingStatus::{NotServing, Serving};
    let vault = TestVault::start_with_public_tls(Store::Memory).await;
    for service in ["payvault.vault.v1.Tokens", "payvault.vault.v1.Vault", ""] {
        assert_eq!(settles(&vault.health, service, Serving).await, Serving, "{service:?} on the health port");
    }
    assert_eq!(status(vault.public.clone(), "payvault.vault.v1.Tokens").await, Serving, "the same status over TLS");
    vault.stop().await;
    let silent = SilentRedis::start().await;
    let vault = TestVault::start(Store::RedisAt(silent.url.clone())).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(vault.health.clone(), "payvault.vault.v1.Tokens").await, NotServing, "it follows the store");
    silent.close();
    vault.stop().await;
}

/// On SIGTERM a real vault-svc process reports NOT_SERVING for every named
/// service for the whole configured pause, still answering, and only then
/// closes its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_not_serving_holds_for_the_pause_before_the_port_closes() {
    use e2e::procs::{Platform, PlatformOptions};
    let pause = Duration::from_millis(1500);
    let vault_env = vec![("VAULT__SHUTDOWN_PAUSE_MS".into(), pause.as_millis().to_string())];
    let mut p = Platform::start(PlatformOptions { vault_env, ..PlatformOptions::default() }).await;
    assert_eq!(p.vault.health("payvault.vault.v1.Tokens").await, Some(ServingStatus::Serving));
    let signalled = std::time::Instant::now();
    p.vault.sigterm();
    let mut not_serving_until = Duration::ZERO;
    while signalled.elapsed() < pause * 3 {
        match p.vault.health("payvault.vault.v1.Tokens").await {
            Some(ServingStatus::NotServing) => not_serving_until = signalled.elapsed(),
            Some(ServingStatus::Serving) if signalled.elapsed() > Duration::from_millis(200) => {
                panic!("SERVING after SIGTERM")
            }
            None if not_serving_until > Duration::ZERO => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        not_serving_until >= pause - Duration::from_millis(300),
        "NOT_SERVING seen only until {not_serving_until:?} of a {pause:?} pause"
    );
    assert!(p.vault.wait_exit(Duration::from_secs(10)).is_some(), "the vault exits after its drain");
}

#[tokio::test]
async fn payments_serve_tls_on_their_port_and_plaintext_health_on_the_health_port() {
    use ServingStatus::Serving;
    let platform = e2e::TestPlatform::start_with_public_tls().await;
    for service in ["payvault.payments.v1.Payments", "payvault.payments.v1.Registrations", ""] {
        assert_eq!(settles(&platform.health, service, Serving).await, Serving, "{service:?} on the health port");
    }
    let payments = status(platform.payments.clone(), "payvault.payments.v1.Payments").await;
    assert_eq!(payments, Serving, "the same status over TLS");
    let port = platform.payments_addr.port();
    let plaintext = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    let request = HealthCheckRequest { service: String::new() };
    assert!(HealthClient::new(plaintext).check(request).await.is_err(), "no plaintext on the TLS port");
    platform.stop().await;
}
