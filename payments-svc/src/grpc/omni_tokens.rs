//! The `OmniTokens` service (Till's model): create from a card, delete.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use proto::payments::v1 as pb;
use vault_api::{TokenKind, Vault};

use super::{Call, Shared, convert, idempotent};
use crate::acquirer::Acquirer;
use crate::domain::payment::Scope;
use crate::domain::store::PaymentStore;

pub struct OmniTokensService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::omni_tokens_server::OmniTokens for OmniTokensService<P, V, A> {
    async fn create_omni_token(
        &self,
        request: Request<pb::CreateOmniTokenRequest>,
    ) -> Result<Response<pb::OmniToken>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "CreateOmniToken", &metadata, &r, move |id| async move {
            let mut card = req.card.unwrap_or_default();
            let input = convert::card_input(&mut card);
            let token = payments.create_omni_token(Scope::of(&owner), id, input, &req.customer_id, &ctx).await?;
            Ok(convert::omni_token(&token))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn delete_omni_token(
        &self,
        request: Request<pb::DeleteOmniTokenRequest>,
    ) -> Result<Response<pb::DeleteOmniTokenResponse>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "DeleteOmniToken", &metadata, &r, move |_| async move {
            let deleted = payments.delete_token(Scope::of(&owner), TokenKind::Omni, &req.id, &ctx).await?;
            Ok(pb::DeleteOmniTokenResponse { id: req.id, deleted })
        })
        .await?;
        Ok(Response::new(response))
    }
}
