//! The whole platform as real processes: a private PostgreSQL cluster
//! (databases `payments` and `vault`, or a second cluster for the vault), a
//! private Redis, `vault-svc dev-init` keys and certificates, then `vault-svc`
//! and `payments-svc` configured only through `VAULT__…`/`PAYMENTS__…`
//! variables on spare loopback ports.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::Channel;

use proto::payments::v1::payments_client::PaymentsClient;
use proto::vault::v1::tokens_client::TokensClient;

use super::invariants::Invariants;
use super::pg::PgServer;
use super::redis::RedisServer;
use super::service::{Service, ServiceKind};
use super::util::{ScratchDir, spare_port};

/// The settings that make leases and reconciliation fast enough for a test:
/// the idempotency lease and the reconciler's interval. The single place to
/// adjust when payments-svc names them differently; pass the result in
/// `PlatformOptions::payments_env`. (Until payments-svc knows these keys they
/// are ignored; once its configuration is strict they must exist.)
pub fn recovery_env(lease: Duration, reconcile_interval: Duration) -> Vec<(String, String)> {
    vec![
        ("PAYMENTS__IDEMPOTENCY__LEASE_MS".into(), lease.as_millis().to_string()),
        ("PAYMENTS__RECONCILE__INTERVAL_MS".into(), reconcile_interval.as_millis().to_string()),
    ]
}

#[derive(Debug, Clone, Default)]
pub struct PlatformOptions {
    /// The vault's database in a cluster of its own, so that killing the
    /// payments cluster leaves the vault up (default: one cluster, two databases).
    pub vault_own_cluster: bool,
    /// Redis with AOF (`appendfsync always`), so tokens survive a Redis kill.
    pub redis_appendonly: bool,
    /// Extra `PAYMENTS__…` variables (e.g. `recovery_env`), applied last.
    pub payments_env: Vec<(String, String)>,
    /// Extra `VAULT__…` variables, applied last.
    pub vault_env: Vec<(String, String)>,
    /// vault-svc processes over the same stores and keys (0 counts as 1):
    /// the second and later are `Platform::vault_peers`, payments-svc
    /// balances over all of them (one URL each in `PAYMENTS__VAULT__URL`), and
    /// each serves its own metrics port (`Platform::vault_metrics`).
    pub vault_replicas: usize,
    /// Serve Prometheus `/metrics` from each service on a spare port
    /// (`Platform::metrics`); off: no exporter, as before.
    pub metrics: bool,
}

/// Where each service serves `/metrics` (with `PlatformOptions::metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsPorts {
    pub vault: u16,
    pub payments: u16,
}

/// A process of the platform, as fault tests kill and start it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Payments,
    Vault,
    Redis,
    /// The cluster holding the `payments` database.
    Postgres,
}

/// The dev-init test merchant's id and keys.
#[derive(Clone)]
pub struct Keys {
    pub merchant_id: String,
    pub pkey: String,
    pub skey: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("merchant_id", &self.merchant_id).finish_non_exhaustive()
    }
}

pub struct Platform {
    /// Services first: they drop (are killed) before their stores.
    pub payments: Service,
    pub vault: Service,
    /// The further vault-svc processes (`PlatformOptions::vault_replicas`).
    pub vault_peers: Vec<Service>,
    pub redis: RedisServer,
    /// The cluster holding the `payments` database (and `vault`, unless it has its own).
    pub pg: PgServer,
    pub vault_pg: Option<PgServer>,
    pub keys: Keys,
    /// The vault's internal (mTLS) port.
    pub vault_internal_addr: SocketAddr,
    pub metrics: Option<MetricsPorts>,
    dir: ScratchDir,
}

impl Platform {
    pub async fn start(options: PlatformOptions) -> Self {
        let dir = ScratchDir::new("platform");
        let data_dir = dir.join("data");
        let (pg, redis) = tokio::join!(PgServer::new(), RedisServer::with_appendonly(options.redis_appendonly));
        let vault_pg = if options.vault_own_cluster { Some(PgServer::new().await) } else { None };
        pg.create_database("payments").await;
        vault_pg.as_ref().unwrap_or(&pg).create_database("vault").await;
        let keys = dev_init(&data_dir);

        let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let replicas = options.vault_replicas.max(1);
        let vault_ports: Vec<(u16, u16)> = (0..replicas).map(|_| (spare_port(), spare_port())).collect();
        let payments_port = spare_port();
        let data = data_dir.display().to_string();
        let metrics = options.metrics.then(|| MetricsPorts { vault: spare_port(), payments: spare_port() });
        let metrics_addr = |port: fn(MetricsPorts) -> u16| metrics.map(|m| localhost(port(m)).to_string());
        let mut vaults = Vec::with_capacity(replicas);
        for &(public, internal) in &vault_ports {
            // The first vault serves `PlatformOptions::metrics`' port; several are told apart by their metrics.
            let metrics = match (vaults.len(), metrics_addr(|m| m.vault)) {
                (0, Some(addr)) => addr,
                _ if replicas > 1 => localhost(spare_port()).to_string(),
                _ => String::new(),
            };
            let vault_env = environment(
                [
                    ("VAULT__PUBLIC_ADDR", localhost(public).to_string()),
                    ("VAULT__INTERNAL_ADDR", localhost(internal).to_string()),
                    ("VAULT__METRICS_ADDR", metrics),
                    ("VAULT__DATA_DIR", data.clone()),
                    ("VAULT__REDIS__URL", redis.url()),
                    ("VAULT__DATABASE__URL", vault_pg.as_ref().unwrap_or(&pg).url("vault")),
                    ("VAULT__SHUTDOWN_DRAIN_SECS", "2".into()),
                    // No load balancer to wait for in a test.
                    ("VAULT__SHUTDOWN_PAUSE_MS", "0".into()),
                ],
                &options.vault_env,
            );
            // Each in a folder of its own, so their logs stay apart.
            let vault_dir = match vaults.len() {
                0 => dir.path().to_path_buf(),
                n => dir.join(&format!("vault-{n}")),
            };
            std::fs::create_dir_all(&vault_dir).expect("a folder for the vault's logs");
            vaults.push(Service::spawn(ServiceKind::Vault, vault_env, &vault_dir, localhost(public)).await);
        }
        let vault_urls: Vec<String> =
            vault_ports.iter().map(|(_, internal)| format!("https://localhost:{internal}")).collect();
        let payments_env = environment(
            [
                ("PAYMENTS__ADDR", localhost(payments_port).to_string()),
                ("PAYMENTS__METRICS_ADDR", metrics_addr(|m| m.payments).unwrap_or_default()),
                ("PAYMENTS__DATA_DIR", data),
                ("PAYMENTS__DATABASE__URL", pg.url("payments")),
                ("PAYMENTS__VAULT__URL", vault_urls.join(",")),
                ("PAYMENTS__ACQUIRER_TIMEOUT_MS", "1500".into()),
                ("PAYMENTS__SHUTDOWN_DRAIN_SECS", "2".into()),
                ("PAYMENTS__SHUTDOWN_PAUSE_MS", "0".into()),
            ],
            &options.payments_env,
        );

        let payments = Service::spawn(ServiceKind::Payments, payments_env, dir.path(), localhost(payments_port)).await;
        let mut vaults = vaults.into_iter();
        let vault = vaults.next().expect("at least one vault");
        let vault_internal_addr = localhost(vault_ports[0].1);
        Self {
            payments,
            vault,
            vault_peers: vaults.collect(),
            redis,
            pg,
            vault_pg,
            keys,
            vault_internal_addr,
            metrics,
            dir,
        }
    }

    /// Every vault's metrics address (`PlatformOptions::vault_replicas` > 1),
    /// the first vault's first.
    pub fn vault_metrics(&self) -> Vec<SocketAddr> {
        std::iter::once(&self.vault)
            .chain(&self.vault_peers)
            .filter_map(|v| v.env().iter().find(|(k, _)| k == "VAULT__METRICS_ADDR").and_then(|(_, a)| a.parse().ok()))
            .collect()
    }

    /// The platform's folder: dev-init data (`data/`) and the services' logs.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn payments_client(&self) -> PaymentsClient<Channel> {
        PaymentsClient::new(self.payments.channel())
    }

    /// The vault's public `Tokens` service (authenticate with `keys.pkey`).
    pub fn tokens_client(&self) -> TokensClient<Channel> {
        TokensClient::new(self.vault.channel())
    }

    pub fn payments_database_url(&self) -> String {
        self.pg.url("payments")
    }

    pub fn vault_database_url(&self) -> String {
        self.vault_cluster().url("vault")
    }

    /// The cluster holding the vault's database.
    pub fn vault_cluster(&self) -> &PgServer {
        self.vault_pg.as_ref().unwrap_or(&self.pg)
    }

    pub fn vault_cluster_mut(&mut self) -> &mut PgServer {
        self.vault_pg.as_mut().unwrap_or(&mut self.pg)
    }

    /// `kill -9` of `process` (a no-op if it is not running).
    pub fn kill9(&mut self, process: Process) {
        match process {
            Process::Payments => self.payments.kill9(),
            Process::Vault => self.vault.kill9(),
            Process::Redis => self.redis.kill9(),
            Process::Postgres => self.pg.kill9(),
        }
    }

    /// Starts a killed `process` again, on the same ports and over the same data.
    pub async fn start_again(&mut self, process: Process) {
        match process {
            Process::Payments => self.payments.start().await,
            Process::Vault => self.vault.start().await,
            Process::Redis => self.redis.start().await,
            Process::Postgres => self.pg.start().await,
        }
    }

    /// An invariant checker over the payments database.
    pub async fn invariants(&self) -> Invariants {
        Invariants::connect(&self.payments_database_url()).await
    }

    /// A fresh single-use token for `number` (CVV 123), made with the public key.
    pub async fn token(&self, number: &str) -> String {
        let request = crate::authed(&self.keys.pkey, crate::create_request(crate::card(number, "123")));
        self.tokens_client().create_token(request).await.expect("CreateToken").into_inner().id
    }
}

/// A service's environment: the platform's `settings`, then the test's `extra`
/// (which therefore win).
fn environment<'a>(
    settings: impl IntoIterator<Item = (&'a str, String)>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    settings.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(extra.iter().cloned()).collect()
}

/// `vault-svc dev-init --data-dir <dir>`; returns the merchant from `merchant.env`.
fn dev_init(data_dir: &std::path::Path) -> Keys {
    let bin = super::binaries::bin_dir().join(super::binaries::VAULT_BIN);
    let out = std::process::Command::new(&bin)
        .arg("dev-init")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("VAULT_CONFIG")
        .output()
        .expect("run vault-svc dev-init");
    assert!(out.status.success(), "vault-svc dev-init failed: {}", String::from_utf8_lossy(&out.stderr));
    let env = std::fs::read_to_string(data_dir.join("merchant.env")).expect("dev-init writes merchant.env");
    let value = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{name} in merchant.env"))
            .trim()
            .to_owned()
    };
    Keys { merchant_id: value("PAYVAULT_MERCHANT_ID"), pkey: value("PAYVAULT_PKEY"), skey: value("PAYVAULT_SKEY") }
}
