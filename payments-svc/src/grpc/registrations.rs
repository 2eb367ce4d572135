//! The `Registrations` service (OPP's model): standalone registrations with
//! optional account verification, the one-click list, deletion, extension.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use proto::payments::v1 as pb;
use vault_api::{TokenKind, Vault};

use super::{Call, Shared, convert, idempotent};
use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::Source;
use crate::domain::payment::{Outcome, Scope};
use crate::domain::store::PaymentStore;

pub struct RegistrationsService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::registrations_server::Registrations for RegistrationsService<P, V, A> {
    async fn create_registration(
        &self,
        request: Request<pb::CreateRegistrationRequest>,
    ) -> Result<Response<pb::Registration>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "CreateRegistration", &metadata, &r, move |id| async move {
            use pb::create_registration_request::Source as S;
            let scope = Scope::of(&owner);
            let source = match req.source {
                Some(S::Card(mut c)) => Source::Card(Box::new(convert::card_input(&mut c))),
                Some(S::Token(t)) => Source::Token(t),
                None => return Err(PaymentError::InvalidArgument("a card or a single-use token is required")),
            };
            let outcome = payments.create_registration(scope, id, source, &req.customer_id, req.verify, &ctx).await?;
            Ok(match outcome.token {
                Some(token) => convert::registration(&token, &outcome.result),
                None => pb::Registration { result: Some(convert::result(&outcome.result)), ..Default::default() },
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn list_registrations(
        &self,
        request: Request<pb::ListRegistrationsRequest>,
    ) -> Result<Response<pb::ListRegistrationsResponse>, Status> {
        let call = self.0.call(&request)?;
        let (scope, ctx) = (call.scope(), &call.ctx);
        let r = request.get_ref();
        let (tokens, next_page_token) =
            self.0.payments.list_registrations(scope, &r.customer_id, r.page_size, &r.page_token, ctx).await?;
        let registrations = tokens
            .into_iter()
            .map(|t| pb::RegistrationSummary {
                id: t.id,
                brand: t.card.brand,
                last_digits: t.card.last4,
                expiration_month: i32::from(t.card.exp_month),
                expiration_year: i32::from(t.card.exp_year),
            })
            .collect();
        Ok(Response::new(pb::ListRegistrationsResponse { registrations, next_page_token }))
    }

    async fn delete_registration(
        &self,
        request: Request<pb::DeleteRegistrationRequest>,
    ) -> Result<Response<pb::DeleteRegistrationResponse>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "DeleteRegistration", &metadata, &r, move |_| async move {
            let deleted = payments.delete_token(Scope::of(&owner), TokenKind::Registration, &req.id, &ctx).await?;
            Ok(pb::DeleteRegistrationResponse { id: req.id, deleted })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn extend_registration(
        &self,
        request: Request<pb::ExtendRegistrationRequest>,
    ) -> Result<Response<pb::Registration>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "ExtendRegistration", &metadata, &r, move |_| async move {
            let scope = Scope::of(&owner);
            let token = payments.extend_registration(scope, &req.id, &ctx).await?;
            let success: Outcome = common::result_code::success(scope.livemode).into();
            Ok(convert::registration(&token, &success))
        })
        .await?;
        Ok(Response::new(response))
    }
}
