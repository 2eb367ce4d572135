//! vault-svc settings: serde defaults for the embedded single-node run,
//! overridden by an optional file and by `VAULT__…` environment variables.
use std::path::PathBuf;

use serde::Deserialize;

use common::telemetry::TelemetryConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VaultConfig {
    /// Public `Tokens` service.
    pub public_addr: String,
    /// Serve the public port over TLS with `tls.cert`/`tls.key` (plaintext for the local run).
    pub public_tls: bool,
    /// Internal `Vault` service (mTLS only).
    pub internal_addr: String,
    /// Where the embedded run keeps its KEK, certificates and merchant directory.
    pub data_dir: PathBuf,
    pub redis: RedisConfig,
    pub keys: KeysConfig,
    pub merchants: MerchantsConfig,
    pub tls: TlsConfig,
    /// Upper bound on any request's time in the vault, whatever the caller's deadline.
    pub request_timeout_ms: u64,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_drain_secs: u64,
    pub telemetry: TelemetryConfig,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            public_addr: "127.0.0.1:50051".into(),
            public_tls: false,
            internal_addr: "127.0.0.1:50061".into(),
            data_dir: ".payvault".into(),
            redis: RedisConfig::default(),
            keys: KeysConfig::default(),
            merchants: MerchantsConfig::default(),
            tls: TlsConfig::default(),
            request_timeout_ms: 5_000,
            shutdown_drain_secs: 20,
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// Unset: the in-process store. `REDIS_URL` is honoured as well.
    pub url: Option<String>,
    pub key_prefix: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: None, key_prefix: "payvault:".into(), pool_size: 16, connect_timeout_ms: 1_000 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KeysConfig {
    /// KEK file (`v<n>:<base64>` lines); default `<data_dir>/kek`. `PAYVAULT_KEK` wins.
    pub kek_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MerchantsConfig {
    /// Default `<data_dir>/merchants.json`.
    pub file: Option<PathBuf>,
    pub reload_secs: u64,
}

impl Default for MerchantsConfig {
    fn default() -> Self {
        Self { file: None, reload_secs: 5 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Defaults: `<data_dir>/certs/{ca.pem,server.pem,server.key}`.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Comma-separated DNS names a client certificate must carry.
    pub allowed_clients: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { ca: None, cert: None, key: None, allowed_clients: "payments-svc".into() }
    }
}

impl VaultConfig {
    /// Loads defaults → `file` → `VAULT__…` environment; `REDIS_URL` fills in
    /// `redis.url` when that is not set.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, common::config::ConfigError> {
        let mut cfg: Self = common::config::load("VAULT", file)?;
        if cfg.redis.url.is_none() {
            cfg.redis.url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        }
        Ok(cfg)
    }

    pub fn kek_file(&self) -> PathBuf {
        self.keys.kek_file.clone().unwrap_or_else(|| self.data_dir.join("kek"))
    }

    pub fn merchants_file(&self) -> PathBuf {
        self.merchants.file.clone().unwrap_or_else(|| self.data_dir.join("merchants.json"))
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
        self.tls.allowed_clients.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}
