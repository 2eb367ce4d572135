//! Idempotency keys: the first request with a key runs and its response is
//! stored with a hash of the request; a retry with the same request gets the
//! stored response; the same key with another request is refused; a duplicate
//! arriving while the first is in flight waits briefly for its response, then
//! is refused as in use. A key also fixes the payment id, so a retried payment
//! presents the same `consumer_ref` to the vault and never consumes or
//! tokenizes twice.
use std::time::Duration;

use sha2::{Digest, Sha256};

use common::clock::SharedClock;

use super::error::PaymentError;
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

pub fn request_hash(method: &str, encoded_request: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(encoded_request);
    hex::encode(h.finalize())
}

/// The payment id a key stands for: stable across retries, distinct per
/// merchant, and never carrying a card-length digit run (a hash that would is
/// rehashed with a counter, deterministically).
pub fn derived_id(merchant_id: &str, key: &str, method: &str) -> String {
    (0u32..)
        .map(|round| {
            let mut h = Sha256::new();
            for part in [merchant_id, method, key] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            if round > 0 {
                h.update(round.to_be_bytes());
            }
            hex::encode(&h.finalize()[..16])
        })
        .find(|id| common::ids::is_card_safe(id))
        .unwrap_or_default()
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

/// A request's claim on an idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// Whose keys (merchant and mode).
    pub owner: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub hash: &'a str,
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
    check_key(claim.key)?;
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
    fn hashes_and_ids_are_stable_and_distinct() {
        assert_eq!(request_hash("m", b"a"), request_hash("m", b"a"));
        assert_ne!(request_hash("m", b"a"), request_hash("m", b"b"));
        assert_ne!(request_hash("m1", b"a"), request_hash("m2", b"a"));
        let id = derived_id("mrch_1", "key-1", "CreatePayment");
        assert_eq!(id.len(), 32);
        assert_eq!(id, derived_id("mrch_1", "key-1", "CreatePayment"));
        assert_ne!(id, derived_id("mrch_2", "key-1", "CreatePayment"));
        assert!(check_key("").is_err() && check_key(&"k".repeat(256)).is_err() && check_key("k").is_ok());
    }
}
