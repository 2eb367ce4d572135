//! Vault RPCs as one tower service, so layers (retry) wrap every call alike:
//! a [`Call`] is a request message with the [`CallContext`] it travels with,
//! [`VaultRpc`] sends it with the generated client, and the [`Propagate`]
//! interceptor turns the context into metadata on every attempt: the deadline
//! left at that moment (`grpc-timeout`), `traceparent` and `x-correlation-id`.
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tower::Service;

use common::telemetry::spans;
use tracing::Instrument;

use super::retry::HasDeadline;
use crate::vault::CallContext;
use proto::vault::v1 as pb;

pub(crate) type Client = pb::vault_client::VaultClient<InterceptedService<Channel, Propagate>>;

/// One vault RPC: its request message and the caller's context.
#[derive(Debug, Clone)]
pub struct Call<M> {
    pub message: M,
    pub ctx: CallContext,
}

impl<M> HasDeadline for Call<M> {
    fn deadline(&self) -> Option<Instant> {
        self.ctx.deadline
    }
}

/// A vault RPC, named by its request message.
pub trait Rpc: Clone + Send + 'static {
    type Response: Send + 'static;

    /// The method's name in the `Vault` service, for its span.
    const METHOD: &'static str;

    fn send(client: Client, request: Request<Self>) -> BoxFuture<'static, Result<Response<Self::Response>, Status>>;
}

macro_rules! rpc {
    ($($request:ty => $response:ty, $method:ident, $name:literal;)+) => {
        $(impl Rpc for $request {
            type Response = $response;
            const METHOD: &'static str = $name;

            fn send(mut client: Client, request: Request<Self>) -> BoxFuture<'static, Result<Response<$response>, Status>> {
                Box::pin(async move { client.$method(request).await })
            }
        })+
    };
}

rpc! {
    pb::DetokenizeRequest => pb::DetokenizeResponse, detokenize, "Detokenize";
    pb::ReportChargesRequest => pb::ReportChargesResponse, report_charges, "ReportCharges";
    pb::TokenizeRequest => pb::StoredToken, tokenize, "Tokenize";
    pb::ListTokensRequest => pb::ListTokensResponse, list_tokens, "ListTokens";
    pb::DeleteTokenRequest => pb::DeleteTokenResponse, delete_token, "DeleteToken";
    pb::ExtendTokenRequest => pb::StoredToken, extend_token, "ExtendToken";
    pb::DescribeTokenRequest => pb::StoredToken, describe_token, "DescribeToken";
    pb::SetDefaultTokenRequest => pb::StoredToken, set_default_token, "SetDefaultToken";
}

/// The innermost service: one attempt of one RPC over the (lazy) channel,
/// in a client span whose context the attempt carries as `traceparent`.
#[derive(Clone)]
pub struct VaultRpc {
    client: Client,
    /// The vault's host, for the span's `server.address`.
    address: std::sync::Arc<str>,
}

impl VaultRpc {
    pub(crate) fn new(channel: Channel, address: &str) -> Self {
        Self { client: pb::vault_client::VaultClient::with_interceptor(channel, Propagate), address: address.into() }
    }
}

const SERVICE: &str = "payvault.vault.v1.Vault";

impl<M: Rpc> Service<Call<M>> for VaultRpc {
    type Response = M::Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<M::Response, Status>>;

    /// The generated client waits for the channel itself.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<M>) -> Self::Future {
        let span = spans::client(SERVICE, M::METHOD, &self.address);
        let mut ctx = call.ctx;
        // Without an exporter the span has no context: the caller's own
        // traceparent travels on, so the vault still logs the trace id.
        if let Some(traceparent) = spans::traceparent(&span) {
            ctx.traceparent = Some(traceparent);
        }
        let mut request = Request::new(call.message);
        request.extensions_mut().insert(ctx);
        let response = M::send(self.client.clone(), request);
        Box::pin(async move {
            let result = response.instrument(span.clone()).await;
            spans::record_status(&span, result.as_ref().map_or_else(|s| s.code() as i32, |_| 0));
            result.map(Response::into_inner)
        })
    }
}

/// Turns the [`CallContext`] a request carries into gRPC metadata, when the
/// attempt is sent, so a retry announces only the time that is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct Propagate;

impl Interceptor for Propagate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(ctx) = request.extensions_mut().remove::<CallContext>() else { return Ok(request) };
        if let Some(deadline) = ctx.deadline {
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let md = request.metadata_mut();
        if let Some(tp) = ctx.traceparent.as_deref().and_then(|t| t.parse().ok()) {
            md.insert("traceparent", tp);
        }
        if let Ok(id) = ctx.correlation_id.parse() {
            md.insert("x-correlation-id", id);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_context_becomes_metadata() {
        let ctx = CallContext {
            deadline: Some(Instant::now() + Duration::from_secs(2)),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            correlation_id: "corr-1".into(),
        };
        let mut request = Request::new(());
        request.extensions_mut().insert(ctx);
        let request = Propagate.call(request).unwrap();
        let md = request.metadata();
        let timeout = common::grpc::deadline(md, Duration::from_secs(60));
        assert!(timeout <= Duration::from_secs(2) && timeout > Duration::from_secs(1), "{timeout:?}");
        assert_eq!(md.get("traceparent").unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(md.get("x-correlation-id").unwrap(), "corr-1");
        assert!(request.extensions().get::<CallContext>().is_none());
    }

    #[test]
    fn a_request_without_context_is_left_alone() {
        let request = Propagate.call(Request::new(())).unwrap();
        assert!(request.metadata().is_empty());
    }
}
