//! A service running in a test: its task and the signal that stops it. A
//! server that failed or panicked fails the test that stops it (or, if the
//! test never did, the drop that finds it finished) instead of going unseen.
use std::future::Future;

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct ServerTask {
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

impl ServerTask {
    /// Spawns `run(shutdown)`; `shutdown` resolves when the test stops it.
    pub fn spawn<F, R>(name: &'static str, run: R) -> Self
    where
        R: FnOnce(futures::future::BoxFuture<'static, ()>) -> F,
        F: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let served = run(Box::pin(async {
            let _ = rx.await;
        }));
        let task = tokio::spawn(async move { served.await.map_err(|e| e.to_string()) });
        Self { name, stop: Some(tx), task: Some(task) }
    }

    /// Stops the server, waits for its drain, and panics if it failed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            check(self.name, task.await);
        }
    }
}

fn check(name: &str, ended: Result<Result<(), String>, JoinError>) {
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("{name} failed: {error}"),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("{name} task: {error}"),
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let Some(task) = self.task.take() else { return };
        if std::thread::panicking() {
            task.abort();
            return;
        }
        // Still draining: the runtime ends it with the test.
        if let Some(ended) = task.now_or_never() {
            check(self.name, ended);
        }
    }
}
