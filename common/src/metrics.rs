//! Prometheus metrics: the exporter (an HTTP listener serving `/metrics`).
//! The shell's `server::trace::TraceLayer` counts every gRPC call by method
//! and status code and records its latency; without an installed exporter a
//! metric costs a few no-op calls. Every `*_duration_seconds` histogram is
//! exported as a Prometheus histogram (`_bucket`, `_sum`, `_count` on
//! `DURATION_BUCKETS`), so quantiles can be taken across replicas with
//! `histogram_quantile`; the exporter's default, a per-process summary, cannot
//! be aggregated. The gauges and counters beyond these live beside what they
//! measure (see docs/OPERATIONS.md, "Metrics").
use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Bucket bounds (seconds) of every `*_duration_seconds` histogram: from a
/// store round trip on loopback (about a millisecond) to a call at its 10 s cap.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Serves `/metrics` on `addr`; call once per process, inside the runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    let failed = |e: metrics_exporter_prometheus::BuildError| format!("metrics exporter on {addr}: {e}");
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &DURATION_BUCKETS)
        .map_err(failed)?
        .install()
        .map_err(failed)?;
    // Counters an alert reads exist from the start, at zero.
    metrics::counter!("otel_spans_dropped_total", "reason" => "export_failed").absolute(0);
    Ok(())
}
