//! Logging and tracing set-up: one `init` per process, returning a guard that
//! flushes on drop. Timestamps are RFC 3339 so no log line carries a 13-digit
//! number that a card-number scan could mistake for a PAN.
use std::io::Write;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter directive, e.g. `info,vault_svc=debug`; `RUST_LOG` wins.
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { log_level: "info".into(), log_format: LogFormat::Text }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event (`pretty` is accepted too, its old name).
    #[default]
    #[serde(alias = "pretty")]
    Text,
    /// For machines: one JSON object per event, with the current span.
    Json,
}

/// Flushes what telemetry has buffered when dropped: the log writers today
/// (the fmt layer writes to stdout as events happen; the flush pushes out what
/// the standard streams still hold), the OTLP exporter once there is one.
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard(());

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

pub fn init(service: &'static str, cfg: &TelemetryConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match cfg.log_format {
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_current_span(true)).try_init(),
        // Colour only for a person at a terminal: a file or a pipe gets plain text.
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi)).try_init()
        }
    };
    if result.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
    TelemetryGuard(())
}
