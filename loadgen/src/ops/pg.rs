//! The raw PostgreSQL baseline: one `INSERT` per call of a row the size of a
//! payments row, through a sqlx pool as large as the services', into a scratch
//! table created for the run and dropped after it. Every insert is its own
//! transaction, committed durably (the server's `synchronous_commit`).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::Error;
use crate::driver::{Failure, Op, Worker};

struct Shared {
    table: String,
    insert: String,
    prefix: String,
    payload: Vec<u8>,
    next: AtomicU64,
}

pub struct PgInsert {
    pool: PgPool,
    shared: Arc<Shared>,
}

pub struct PgInsertWorker {
    pool: PgPool,
    shared: Arc<Shared>,
}

fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl PgInsert {
    /// Opens a pool of `pool_size` connections (all of them, untimed) and
    /// creates the scratch table `loadgen_insert_<random>` in the URL's schema.
    pub async fn create(url: &str, pool_size: usize, value_size: usize) -> Result<Self, Error> {
        let size = u32::try_from(pool_size.max(1)).unwrap_or(u32::MAX);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(size)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        // Open every connection now, so the first calls do not pay for it.
        let mut held = Vec::with_capacity(pool_size);
        for _ in 0..size {
            held.push(pool.acquire().await?);
        }
        drop(held);
        let random = rand::random::<u64>() >> 16;
        let table = format!("loadgen_insert_{random:012x}");
        sqlx::query(&format!(
            "CREATE TABLE {table} (id TEXT PRIMARY KEY, payload BYTEA NOT NULL, created_at BIGINT NOT NULL)"
        ))
        .execute(&pool)
        .await?;
        Ok(Self {
            pool,
            shared: Arc::new(Shared {
                insert: format!("INSERT INTO {table} (id, payload, created_at) VALUES ($1, $2, $3)"),
                table,
                prefix: format!("{random:012x}"),
                payload: vec![0xa5; value_size],
                next: AtomicU64::new(0),
            }),
        })
    }

    /// Drops the scratch table and closes the pool.
    pub async fn drop_table(&self) -> Result<(), Error> {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.shared.table)).execute(&self.pool).await?;
        self.pool.close().await;
        Ok(())
    }
}

impl Op for PgInsert {
    type Worker = PgInsertWorker;

    fn worker(&self, _index: usize) -> PgInsertWorker {
        PgInsertWorker { pool: self.pool.clone(), shared: Arc::clone(&self.shared) }
    }
}

impl Worker for PgInsertWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        let s = &self.shared;
        // 32 hex characters, as a payment id.
        let id = format!("{}{:020x}", s.prefix, s.next.fetch_add(1, Ordering::Relaxed));
        let done = sqlx::query(&s.insert)
            .bind(id)
            .bind(s.payload.as_slice())
            .bind(unix_seconds())
            .execute(&self.pool)
            .await
            .map_err(|e| Failure::Error(e.to_string()))?;
        match done.rows_affected() {
            1 => Ok(()),
            n => Err(Failure::Error(format!("INSERT affected {n} rows"))),
        }
    }
}
