//! Logging and tracing set-up: one `init` per process, returning a guard that
//! flushes on drop. Logs are plain text (colour only at a terminal) or JSON
//! lines with the trace and span ids (`json`); spans go to an OTLP collector
//! when the standard `OTEL_*` variables ask for it (`otel`). Timestamps are
//! RFC 3339 so no log line carries a 13-digit number that a card-number scan
//! could mistake for a PAN. Lines are handed to a writer thread
//! (tracing-appender's non-blocking writer, which never drops a line) that
//! writes whatever has queued in one `write` to stdout: a request's line
//! costs its worker no system call, and a burst of lines costs one.
use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

pub mod json;
mod log_fields;
pub mod otel;
pub mod spans;

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
    /// For machines: one JSON object per event, with the trace and span ids.
    Json,
}

/// How long the exporter may take to flush at shutdown.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Flushes what telemetry has buffered when dropped: the batched spans (within
/// `FLUSH_LIMIT`), the log lines still queued for the writer thread, and what
/// the standard streams still hold.
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    logs: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            otel::shutdown(&provider, FLUSH_LIMIT);
        }
        // The writer thread writes out every queued line, then stops.
        drop(self.logs.take());
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

/// Installs the process's subscriber (call inside the runtime when traces
/// may be exported).
pub fn init(service: &'static str, cfg: &TelemetryConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let (provider, failed) = match otel::enabled().then(|| otel::provider(service)) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let traces = provider.as_ref().map(|p| otel::layer(p, service));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let (writer, logs) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let lines = tracing_subscriber::fmt::layer().fmt_fields(log_fields::LogFields).with_writer(writer);
    let result = match cfg.log_format {
        LogFormat::Json => registry.with(lines.event_format(json::JsonWithTrace)).try_init(),
        // Colour only for a person at a terminal: a file or a pipe gets plain text.
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry.with(lines.with_ansi(ansi)).try_init()
        }
    };
    if result.is_ok() {
        tracing::debug!(service, traces = provider.is_some(), "telemetry initialised");
        if let Some(error) = failed {
            tracing::warn!(%error, "traces are not exported");
        }
    }
    // A subscriber already installed (a second `init` in one process) keeps
    // its own writer; this one's thread is stopped.
    TelemetryGuard { traces: provider, logs: result.is_ok().then_some(logs) }
}
