//! The SQL connection both services use: sqlx's Any driver over PostgreSQL
//! (production) or an SQLite file (the embedded default), and its settings.
//! Each service runs its own embedded migrations on the pool.
use std::time::Duration;

use serde::Deserialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Instants are stored as Unix seconds in both services' databases: a 13-digit
/// millisecond count could pass Luhn and trip the card-number scan of a dump.
pub fn to_secs(ms: crate::clock::Millis) -> i64 {
    ms.div_euclid(1000)
}

pub fn from_secs(secs: i64) -> crate::clock::Millis {
    secs * 1000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://…`; unset: an SQLite file in the data folder.
    pub url: Option<String>,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 16, connect_timeout_ms: 2_000 }
    }
}

impl DatabaseConfig {
    /// The configured URL, or `sqlite://<data_dir>/<file>`.
    pub fn url_or_file(&self, data_dir: &std::path::Path, file: &str) -> String {
        self.url.clone().unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join(file).display()))
    }
}

/// Opens a pool. On SQLite: WAL (readers beside the one writer), synchronous
/// FULL (every acknowledged commit is durable), and writers wait for the lock
/// instead of failing.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<(AnyPool, Dialect), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let dialect = if url.starts_with("postgres") { Dialect::Postgres } else { Dialect::Sqlite };
    let options: AnyConnectOptions = url.parse()?;
    let mut pool = AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(acquire_timeout);
    if dialect == Dialect::Sqlite {
        pool = pool.after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
                    .await
                    .map(|_| ())
            })
        });
    }
    Ok((pool.connect_with(options).await?, dialect))
}
