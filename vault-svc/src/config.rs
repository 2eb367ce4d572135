//! vault-svc settings: serde defaults for the embedded single-node run,
//! overridden by an optional file and by `VAULT__…` environment variables.
//! Unknown keys and values stop start-up (see `common::config`).
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use common::config::{Layers, MerchantsConfig, clean_list};
use common::telemetry::TelemetryConfig;

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["tls.allowed_clients", "keys.share_files"];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Public `Tokens` service.
    pub public_addr: String,
    /// Serve the public port over TLS with `tls.cert`/`tls.key` (plaintext for the local run).
    pub public_tls: bool,
    /// Internal `Vault` service (mTLS only).
    pub internal_addr: String,
    /// Prometheus `/metrics`; empty disables it.
    pub metrics_addr: String,
    /// A plaintext port serving only `grpc.health.v1`, for probes that cannot
    /// speak TLS (the kubelet's); empty: none.
    pub health_addr: String,
    /// Where the embedded run keeps its KEK, certificates and merchant directory.
    pub data_dir: PathBuf,
    pub redis: RedisConfig,
    pub database: common::database::DatabaseConfig,
    pub keys: KeysConfig,
    pub retention: RetentionConfig,
    pub merchants: MerchantsConfig,
    pub tls: TlsConfig,
    /// Upper bound on any request's time in the vault, whatever the caller's deadline.
    pub request_timeout_ms: u64,
    /// After SIGTERM, how long health reports NOT_SERVING while the ports
    /// still accept, so load balancers stop routing here before they close.
    pub shutdown_pause_ms: u64,
    /// How long in-flight calls may take to finish after that.
    pub shutdown_drain_secs: u64,
    /// The metadata (headers) a call may carry, in bytes; more is RESOURCE_EXHAUSTED.
    pub max_metadata_bytes: usize,
    pub telemetry: TelemetryConfig,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            public_addr: "127.0.0.1:50051".into(),
            public_tls: false,
            internal_addr: "127.0.0.1:50061".into(),
            metrics_addr: "127.0.0.1:9464".into(),
            health_addr: String::new(),
            data_dir: ".payvault".into(),
            redis: RedisConfig::default(),
            database: common::database::DatabaseConfig::default(),
            keys: KeysConfig::default(),
            retention: RetentionConfig::default(),
            merchants: MerchantsConfig::default(),
            tls: TlsConfig::default(),
            request_timeout_ms: 5_000,
            shutdown_pause_ms: 2_000,
            shutdown_drain_secs: 20,
            max_metadata_bytes: common::server::DEFAULT_MAX_METADATA,
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Unset: the in-process store. `REDIS_URL` is honoured as well. With
    /// `cluster`, seed nodes of a Redis Cluster, comma-separated.
    pub url: Option<String>,
    /// The URL names a Redis Cluster (`VAULT__REDIS__CLUSTER=true`).
    pub cluster: bool,
    pub key_prefix: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: None, cluster: false, key_prefix: "payvault:".into(), pool_size: 16, connect_timeout_ms: 1_000 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    pub provider: KeyProviderKind,
    /// KEK file (`v<n>:<base64>` lines); default `<data_dir>/kek`. `PAYVAULT_KEK` wins.
    pub kek_file: Option<PathBuf>,
    /// Custodian share files (provider `custodians`); comma-separated in the environment.
    pub share_files: Vec<String>,
    /// The public check file of the shares (provider `custodians`).
    pub check_file: Option<PathBuf>,
}

/// Where the KEK comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProviderKind {
    /// `keys.kek_file`, or `PAYVAULT_KEK`.
    #[default]
    File,
    /// Rebuilt from the custodians' shares (split knowledge).
    Custodians,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run the sweeper inside vault-svc this often; 0 = only as `vault-svc sweep`.
    pub sweep_interval_secs: u64,
    /// Tokens deleted per batch.
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { sweep_interval_secs: 0, batch: 500 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Defaults: `<data_dir>/certs/{ca.pem,server.pem,server.key}`.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// DNS names a client certificate must carry; comma-separated in the environment.
    pub allowed_clients: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { ca: None, cert: None, key: None, allowed_clients: vec!["payments-svc".into()] }
    }
}

impl VaultConfig {
    /// Loads defaults → `file` → `VAULT__…` environment; `REDIS_URL` fills in
    /// `redis.url` when that is not set.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, common::config::ConfigError> {
        Self::load_from(&Layers::process(file))
    }

    /// As `load`, from the given layers (tests pass their own environment).
    pub fn load_from(layers: &Layers<'_>) -> Result<Self, common::config::ConfigError> {
        let mut cfg: Self = common::config::load("VAULT", LIST_KEYS, layers)?;
        if cfg.redis.url.is_none() {
            cfg.redis.url = layers.var("REDIS_URL").filter(|u| !u.is_empty());
        }
        Ok(cfg)
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
        self.database.url_or_file(&self.data_dir, "vault.db")
    }

    pub async fn connect_database(&self) -> Result<crate::storage::sql::SqlStore, crate::domain::store::StoreError> {
        let timeout = Duration::from_millis(self.database.connect_timeout_ms);
        let (url, connections) = (self.database_url(), self.database.max_connections);
        crate::storage::sql::SqlStore::open(&url, connections, timeout, &self.database.group_commit).await
    }

    /// The configured source of the KEK.
    pub fn key_provider(&self) -> Box<dyn crate::crypto::KeyProvider> {
        use crate::crypto::custodian::CustodianKeyProvider;
        match self.keys.provider {
            KeyProviderKind::Custodians => {
                let share_files = clean_list(&self.keys.share_files).map(PathBuf::from).collect();
                let check_file = self.keys.check_file.clone().unwrap_or_else(|| self.data_dir.join("kek.check"));
                Box::new(CustodianKeyProvider { share_files, check_file })
            }
            KeyProviderKind::File => Box::new(crate::crypto::FileKeyProvider { path: self.kek_file() }),
        }
    }

    pub fn kek_file(&self) -> PathBuf {
        self.keys.kek_file.clone().unwrap_or_else(|| self.data_dir.join("kek"))
    }

    pub fn merchants_file(&self) -> PathBuf {
        self.merchants.file_in(&self.data_dir)
    }

    pub fn tls_paths(&self) -> [PathBuf; 3] {
        let certs = self.data_dir.join("certs");
        [
            self.tls.ca.clone().unwrap_or_else(|| certs.join("ca.pem")),
            self.tls.cert.clone().unwrap_or_else(|| certs.join("server.pem")),
            self.tls.key.clone().unwrap_or_else(|| certs.join("server.key")),
        ]
    }

    pub fn allowed_clients(&self) -> Vec<String> {
        clean_list(&self.tls.allowed_clients).map(str::to_owned).collect()
    }
}
