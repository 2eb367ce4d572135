//! Process lifecycle both services share: the shutdown signal (SIGTERM or
//! Ctrl-C) and the graceful drain of servers after it.
use std::future::Future;
use std::time::Duration;

/// The exit status of a command-line run; errors are printed as text (not
/// `Debug`) after the program's name.
pub fn exit_code<E: std::fmt::Display>(program: &str, result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs `servers` until they end or `shutdown` resolves; then runs `on_stop`
/// (report NOT_SERVING, tell the servers to stop accepting) and gives
/// in-flight calls up to `drain` to finish.
pub async fn serve_until<E, S, D, O>(servers: S, shutdown: D, on_stop: O, drain: Duration) -> Result<(), E>
where
    S: Future<Output = Result<(), E>>,
    D: Future<Output = ()>,
    O: Future<Output = ()>,
{
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => result,
        () = shutdown => {
            on_stop.await;
            tracing::info!(drain_secs = drain.as_secs(), "shutting down: draining in-flight calls");
            match tokio::time::timeout(drain, &mut servers).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("drain limit reached; closing remaining calls");
                    Ok(())
                }
            }
        }
    }
}
