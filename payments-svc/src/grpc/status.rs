//! The one mapping from `PaymentError` to a gRPC status with an `ErrorInfo`
//! reason; server-side causes are logged here, once. Messages never echo input.
use tonic::{Code, Status};

use common::grpc::error_status;

use crate::domain::PaymentError;
use crate::domain::store::StoreError;
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
            PaymentError::Store(StoreError::Unavailable(_)) => (Code::Unavailable, "store_unavailable"),
            PaymentError::Store(StoreError::Conflict(_)) => (Code::Aborted, "conflict"),
            PaymentError::Store(StoreError::Invalid(_)) => (Code::InvalidArgument, "invalid_argument"),
            PaymentError::Store(StoreError::Corrupt(_)) => (Code::Internal, "internal"),
            PaymentError::DeadlineExceeded => (Code::DeadlineExceeded, "deadline_exceeded"),
            PaymentError::Internal => (Code::Internal, "internal"),
            PaymentError::IdempotencyKeyReused => (Code::InvalidArgument, "idempotency_key_reused"),
            PaymentError::IdempotencyKeyInUse => (Code::Aborted, "idempotency_key_in_use"),
        };
        if matches!(code, Code::Unavailable | Code::Internal) || matches!(e, PaymentError::Store(_)) {
            tracing::error!(error = %e, reason, "request failed");
        }
        error_status(code, reason, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::grpc::error_reason;

    #[test]
    fn store_errors_map_to_one_code_each() {
        let cases = [
            (StoreError::Unavailable("pool timed out".into()), Code::Unavailable, "store_unavailable"),
            (StoreError::Conflict("23505".into()), Code::Aborted, "conflict"),
            (StoreError::Invalid("22021".into()), Code::InvalidArgument, "invalid_argument"),
            (StoreError::Corrupt("column 3".into()), Code::Internal, "internal"),
        ];
        for (e, code, reason) in cases {
            let status = Status::from(PaymentError::Store(e));
            assert_eq!(status.code(), code);
            assert_eq!(error_reason(&status).as_deref(), Some(reason));
        }
        // The caller's deadline ran out while the work goes on: a reason of its own.
        let late = Status::from(PaymentError::DeadlineExceeded);
        assert_eq!((late.code(), error_reason(&late).as_deref()), (Code::DeadlineExceeded, Some("deadline_exceeded")));
    }
}
