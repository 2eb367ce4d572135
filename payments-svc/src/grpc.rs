//! The gRPC boundary of payments-svc: the only code that touches generated
//! types. `payments`, `registrations`, `omni_tokens` serve the three services;
//! `convert` maps messages, `status` maps errors, `idempotent` wraps every
//! mutating call with the idempotency-key protocol.

pub mod convert;
pub mod idempotent;
pub mod omni_tokens;
pub mod payments;
pub mod registrations;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use tonic::{Request, Response, Status};

use common::auth::{Caller, DirectoryHandle, KeyKind};
use common::server::CallInfo;
use vault_api::{CallContext, Vault};

use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::Payments;
use crate::domain::payment::Scope;
use crate::domain::references::References;
use crate::domain::store::PaymentStore;
use idempotent::Reply;

/// Time kept back from the caller's deadline for the vault's calls, so a
/// vault that does not answer is `vault_unavailable` before the caller's
/// deadline rather than a bare deadline.
const VAULT_MARGIN: Duration = Duration::from_millis(100);

/// What every service holds.
pub struct Shared<P, V, A> {
    pub payments: Arc<Payments<P, V, A>>,
    pub directory: DirectoryHandle,
    /// What idempotency keys and requests are stored keyed under.
    pub references: Arc<References>,
    pub max_deadline: Duration,
    /// The detached work of every call, so the drain can wait for it.
    pub tracker: tokio_util::task::TaskTracker,
}

/// A call past the preamble: the merchant behind the secret key, and the
/// context the vault calls carry (deadline, traceparent, correlation id).
pub struct Call {
    pub caller: Caller,
    pub ctx: CallContext,
}

impl Call {
    /// The merchant and mode the call may see.
    pub fn scope(&self) -> Scope<'_> {
        Scope::of(&self.caller)
    }
}

/// What a mutating call's detached work runs with: the flows, the caller,
/// the vault context and the id the request stands for.
pub struct Work<P, V, A> {
    pub payments: Arc<Payments<P, V, A>>,
    pub call: Call,
    pub id: String,
}

impl<P, V, A> Work<P, V, A> {
    pub fn scope(&self) -> Scope<'_> {
        self.call.scope()
    }
}

/// What a handler answers.
pub type Answer<T> = Result<Response<T>, Status>;

/// A mutating call: the preamble, then `work` detached from the request under
/// the idempotency-key protocol (`idempotent`).
pub async fn mutate<P, V, A, Req, Res, F, Fut>(
    shared: &Shared<P, V, A>,
    method: &'static str,
    request: Request<Req>,
    work: F,
) -> Answer<Res>
where
    P: PaymentStore,
    V: Vault,
    A: Acquirer,
    Req: prost::Message + Send + 'static,
    Res: Reply,
    F: FnOnce(Work<P, V, A>, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Res, PaymentError>> + Send + 'static,
{
    let call = shared.call(&request)?;
    let (caller, ctx) = (call.caller.clone(), call.ctx.clone());
    let (metadata, _, req) = request.into_parts();
    let payments = shared.payments.clone();
    let hashed = req.encode_to_vec();
    let run = move |id| work(Work { payments, call, id }, req);
    idempotent::run(shared, &caller, ctx, method, &metadata, &hashed, run).await.map(Response::new)
}

impl<P, V, A> Shared<P, V, A> {
    /// The preamble of every handler. Payments accept secret keys only; the
    /// deadline and correlation id come from the server shell.
    pub fn call<T>(&self, request: &Request<T>) -> Result<Call, Status> {
        let metadata = request.metadata();
        let caller = self.directory.authenticate(metadata, &[KeyKind::Secret]).map_err(Status::from)?;
        let info = CallInfo::of(request, self.max_deadline);
        let ctx = CallContext {
            // The vault answers (or is given up on) before this call must answer.
            deadline: Some(info.deadline.checked_sub(VAULT_MARGIN).unwrap_or(info.deadline)),
            traceparent: metadata.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
            correlation_id: info.correlation_id,
        };
        Ok(Call { caller, ctx })
    }
}
