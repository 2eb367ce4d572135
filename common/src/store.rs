//! What a store call fails with, in both services, and the one rule for
//! retrying it. `Unavailable` (the store could not be reached or did not answer
//! in time) is the only failure a retry may fix; `Conflict` (a concurrent write
//! got there first), `Invalid` (the store refused a value) and `Corrupt` (what
//! it holds or answered cannot be used) repeat on every retry. The texts name a
//! code, a constraint or a column, never a value, so no request data (no card
//! number) reaches a log line or a status message through them.
use tonic::Code;

use crate::reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached, did not answer, or dropped the connection.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique key or a serialization check lost to a concurrent write.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The store refused a value: a data exception, a check or not-null
    /// constraint, a string it cannot hold (a NUL byte, an invalid encoding).
    #[error("the store refused a value: {0}")]
    Invalid(String),
    /// A row or reply that cannot be read, or a schema this build does not expect.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed later: only when the store was unavailable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// What a client is told: a fixed text of ours, never the driver's (the
    /// cause is logged once, by the status mapping).
    pub fn public_text(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "the store is unavailable; retry",
            Self::Conflict(_) => "the request conflicted with a concurrent change",
            Self::Invalid(_) => "the store refused a value of the request",
            Self::Corrupt(_) => "stored data could not be read",
        }
    }

    /// The gRPC code and reason of a call that failed with this, in either
    /// service: only `Unavailable` is UNAVAILABLE.
    pub fn code_and_reason(&self) -> (Code, Reason) {
        match self {
            Self::Unavailable(_) => (Code::Unavailable, Reason::StoreUnavailable),
            Self::Conflict(_) => (Code::Aborted, Reason::Conflict),
            Self::Invalid(_) => (Code::InvalidArgument, Reason::InvalidArgument),
            Self::Corrupt(_) => (Code::Internal, Reason::Internal),
        }
    }
}
