//! The `OmniTokens` service (Till's model): create from a card, delete.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use proto::payments::v1 as pb;

use super::{Shared, convert, idempotent};
use crate::acquirer::Acquirer;
use crate::storage::PaymentStore;
use crate::vault::{TokenKind, Vault};

pub struct OmniTokensService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::omni_tokens_server::OmniTokens for OmniTokensService<P, V, A> {
    async fn create_omni_token(
        &self,
        request: Request<pb::CreateOmniTokenRequest>,
    ) -> Result<Response<pb::OmniToken>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope, ctx) = (&call.caller, call.scope(), &call.ctx);
        let payments = &self.0.payments;
        let r = request.get_ref();
        let response = idempotent::run(payments, caller, "CreateOmniToken", request.metadata(), r, |id| async move {
            let mut card = r.card.clone().unwrap_or_default();
            let token =
                payments.create_omni_token(scope, id, convert::card_input(&mut card), &r.customer_id, ctx).await?;
            Ok(convert::omni_token(&token))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn delete_omni_token(
        &self,
        request: Request<pb::DeleteOmniTokenRequest>,
    ) -> Result<Response<pb::DeleteOmniTokenResponse>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope, ctx) = (&call.caller, call.scope(), &call.ctx);
        let payments = &self.0.payments;
        let r = request.get_ref();
        let response = idempotent::run(payments, caller, "DeleteOmniToken", request.metadata(), r, |_| async move {
            let deleted = payments.delete_token(scope, TokenKind::Omni, &r.id, ctx).await?;
            Ok(pb::DeleteOmniTokenResponse { id: r.id.clone(), deleted })
        })
        .await?;
        Ok(Response::new(response))
    }
}
