//! The per-call span, log line and RED metrics. `TraceLayer` opens the gRPC
//! server span of every call (parented by the caller's `traceparent`,
//! `telemetry::spans`), runs the call inside it, records the status on it,
//! writes one line per call: method, code, duration and the merchant the call
//! authenticated as (INFO; health and reflection calls at DEBUG, as probes
//! make many), and records `grpc_server_requests_total{method, code}` and
//! `grpc_server_request_duration_seconds{method}`.
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::telemetry::spans;

#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

/// The gRPC status code of a response: a failed unary call is trailers-only
/// (its status in the headers); a successful one carries 0 in its trailers.
fn code<R>(response: &http::Response<R>) -> i32 {
    response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl<S, B, R> Service<http::Request<B>> for Traced<S>
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
        let path = request.uri().path().to_owned();
        let span = spans::server(&path, request.headers());
        let started = Instant::now();
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let (response, merchant) = spans::with_merchant_note(call).instrument(span.clone()).await;
            let code = response.as_ref().map(code).unwrap_or(14);
            spans::record_status(&span, code);
            let elapsed = started.elapsed();
            let label = if response.is_ok() { code.to_string() } else { "transport".to_owned() };
            metrics::counter!("grpc_server_requests_total", "method" => path.clone(), "code" => label).increment(1);
            metrics::histogram!("grpc_server_request_duration_seconds", "method" => path.clone())
                .record(elapsed.as_secs_f64());
            // Whole microseconds: a float's long expansion could read as a card number.
            let duration_us = elapsed.as_micros() as u64;
            let merchant = merchant.unwrap_or_default();
            span.in_scope(|| match path.starts_with("/grpc.") {
                true => tracing::debug!(method = %path, code, duration_us, merchant, "call"),
                false => tracing::info!(method = %path, code, duration_us, merchant, "call"),
            });
            response
        })
    }
}
