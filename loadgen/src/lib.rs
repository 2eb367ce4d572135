//! Load generator for payvault: drives the vault's RPCs and payments-svc's
//! payments, and the baselines they are judged against (a bare tonic echo
//! service with the same message sizes, raw Redis commands with the same value
//! size, raw PostgreSQL inserts of a payments row's size), and prints one JSON
//! line per run.

pub mod channels;
pub mod cli;
pub mod cpu;
pub mod driver;
pub mod echo;
pub mod merchant;
pub mod ops;
pub mod report;
pub mod sizes;
pub mod table;

/// Everything that stops a run before it measures anything. Failures of
/// individual requests are counted, not returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    File { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: tonic::transport::Error },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("redis: {0}")]
    Redis(#[from] deadpool_redis::redis::RedisError),
    #[error("postgres: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("redis pool: {0}")]
    RedisPool(String),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::File { path: path.to_path_buf(), source }
    }
}
