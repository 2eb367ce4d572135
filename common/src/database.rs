//! The SQL connection both services use: sqlx's Any driver over PostgreSQL
//! (production) or an SQLite file (the embedded default), and its settings.
//! `Database` is the scaffolding both `SqlStore`s share: open the pool, apply
//! the service's embedded migrations, ping, read columns. Every sqlx failure
//! becomes a `StoreError` through `classify` (in `database/classify.rs`).
//! `pool_gauges` reports how full the pool is; `committer` carries the
//! durable writes of many callers in one transaction (`Database::write`).
use std::time::Duration;

use serde::Deserialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

use crate::store::StoreError;

pub mod batched;
mod classify;
pub mod committer;
pub mod pool_gauges;

pub use classify::{classify, classify_migration};
pub use committer::{Batch, GroupCommit, Job, OneStatement};

/// Instants are stored as Unix seconds in both services' databases: a 13-digit
/// millisecond count could pass Luhn and trip the card-number scan of a dump.
pub fn to_secs(ms: crate::clock::Millis) -> i64 {
    ms.div_euclid(1000)
}

pub fn from_secs(secs: i64) -> crate::clock::Millis {
    secs * 1000
}

/// The migrations of the crate that expands it, for `Database::open`: its
/// `migrations/postgres` and `migrations/sqlite` folders, embedded by
/// `sqlx::migrate!` at build time.
#[macro_export]
macro_rules! migrations {
    () => {
        |dialect| match dialect {
            $crate::database::Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
            $crate::database::Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        }
    };
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
    pub group_commit: GroupCommit,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 16, connect_timeout_ms: 2_000, group_commit: GroupCommit::default() }
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

/// A migrated pool, its dialect and its committers.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    committer: committer::Committer,
}

impl Database {
    /// Connects (creating an SQLite file if needed), applies the service's
    /// migrations for the dialect (`sqlx::migrate!` runs in the service crate)
    /// and starts the committers of `group_commit` (at most half the pool;
    /// one on SQLite, which has one writer).
    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        group_commit: &GroupCommit,
        migrations: fn(Dialect) -> Migrator,
    ) -> Result<Self, StoreError> {
        let (pool, dialect) = connect(url, max_connections, acquire_timeout).await.map_err(classify)?;
        migrations(dialect).run(&pool).await.map_err(classify_migration)?;
        let mut group_commit = group_commit.clone();
        // A committer holds a connection while its batch runs: half the pool
        // at most, so reads are never starved by writes.
        let half_pool = usize::try_from(max_connections / 2).unwrap_or(1).max(1);
        group_commit.committers = group_commit.committers.min(half_pool);
        if dialect == Dialect::Sqlite {
            group_commit.committers = 1;
        }
        let committer = committer::Committer::start(pool.clone(), &group_commit);
        Ok(Self { pool, dialect, committer })
    }

    /// A durable write (`committer`): `job` over `data` in a transaction
    /// shared with other callers' writes, answered once it is durable; in
    /// `operation`'s span and bounded by the caller's deadline, as `trip`.
    pub async fn write<D, T>(&self, operation: &'static str, data: D, job: Job<D, T>) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.trip(operation, self.committer.write(data, job)).await
    }

    /// As `write`, with the writes of the same `batch` that share its
    /// transaction run as one (`committer::Batch`); a batch that is one
    /// statement, as `one` says, runs on a connection in use without BEGIN
    /// and COMMIT (`Committer::write_batched`).
    pub async fn write_batched<D, T>(
        &self,
        operation: &'static str,
        data: D,
        batch: Batch<D, T>,
        one: OneStatement<D>,
    ) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.trip(operation, self.committer.write_batched(data, batch, one)).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One round trip (or transaction) of `operation`: in its span, timed by
    /// operation (`telemetry::spans::round_trip`), bounded by the caller's
    /// deadline (`deadline::bounded`).
    pub async fn trip<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let system = match self.dialect {
            Dialect::Postgres => "postgresql",
            Dialect::Sqlite => "sqlite",
        };
        crate::telemetry::spans::round_trip(system, operation, crate::deadline::bounded(call)).await
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(classify)
    }

    /// PostgreSQL refuses a NUL byte in a text column (SQLSTATE 22021, which
    /// `classify` makes `Invalid`); SQLite would store it. So that both
    /// backends hold one semantics, writes check their text here first on
    /// SQLite: no round trip, and nothing is written.
    pub fn check_text<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite && texts.into_iter().any(|t| t.contains('\0')) {
            return Err(StoreError::Invalid("text with a NUL byte".into()));
        }
        Ok(())
    }
}

/// A column of a row; a value that does not decode is `Corrupt`.
pub fn column<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    name: &str,
) -> Result<T, StoreError> {
    row.try_get(name).map_err(classify)
}

/// A 0/1 flag column (the Any driver cannot decode SQLite booleans).
pub fn flag(row: &AnyRow, name: &str) -> Result<bool, StoreError> {
    Ok(column::<i64>(row, name)? != 0)
}
