//! Retry of vault calls as a tower policy (after quickwit-common's
//! `tower/retry.rs`): an error says whether it is worth repeating through
//! [`Retryable`], and [`RetryPolicy`] repeats it a few times with a small
//! jittered exponential backoff, only while the caller's deadline leaves room
//! for the pause and one more attempt. It never retries after the deadline.
use std::time::{Duration, Instant};

use tonic::{Code, Status, TimeoutExpired};
use tower::retry::Policy;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, InvalidBackoff, MakeBackoff};
use tower::util::rng::HasherRng;

/// An error that may succeed if the same request is sent again.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

/// Only a vault that could not be reached or did not answer in time is worth
/// another attempt: UNAVAILABLE (connection refused or reset, the vault's own
/// store outage) and a transport timeout (tonic reports its client-side
/// timeout as CANCELLED "Timeout expired"). Every other status is an answer.
impl Retryable for Status {
    fn is_retryable(&self) -> bool {
        match self.code() {
            Code::Unavailable => true,
            Code::Cancelled => self.message() == TimeoutExpired(()).to_string(),
            _ => false,
        }
    }
}

/// A request that knows when its caller stops waiting.
pub trait HasDeadline {
    fn deadline(&self) -> Option<Instant>;
}

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryParams {
    /// Attempts after the first.
    pub max_retries: usize,
    /// The first pause; each later one doubles, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The least time an attempt needs: a retry is made only if the pause and
    /// this much still fit before the deadline.
    pub min_attempt: Duration,
}

impl Default for RetryParams {
    fn default() -> Self {
        Self {
            max_retries: 2,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(150),
            min_attempt: Duration::from_millis(20),
        }
    }
}

/// One request's retry state; tower clones the policy for every request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    retries_left: usize,
    min_attempt: Duration,
    backoff: ExponentialBackoff,
}

/// Jitter as a fraction of each pause, so callers that failed together do not
/// come back together.
const JITTER: f64 = 0.5;

impl RetryPolicy {
    pub fn new(params: RetryParams) -> Result<Self, InvalidBackoff> {
        let mut maker =
            ExponentialBackoffMaker::new(params.min_backoff, params.max_backoff, JITTER, HasherRng::default())?;
        Ok(Self { retries_left: params.max_retries, min_attempt: params.min_attempt, backoff: maker.make_backoff() })
    }
}

impl<Req, Res, E> Policy<Req, Res, E> for RetryPolicy
where
    Req: HasDeadline + Clone,
    E: Retryable + std::fmt::Debug,
{
    type Future = tokio::time::Sleep;

    fn retry(&mut self, request: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        let Err(error) = result else { return None };
        if self.retries_left == 0 || !error.is_retryable() {
            return None;
        }
        let pause = self.backoff.next_backoff();
        let wait = pause.deadline().saturating_duration_since(tokio::time::Instant::now());
        if let Some(deadline) = request.deadline() {
            let next_attempt_ends = Instant::now() + wait + self.min_attempt;
            if next_attempt_ends > deadline {
                tracing::debug!(?error, "vault call failed; no time left to retry");
                return None;
            }
        }
        self.retries_left -= 1;
        tracing::debug!(?error, wait_ms = wait.as_millis(), "vault call failed; retrying");
        Some(pause)
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::{Ready, ready};
    use tower::retry::RetryLayer;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[derive(Debug, Clone)]
    struct Req(Option<Instant>);

    impl HasDeadline for Req {
        fn deadline(&self) -> Option<Instant> {
            self.0
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetryParams::default()).unwrap()
    }

    fn retries(policy: &mut RetryPolicy, deadline: Option<Instant>, status: Status) -> bool {
        let mut result: Result<(), Status> = Err(status);
        Policy::retry(policy, &mut Req(deadline), &mut result).is_some()
    }

    #[tokio::test]
    async fn retries_unavailable_and_transport_timeouts_only() {
        assert!(retries(&mut policy(), None, Status::unavailable("connection refused")));
        assert!(retries(&mut policy(), None, Status::cancelled(TimeoutExpired(()).to_string())));
        for status in [
            Status::invalid_argument("bad card"),
            Status::not_found("no such token"),
            Status::failed_precondition("used token"),
            Status::cancelled("the caller went away"),
            Status::deadline_exceeded("too late"),
            Status::aborted("conflict"),
            Status::internal("boom"),
        ] {
            let code = status.code();
            assert!(!retries(&mut policy(), None, status), "{code:?}");
        }
        let mut ok: Result<(), Status> = Ok(());
        assert!(Policy::retry(&mut policy(), &mut Req(None), &mut ok).is_none());
    }

    #[tokio::test]
    async fn stops_after_its_retries() {
        let mut policy = policy();
        assert!(retries(&mut policy, None, Status::unavailable("")));
        assert!(retries(&mut policy, None, Status::unavailable("")));
        assert!(!retries(&mut policy, None, Status::unavailable("")));
    }

    #[tokio::test]
    async fn never_retries_when_the_deadline_leaves_no_room() {
        let now = Instant::now();
        assert!(retries(&mut policy(), Some(now + Duration::from_secs(5)), Status::unavailable("")));
        // The first pause is at least 50 ms, plus 20 ms for the attempt.
        assert!(!retries(&mut policy(), Some(now + Duration::from_millis(60)), Status::unavailable("")));
        assert!(!retries(&mut policy(), Some(now), Status::unavailable("")));
        assert!(!retries(&mut policy(), Some(now - Duration::from_secs(1)), Status::unavailable("")));
    }

    /// Fails with `UNAVAILABLE` until it has been called `failures` times.
    #[derive(Clone)]
    struct Flaky {
        calls: Arc<AtomicUsize>,
        failures: usize,
    }

    impl Service<Req> for Flaky {
        type Response = usize;
        type Error = Status;
        type Future = Ready<Result<usize, Status>>;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Status>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Req) -> Self::Future {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            ready(if call > self.failures { Ok(call) } else { Err(Status::unavailable("down")) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn as_a_layer_it_repeats_the_call_until_it_succeeds_or_gives_up() {
        let layer = RetryLayer::new(policy());
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer.layer(Flaky { calls: calls.clone(), failures: 2 });
        assert_eq!(service.oneshot(Req(None)).await.unwrap(), 3);

        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer.layer(Flaky { calls: calls.clone(), failures: 5 });
        assert_eq!(service.oneshot(Req(None)).await.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
    }
}
