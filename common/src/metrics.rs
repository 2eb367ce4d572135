//! Prometheus metrics: the exporter (an HTTP listener serving `/metrics`).
//! The shell's `server::trace::TraceLayer` counts every gRPC call by method
//! and status code and records its latency; without an installed exporter a
//! metric costs a few no-op calls.
use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Serves `/metrics` on `addr`; call once per process, inside the runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new().with_http_listener(addr).install().map_err(|e| format!("metrics exporter on {addr}: {e}"))
}
