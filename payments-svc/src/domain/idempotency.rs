//! Idempotency keys: the first request with a key runs and its response is
//! stored with a keyed hash of the request (keys and hashes are stored keyed,
//! `references`); a retry with the same request gets the
//! stored response; the same key with another request is refused; a duplicate
//! arriving while the first is in flight waits briefly for its response, then
//! is refused as in use. A key also fixes the payment id, so a retried payment
//! presents the same `consumer_ref` to the vault and never consumes or
//! tokenizes twice.
use std::time::Duration;

use common::clock::SharedClock;

use super::error::PaymentError;
use super::references::References;
use super::store::{KeyState, PaymentStore};

pub const MAX_KEY_LEN: usize = 255;
const POLL: Duration = Duration::from_millis(20);

/// What the caller should do with the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// Run it, then `complete` (or `release` on a retryable failure).
    Proceed,
    /// Answer with this stored response.
    Replay(Vec<u8>),
}

pub fn check_key(key: &str) -> Result<(), PaymentError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(PaymentError::InvalidArgument("idempotency-key must be 1 to 255 characters"));
    }
    if common::card::contains_pan(key) {
        return Err(PaymentError::CardNumberInText("idempotency-key"));
    }
    Ok(())
}

/// A request's claim on an idempotency key, as stored: the owner (merchant
/// and mode) in clear, the key and the request keyed.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub hash: &'a str,
}

/// A request's claim under one version of the reference key, and the
/// payment id the key stands for under it.
#[derive(Debug, Clone)]
pub struct KeyedClaim {
    pub owner: String,
    pub key: String,
    pub method: &'static str,
    pub hash: String,
    pub payment_id: String,
}

impl KeyedClaim {
    pub fn claim(&self) -> Claim<'_> {
        Claim { owner: &self.owner, key: &self.key, method: self.method, hash: &self.hash }
    }
}

/// The claims `key` (checked) with `encoded_request` may stand for: under
/// the current version of the reference key first, then the older ones.
pub fn claims(
    references: &References,
    owner: &str,
    key: &str,
    method: &'static str,
    encoded_request: &[u8],
) -> Result<Vec<KeyedClaim>, PaymentError> {
    check_key(key)?;
    let versions = std::iter::once(references.current()).chain(references.older());
    Ok(versions
        .map(|v| KeyedClaim {
            owner: owner.to_owned(),
            key: v.idempotency_key(owner, key),
            method,
            hash: v.request(method, encoded_request),
            payment_id: v.payment_id(owner, key, method),
        })
        .collect())
}

/// The claim to make: one under an older version whose record exists (a
/// retry across a rotation of the reference key), else the current one. With
/// one version, as between rotations, no store call.
pub async fn choose<P: PaymentStore>(store: &P, mut claims: Vec<KeyedClaim>) -> Result<KeyedClaim, PaymentError> {
    for i in 1..claims.len() {
        let older = &claims[i];
        if store.has_key(&older.owner, &older.key).await? {
            return Ok(claims.swap_remove(i));
        }
    }
    claims.into_iter().next().ok_or(PaymentError::Internal)
}

/// Claims the key for `claim`'s request (holding it for `lease`), or says
/// what to answer instead; an in-flight duplicate waits at most `wait`.
pub async fn begin<P: PaymentStore>(
    store: &P,
    clock: &SharedClock,
    claim: &Claim<'_>,
    wait: Duration,
    lease: Duration,
) -> Result<Begin, PaymentError> {
    let started = tokio::time::Instant::now();
    loop {
        let now = clock.now_ms();
        match store.acquire_key(claim, now, now + lease.as_millis() as i64).await? {
            KeyState::Acquired => return Ok(Begin::Proceed),
            KeyState::Done { request_hash, response } if request_hash == claim.hash => {
                return Ok(Begin::Replay(response));
            }
            KeyState::Done { .. } => return Err(PaymentError::IdempotencyKeyReused),
            KeyState::InFlight { request_hash } if request_hash != claim.hash => {
                return Err(PaymentError::IdempotencyKeyReused);
            }
            KeyState::InFlight { .. } if started.elapsed() >= wait => return Err(PaymentError::IdempotencyKeyInUse),
            KeyState::InFlight { .. } => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_claimed_under_every_version_current_first() {
        let references = References::new(common::keys::KeySet::random().with_new_version());
        assert!(claims(&references, "o", "", "CreatePayment", b"r").is_err());
        assert!(claims(&references, "o", &"k".repeat(256), "CreatePayment", b"r").is_err());
        let both = claims(&references, "o", "k", "CreatePayment", b"r").unwrap();
        assert_eq!(both.len(), 2);
        assert!(both[0].key.starts_with("v2:") && both[1].key.starts_with("v1:"));
        assert_ne!(both[0].payment_id, both[1].payment_id);
    }
}
