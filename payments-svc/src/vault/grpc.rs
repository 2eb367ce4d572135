//! The vault adapter over gRPC: the only code in payments that sees the
//! vault's generated types. It speaks mTLS with payments' client certificate,
//! sends the remaining deadline (`grpc-timeout`), the `traceparent` and the
//! correlation id, retries UNAVAILABLE only on calls that are safe to repeat
//! (all of them are: detokenize and tokenize carry a `consumer_ref`), and maps
//! statuses to `VaultError` in one place.
use std::time::{Duration, Instant};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request, Status};

use common::card::{Billing, Card, CardInput};
use common::clock::Clock;
use common::clock::SystemClock;
use proto::vault::v1 as pb;

use super::{CallContext, StoredToken, TokenKind, TokenSource, Vault, VaultError};
use crate::domain::payment::{MaskedCard, Scope};

const RETRIES: usize = 2;
const BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct GrpcVault {
    client: pb::vault_client::VaultClient<Channel>,
}

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

impl GrpcVault {
    pub fn connect_lazy(endpoint: &VaultEndpoint) -> Result<Self, String> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&endpoint.ca_pem))
            .identity(Identity::from_pem(&endpoint.cert_pem, &endpoint.key_pem))
            .domain_name(endpoint.domain.clone());
        let channel = Channel::from_shared(endpoint.url.clone())
            .map_err(|_| format!("vault url {} is not a valid URI", endpoint.url))?
            .tls_config(tls)
            .map_err(|e| format!("vault TLS configuration: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self { client: pb::vault_client::VaultClient::new(channel) })
    }
}

/// The one mapping from a vault status to `VaultError`.
fn vault_error(status: &Status) -> VaultError {
    let reason = common::grpc::error_reason(status).unwrap_or_default();
    match (status.code(), reason.as_str()) {
        (_, "token_not_found") => VaultError::TokenNotFound,
        (_, "used_token") => VaultError::UsedToken,
        (_, "token_expired") => VaultError::TokenExpired,
        (_, "token_deleted") => VaultError::TokenDeleted,
        (Code::NotFound, _) => VaultError::NotFound,
        (Code::InvalidArgument, reason) => VaultError::Rejected { reason: reason.to_owned() },
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted, _) => VaultError::Unavailable,
        _ => VaultError::Internal,
    }
}

fn request<T>(message: T, ctx: &CallContext) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(deadline) = ctx.deadline {
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    }
    let md = request.metadata_mut();
    if let Some(tp) = ctx.traceparent.as_deref().and_then(|t| t.parse().ok()) {
        md.insert("traceparent", tp);
    }
    if let Ok(id) = ctx.correlation_id.parse() {
        md.insert("x-correlation-id", id);
    }
    request
}

/// Calls `call` with a fresh request, retrying UNAVAILABLE while the deadline allows.
async fn with_retries<T, R, F, Fut>(ctx: &CallContext, message: T, mut call: F) -> Result<R, VaultError>
where
    T: Clone,
    F: FnMut(Request<T>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
{
    let mut attempt = 0;
    loop {
        match call(request(message.clone(), ctx)).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if status.code() == Code::Unavailable && attempt < RETRIES => {
                let time_left = ctx.deadline.is_none_or(|d| d > Instant::now() + BACKOFF);
                if !time_left {
                    return Err(VaultError::Unavailable);
                }
                attempt += 1;
                tokio::time::sleep(BACKOFF * attempt as u32).await;
            }
            Err(status) => return Err(vault_error(&status)),
        }
    }
}

fn card_from(c: pb::Card) -> Result<Card, VaultError> {
    let mut billing = Billing::default();
    billing.country.clone_from(&c.country);
    let input = CardInput {
        number: c.number.clone(),
        expiration_month: c.expiration_month,
        expiration_year: c.expiration_year,
        name: c.name.clone(),
        security_code: c.security_code.clone(),
        billing,
    };
    Card::validate(&input, SystemClock.now_ms()).map_err(|e| VaultError::Rejected { reason: e.reason().into() })
}

fn card_to(c: &Card) -> pb::Card {
    pb::Card {
        number: c.number.expose().to_owned(),
        expiration_month: i32::from(c.expiry.month),
        expiration_year: i32::from(c.expiry.year),
        name: c.name.clone(),
        security_code: c.security_code.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default(),
        ..Default::default()
    }
}

fn masked(m: Option<pb::CardMetadata>) -> MaskedCard {
    let m = m.unwrap_or_default();
    MaskedCard {
        brand: m.brand,
        bin: m.bin,
        last4: m.last_digits,
        exp_month: m.expiration_month as u8,
        exp_year: m.expiration_year as u16,
        name: m.name,
    }
}

fn ms(ts: Option<prost_types::Timestamp>) -> i64 {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn stored(t: pb::StoredToken) -> StoredToken {
    StoredToken {
        id: t.id,
        customer_id: t.customer_id,
        card: masked(t.card),
        created_at: ms(t.created_at),
        retain_until: ms(t.retain_until),
        extended: t.extended,
    }
}

fn pb_kind(kind: TokenKind) -> i32 {
    match kind {
        TokenKind::Registration => pb::TokenKind::Registration as i32,
        TokenKind::Omni => pb::TokenKind::Omni as i32,
    }
}

impl Vault for GrpcVault {
    async fn detokenize(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        ctx: &CallContext,
    ) -> Result<Card, VaultError> {
        let message = pb::DetokenizeRequest {
            merchant_id: scope.merchant_id.into(),
            token: token.into(),
            consumer_ref: consumer_ref.into(),
            livemode: scope.livemode,
        };
        let response = with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.detokenize(r).await }
        })
        .await?;
        card_from(response.card.unwrap_or_default())
    }

    async fn report_charge(
        &self,
        scope: Scope<'_>,
        token: &str,
        consumer_ref: &str,
        status: &str,
        ctx: &CallContext,
    ) -> Result<bool, VaultError> {
        let message = pb::ReportChargeRequest {
            merchant_id: scope.merchant_id.into(),
            token: token.into(),
            consumer_ref: consumer_ref.into(),
            charge_status: status.into(),
        };
        let response = with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.report_charge(r).await }
        })
        .await?;
        Ok(response.recorded)
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
            TokenSource::Card(card) => pb::tokenize_request::Source::Card(card_to(card)),
            TokenSource::SingleUse(token) => pb::tokenize_request::Source::SingleUseToken(token.into()),
        };
        let message = pb::TokenizeRequest {
            merchant_id: scope.merchant_id.into(),
            kind: pb_kind(kind),
            source: Some(source),
            customer_id: customer_id.into(),
            consumer_ref: consumer_ref.into(),
            livemode: scope.livemode,
        };
        with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.tokenize(r).await }
        })
        .await
        .map(stored)
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
        };
        let page = with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.list_tokens(r).await }
        })
        .await?;
        let tokens = page
            .tokens
            .into_iter()
            .filter(|t| t.kind == pb_kind(kind))
            .map(|t| StoredToken {
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
                created_at: 0,
                retain_until: 0,
                extended: false,
            })
            .collect();
        Ok((tokens, page.next_page_token))
    }

    async fn delete(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<bool, VaultError> {
        let message =
            pb::DeleteTokenRequest { merchant_id: scope.merchant_id.into(), id: id.into(), livemode: scope.livemode };
        with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.delete_token(r).await }
        })
        .await
        .map(|r| r.deleted)
    }

    async fn extend(&self, scope: Scope<'_>, id: &str, ctx: &CallContext) -> Result<StoredToken, VaultError> {
        let message =
            pb::ExtendTokenRequest { merchant_id: scope.merchant_id.into(), id: id.into(), livemode: scope.livemode };
        with_retries(ctx, message, |r| {
            let mut client = self.client.clone();
            async move { client.extend_token(r).await }
        })
        .await
        .map(stored)
    }
}
