//! The `Payments` service: initial payments and their follow-ups, reads, and
//! the ledger. Mutating calls run detached under the idempotency protocol.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use common::card::loggable;
use proto::payments::v1 as pb;
use vault_api::Vault;

use super::{Call, Shared, convert, idempotent};
use crate::acquirer::Acquirer;
use crate::domain::payment::Scope;
use crate::domain::store::{LedgerQuery, PaymentStore};

pub struct PaymentsService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::payments_server::Payments for PaymentsService<P, V, A> {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let Call { caller, ctx } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "CreatePayment", &metadata, &r, move |id| async move {
            let scope = Scope::of(&owner);
            let payment = payments.create_payment(scope, id, convert::new_payment(req)?, &ctx).await?;
            tracing::info!(
                merchant_id = %owner.merchant_id, payment_id = %payment.id, payment_type = payment.payment_type.as_str(),
                status = payment.status.as_str(), result = %payment.result.code, "payment"
            );
            Ok(convert::payment(&payment))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let Call { caller, .. } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "CapturePayment", &metadata, &r, move |id| async move {
            Ok(convert::payment(&payments.capture(Scope::of(&owner), &req.id, req.amount, id).await?))
        })
        .await?;
        tracing::info!(merchant_id = %caller.merchant_id, payment_id = loggable(&r.id), "capture");
        Ok(Response::new(response))
    }

    async fn reverse_payment(
        &self,
        request: Request<pb::ReversePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let Call { caller, .. } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "ReversePayment", &metadata, &r, move |id| async move {
            Ok(convert::payment(&payments.reverse(Scope::of(&owner), &req.id, id).await?))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let Call { caller, .. } = self.0.call(&request)?;
        let (metadata, _, r) = request.into_parts();
        let (payments, owner, req) = (self.0.payments.clone(), caller.clone(), r.clone());
        let response = idempotent::run(&self.0, &caller, "RefundPayment", &metadata, &r, move |id| async move {
            Ok(convert::payment(&payments.refund(Scope::of(&owner), &req.id, req.amount, id).await?))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_payment(&self, request: Request<pb::GetPaymentRequest>) -> Result<Response<pb::Payment>, Status> {
        let call = self.0.call(&request)?;
        let scope = call.scope();
        let payment = self.0.payments.get(scope, &request.get_ref().id).await?;
        Ok(Response::new(convert::payment(&payment)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let call = self.0.call(&request)?;
        let scope = call.scope();
        let r = request.get_ref();
        let query = match (r.payment_id.is_empty(), r.token.is_empty()) {
            (false, _) => LedgerQuery::Payment(&r.payment_id),
            (true, false) => LedgerQuery::Token(&r.token),
            (true, true) => {
                let to = convert::millis(r.to.as_ref());
                LedgerQuery::Between(convert::millis(r.from.as_ref()), if to == 0 { i64::MAX / 2 } else { to })
            }
        };
        let (records, next_page_token) = self.0.payments.ledger(scope, query, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: records.iter().map(convert::transaction).collect(),
            next_page_token,
        }))
    }
}
