//! What the multi-row statements of `committer::Batch` jobs share on
//! PostgreSQL: a batch's rows sent as one JSON parameter (read back with
//! `json_to_recordset`), the check that no two rows of a batch are for one
//! key, and the planner settings that keep a batch's join on the key.
use sqlx::AnyConnection;

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

/// The planner settings under which a committer's statements run on
/// PostgreSQL, so that a batch's join finds its rows by key whatever the
/// planner believes of a table's size. A generic plan made while a table was
/// nearly empty (a hash join over a sequential scan) is cached on the
/// committer's connection, which lives for hours, and once the table had
/// grown would scan all of it for every batch. The committers' statements
/// all find their rows by key. A kept connection (which runs nothing else and
/// never goes back to the pool in use) takes them for its life, when it is
/// taken from the pool (`PIN_SESSION`); a connection that goes back after
/// each batch, for its transaction only (`BEGIN_PINNED`).
pub const PIN_SESSION: &str = "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

/// BEGIN with `PIN_SESSION`'s settings for the transaction only, in one round trip.
pub const BEGIN_PINNED: &str =
    "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";
