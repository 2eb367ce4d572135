//! The caller's deadline, carried through a unit of work as a task-local so
//! that every store call it makes can be bounded by the time the caller has
//! left, without threading a deadline through each store trait. A store that
//! does not answer in time is `Unavailable`, never a wait past the deadline.
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::StoreError;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the bound of the store calls it makes.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The time left before the current work's deadline, if it has one.
pub fn remaining() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// A store call bounded by the current deadline (unbounded outside one).
pub async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match remaining() {
        None => call.await,
        Some(left) => tokio::time::timeout(left, call)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store did not answer before the deadline".into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_call_past_the_deadline_is_unavailable() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, StoreError>(1)
        };
        let started = Instant::now();
        let result = within(Instant::now() + Duration::from_millis(50), bounded(slow)).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(bounded(async { Ok::<_, StoreError>(2) }).await.unwrap(), 2, "no deadline: unbounded");
    }
}
