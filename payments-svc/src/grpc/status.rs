//! The one mapping from `PaymentError` to a gRPC status with an `ErrorInfo`
//! [`Reason`]; server-side causes are logged here, once. Messages never echo input.
use tonic::{Code, Status};

use common::card::CardField;
use common::grpc::{DomainError, failure};
use vault_api::{Reason, VaultError};

use crate::domain::PaymentError;

impl From<PaymentError> for Status {
    fn from(e: PaymentError) -> Self {
        let (code, reason) = match &e {
            PaymentError::InvalidCard(c) => (Code::InvalidArgument, c.reason()),
            PaymentError::InvalidMoney(m) => (Code::InvalidArgument, m.reason()),
            PaymentError::InvalidAccount(a) => (Code::InvalidArgument, a.reason()),
            PaymentError::InvalidMandate(_) => (Code::InvalidArgument, Reason::InvalidMandate),
            PaymentError::InvalidArgument(_) | PaymentError::InvalidText(_) => {
                (Code::InvalidArgument, Reason::InvalidArgument)
            }
            PaymentError::CardNumberInText(_) => (Code::InvalidArgument, Reason::CardNumberInText),
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
            PaymentError::Store(store) => store.code_and_reason(),
            PaymentError::DeadlineExceeded => (Code::DeadlineExceeded, Reason::DeadlineExceeded),
            PaymentError::Internal => (Code::Internal, Reason::Internal),
            PaymentError::IdempotencyKeyReused => (Code::InvalidArgument, Reason::IdempotencyKeyReused),
            PaymentError::IdempotencyKeyInUse => (Code::Aborted, Reason::IdempotencyKeyInUse),
        };
        failure(code, reason, &e)
    }
}

impl DomainError for PaymentError {
    fn store_error(&self) -> Option<&common::store::StoreError> {
        if let Self::Store(store) = self { Some(store) } else { None }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidCard(c) => c.field().map(CardField::as_str),
            Self::InvalidText(field) | Self::CardNumberInText(field) => Some(field),
            Self::InvalidMandate(_) => Some("mandate"),
            Self::InvalidAccount(common::bank::AccountError::Iban(_)) => Some("bank_account.iban"),
            Self::InvalidAccount(common::bank::AccountError::Bic) => Some("bank_account.bic"),
            Self::InvalidAccount(_) => Some("bank_account.holder"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::StoreError;
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
            for driver in ["pool timed out", "23505", "22021", "column 3"] {
                assert!(!status.message().contains(driver), "a fixed text, not the driver's: {}", status.message());
            }
        }
        // The caller's deadline ran out while the work goes on: a reason of its own.
        let late = Status::from(PaymentError::DeadlineExceeded);
        assert_eq!((late.code(), error_reason(&late).as_deref()), (Code::DeadlineExceeded, Some("deadline_exceeded")));
    }
}
