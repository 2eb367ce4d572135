//! The gRPC boundary: the only code that touches generated types. `tokens`
//! serves the public `Tokens` service, `vault` the internal `Vault` service,
//! `convert` maps messages to domain types, `status` maps domain errors to
//! statuses, and `tls` guards both ports.

pub mod convert;
pub mod status;
pub mod tls;
pub mod tokens;
pub mod vault;

use std::future::Future;
use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::domain::VaultError;

/// Runs a domain call within the caller's deadline (capped at `max`), so a
/// store that hangs answers `UNAVAILABLE` in time instead of never.
pub(crate) async fn within_deadline<T>(
    metadata: &MetadataMap,
    max: Duration,
    call: impl Future<Output = Result<T, VaultError>>,
) -> Result<T, VaultError> {
    let deadline = common::grpc::deadline(metadata, max);
    tokio::time::timeout(deadline, call).await.unwrap_or(Err(VaultError::DeadlineExceeded))
}
