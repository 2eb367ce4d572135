//! The spans both services make, with the OpenTelemetry semantic-convention
//! attributes: a gRPC server span per call (parented by the caller's
//! `traceparent`), a client span per call to the vault, and a span per store
//! round trip (which also feeds `store_round_trip_duration_seconds`). Names
//! and attributes hold methods, codes, systems and operations only: never a
//! card number, a key or an idempotency key.
use std::future::Future;
use std::time::Instant;

use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

tokio::task_local! {
    /// The merchant a call authenticated as, for its log line.
    static CALL_MERCHANT: std::sync::OnceLock<String>;
}

/// `/pkg.Service/Method` as (service, method).
pub fn rpc_parts(path: &str) -> (&str, &str) {
    path.trim_start_matches('/').split_once('/').unwrap_or((path, ""))
}

/// The server span of a call to `path`, a child of the caller's trace.
pub fn server(path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let (service, method) = rpc_parts(path);
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        merchant = Empty,
    );
    let _ = span.set_parent(super::otel::extract(headers));
    span
}

/// A client span for a call to `service`/`method` at `address`.
pub fn client(service: &str, method: &str, address: &str) -> tracing::Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = format!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        server.address = address,
    )
}

/// Records a call's gRPC status on its span (errors other than the caller's own mistakes mark it failed).
pub fn record_status(span: &tracing::Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    // OpenTelemetry's rule for servers: UNKNOWN, DEADLINE_EXCEEDED,
    // UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are errors.
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `traceparent` a call made inside `span` carries.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    super::otel::traceparent(&span.context())
}

/// Runs one store round trip (`system`: `redis`, `postgresql`, `sqlite`)
/// inside its span, and records its latency by operation.
pub async fn round_trip<T>(system: &'static str, operation: &'static str, call: impl Future<Output = T>) -> T {
    let span = tracing::info_span!(
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system = system,
        db.system.name = system,
        db.operation.name = operation,
    );
    let started = Instant::now();
    let result = call.instrument(span).await;
    metrics::histogram!("store_round_trip_duration_seconds", "store" => system, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Runs a call's handler where `note_merchant` can reach it; returns what it noted.
pub async fn with_merchant_note<T>(call: impl Future<Output = T>) -> (T, Option<String>) {
    let cell = std::sync::OnceLock::new();
    CALL_MERCHANT
        .scope(cell, async move {
            let result = call.await;
            (result, CALL_MERCHANT.with(|m| m.get().cloned()))
        })
        .await
}

/// Notes the merchant a call authenticated as, on its span and its log line.
pub fn note_merchant(merchant_id: &str) {
    tracing::Span::current().record("merchant", merchant_id);
    let _ = CALL_MERCHANT.try_with(|m| m.set(merchant_id.to_owned()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            super::rpc_parts("/payvault.payments.v1.Payments/CreatePayment"),
            ("payvault.payments.v1.Payments", "CreatePayment")
        );
        assert_eq!(super::rpc_parts("bare"), ("bare", ""));
    }
}
