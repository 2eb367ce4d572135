//! Every `google.rpc.ErrorInfo` reason payvault sends (DESIGN.md §4), as one
//! enum: both services map their errors to it and the vault client maps it
//! back, so no reason is ever matched as a string. It lives in `common` because
//! card, money and key validation name their reasons here; `vault-api`
//! re-exports it. `as_str` is the wire text and `parse` its inverse.
use std::fmt;
use std::str::FromStr;

macro_rules! reasons {
    ($($variant:ident => $text:literal,)+) => {
        /// An `ErrorInfo` reason (domain `payvault`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($variant,)+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The reason as sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)+
                }
            }

            /// The reason a wire text names; `None` for a text payvault never sends.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Reason::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    InvalidCard => "invalid_card",
    InvalidExpirationDate => "invalid_expiration_date",
    InvalidSecurityCode => "invalid_security_code",
    InvalidName => "invalid_name",
    InvalidBillingAddress => "invalid_billing_address",
    InvalidCountry => "invalid_country",
    InvalidAmount => "invalid_amount",
    InvalidCurrency => "invalid_currency",
    InvalidArgument => "invalid_argument",
    CardNumberInText => "card_number_in_text",
    MetadataTooLarge => "metadata_too_large",
    InvalidIban => "invalid_iban",
    InvalidBic => "invalid_bic",
    InvalidAccountHolder => "invalid_account_holder",
    InvalidMandate => "invalid_mandate",
    InstrumentMismatch => "instrument_mismatch",
    UsedToken => "used_token",
    TokenExpired => "token_expired",
    TokenNotFound => "token_not_found",
    TokenDeleted => "token_deleted",
    NotFound => "not_found",
    AuthenticationFailure => "authentication_failure",
    PermissionDenied => "permission_denied",
    IdempotencyKeyReused => "idempotency_key_reused",
    IdempotencyKeyInUse => "idempotency_key_in_use",
    InvalidStateTransition => "invalid_state_transition",
    AmountExceedsAuthorized => "amount_exceeds_authorized",
    MitWithoutCit => "mit_without_cit",
    NoConnector => "no_connector",
    Conflict => "conflict",
    VaultUnavailable => "vault_unavailable",
    StoreUnavailable => "store_unavailable",
    DeadlineExceeded => "deadline_exceeded",
    Internal => "internal",
}

/// A wire text that is not a payvault reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a payvault error reason")]
pub struct UnknownReason;

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::parse(s).ok_or(UnknownReason)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_parses_back_from_its_text() {
        for &reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }

    #[test]
    fn texts_are_distinct_snake_case_and_unknown_texts_are_refused() {
        let mut texts: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Reason::ALL.len());
        assert!(texts.iter().all(|t| t.bytes().all(|b| b == b'_' || b.is_ascii_lowercase())));
        assert_eq!(Reason::parse("Used_Token"), None);
        assert_eq!("".parse::<Reason>(), Err(UnknownReason));
    }

    #[test]
    fn design_reasons_are_all_there() {
        let design = [
            "invalid_card",
            "invalid_expiration_date",
            "invalid_security_code",
            "invalid_amount",
            "invalid_currency",
            "used_token",
            "token_expired",
            "token_not_found",
            "not_found",
            "authentication_failure",
            "permission_denied",
            "idempotency_key_reused",
            "idempotency_key_in_use",
            "invalid_state_transition",
            "amount_exceeds_authorized",
            "mit_without_cit",
            "vault_unavailable",
            "store_unavailable",
            "deadline_exceeded",
            "card_number_in_text",
            "invalid_iban",
            "invalid_bic",
            "invalid_account_holder",
        ];
        for text in design {
            assert!(Reason::parse(text).is_some(), "{text}");
        }
    }
}
