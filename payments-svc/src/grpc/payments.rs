//! The `Payments` service: initial payments and their follow-ups, reads, and
//! the ledger. Mutating calls run detached under the idempotency protocol.
use common::text::Text;
use std::sync::Arc;

use tonic::{Request, Response};

use common::card::loggable;
use proto::payments::v1 as pb;
use vault_api::Vault;

use super::{Answer, Shared, convert, mutate};
use crate::acquirer::Acquirer;
use crate::domain::store::{LedgerQuery, PaymentStore};

pub struct PaymentsService<P, V, A>(pub Arc<Shared<P, V, A>>);

#[tonic::async_trait]
impl<P: PaymentStore, V: Vault, A: Acquirer> pb::payments_server::Payments for PaymentsService<P, V, A> {
    async fn create_payment(&self, request: Request<pb::CreatePaymentRequest>) -> Answer<pb::Payment> {
        mutate(&self.0, "CreatePayment", request, |w, req| async move {
            let payment = w.payments.create_payment(w.scope(), w.id.clone(), convert::new_payment(req)?, &w.call.ctx);
            let payment = payment.await?;
            tracing::info!(
                merchant_id = %w.call.caller.merchant_id, payment_id = %payment.id,
                payment_type = payment.payment_type.as_str(), status = payment.status.as_str(),
                result = %payment.result.code, "payment"
            );
            Ok(convert::payment(&payment))
        })
        .await
    }

    async fn capture_payment(&self, request: Request<pb::CapturePaymentRequest>) -> Answer<pb::Payment> {
        mutate(&self.0, "CapturePayment", request, |w, req| async move {
            let capture = w.payments.capture(w.scope(), &req.id, req.amount, w.id.clone()).await?;
            tracing::info!(merchant_id = %w.call.caller.merchant_id, payment_id = loggable(&req.id), "capture");
            Ok(convert::payment(&capture))
        })
        .await
    }

    async fn reverse_payment(&self, request: Request<pb::ReversePaymentRequest>) -> Answer<pb::Payment> {
        mutate(&self.0, "ReversePayment", request, |w, req| async move {
            Ok(convert::payment(&w.payments.reverse(w.scope(), &req.id, w.id.clone()).await?))
        })
        .await
    }

    async fn refund_payment(&self, request: Request<pb::RefundPaymentRequest>) -> Answer<pb::Payment> {
        mutate(&self.0, "RefundPayment", request, |w, req| async move {
            Ok(convert::payment(&w.payments.refund(w.scope(), &req.id, req.amount, w.id.clone()).await?))
        })
        .await
    }

    async fn get_payment(&self, request: Request<pb::GetPaymentRequest>) -> Answer<pb::Payment> {
        let call = self.0.call(&request)?;
        let scope = call.scope();
        let payment = self.0.payments.get(scope, &request.get_ref().id).await?;
        Ok(Response::new(convert::payment(&payment)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Answer<pb::ListTransactionsResponse> {
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
