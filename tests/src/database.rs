//! Databases of a test: a fresh PostgreSQL schema (through `search_path`) or
//! SQLite file, dropped when the test ends, and dumps of their values for the
//! card-number scans.
use std::time::Duration;

use common::ids;
use vault_svc::storage::sql::SqlStore;

use crate::scratch::ScratchDir;

pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A real PostgreSQL, in a fresh schema.
    Postgres,
    /// A fresh SQLite file.
    Sqlite,
}

/// An empty database of the test's own; `url` reaches it. Dropping it drops
/// the schema (PostgreSQL) or removes the file (SQLite).
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Schema(String),
    File(#[allow(dead_code)] ScratchDir),
}

impl TestDatabase {
    pub async fn new(db: Db) -> Self {
        match db {
            Db::Postgres => {
                sqlx::any::install_default_drivers();
                let schema = format!("test_{}", ids::hex(8));
                let admin = sqlx::AnyPool::connect(&postgres_url()).await.expect("PostgreSQL must be running");
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
                admin.close().await;
                let sep = if postgres_url().contains('?') { '&' } else { '?' };
                let url = format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_url());
                Self { url, cleanup: Cleanup::Schema(schema) }
            }
            Db::Sqlite => {
                let dir = ScratchDir::new();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("store.db").display());
                Self { url, cleanup: Cleanup::File(dir) }
            }
        }
    }
}

impl Drop for TestDatabase {
    /// `Drop` is synchronous and may run on the test's runtime, so the schema
    /// is dropped from a thread of its own with its own small runtime.
    fn drop(&mut self) {
        let Cleanup::Schema(schema) = &self.cleanup else { return };
        let schema = schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let admin = sqlx::AnyPool::connect(&postgres_url()).await?;
                // A connection still inside a transaction must not hang the test.
                sqlx::query("SET lock_timeout = '5s'").execute(&admin).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await?;
                admin.close().await;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("test schema {}: not dropped: {error}", self.url),
            Err(_) => eprintln!("test schema {}: the dropping thread panicked", self.url),
        }
    }
}

/// A migrated durable (vault) store of its own, and the database it lives in.
pub async fn test_database(db: Db) -> (SqlStore, TestDatabase) {
    let database = TestDatabase::new(db).await;
    let store = SqlStore::connect(&database.url, 8, Duration::from_secs(5)).await.unwrap();
    (store, database)
}

/// Every value in the durable store's tables, as lossy text (for PAN scans):
/// text as is, integers in decimal, blobs as their raw bytes.
pub async fn database_values(store: &SqlStore) -> Vec<String> {
    table_values(store.pool(), &["card_tokens", "data_keys", "audit_events", "key_rotations"]).await
}

/// Every value of `tables`, as `database_values` renders them.
pub async fn table_values(pool: &sqlx::AnyPool, tables: &[&str]) -> Vec<String> {
    use sqlx::Row;
    let mut values = Vec::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(pool).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    values.push(text);
                } else if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
                    values.push(n.to_string());
                } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    values.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
    }
    values
}
