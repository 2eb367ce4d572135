//! Prometheus metrics: the exporter (an HTTP listener serving `/metrics`) and
//! a tower layer that counts every gRPC call by method and status code and
//! records its latency. Without an installed exporter the layer costs a few
//! no-op calls.
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Layer, Service};

/// Serves `/metrics` on `addr`; call once per process, inside the runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new().with_http_listener(addr).install().map_err(|e| format!("metrics exporter on {addr}: {e}"))
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
