//! The one mapping from `PaymentError` to a gRPC status with an `ErrorInfo`
//! reason; server-side causes are logged here, once. Messages never echo input.
use tonic::{Code, Status};

use common::grpc::error_status;

use crate::domain::PaymentError;
use crate::vault::VaultError;

impl From<PaymentError> for Status {
    fn from(e: PaymentError) -> Self {
        let (code, reason): (Code, &str) = match &e {
            PaymentError::InvalidCard(c) => (Code::InvalidArgument, c.reason()),
            PaymentError::InvalidMoney(m) => (Code::InvalidArgument, m.reason()),
            PaymentError::InvalidArgument(_) => (Code::InvalidArgument, "invalid_argument"),
            PaymentError::NotFound => (Code::NotFound, "not_found"),
            PaymentError::InvalidStateTransition(_) => (Code::FailedPrecondition, "invalid_state_transition"),
            PaymentError::AmountExceeds => (Code::FailedPrecondition, "amount_exceeds_authorized"),
            PaymentError::MitWithoutCit => (Code::FailedPrecondition, "mit_without_cit"),
            PaymentError::NoConnector => (Code::FailedPrecondition, "no_connector"),
            PaymentError::Vault(v) => match v {
                VaultError::TokenNotFound => (Code::NotFound, "token_not_found"),
                VaultError::UsedToken => (Code::FailedPrecondition, "used_token"),
                VaultError::TokenExpired => (Code::FailedPrecondition, "token_expired"),
                VaultError::NotFound => (Code::NotFound, "not_found"),
                VaultError::TokenDeleted => (Code::NotFound, "token_deleted"),
                VaultError::Rejected { reason } => (Code::InvalidArgument, reason.as_str()),
                VaultError::Unavailable => (Code::Unavailable, "vault_unavailable"),
                VaultError::Internal => (Code::Internal, "internal"),
            },
            PaymentError::Store(_) => (Code::Unavailable, "store_unavailable"),
            PaymentError::DeadlineExceeded => (Code::DeadlineExceeded, "deadline_exceeded"),
            PaymentError::Internal => (Code::Internal, "internal"),
            PaymentError::IdempotencyKeyReused => (Code::InvalidArgument, "idempotency_key_reused"),
            PaymentError::IdempotencyKeyInUse => (Code::Aborted, "idempotency_key_in_use"),
        };
        if matches!(code, Code::Unavailable | Code::Internal) {
            tracing::error!(error = %e, reason, "request failed");
        }
        error_status(code, reason, e.to_string())
    }
}
