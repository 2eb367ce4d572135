//! The per-call deadline and correlation id. `CallLayer` reads them once from
//! the request headers (the caller's `grpc-timeout`, capped at the configured
//! request timeout; `x-correlation-id` / `x-request-id` / `traceparent`), puts
//! a `CallInfo` in the request's extensions for handlers, bounds the store
//! calls of the handler by the deadline (less `STORE_MARGIN`), and stops a handler
//! that outlives its deadline. Handlers answer at their deadline themselves
//! (with their own reason); the layer is the backstop a short grace later, so
//! no call holds a worker past it.
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::Code;
use tower::{Layer, Service};

/// How long after the deadline the layer cuts a handler that did not answer.
pub const GRACE: Duration = Duration::from_millis(100);

/// The store calls a handler makes (`crate::deadline`) end this long before
/// its deadline, so that a store that does not answer is still answered as
/// `UNAVAILABLE` in time.
pub const STORE_MARGIN: Duration = Duration::from_millis(100);

/// What the shell knows about a call before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub deadline: Instant,
    pub correlation_id: String,
}

impl CallInfo {
    pub fn from_headers(headers: &http::HeaderMap, max: Duration) -> Self {
        Self {
            deadline: Instant::now() + crate::grpc::header_deadline(headers, max),
            correlation_id: crate::grpc::header_correlation_id(headers),
        }
    }

    /// The shell's `CallInfo` for `request`; computed from its metadata when
    /// the request did not come through `CallLayer` (a handler called directly).
    pub fn of<T>(request: &tonic::Request<T>, max: Duration) -> Self {
        request.extensions().get::<Self>().cloned().unwrap_or_else(|| {
            let metadata = request.metadata();
            Self {
                deadline: Instant::now() + crate::grpc::deadline(metadata, max),
                correlation_id: crate::grpc::correlation_id(metadata),
            }
        })
    }

    /// The time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Adds `CallInfo` to every request and caps the call at its deadline;
/// refuses metadata over its limit, or with a card number in a correlation
/// header, before the handler runs.
#[derive(Debug, Clone, Copy)]
pub struct CallLayer {
    max: Duration,
    max_metadata: usize,
}

impl CallLayer {
    /// `max`: the configured request timeout; metadata up to
    /// `DEFAULT_MAX_METADATA` bytes.
    pub fn new(max: Duration) -> Self {
        Self { max, max_metadata: DEFAULT_MAX_METADATA }
    }

    /// Refuses calls whose metadata (names and values, as HPACK counts them:
    /// 32 bytes more per entry) is over `bytes`, with RESOURCE_EXHAUSTED.
    pub fn max_metadata(self, bytes: usize) -> Self {
        Self { max_metadata: bytes, ..self }
    }
}

/// The metadata a call may carry unless configured otherwise (16 KiB).
pub const DEFAULT_MAX_METADATA: usize = 16 * 1024;

impl<S> Layer<S> for CallLayer {
    type Service = CallLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CallLimit { inner, max: self.max, max_metadata: self.max_metadata }
    }
}

#[derive(Debug, Clone)]
pub struct CallLimit<S> {
    inner: S,
    max: Duration,
    max_metadata: usize,
}

impl<S, B, R> Service<http::Request<B>> for CallLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(refusal) = refusal(request.headers(), self.max_metadata) {
            return Box::pin(async move { Ok(refusal.into_http()) });
        }
        let info = CallInfo::from_headers(request.headers(), self.max);
        let cut = tokio::time::Instant::from_std(info.deadline + GRACE);
        let stores_until = info.deadline.checked_sub(STORE_MARGIN).unwrap_or(info.deadline);
        request.extensions_mut().insert(info);
        let call = crate::deadline::within(stores_until.into(), self.inner.call(request));
        Box::pin(async move {
            match tokio::time::timeout_at(cut, call).await {
                Ok(response) => response,
                Err(_) => Ok(crate::grpc::error_status(
                    Code::DeadlineExceeded,
                    crate::reason::Reason::DeadlineExceeded,
                    "the call did not finish within its deadline",
                )
                .into_http()),
            }
        })
    }
}

/// Why a call is refused before its handler runs, if it is: metadata over
/// `max_metadata` bytes, or a card number in a correlation header (it would
/// reach logs and the audit trail).
fn refusal(headers: &http::HeaderMap, max_metadata: usize) -> Option<tonic::Status> {
    use crate::reason::Reason;
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum();
    if size > max_metadata {
        let message = format!("the call's metadata is over {max_metadata} bytes");
        return Some(crate::grpc::error_status(Code::ResourceExhausted, Reason::MetadataTooLarge, message));
    }
    let carded = ["x-correlation-id", "x-request-id"]
        .into_iter()
        .find(|name| headers.get(*name).and_then(|v| v.to_str().ok()).is_some_and(crate::card::contains_pan))?;
    let message = format!("invalid request: {carded} holds a card number; card data goes only in card fields");
    Some(crate::grpc::error_status(Code::InvalidArgument, Reason::CardNumberInText, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_info_takes_the_callers_deadline_capped_and_its_correlation_id() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", "250m".parse().unwrap());
        headers.insert("x-request-id", "req-7".parse().unwrap());
        let info = CallInfo::from_headers(&headers, Duration::from_secs(5));
        assert!(info.remaining() <= Duration::from_millis(250) && info.remaining() > Duration::from_millis(200));
        assert_eq!(info.correlation_id, "req-7");
        let capped = CallInfo::from_headers(&http::HeaderMap::new(), Duration::from_millis(40));
        assert!(capped.remaining() <= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn a_handler_past_its_deadline_is_cut_with_deadline_exceeded() {
        let slow = tower::service_fn(|request: http::Request<()>| async move {
            assert!(request.extensions().get::<CallInfo>().is_some(), "handlers see the call's info");
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Infallible>(http::Response::new(String::new()))
        });
        let mut service = CallLayer::new(Duration::from_millis(20)).layer(slow);
        let started = Instant::now();
        let response = service.call(http::Request::new(())).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(crate::grpc::error_reason(&status).as_deref(), Some("deadline_exceeded"));
    }

    #[test]
    fn oversized_metadata_and_carded_correlation_ids_are_refused() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-correlation-id", "order-17".parse().unwrap());
        assert!(refusal(&headers, DEFAULT_MAX_METADATA).is_none());
        headers.insert("x-big", "x".repeat(DEFAULT_MAX_METADATA).parse().unwrap());
        let big = refusal(&headers, DEFAULT_MAX_METADATA).unwrap();
        assert_eq!(big.code(), Code::ResourceExhausted);
        assert_eq!(crate::grpc::error_reason(&big).as_deref(), Some("metadata_too_large"));
        headers.remove("x-big");
        headers.insert("x-request-id", "order 4012 8888 8888 1881 737".parse().unwrap());
        let carded = refusal(&headers, DEFAULT_MAX_METADATA).unwrap();
        assert_eq!(crate::grpc::error_reason(&carded).as_deref(), Some("card_number_in_text"));
        assert!(!carded.message().contains("4012"));
    }

    use std::convert::Infallible;
}
