//! Prometheus metrics: the exporter (an HTTP listener serving `/metrics`) and
//! a tower layer that counts every gRPC call by method and status code and
//! records its latency. Without an installed exporter the layer costs a few
//! no-op calls. Every `*_duration_seconds` histogram is exported as a
//! Prometheus histogram (`_bucket`, `_sum`, `_count` on `DURATION_BUCKETS`),
//! so quantiles can be taken across replicas with `histogram_quantile`; the
//! exporter's default, a per-process summary, cannot be aggregated. The
//! gauges and counters beyond these live beside what they measure (see
//! docs/OPERATIONS.md, "Metrics").
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{Layer, Service};

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
        .map_err(failed)
}

/// Records `grpc_server_requests_total{method, code}` and
/// `grpc_server_request_duration_seconds{method}` for every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            // tonic sends a failed unary call as trailers-only: its status is in
            // the headers. A successful one carries grpc-status 0 in trailers.
            let code = match &response {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned(),
                Err(_) => "transport".to_owned(),
            };
            metrics::counter!("grpc_server_requests_total", "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!("grpc_server_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}
