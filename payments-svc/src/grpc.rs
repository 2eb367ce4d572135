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
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::metadata::MetadataMap;

use common::auth::{Caller, DirectoryHandle, KeyKind};
use vault_api::CallContext;

use crate::domain::flows::Payments;

/// What every service holds.
pub struct Shared<P, V, A> {
    pub payments: Arc<Payments<P, V, A>>,
    pub directory: DirectoryHandle,
    pub max_deadline: Duration,
    /// The detached work of every call, so the drain can wait for it.
    pub tracker: tokio_util::task::TaskTracker,
}

impl<P, V, A> Shared<P, V, A> {
    /// Payments accept secret keys only.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        self.directory.authenticate(metadata, &[KeyKind::Secret]).map_err(Status::from)
    }

    pub fn context(&self, metadata: &MetadataMap) -> CallContext {
        CallContext {
            deadline: Some(Instant::now() + common::grpc::deadline(metadata, self.max_deadline)),
            traceparent: metadata.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
            correlation_id: common::grpc::correlation_id(metadata),
        }
    }
}
