//! The internal `Vault` service, reachable only over mTLS by allowed platform
//! services (see `tls`); it returns card data in clear and manages durable
//! tokens. Every call acts for the client certificate's identity, which the
//! audit trail records with the caller's correlation id.
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use common::card::loggable;
use common::server::CallInfo;
use proto::vault::v1 as pb;
use vault_api::TokenSource;

use super::{convert, tls, within_deadline};
use crate::domain::VaultError;
use crate::domain::audit::Actor;
use crate::domain::card_token::CardTokens;
use crate::domain::store::TokenStore;
use crate::domain::store::cards::{CardStore, Scope};

pub struct VaultService<C, S> {
    tokens: Arc<CardTokens<C, S>>,
    allowed_clients: Arc<[String]>,
    max_deadline: Duration,
}

impl<C, S> VaultService<C, S> {
    pub fn new(tokens: Arc<CardTokens<C, S>>, allowed_clients: Arc<[String]>, max_deadline: Duration) -> Self {
        Self { tokens, allowed_clients, max_deadline }
    }

    /// The preamble of every call: its deadline and correlation id, and the
    /// actor the audit trail records (the client certificate's identity).
    fn call<T>(&self, request: &Request<T>) -> (CallInfo, Actor) {
        let call = CallInfo::of(request, self.max_deadline);
        let actor = Actor {
            name: tls::peer_identity(request, &self.allowed_clients),
            correlation_id: call.correlation_id.clone(),
        };
        (call, actor)
    }
}

/// A request naming the merchant it acts for.
trait ForMerchant {
    fn merchant_id(&self) -> &str;
}

macro_rules! for_merchant {
    ($($request:ty),+) => {
        $(impl ForMerchant for $request {
            fn merchant_id(&self) -> &str {
                &self.merchant_id
            }
        })+
    };
}

for_merchant!(
    pb::DetokenizeRequest,
    pb::TokenizeRequest,
    pb::DescribeTokenRequest,
    pb::SetDefaultTokenRequest,
    pb::ListTokensRequest,
    pb::DeleteTokenRequest,
    pb::ExtendTokenRequest,
    pb::ListAuditEventsRequest
);

/// The request's message, its merchant noted for the call's span and log
/// line (masked if it is a card number).
fn noted<T: ForMerchant>(request: &Request<T>) -> &T {
    let r = request.get_ref();
    common::telemetry::spans::note_merchant(common::card::loggable(r.merchant_id()));
    r
}

#[tonic::async_trait]
impl<C: CardStore, S: TokenStore> pb::vault_server::Vault for VaultService<C, S> {
    async fn detokenize(
        &self,
        request: Request<pb::DetokenizeRequest>,
    ) -> Result<Response<pb::DetokenizeResponse>, Status> {
        let (call, actor) = self.call(&request);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let only = convert::instrument(&r.instrument)?;
        let result =
            within_deadline(&call, self.tokens.detokenize(scope, &r.token, &r.consumer_ref, only, &actor)).await;
        let (merchant_id, token_id, actor) = (loggable(&r.merchant_id), loggable(&r.token), &actor.name);
        match &result {
            Ok(_) => tracing::info!(merchant_id, token_id, actor, "token detokenized"),
            Err(e) => tracing::info!(merchant_id, token_id, actor, error = %e, "detokenize refused"),
        }
        Ok(Response::new(convert::detokenized(result?)))
    }

    async fn report_charges(
        &self,
        request: Request<pb::ReportChargesRequest>,
    ) -> Result<Response<pb::ReportChargesResponse>, Status> {
        let call = CallInfo::of(&request, self.max_deadline);
        let reports = &request.get_ref().reports;
        if reports.len() > vault_api::MAX_CHARGE_REPORTS {
            return Err(VaultError::InvalidArgument("at most 500 reports in one call").into());
        }
        // Every status is checked before any is recorded.
        let statuses =
            reports.iter().map(|r| convert::charge_status(&r.charge_status)).collect::<Result<Vec<_>, _>>()?;
        // One call, its reports recorded concurrently: their store commands
        // share the store's connections, pipelined.
        let single_use = self.tokens.single_use();
        let recorded = reports
            .iter()
            .zip(statuses)
            .map(|(r, status)| single_use.report_charge(&r.merchant_id, &r.token, &r.consumer_ref, status));
        let recorded = within_deadline(&call, async {
            futures::future::join_all(recorded).await.into_iter().collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(Response::new(pb::ReportChargesResponse { recorded }))
    }

    async fn tokenize(&self, request: Request<pb::TokenizeRequest>) -> Result<Response<pb::StoredToken>, Status> {
        let (call, actor) = self.call(&request);
        noted(&request);
        let mut r = request.into_inner();
        let kind = convert::kind(r.kind)?;
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let (input, account);
        let source = match r.source.as_mut() {
            Some(pb::tokenize_request::Source::Card(card)) => {
                input = convert::card_input(card);
                TokenSource::Card(&input)
            }
            Some(pb::tokenize_request::Source::SingleUseToken(token)) => TokenSource::SingleUse(token),
            Some(pb::tokenize_request::Source::BankAccount(bank_account)) => {
                account = convert::account_input(bank_account);
                TokenSource::Account(&account)
            }
            None => {
                return Err(
                    VaultError::InvalidArgument("a card, a single_use_token or a bank_account is required").into()
                );
            }
        };
        let result =
            within_deadline(&call, self.tokens.tokenize(scope, kind, source, &r.customer_id, &r.consumer_ref, &actor))
                .await;
        match &result {
            Ok(t) => {
                tracing::info!(merchant_id = loggable(&r.merchant_id), token_id = %t.id, kind = kind.as_str(), account = t.account.is_some(), "tokenized")
            }
            Err(e) => tracing::info!(merchant_id = loggable(&r.merchant_id), error = %e, "tokenize refused"),
        }
        Ok(Response::new(convert::stored_token(result?)))
    }

    async fn describe_token(
        &self,
        request: Request<pb::DescribeTokenRequest>,
    ) -> Result<Response<pb::StoredToken>, Status> {
        let call = CallInfo::of(&request, self.max_deadline);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let view = match r.id.as_str() {
            "" => within_deadline(&call, self.tokens.describe_default(scope, &r.customer_id)).await?,
            id => within_deadline(&call, self.tokens.describe(scope, id)).await?,
        };
        Ok(Response::new(convert::stored_token(view)))
    }

    async fn set_default_token(
        &self,
        request: Request<pb::SetDefaultTokenRequest>,
    ) -> Result<Response<pb::StoredToken>, Status> {
        let (call, actor) = self.call(&request);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let view = within_deadline(&call, self.tokens.set_default(scope, &r.id, &actor)).await?;
        Ok(Response::new(convert::stored_token(view)))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let call = CallInfo::of(&request, self.max_deadline);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let kind = convert::kind_filter(r.kind)?;
        let page =
            within_deadline(&call, self.tokens.list(scope, &r.customer_id, kind, r.page_size, &r.page_token)).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(convert::token_summary).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn delete_token(
        &self,
        request: Request<pb::DeleteTokenRequest>,
    ) -> Result<Response<pb::DeleteTokenResponse>, Status> {
        let (call, actor) = self.call(&request);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let deleted = within_deadline(&call, self.tokens.delete(scope, &r.id, &actor)).await?;
        tracing::info!(merchant_id = loggable(&r.merchant_id), token_id = loggable(&r.id), deleted, "token delete");
        Ok(Response::new(pb::DeleteTokenResponse { id: r.id.clone(), deleted }))
    }

    async fn extend_token(
        &self,
        request: Request<pb::ExtendTokenRequest>,
    ) -> Result<Response<pb::StoredToken>, Status> {
        let (call, actor) = self.call(&request);
        let r = noted(&request);
        let scope = Scope { merchant_id: &r.merchant_id, livemode: r.livemode };
        let view = within_deadline(&call, self.tokens.extend(scope, &r.id, &actor)).await?;
        Ok(Response::new(convert::stored_token(view)))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let call = CallInfo::of(&request, self.max_deadline);
        let r = noted(&request);
        let page = within_deadline(
            &call,
            self.tokens.audit_events(
                &r.merchant_id,
                &r.token_id,
                convert::millis(r.from.as_ref()),
                convert::millis(r.to.as_ref()),
                r.page_size,
                &r.page_token,
            ),
        )
        .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.items.into_iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
