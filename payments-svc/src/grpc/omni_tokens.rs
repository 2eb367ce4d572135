//! The `OmniTokens` service (Till's model): create from a card, delete.
use std::sync::Arc;

use tonic::Request;

use proto::payments::v1 as pb;
use vault_api::{TokenKind, Vault};

use super::{Answer, Shared, convert, mutate};
use crate::acquirer::Acquirer;
use crate::domain::store::PaymentStore;

pub struct OmniTokensService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::omni_tokens_server::OmniTokens for OmniTokensService<P, V, A> {
    async fn create_omni_token(&self, request: Request<pb::CreateOmniTokenRequest>) -> Answer<pb::OmniToken> {
        mutate(&self.0, "CreateOmniToken", request, |w, req| async move {
            let input = convert::card_input(&mut req.card.unwrap_or_default());
            let token = w.payments.create_omni_token(w.scope(), w.id.clone(), input, &req.customer_id, &w.call.ctx);
            Ok(convert::omni_token(&token.await?))
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
