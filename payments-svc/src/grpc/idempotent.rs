//! The idempotency-key protocol around a mutating call, and the detachment of
//! its work from the request (docs/PAYMENTS.md). Once a call has passed
//! authentication, its work runs in a task of its own: a client that leaves,
//! a deadline or a dropped connection never leaves it half done. The handler
//! waits for it until the caller's deadline less a margin, then answers
//! `DEADLINE_EXCEEDED` / `deadline_exceeded` while the work goes on.
//!
//! With a key, the first request runs under the id the key stands for, holding
//! the key's lease (renewed while it works, with the payment's lease); its
//! response, or its deterministic error, is stored and replayed to retries;
//! mismatches and in-flight duplicates are refused (`domain::idempotency`).
//! Failures a retry may fix, and payments still pending at the acquirer,
//! release the key so the next retry resumes the work.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use common::auth::Caller;
use common::card::Billing;
use proto::payments::v1 as pb;
use vault_api::{CallContext, Scope, Vault, VaultError};

use super::{Shared, convert};
use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::{Payments, new_id};
use crate::domain::idempotency::{Begin, KeyedClaim, begin, choose, claims};
use crate::domain::store::PaymentStore;

/// How long an in-flight duplicate waits for the first request's answer, at
/// most: never past its own deadline (less a margin to answer in time).
const DUPLICATE_WAIT: Duration = Duration::from_secs(5);
/// Time kept back from the caller's deadline to answer before it.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);
/// How long writing a key's record (after the answer) may take.
const RECORD_TIME: Duration = Duration::from_secs(2);

/// A response the protocol stores; `is_final` is false while its work waits
/// for an outcome (a payment, or a verification, pending at the acquirer), so
/// its key is released rather than completed and a retry resumes the work.
///
/// A registration's or omni token's card carries the billing address the
/// vault keeps, which payments-svc stores nowhere, its idempotency records
/// included: the response is stored without it (`encode_kept`), and a replay
/// asks the vault for the token's address again (`stored_token`,
/// `restore_billing`).
pub trait Reply: Message + Default + Send + 'static {
    fn is_final(&self) -> bool {
        true
    }

    /// What is stored under the key: the response itself, encoded.
    fn encode_kept(&self) -> Vec<u8> {
        encode_ok(self)
    }

    /// The durable token whose card the response shows, if any.
    fn stored_token(&self) -> Option<&str> {
        None
    }

    /// Puts the vault's billing address back into a replayed response.
    fn restore_billing(&mut self, _billing: &Billing) {}
}

impl Reply for pb::Payment {
    fn is_final(&self) -> bool {
        self.status != pb::PaymentStatus::Pending as i32
    }
}

/// A durable token's response (`id`, `card`, `result`): final unless its
/// verification is still pending at the acquirer; stored without the card's
/// billing address.
macro_rules! stored_token_reply {
    ($($response:ty),+) => {
        $(impl Reply for $response {
            fn is_final(&self) -> bool {
                self.result.as_ref().is_none_or(|r| r.code != common::result_code::PENDING.code)
            }

            fn encode_kept(&self) -> Vec<u8> {
                let mut kept = self.clone();
                convert::without_billing(&mut kept.card);
                encode_ok(&kept)
            }

            fn stored_token(&self) -> Option<&str> {
                (!self.id.is_empty()).then_some(self.id.as_str())
            }

            fn restore_billing(&mut self, billing: &Billing) {
                convert::with_billing(&mut self.card, billing);
            }
        })+
    };
}

stored_token_reply!(pb::Registration, pb::OmniToken);

impl Reply for pb::DeleteRegistrationResponse {}
impl Reply for pb::DeleteOmniTokenResponse {}

fn encode_ok<R: Message>(response: &R) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend(response.encode_to_vec());
    out
}

fn encode_err(status: &Status) -> Vec<u8> {
    let message = status.message().as_bytes();
    let mut out = vec![1u8];
    out.extend((status.code() as i32).to_be_bytes());
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out.extend(status.details());
    out
}

fn decode<R: Message + Default>(stored: &[u8]) -> Result<R, Status> {
    let corrupt = || Status::internal("stored idempotent response is unreadable");
    match stored.split_first() {
        Some((0, body)) => R::decode(body).map_err(|_| corrupt()),
        Some((1, rest)) if rest.len() >= 8 => {
            let code = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let message = rest.get(8..8 + len).ok_or_else(corrupt)?;
            let details = rest.get(8 + len..).unwrap_or_default();
            Err(Status::with_details(
                Code::from_i32(code),
                String::from_utf8_lossy(message).into_owned(),
                details.to_vec().into(),
            ))
        }
        _ => Err(corrupt()),
    }
}

/// Whether a failure is worth retrying with the same key (the key is
/// released): only a store or vault that was unreachable, or a deadline that
/// ran out. Every other failure is stored under the key and replayed:
/// INTERNAL (a corrupt row, a crypto failure) and INVALID_ARGUMENT (a value
/// the store refused) repeat on every retry. ABORTED is stored too: a store
/// `Conflict` here is a unique key that a retry of the same request (same
/// derived id) would hit again; the statements are single statements at READ
/// COMMITTED, so a transient serialization failure (40001) does not arise, and
/// a deadlock (40P01) would be rare enough that a new key is the remedy.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
}

/// Runs `call` (given the id the request stands for) detached from the
/// request, under the idempotency-key protocol when the request (`request`,
/// its encoded message) has a key.
pub async fn run<P, V, A, Res, F, Fut>(
    shared: &Shared<P, V, A>,
    caller: &Caller,
    ctx: CallContext,
    method: &'static str,
    metadata: &MetadataMap,
    request: &[u8],
    call: F,
) -> Result<Res, Status>
where
    P: PaymentStore,
    V: Vault,
    A: Acquirer,
    Res: Reply,
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Res, PaymentError>> + Send + 'static,
{
    let time_left = common::grpc::deadline(metadata, shared.max_deadline).saturating_sub(ANSWER_MARGIN);
    let key = match metadata.get("idempotency-key") {
        None => None,
        Some(key) => Some(
            key.to_str()
                .map_err(|_| Status::from(PaymentError::InvalidArgument("idempotency-key must be ASCII")))?
                .to_owned(),
        ),
    };
    // Keys are per merchant and mode, and stored keyed.
    let owner = format!("{}:{}", caller.merchant_id, if caller.livemode { "live" } else { "test" });
    let claims = key.map(|key| claims(&shared.references, &owner, &key, method, request)).transpose()?;
    // A duplicate gives up waiting for the first request before this handler
    // gives up waiting for it, so it is told the key is in use.
    // (and before the store calls it polls with are cut by the deadline).
    let wait = time_left.saturating_sub(ANSWER_MARGIN * 2).min(DUPLICATE_WAIT);
    // The store calls the work makes are bounded by the caller's deadline: a
    // store that does not answer is UNAVAILABLE in time, and the work, left at
    // its last recovery point, is resumed by a retry or the reconciler.
    let deadline = tokio::time::Instant::now() + time_left.saturating_sub(ANSWER_MARGIN);
    let call: Call<Res> = Box::new(move |id| Box::pin(call(id)));
    let payments = shared.payments.clone();
    let caller = caller.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    let work = common::deadline::within(deadline, async move {
        let (result, record) = keyed(payments.clone(), &caller, &ctx, claims, wait, call).await;
        // The caller is answered first; the key's record is written after, on
        // its own time, so a store that does not answer never delays the
        // answer and a response finished near the deadline is still kept.
        let _ = answer.send(result);
        if let Some(record) = record {
            let until = tokio::time::Instant::now() + RECORD_TIME;
            if let Err(error) = common::deadline::within(until, record.write(payments.store())).await {
                tracing::error!(%error, "idempotency record not written");
            }
        }
    });
    // The detached work stays in the call's span (and trace).
    shared.tracker.spawn(tracing::Instrument::in_current_span(work));
    match tokio::time::timeout(time_left, answered).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => {
            tracing::error!(method, "request work ended without an answer");
            Err(Status::from(PaymentError::Internal))
        }
        Err(_) => Err(Status::from(PaymentError::DeadlineExceeded)),
    }
}

/// What a keyed request leaves under its key once it is answered.
struct KeyRecord {
    owner: String,
    key: String,
    /// The response or error stored and replayed; `None`: the key is released
    /// for a retry to resume the work.
    stored: Option<Vec<u8>>,
}

impl KeyRecord {
    async fn write(self, store: &impl PaymentStore) -> Result<(), crate::domain::store::StoreError> {
        match self.stored {
            Some(stored) => store.complete_key(&self.owner, &self.key, &stored).await,
            None => store.release_key(&self.owner, &self.key).await,
        }
    }
}

/// The detached work: the key protocol (if any) around `call`, with the
/// leases renewed while it runs; its answer, and what to record under the key.
async fn keyed<P: PaymentStore, V: Vault, A: Acquirer, Res: Reply>(
    payments: Arc<Payments<P, V, A>>,
    caller: &Caller,
    ctx: &CallContext,
    claims: Option<Vec<KeyedClaim>>,
    wait: Duration,
    call: Call<Res>,
) -> (Result<Res, Status>, Option<KeyRecord>) {
    let Some(claims) = claims else {
        let id = new_id();
        return (renewing(&payments, None, &id, call(id.clone())).await.map_err(Status::from), None);
    };
    let claim = match choose(payments.store(), claims).await {
        Ok(claim) => claim,
        Err(error) => return (Err(Status::from(error)), None),
    };
    match begin(payments.store(), payments.clock(), &claim.claim(), wait, payments.lease()).await {
        Err(refused) => (Err(Status::from(refused)), None),
        Ok(Begin::Replay(stored)) => (replayed(&payments, caller, ctx, decode(&stored)).await, None),
        Ok(Begin::Proceed) => {
            let KeyedClaim { owner, key, payment_id: id, .. } = claim;
            let result = renewing(&payments, Some((&owner, &key)), &id, call(id.clone())).await.map_err(Status::from);
            let stored = match &result {
                Ok(response) if response.is_final() => Some(response.encode_kept()),
                Ok(_) => None,
                Err(status) if retryable(status.code()) => None,
                Err(status) => Some(encode_err(status)),
            };
            (result, Some(KeyRecord { owner, key, stored }))
        }
    }
}

/// A stored response as a retry gets it: a durable token's card with its
/// billing address from the vault again. A token deleted since has none to
/// show; a vault that does not answer is `vault_unavailable` (retry).
async fn replayed<P: PaymentStore, V: Vault, A: Acquirer, Res: Reply>(
    payments: &Payments<P, V, A>,
    caller: &Caller,
    ctx: &CallContext,
    stored: Result<Res, Status>,
) -> Result<Res, Status> {
    let mut response = stored?;
    let Some(id) = response.stored_token() else { return Ok(response) };
    match payments.describe_token(Scope::of(caller), id, ctx).await {
        Ok(token) => response.restore_billing(&token.billing),
        Err(unavailable @ PaymentError::Vault(VaultError::Unavailable)) => return Err(unavailable.into()),
        Err(error) => tracing::debug!(%error, "replayed without the card's billing address"),
    }
    Ok(response)
}

/// Runs `work`, renewing the key's and the payment's leases every third of a
/// lease while it runs.
async fn renewing<P: PaymentStore, V, A: Acquirer, T>(
    payments: &Payments<P, V, A>,
    key: Option<(&str, &str)>,
    payment_id: &str,
    work: impl Future<Output = T>,
) -> T {
    let lease = payments.lease();
    let renew = async {
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            let until = payments.clock().now_ms() + lease.as_millis() as i64;
            if let Some((owner, key)) = key
                && let Err(error) = payments.store().renew_key(owner, key, until).await
            {
                tracing::warn!(%error, "idempotency key lease not renewed");
            }
            if let Err(error) = payments.store().renew_lease(payment_id, until).await {
                tracing::warn!(%error, "payment lease not renewed");
            }
        }
    };
    tokio::select! {
        biased;
        result = work => result,
        () = renew => unreachable!("lease renewal never ends"),
    }
}

/// The work of a call, given the id the request stands for.
type Call<Res> = Box<dyn FnOnce(String) -> BoxFuture<'static, Result<Res, PaymentError>> + Send>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::StoreError;

    /// A verification the acquirer has not answered releases its key (a retry
    /// resumes it and stores the card); an answered one, or none, is kept.
    #[test]
    fn a_pending_verification_is_not_final() {
        let result = |code: &str| Some(pb::Result { code: code.into(), description: String::new() });
        let pending = pb::Registration { result: result("000.200.000"), ..Default::default() };
        assert!(!pending.is_final());
        assert!(!pb::OmniToken { result: result("000.200.000"), ..Default::default() }.is_final());
        for code in ["000.100.110", "800.100.151"] {
            assert!(pb::Registration { result: result(code), ..Default::default() }.is_final(), "{code}");
        }
        assert!(pb::Registration::default().is_final());
        let billing = pb::Registration {
            id: "a".repeat(32),
            card: Some(pb::CardMetadata { city: "Bangkok".into(), ..Default::default() }),
            ..Default::default()
        };
        let kept = decode::<pb::Registration>(&billing.encode_kept()).unwrap_or_default();
        assert!(kept.card.is_some_and(|c| c.city.is_empty()), "stored without the billing address");
    }

    #[test]
    fn only_unavailable_and_deadline_release_the_key() {
        for code in [Code::Unavailable, Code::DeadlineExceeded] {
            assert!(retryable(code), "{code:?}");
        }
        for code in [Code::Internal, Code::Aborted, Code::InvalidArgument, Code::FailedPrecondition, Code::NotFound] {
            assert!(!retryable(code), "{code:?}");
        }
        let stored = [
            StoreError::Conflict(String::new()),
            StoreError::Invalid(String::new()),
            StoreError::Corrupt(String::new()),
        ];
        for e in stored {
            assert!(!retryable(Status::from(PaymentError::Store(e)).code()));
        }
        assert!(retryable(Status::from(PaymentError::Store(StoreError::Unavailable(String::new()))).code()));
    }
}
