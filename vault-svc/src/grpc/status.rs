//! The one mapping from `VaultError` to a gRPC status with an `ErrorInfo`
//! [`Reason`] (the enum `vault-api` clients map back from). Causes of
//! server-side failures are logged here, once; messages are fixed texts and
//! never echo a card number, security code or key.
use tonic::{Code, Status};

use common::grpc::error_status;
use vault_api::Reason;

use crate::domain::VaultError;
use crate::domain::store::StoreError;

impl From<VaultError> for Status {
    fn from(e: VaultError) -> Self {
        let (code, reason) = match &e {
            VaultError::InvalidCard(c) => (Code::InvalidArgument, c.reason()),
            VaultError::InvalidArgument(_) => (Code::InvalidArgument, Reason::InvalidArgument),
            VaultError::CardNumberInText(_) => (Code::InvalidArgument, Reason::CardNumberInText),
            VaultError::TokenNotFound => (Code::NotFound, Reason::TokenNotFound),
            VaultError::NotFound => (Code::NotFound, Reason::NotFound),
            VaultError::TokenDeleted => (Code::NotFound, Reason::TokenDeleted),
            VaultError::Conflict => (Code::Aborted, Reason::Conflict),
            VaultError::UsedToken => (Code::FailedPrecondition, Reason::UsedToken),
            VaultError::TokenExpired => (Code::FailedPrecondition, Reason::TokenExpired),
            VaultError::Store(StoreError::Unavailable(_)) | VaultError::DeadlineExceeded => {
                (Code::Unavailable, Reason::StoreUnavailable)
            }
            VaultError::Store(StoreError::Conflict(_)) => (Code::Aborted, Reason::Conflict),
            VaultError::Store(StoreError::Invalid(_)) => (Code::InvalidArgument, Reason::InvalidArgument),
            VaultError::Store(StoreError::Corrupt(_)) => (Code::Internal, Reason::Internal),
            VaultError::Crypto(_) | VaultError::Corrupt => (Code::Internal, Reason::Internal),
        };
        if matches!(code, Code::Unavailable | Code::Internal) || matches!(e, VaultError::Store(_)) {
            tracing::error!(error = %e, reason = reason.as_str(), "request failed");
        }
        error_status(code, reason, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::card::CardError;
    use common::grpc::error_reason;

    #[test]
    fn domain_errors_map_to_codes_and_reasons() {
        let cases = [
            (VaultError::InvalidCard(CardError::InvalidNumber), Code::InvalidArgument, "invalid_card"),
            (VaultError::InvalidCard(CardError::InvalidSecurityCode), Code::InvalidArgument, "invalid_security_code"),
            (VaultError::TokenNotFound, Code::NotFound, "token_not_found"),
            (VaultError::UsedToken, Code::FailedPrecondition, "used_token"),
            (VaultError::TokenExpired, Code::FailedPrecondition, "token_expired"),
            (VaultError::DeadlineExceeded, Code::Unavailable, "store_unavailable"),
            (
                VaultError::Store(StoreError::Unavailable("pool timed out".into())),
                Code::Unavailable,
                "store_unavailable",
            ),
            (VaultError::Store(StoreError::Conflict("23505".into())), Code::Aborted, "conflict"),
            (VaultError::Store(StoreError::Invalid("22021".into())), Code::InvalidArgument, "invalid_argument"),
            (VaultError::Store(StoreError::Corrupt("column 3".into())), Code::Internal, "internal"),
        ];
        for (e, code, reason) in cases {
            let status = Status::from(e);
            assert_eq!(status.code(), code);
            assert_eq!(error_reason(&status).as_deref(), Some(reason));
        }
    }
}
