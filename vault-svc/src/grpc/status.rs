//! The one mapping from `VaultError` to a gRPC status with an `ErrorInfo`
//! [`Reason`] (the enum `vault-api` clients map back from). Causes of
//! server-side failures are logged here, once; messages are fixed texts and
//! never echo a card number, security code or key.
use tonic::{Code, Status};

use common::card::CardField;
use common::grpc::{DomainError, failure};
use vault_api::Reason;

use crate::domain::VaultError;

impl From<VaultError> for Status {
    fn from(e: VaultError) -> Self {
        let (code, reason) = match &e {
            VaultError::InvalidCard(c) => (Code::InvalidArgument, c.reason()),
            VaultError::InvalidAccount(a) => (Code::InvalidArgument, a.reason()),
            VaultError::InvalidArgument(_) => (Code::InvalidArgument, Reason::InvalidArgument),
            VaultError::CardNumberInText(_) => (Code::InvalidArgument, Reason::CardNumberInText),
            VaultError::TokenNotFound => (Code::NotFound, Reason::TokenNotFound),
            VaultError::NotFound => (Code::NotFound, Reason::NotFound),
            VaultError::TokenDeleted => (Code::NotFound, Reason::TokenDeleted),
            VaultError::Conflict => (Code::Aborted, Reason::Conflict),
            VaultError::UsedToken => (Code::FailedPrecondition, Reason::UsedToken),
            VaultError::TokenExpired => (Code::FailedPrecondition, Reason::TokenExpired),
            VaultError::InstrumentMismatch => (Code::FailedPrecondition, Reason::InstrumentMismatch),
            VaultError::DeadlineExceeded => (Code::Unavailable, Reason::StoreUnavailable),
            VaultError::Store(store) => store.code_and_reason(),
            VaultError::Crypto(_) | VaultError::Corrupt => (Code::Internal, Reason::Internal),
        };
        failure(code, reason, &e)
    }
}

impl DomainError for VaultError {
    fn store_error(&self) -> Option<&common::store::StoreError> {
        if let Self::Store(store) = self { Some(store) } else { None }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidCard(c) => c.field().map(CardField::as_str),
            Self::InvalidAccount(a) => Some(account_field(a)),
            Self::CardNumberInText(field) => Some(field),
            _ => None,
        }
    }
}

fn account_field(e: &common::bank::AccountError) -> &'static str {
    use common::bank::AccountError;
    match e {
        AccountError::Iban(_) => "bank_account.iban",
        AccountError::Bic => "bank_account.bic",
        AccountError::Holder => "bank_account.holder",
        AccountError::Country => "bank_account.country",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::StoreError;
    use common::card::CardError;
    use common::grpc::{error_field, error_reason};

    #[test]
    fn a_card_field_at_fault_is_named_in_a_bad_request_detail() {
        let status = Status::from(VaultError::InvalidCard(CardError::NumberInText(CardField::Street1)));
        assert_eq!(error_reason(&status).as_deref(), Some("card_number_in_text"));
        assert_eq!(error_field(&status).as_deref(), Some("card.street1"));
        let status = Status::from(VaultError::InvalidCard(CardError::InvalidBilling(CardField::City)));
        assert_eq!(error_reason(&status).as_deref(), Some("invalid_billing_address"));
        assert_eq!(error_field(&status).as_deref(), Some("card.city"));
        assert_eq!(error_field(&Status::from(VaultError::TokenNotFound)), None);
    }

    #[test]
    fn domain_errors_map_to_codes_and_reasons() {
        let cases = [
            (VaultError::InvalidCard(CardError::InvalidNumber), Code::InvalidArgument, "invalid_card"),
            (VaultError::InvalidCard(CardError::InvalidSecurityCode), Code::InvalidArgument, "invalid_security_code"),
            (VaultError::InvalidCard(CardError::InvalidCountry), Code::InvalidArgument, "invalid_country"),
            (VaultError::TokenNotFound, Code::NotFound, "token_not_found"),
            (
                VaultError::InvalidAccount(common::bank::AccountError::Iban(common::bank::IbanError::CheckDigits)),
                Code::InvalidArgument,
                "invalid_iban",
            ),
            (VaultError::InvalidAccount(common::bank::AccountError::Bic), Code::InvalidArgument, "invalid_bic"),
            (
                VaultError::InvalidAccount(common::bank::AccountError::Holder),
                Code::InvalidArgument,
                "invalid_account_holder",
            ),
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
            for driver in ["pool timed out", "23505", "22021", "column 3"] {
                assert!(!status.message().contains(driver), "a fixed text, not the driver's: {}", status.message());
            }
        }
    }
}
