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

use common::server::CallInfo;

use crate::domain::VaultError;

/// Runs a domain call within the call's deadline (the shell's `CallInfo`), so
/// a store that hangs answers `UNAVAILABLE` in time instead of never.
pub(crate) async fn within_deadline<T>(
    call: &CallInfo,
    work: impl Future<Output = Result<T, VaultError>>,
) -> Result<T, VaultError> {
    tokio::time::timeout(call.remaining(), work).await.unwrap_or(Err(VaultError::DeadlineExceeded))
}
