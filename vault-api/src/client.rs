//! The vault adapter over gRPC: the only code outside vault-svc that sees the
//! vault's generated types. It speaks mTLS with the caller's client
//! certificate over a lazy channel, and stacks tower layers over every RPC:
//! [`retry`] repeats UNAVAILABLE and transport timeouts while the deadline
//! allows (every call is safe to repeat: detokenize and tokenize carry a
//! `consumer_ref`), and [`call`] sends the remaining deadline, `traceparent`
//! and correlation id on each attempt. Statuses map to [`VaultError`] in one
//! place, by their [`Reason`]. [`balance`] spreads the calls over every
//! vault replica a name resolves to.
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status};
use tower::retry::{Retry, RetryLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

use common::bank::BankAccount;
use common::card::{Billing, Card};
use common::clock::{Clock, SystemClock};
use proto::vault::v1 as pb;

use crate::Reason;
use crate::convert::{
    account_input, account_to_proto, billing, card_input, card_to_proto, kind_to_proto, masked_account, masked_card,
    millis,
};
use crate::token_id::TokenKind;
use crate::vault::{
    CallContext, ChargeReport, Instrument, InstrumentKind, MaskedCard, Scope, StoredToken, TokenSource, Vault,
    VaultError,
};

pub mod balance;
pub mod call;
pub mod retry;

pub use balance::Balancing;
use call::{Call, Rpc, VaultRpc};
use retry::{RetryParams, RetryPolicy};

/// Where and how to reach the vault's internal port.
#[derive(Clone)]
pub struct VaultEndpoint {
    pub url: String,
    /// The name on the vault's server certificate.
    pub domain: String,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

#[derive(Clone)]
pub struct GrpcVault {
    service: Retry<RetryPolicy, VaultRpc>,
    channel: Channel,
}

impl GrpcVault {
    /// Builds the client without connecting: the first call connects, to the
    /// one address `endpoint.url` names at that moment.
    pub fn connect_lazy(endpoint: &VaultEndpoint) -> Result<Self, String> {
        Self::connect(endpoint, None)
    }

    /// Builds the client over a balanced channel: every address of the name
    /// (or names, comma-separated) in `endpoint.url` that reports SERVING
    /// takes calls ([`balance`]). Needs a Tokio runtime.
    pub fn connect_balanced(endpoint: &VaultEndpoint, balancing: Balancing) -> Result<Self, String> {
        Self::connect(endpoint, Some(balancing))
    }

    fn connect(endpoint: &VaultEndpoint, balancing: Option<Balancing>) -> Result<Self, String> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&endpoint.ca_pem))
            .identity(Identity::from_pem(&endpoint.cert_pem, &endpoint.key_pem))
            .domain_name(endpoint.domain.clone());
        let make: balance::MakeEndpoint = std::sync::Arc::new(move |url: &str| {
            Ok(Channel::from_shared(url.to_owned())
                .map_err(|_| format!("vault url {url} is not a valid URI"))?
                .tls_config(tls.clone())
                .map_err(|e| format!("vault TLS configuration: {e}"))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true))
        });
        let channel = match balancing {
            None => make(&endpoint.url)?.connect_lazy(),
            Some(balancing) => balance::channel(&endpoint.url, make, balancing)?,
        };
        let policy = RetryPolicy::new(RetryParams::default()).map_err(|e| format!("vault retry policy: {e:?}"))?;
        let service = ServiceBuilder::new()
            .layer(RetryLayer::new(policy))
            .service(VaultRpc::new(channel.clone(), endpoint.domain.as_str()));
        Ok(Self { service, channel })
    }

    /// Whether the vault's internal `Vault` service answers SERVING to a
    /// `grpc.health.v1` check (its stores are up): payments' health follows it.
    pub async fn serving(&self) -> Result<(), String> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let request = HealthCheckRequest { service: "payvault.vault.v1.Vault".into() };
        let answer = HealthClient::new(self.channel.clone()).check(request).await.map_err(|s| s.code().to_string())?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("the vault reports {}", other.as_str_name())),
        }
    }

    async fn call<M: Rpc>(&self, message: M, ctx: &CallContext) -> Result<M::Response, VaultError>
    where
        Retry<RetryPolicy, VaultRpc>: Service<Call<M>, Response = M::Response, Error = Status>,
    {
        let call = Call { message, ctx: ctx.clone() };
        self.service.clone().oneshot(call).await.map_err(|status| vault_error(&status))
    }
}

/// The one mapping from a vault status to `VaultError`.
fn vault_error(status: &Status) -> VaultError {
    match (status.code(), common::grpc::reason(status)) {
        (_, Some(Reason::TokenNotFound)) => VaultError::TokenNotFound,
        (_, Some(Reason::UsedToken)) => VaultError::UsedToken,
        (_, Some(Reason::TokenExpired)) => VaultError::TokenExpired,
        (_, Some(Reason::TokenDeleted)) => VaultError::TokenDeleted,
        (_, Some(Reason::InstrumentMismatch)) => VaultError::Rejected { reason: Reason::InstrumentMismatch },
        (Code::NotFound, _) => VaultError::NotFound,
        (Code::InvalidArgument, reason) => VaultError::Rejected { reason: reason.unwrap_or(Reason::InvalidArgument) },
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted, _) => VaultError::Unavailable,
        // The vault sends every status with a reason: one without is the
        // transport's (a connection reset when the vault died mid-call).
        (Code::Unknown | Code::Internal, None) => VaultError::Unavailable,
        _ => VaultError::Internal,
    }
}

fn stored(t: pb::StoredToken) -> StoredToken {
    StoredToken {
        id: t.id,
        customer_id: t.customer_id,
        account: t.account.map(masked_account),
        last_used_at: t.last_used_at.as_ref().map(|at| millis(Some(at))),
        billing: t.card.as_ref().map(billing).unwrap_or_default(),
        card: masked_card(t.card),
        created_at: millis(t.created_at.as_ref()),
        retain_until: millis(t.retain_until.as_ref()),
        extended: t.extended,
        is_default: t.is_default,
    }
}

/// A one-click summary as a stored token: what the vault lists, nothing more.
fn listed(t: pb::TokenSummary, customer_id: &str) -> StoredToken {
    StoredToken {
        id: t.id,
        customer_id: customer_id.into(),
        card: MaskedCard {
            brand: t.brand,
            bin: String::new(),
            last4: t.last_digits,
            exp_month: t.expiration_month as u8,
            exp_year: t.expiration_year as u16,
            name: String::new(),
        },
        account: t.account.map(masked_account),
        last_used_at: None,
        billing: Billing::default(),
        created_at: 0,
        retain_until: 0,
        extended: false,
        is_default: t.is_default,
    }
}

impl Vault for GrpcVault {
    async fn detokenize(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        expect: Option<InstrumentKind>,
        ctx: &CallContext,
    ) -> Result<Instrument, VaultError> {
        let message = pb::DetokenizeRequest {
            merchant_id: scope.merchant_id.into(),
            token: token.into(),
            consumer_ref: consumer_ref.into(),
            livemode: scope.livemode,
            instrument: expect.map(InstrumentKind::as_str).unwrap_or_default().into(),
        };
        let response = self.call(message, ctx).await?;
        if let Some(mut account) = response.bank_account {
            return BankAccount::validate(&account_input(&mut account))
                .map(Instrument::Account)
                .map_err(|e| VaultError::Rejected { reason: e.reason() });
        }
        let mut card = response.card.unwrap_or_default();
        Card::validate(&card_input(&mut card), SystemClock.now_ms())
            .map(Instrument::Card)
            .map_err(|e| VaultError::Rejected { reason: e.reason() })
    }

    async fn report_charges(&self, reports: &[ChargeReport], ctx: &CallContext) -> Result<Vec<bool>, VaultError> {
        let reports = reports
            .iter()
            .map(|r| pb::ChargeReport {
                merchant_id: r.merchant_id.clone(),
                token: r.token.clone(),
                consumer_ref: r.consumer_ref.clone(),
                charge_status: r.status.as_str().into(),
            })
            .collect();
        Ok(self.call(pb::ReportChargesRequest { reports }, ctx).await?.recorded)
    }

    async fn tokenize(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        source: TokenSource<'_>,
        customer_id: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, VaultError> {
        let source = match source {
            TokenSource::Card(card) => pb::tokenize_request::Source::Card(card_to_proto(card)),
            TokenSource::SingleUse(token) => pb::tokenize_request::Source::SingleUseToken(token.into()),
            TokenSource::Account(account) => pb::tokenize_request::Source::BankAccount(account_to_proto(account)),
        };
        let message = pb::TokenizeRequest {
            merchant_id: scope.merchant_id.into(),
            kind: kind_to_proto(kind) as i32,
            source: Some(source),
            customer_id: customer_id.into(),
            consumer_ref: consumer_ref.into(),
            livemode: scope.livemode,
        };
        self.call(message, ctx).await.map(stored)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
        ctx: &CallContext,
    ) -> Result<(Vec<StoredToken>, String), VaultError> {
        let message = pb::ListTokensRequest {
            merchant_id: scope.merchant_id.into(),
            customer_id: customer_id.into(),
            page_size,
            page_token: page_token.into(),
            livemode: scope.livemode,
            kind: kind_to_proto(kind) as i32,
        };
        let page = self.call(message, ctx).await?;
        let tokens = page.tokens.into_iter().map(|t| listed(t, customer_id)).collect();
        Ok((tokens, page.next_page_token))
    }

    async fn delete(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<bool, VaultError> {
        let message =
            pb::DeleteTokenRequest { merchant_id: scope.merchant_id.into(), id: id.into(), livemode: scope.livemode };
        Ok(self.call(message, ctx).await?.deleted)
    }

    async fn extend(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        let message =
            pb::ExtendTokenRequest { merchant_id: scope.merchant_id.into(), id: id.into(), livemode: scope.livemode };
        self.call(message, ctx).await.map(stored)
    }

    async fn describe(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        let message = pb::DescribeTokenRequest {
            merchant_id: scope.merchant_id.into(),
            id: id.into(),
            livemode: scope.livemode,
            customer_id: String::new(),
        };
        self.call(message, ctx).await.map(stored)
    }

    async fn default_registration(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        ctx: &CallContext,
    ) -> Result<StoredToken, VaultError> {
        let message = pb::DescribeTokenRequest {
            merchant_id: scope.merchant_id.into(),
            id: String::new(),
            livemode: scope.livemode,
            customer_id: customer_id.into(),
        };
        self.call(message, ctx).await.map(stored)
    }

    async fn set_default(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        let message = pb::SetDefaultTokenRequest {
            merchant_id: scope.merchant_id.into(),
            id: id.into(),
            livemode: scope.livemode,
        };
        self.call(message, ctx).await.map(stored)
    }
}

#[cfg(test)]
mod tests {
    use common::grpc::error_status;

    use super::*;

    #[test]
    fn statuses_map_to_vault_errors_by_reason() {
        let cases = [
            (Code::NotFound, Reason::TokenNotFound, VaultError::TokenNotFound),
            (Code::FailedPrecondition, Reason::UsedToken, VaultError::UsedToken),
            (Code::FailedPrecondition, Reason::TokenExpired, VaultError::TokenExpired),
            (Code::NotFound, Reason::TokenDeleted, VaultError::TokenDeleted),
            (Code::NotFound, Reason::NotFound, VaultError::NotFound),
            (Code::InvalidArgument, Reason::InvalidCard, VaultError::Rejected { reason: Reason::InvalidCard }),
            (Code::Unavailable, Reason::StoreUnavailable, VaultError::Unavailable),
            (Code::Aborted, Reason::Conflict, VaultError::Unavailable),
            (Code::Internal, Reason::Internal, VaultError::Internal),
        ];
        for (code, reason, error) in cases {
            assert_eq!(vault_error(&error_status(code, reason, "x")), error, "{code:?} {reason}");
        }
        let bare = Status::invalid_argument("no details");
        assert_eq!(vault_error(&bare), VaultError::Rejected { reason: Reason::InvalidArgument });
        assert_eq!(vault_error(&Status::unavailable("connection refused")), VaultError::Unavailable);
        assert_eq!(vault_error(&Status::unknown("transport error")), VaultError::Unavailable);
        assert_eq!(vault_error(&Status::internal("h2 protocol error")), VaultError::Unavailable);
    }
}
