//! The idempotency-key protocol around a mutating call: no key, the call just
//! runs; with a key, the first request runs under the id the key stands for
//! and its response (or its deterministic error) is stored, retries get the
//! stored answer, mismatches and in-flight duplicates are refused (see
//! `domain::idempotency`). Failures a retry may fix release the key.
use std::future::Future;
use std::time::Duration;

use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use common::auth::Caller;
use vault_api::Vault;

use crate::acquirer::Acquirer;
use crate::domain::PaymentError;
use crate::domain::flows::{Payments, new_id};
use crate::domain::idempotency::{Begin, begin, derived_id, request_hash};
use crate::storage::PaymentStore;

/// How long an in-flight duplicate waits for the first request's answer, at
/// most: never past its own deadline (less a margin to answer in time).
const DUPLICATE_WAIT: Duration = Duration::from_secs(5);
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

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

/// Whether a failure is worth retrying with the same key (the key is released).
fn retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Internal | Code::Aborted | Code::DeadlineExceeded)
}

pub async fn run<P, V, A, Req, Res, F, Fut>(
    payments: &Payments<P, V, A>,
    caller: &Caller,
    method: &'static str,
    metadata: &MetadataMap,
    request: &Req,
    call: F,
) -> Result<Res, Status>
where
    P: PaymentStore,
    V: Vault,
    A: Acquirer,
    Req: Message,
    Res: Message + Default,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Res, PaymentError>>,
{
    let Some(key) = metadata.get("idempotency-key") else {
        return call(new_id()).await.map_err(Status::from);
    };
    let key = key.to_str().map_err(|_| Status::from(PaymentError::InvalidArgument("idempotency-key must be ASCII")))?;
    // Keys are per merchant and mode.
    let owner = format!("{}:{}", caller.merchant_id, if caller.livemode { "live" } else { "test" });
    let hash = request_hash(method, &request.encode_to_vec());
    let store = payments.store();
    let wait = common::grpc::deadline(metadata, DUPLICATE_WAIT).saturating_sub(ANSWER_MARGIN);
    match begin(store, payments.clock(), &owner, key, method, &hash, wait).await.map_err(Status::from)? {
        Begin::Replay(stored) => decode(&stored),
        Begin::Proceed => {
            let result = call(derived_id(&owner, key, method)).await.map_err(Status::from);
            let recorded = match &result {
                Ok(response) => store.complete_key(&owner, key, &encode_ok(response)).await,
                Err(status) if retryable(status.code()) => store.release_key(&owner, key).await,
                Err(status) => store.complete_key(&owner, key, &encode_err(status)).await,
            };
            if let Err(error) = recorded {
                tracing::error!(%error, "idempotency record not written");
            }
            result
        }
    }
}
