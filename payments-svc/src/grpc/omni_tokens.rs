//! The `OmniTokens` service (Till's model): create from a card (optionally
//! verified), a customer's list for one-click, delete, extend.
use std::sync::Arc;

use tonic::{Request, Response};

use proto::payments::v1 as pb;
use vault_api::{TokenKind, Vault};

use super::{Answer, Shared, convert, mutate};
use crate::acquirer::Acquirer;
use crate::domain::payment::Outcome;
use crate::domain::store::PaymentStore;

pub struct OmniTokensService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::omni_tokens_server::OmniTokens for OmniTokensService<P, V, A> {
    async fn create_omni_token(&self, request: Request<pb::CreateOmniTokenRequest>) -> Answer<pb::OmniToken> {
        mutate(&self.0, "CreateOmniToken", request, |w, req| async move {
            let input = convert::card_input(&mut req.card.unwrap_or_default());
            let (scope, ctx) = (w.scope(), &w.call.ctx);
            let outcome = w.payments.create_omni_token(scope, w.id.clone(), input, &req.customer_id, req.verify, ctx);
            let outcome = outcome.await?;
            Ok(match outcome.token {
                Some(token) => convert::omni_token(&token, &outcome.result),
                None => pb::OmniToken { result: Some(convert::result(&outcome.result)), ..Default::default() },
            })
        })
        .await
    }

    async fn list_omni_tokens(
        &self,
        request: Request<pb::ListOmniTokensRequest>,
    ) -> Answer<pb::ListOmniTokensResponse> {
        let call = self.0.call(&request)?;
        let (scope, ctx) = (call.scope(), &call.ctx);
        let r = request.get_ref();
        let page = self.0.payments.list_tokens(scope, TokenKind::Omni, &r.customer_id, r.page_size, &r.page_token, ctx);
        let (tokens, next_page_token) = page.await?;
        let omni_tokens = tokens
            .into_iter()
            .map(|t| pb::OmniTokenSummary {
                id: t.id,
                brand: t.card.brand,
                last_digits: t.card.last4,
                expiration_month: i32::from(t.card.exp_month),
                expiration_year: i32::from(t.card.exp_year),
            })
            .collect();
        Ok(Response::new(pb::ListOmniTokensResponse { omni_tokens, next_page_token }))
    }

    async fn extend_omni_token(&self, request: Request<pb::ExtendOmniTokenRequest>) -> Answer<pb::OmniToken> {
        mutate(&self.0, "ExtendOmniToken", request, |w, req| async move {
            let token = w.payments.extend_token(w.scope(), TokenKind::Omni, &req.id, &w.call.ctx).await?;
            let success: Outcome = common::result_code::success(w.call.caller.livemode).into();
            Ok(convert::omni_token(&token, &success))
        })
        .await
    }

    async fn delete_omni_token(
        &self,
        request: Request<pb::DeleteOmniTokenRequest>,
    ) -> Answer<pb::DeleteOmniTokenResponse> {
        mutate(&self.0, "DeleteOmniToken", request, |w, req| async move {
            let deleted = w.payments.delete_token(w.scope(), TokenKind::Omni, &req.id, &w.call.ctx).await?;
            Ok(pb::DeleteOmniTokenResponse { id: req.id, deleted })
        })
        .await
    }
}
