//! The `Payments` service: initial payments and their follow-ups, reads, and
//! the ledger. Mutating calls go through the idempotency protocol.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use common::card::loggable;
use proto::payments::v1 as pb;

use super::{Shared, convert, idempotent};
use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::NewPayment;
use crate::storage::{LedgerQuery, PaymentStore};
use crate::vault::Vault;

pub struct PaymentsService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::payments_server::Payments for PaymentsService<P, V, A> {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope, ctx) = (&call.caller, call.scope(), &call.ctx);
        let payments = &self.0.payments;
        let r = request.get_ref();
        let merchant_id = caller.merchant_id.as_str();
        let response = idempotent::run(payments, caller, "CreatePayment", request.metadata(), r, |id| async move {
            let r = r.clone();
            let new = NewPayment {
                payment_type: convert::payment_type(r.payment_type)?,
                amount: r.amount,
                currency: r.currency,
                source: convert::source(r.source)?,
                create_registration: r.create_registration,
                create_omni_token: r.create_omni_token,
                customer_id: r.customer_id,
                merchant_transaction_id: r.merchant_transaction_id,
                description: r.description,
                standing_instruction: convert::standing_instruction(r.standing_instruction.as_ref())?,
            };
            let payment = payments.create_payment(scope, id, new, ctx).await?;
            tracing::info!(
                merchant_id, payment_id = %payment.id, payment_type = payment.payment_type.as_str(),
                result = %payment.result.code, "payment"
            );
            Ok::<_, PaymentError>(convert::payment(&payment))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope) = (&call.caller, call.scope());
        let payments = &self.0.payments;
        let r = request.get_ref();
        let response = idempotent::run(payments, caller, "CapturePayment", request.metadata(), r, |id| async move {
            Ok(convert::payment(&payments.capture(scope, &r.id, r.amount, id).await?))
        })
        .await?;
        tracing::info!(merchant_id = %caller.merchant_id, payment_id = loggable(&r.id), "capture");
        Ok(Response::new(response))
    }

    async fn reverse_payment(
        &self,
        request: Request<pb::ReversePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope) = (&call.caller, call.scope());
        let payments = &self.0.payments;
        let r = request.get_ref();
        let response = idempotent::run(payments, caller, "ReversePayment", request.metadata(), r, |id| async move {
            Ok(convert::payment(&payments.reverse(scope, &r.id, id).await?))
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let call = self.0.call(&request)?;
        let (caller, scope) = (&call.caller, call.scope());
        let payments = &self.0.payments;
        let r = request.get_ref();
        let response = idempotent::run(payments, caller, "RefundPayment", request.metadata(), r, |id| async move {
            Ok(convert::payment(&payments.refund(scope, &r.id, r.amount, id).await?))
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
