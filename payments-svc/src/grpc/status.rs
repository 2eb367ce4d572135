//! The one mapping from `PaymentError` to a gRPC status with an `ErrorInfo`
//! [`Reason`]; server-side causes are logged here, once. Messages never echo input.
use tonic::{Code, Status};

use common::grpc::error_status;
use vault_api::{Reason, VaultError};

use crate::domain::PaymentError;

impl From<PaymentError> for Status {
    fn from(e: PaymentError) -> Self {
        let (code, reason) = match &e {
            PaymentError::InvalidCard(c) => (Code::InvalidArgument, c.reason()),
            PaymentError::InvalidMoney(m) => (Code::InvalidArgument, m.reason()),
            PaymentError::InvalidArgument(_) => (Code::InvalidArgument, Reason::InvalidArgument),
            PaymentError::NotFound => (Code::NotFound, Reason::NotFound),
            PaymentError::InvalidStateTransition(_) => (Code::FailedPrecondition, Reason::InvalidStateTransition),
            PaymentError::AmountExceeds => (Code::FailedPrecondition, Reason::AmountExceedsAuthorized),
            PaymentError::MitWithoutCit => (Code::FailedPrecondition, Reason::MitWithoutCit),
            PaymentError::NoConnector => (Code::FailedPrecondition, Reason::NoConnector),
            PaymentError::Vault(v) => match v {
                VaultError::TokenNotFound => (Code::NotFound, Reason::TokenNotFound),
                VaultError::UsedToken => (Code::FailedPrecondition, Reason::UsedToken),
                VaultError::TokenExpired => (Code::FailedPrecondition, Reason::TokenExpired),
                VaultError::NotFound => (Code::NotFound, Reason::NotFound),
                VaultError::TokenDeleted => (Code::NotFound, Reason::TokenDeleted),
                VaultError::Rejected { reason } => (Code::InvalidArgument, *reason),
                VaultError::Unavailable => (Code::Unavailable, Reason::VaultUnavailable),
                VaultError::Internal => (Code::Internal, Reason::Internal),
            },
            PaymentError::Store(_) | PaymentError::DeadlineExceeded => (Code::Unavailable, Reason::StoreUnavailable),
            PaymentError::IdempotencyKeyReused => (Code::InvalidArgument, Reason::IdempotencyKeyReused),
            PaymentError::IdempotencyKeyInUse => (Code::Aborted, Reason::IdempotencyKeyInUse),
        };
        if matches!(code, Code::Unavailable | Code::Internal) {
            tracing::error!(error = %e, reason = reason.as_str(), "request failed");
        }
        error_status(code, reason, e.to_string())
    }
}
