//! What the multi-row statements of `committer::Batch` jobs share on
//! PostgreSQL: a batch's rows sent as one JSON parameter (read back with
//! `json_to_recordset`), the check that no two rows of a batch are for one
//! key, and the planner settings that keep a batch's join on the key.
use sqlx::{AnyConnection, Executor};

use super::classify;
use crate::store::StoreError;

/// Whether `conn` is PostgreSQL's (the multi-row forms are written for it;
/// SQLite runs each write as its own statement).
pub fn on_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name() == "PostgreSQL"
}

/// Whether every key is different: an `UPDATE … FROM` joins a row to at most
/// one of the batch's, so two writes of one row must run one after the other.
pub fn distinct<'a>(keys: impl Iterator<Item = &'a str>) -> bool {
    let mut keys: Vec<&str> = keys.collect();
    keys.sort_unstable();
    keys.windows(2).all(|w| w[0] != w[1])
}

/// A batch's rows as the JSON array `json_to_recordset($1::json)` reads.
pub fn json<T: serde::Serialize>(rows: &T) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Makes the rest of the transaction find rows by key whatever the planner
/// believes of a table's size. A generic plan made while a table was nearly
/// empty (a hash join over a sequential scan) is cached on the committer's
/// connection, which lives for hours, and once the table has grown would
/// scan all of it for every batch. One round trip; the settings end with
/// the transaction, whose statements all find their rows by key.
pub async fn pin_key_lookups(conn: &mut AnyConnection) -> Result<(), StoreError> {
    conn.execute(sqlx::raw_sql(
        "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
    ))
    .await
    .map(|_| ())
    .map_err(classify)
}
