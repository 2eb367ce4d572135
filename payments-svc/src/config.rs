//! payments-svc settings: defaults for the local run, an optional file, then
//! `PAYMENTS__…` environment variables. Unknown keys and values stop start-up
//! (see `common::config`).
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use common::config::{Layers, MerchantsConfig};
use common::telemetry::TelemetryConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    pub addr: String,
    /// Serve `addr` over TLS with `tls.cert`/`tls.key` (plaintext for the local run).
    pub public_tls: bool,
    /// A plaintext port serving only `grpc.health.v1`, for probes that cannot
    /// speak TLS (the kubelet's); empty: none.
    pub health_addr: String,
    /// Prometheus `/metrics`; empty disables it.
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub database: common::database::DatabaseConfig,
    pub vault: VaultConfig,
    pub tls: TlsConfig,
    pub merchants: MerchantsConfig,
    /// How long the acquirer may take before a payment is recorded as timed out.
    pub acquirer_timeout_ms: u64,
    /// Upper bound on any request's time, whatever the caller's deadline.
    pub request_timeout_ms: u64,
    /// After SIGTERM, how long health reports NOT_SERVING while the port still
    /// accepts, so load balancers stop routing here before it closes.
    pub shutdown_pause_ms: u64,
    /// How long in-flight calls may take to finish after that.
    pub shutdown_drain_secs: u64,
    /// The metadata (headers) a call may carry, in bytes; more is RESOURCE_EXHAUSTED.
    pub max_metadata_bytes: usize,
    /// The reference key (`v<n>:<base64>` lines, the highest version
    /// current) that idempotency keys and request hashes are stored keyed
    /// under; default `<data_dir>/reference.key`. `PAYMENTS_REFERENCE_KEY` wins.
    pub reference_key_file: Option<PathBuf>,
    pub idempotency: IdempotencyConfig,
    pub reconcile: ReconcileConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// How long a worker owns an in-flight key and its payment before another may take it over.
    pub lease_ms: u64,
    /// Idempotency records are purged this long after their creation.
    pub retention_secs: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { lease_ms: 30_000, retention_secs: 24 * 3600 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// The in-process reconciler runs this often; 0 = only as `payments-svc reconcile`.
    pub interval_ms: u64,
    /// Payments taken over per pass, at most.
    pub batch: u32,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self { interval_ms: 10_000, batch: 100 }
    }
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50052".into(),
            public_tls: false,
            health_addr: String::new(),
            metrics_addr: "127.0.0.1:9465".into(),
            data_dir: ".payvault".into(),
            database: common::database::DatabaseConfig::default(),
            vault: VaultConfig::default(),
            tls: TlsConfig::default(),
            merchants: MerchantsConfig::default(),
            acquirer_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
            shutdown_pause_ms: 2_000,
            shutdown_drain_secs: 20,
            max_metadata_bytes: common::server::DEFAULT_MAX_METADATA,
            reference_key_file: None,
            idempotency: IdempotencyConfig::default(),
            reconcile: ReconcileConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// The vault's internal (mTLS) port; with `balance = "dns"`, several
    /// URLs may be given, comma-separated.
    pub url: String,
    /// The name on the vault's server certificate.
    pub domain: String,
    /// Defaults: `<data_dir>/certs/{ca.pem,client.pem,client.key}`.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// How calls reach the vault's replicas.
    pub balance: VaultBalance,
    /// With `balance = "dns"`, how often the url's name is resolved again.
    pub resolve_interval_ms: u64,
}

/// How payments-svc spreads its vault calls (vault_api::client::balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultBalance {
    /// Every address the url's name resolves to (a headless Service: every
    /// ready vault pod) whose health reports SERVING takes calls.
    #[default]
    Dns,
    /// One connection to the one address the name has when it connects.
    Off,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            url: "https://localhost:50061".into(),
            domain: "localhost".into(),
            ca: None,
            cert: None,
            key: None,
            balance: VaultBalance::Dns,
            resolve_interval_ms: 5_000,
        }
    }
}

/// The server certificate of the public port (`public_tls`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first; default `<data_dir>/certs/server.pem`.
    pub cert: Option<PathBuf>,
    /// Its private key; default `<data_dir>/certs/server.key`.
    pub key: Option<PathBuf>,
}

impl PaymentsConfig {
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, common::config::ConfigError> {
        Self::load_from(&Layers::process(file))
    }

    /// As `load`, from the given layers (tests pass their own environment).
    pub fn load_from(layers: &Layers<'_>) -> Result<Self, common::config::ConfigError> {
        common::config::load("PAYMENTS", &[], layers)
    }

    /// The shell's call and drain timing.
    pub fn server_settings(&self) -> common::server::Settings {
        common::server::Settings {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            shutdown_pause: Duration::from_millis(self.shutdown_pause_ms),
            shutdown_drain: Duration::from_secs(self.shutdown_drain_secs),
            max_metadata: self.max_metadata_bytes,
        }
    }

    pub fn database_url(&self) -> String {
        self.database.url_or_file(&self.data_dir, "payments.db")
    }

    pub fn reference_key_file(&self) -> PathBuf {
        self.reference_key_file.clone().unwrap_or_else(|| self.data_dir.join("reference.key"))
    }

    /// The public port's certificate chain and key.
    pub fn public_tls_paths(&self) -> [PathBuf; 2] {
        let certs = self.data_dir.join("certs");
        [
            self.tls.cert.clone().unwrap_or_else(|| certs.join("server.pem")),
            self.tls.key.clone().unwrap_or_else(|| certs.join("server.key")),
        ]
    }

    pub fn vault_tls_paths(&self) -> [PathBuf; 3] {
        let certs = self.data_dir.join("certs");
        [
            self.vault.ca.clone().unwrap_or_else(|| certs.join("ca.pem")),
            self.vault.cert.clone().unwrap_or_else(|| certs.join("client.pem")),
            self.vault.key.clone().unwrap_or_else(|| certs.join("client.key")),
        ]
    }
}
