//! The `Registrations` service (OPP's model): standalone registrations with
//! optional account verification, the one-click list, deletion, extension.
use std::sync::Arc;

use tonic::{Request, Response};

use proto::payments::v1 as pb;
use vault_api::{TokenKind, Vault};

use super::{Answer, Shared, convert, mutate};
use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::Source;
use crate::domain::payment::Outcome;
use crate::domain::store::PaymentStore;

pub struct RegistrationsService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::registrations_server::Registrations for RegistrationsService<P, V, A> {
    async fn create_registration(&self, request: Request<pb::CreateRegistrationRequest>) -> Answer<pb::Registration> {
        mutate(&self.0, "CreateRegistration", request, |w, req| async move {
            use pb::create_registration_request::Source as S;
            let source = match req.source {
                Some(S::Card(mut c)) => Source::Card(Box::new(convert::card_input(&mut c))),
                Some(S::Token(t)) => Source::Token(t),
                Some(S::BankAccount(mut a)) => Source::Account(Box::new(convert::account_input(&mut a))),
                None => {
                    return Err(PaymentError::InvalidArgument(
                        "a card, a single-use token or a bank_account is required",
                    ));
                }
            };
            let (scope, ctx) = (w.scope(), &w.call.ctx);
            let outcome =
                w.payments.create_registration(scope, w.id.clone(), source, &req.customer_id, req.verify, ctx);
            let outcome = outcome.await?;
            Ok(match outcome.token {
                Some(token) => convert::registration(&token, &outcome.result),
                None => pb::Registration { result: Some(convert::result(&outcome.result)), ..Default::default() },
            })
        })
        .await
    }

    async fn list_registrations(
        &self,
        request: Request<pb::ListRegistrationsRequest>,
    ) -> Answer<pb::ListRegistrationsResponse> {
        let call = self.0.call(&request)?;
        let (scope, ctx) = (call.scope(), &call.ctx);
        let r = request.get_ref();
        let page = self.0.payments.list_tokens(
            scope,
            TokenKind::Registration,
            &r.customer_id,
            r.page_size,
            &r.page_token,
            ctx,
        );
        let (tokens, next_page_token) = page.await?;
        let registrations = tokens
            .into_iter()
            .map(|t| pb::RegistrationSummary {
                id: t.id,
                brand: t.card.brand,
                last_digits: t.card.last4,
                expiration_month: i32::from(t.card.exp_month),
                expiration_year: i32::from(t.card.exp_year),
                is_default: t.is_default,
                account: t.account.as_ref().map(convert::account),
            })
            .collect();
        Ok(Response::new(pb::ListRegistrationsResponse { registrations, next_page_token }))
    }

    async fn delete_registration(
        &self,
        request: Request<pb::DeleteRegistrationRequest>,
    ) -> Answer<pb::DeleteRegistrationResponse> {
        mutate(&self.0, "DeleteRegistration", request, |w, req| async move {
            let deleted = w.payments.delete_token(w.scope(), TokenKind::Registration, &req.id, &w.call.ctx);
            Ok(pb::DeleteRegistrationResponse { id: req.id.clone(), deleted: deleted.await? })
        })
        .await
    }

    async fn extend_registration(&self, request: Request<pb::ExtendRegistrationRequest>) -> Answer<pb::Registration> {
        mutate(&self.0, "ExtendRegistration", request, |w, req| async move {
            let token = w.payments.extend_token(w.scope(), TokenKind::Registration, &req.id, &w.call.ctx).await?;
            let success: Outcome = common::result_code::success(w.call.caller.livemode).into();
            Ok(convert::registration(&token, &success))
        })
        .await
    }

    async fn set_default_registration(
        &self,
        request: Request<pb::SetDefaultRegistrationRequest>,
    ) -> Answer<pb::Registration> {
        mutate(&self.0, "SetDefaultRegistration", request, |w, req| async move {
            let token = w.payments.set_default_registration(w.scope(), &req.id, &w.call.ctx).await?;
            let success: Outcome = common::result_code::success(w.call.caller.livemode).into();
            Ok(convert::registration(&token, &success))
        })
        .await
    }
}
