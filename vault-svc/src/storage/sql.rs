//! The durable store on PostgreSQL (production) or SQLite (the embedded
//! default), through sqlx's Any driver: one set of statements with `$n`
//! placeholders serves both. Migrations are embedded and applied at start-up.
//! Hot paths (tokenize, detokenize) are one statement on PostgreSQL, writing
//! the token and its audit event in one commit; SQLite, in-process, uses a
//! local transaction instead of data-modifying CTEs, which it lacks. Their
//! writes (`writes`) are group-committed: many callers' in one transaction.
//! This file holds the connection, row decoding and the write-with-audit
//! helpers; `cards` implements `CardStore`, `keys` implements `KeyStore`. Every sqlx
//! failure goes through `common::database::classify`.
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::AnyPool;
use sqlx::any::AnyRow;

use common::database::{Database, GroupCommit, classify, column, flag, to_secs as secs};

use crate::domain::audit::AuditEntry;
use crate::domain::store::StoreError;
use crate::domain::store::cards::{CardRow, Instrument, Scope};
use vault_api::TokenKind;

pub use common::database::Dialect;

mod cards;
mod keys;
mod writes;

#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
}

const COLUMNS: &str = "id, merchant_id, livemode, kind, instrument, customer_id, fingerprint, meta, card, \
                       dek_version, created_at, last_used_at, retain_until, extended";

const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, event_type, merchant_id, token_id, actor, correlation_id, \
                            outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)";

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// How a result row becomes a record: `card_row`, `wrapped_key`, …
type Decode<T> = fn(&AnyRow) -> Result<T, StoreError>;

fn token_kind(row: &AnyRow) -> Result<TokenKind, StoreError> {
    TokenKind::parse(&column::<String>(row, "kind")?)
        .ok_or_else(|| StoreError::Corrupt("unknown token kind in card_tokens".into()))
}

fn card_row(row: &AnyRow) -> Result<CardRow, StoreError> {
    use common::database::from_secs as ms;
    Ok(CardRow {
        id: column(row, "id")?,
        merchant_id: column(row, "merchant_id")?,
        livemode: flag(row, "livemode")?,
        kind: token_kind(row)?,
        instrument: Instrument::parse(&column::<String>(row, "instrument")?)
            .ok_or_else(|| StoreError::Corrupt("unknown instrument in card_tokens".into()))?,
        customer_id: column(row, "customer_id")?,
        fingerprint: column(row, "fingerprint")?,
        meta: column::<Option<Vec<u8>>>(row, "meta")?.unwrap_or_default(),
        card: column::<Option<Vec<u8>>>(row, "card")?.unwrap_or_default(),
        dek_version: column::<i64>(row, "dek_version")? as u32,
        created_at: ms(column(row, "created_at")?),
        last_used_at: column::<Option<i64>>(row, "last_used_at")?.map(ms),
        retain_until: ms(column(row, "retain_until")?),
        extended: flag(row, "extended")?,
    })
}

/// The caller-supplied and recorded texts of an audit event.
fn audit_texts(a: &AuditEntry) -> [&str; 5] {
    [&a.merchant_id, &a.token_id, &a.actor, &a.correlation_id, &a.outcome]
}

/// Binds an audit entry to `INSERT_AUDIT`.
fn audit_insert(a: &AuditEntry) -> Query<'_> {
    sqlx::query(INSERT_AUDIT)
        .bind(secs(a.at))
        .bind(a.event_type)
        .bind(a.merchant_id.as_str())
        .bind(a.token_id.as_str())
        .bind(a.actor.as_str())
        .bind(a.correlation_id.as_str())
        .bind(a.outcome.as_str())
}

/// Binds the values a data-modifying CTE takes for its audit insert, in
/// order: at, event type, actor, correlation id, outcome (merchant and token
/// come from the row the CTE wrote).
fn bind_event<'q>(statement: Query<'q>, a: &'q AuditEntry) -> Query<'q> {
    statement
        .bind(secs(a.at))
        .bind(a.event_type)
        .bind(a.actor.as_str())
        .bind(a.correlation_id.as_str())
        .bind(a.outcome.as_str())
}

/// `sql` with `$1` = id, `$2` = merchant, `$3` = mode bound: the shape of every
/// statement on one scoped token.
fn scoped<'q>(sql: &'q str, scope: Scope<'q>, id: &'q str) -> Query<'q> {
    sqlx::query(sql).bind(id).bind(scope.merchant_id).bind(i64::from(scope.livemode))
}

impl SqlStore {
    /// Connects with the default group commit (`open` takes one).
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        Self::open(url, max_connections, acquire_timeout, &GroupCommit::default()).await
    }

    /// Connects (creating a SQLite file if needed), applies the migrations
    /// and starts the committers of the hot paths' writes (`writes`).
    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        group_commit: &GroupCommit,
    ) -> Result<Self, StoreError> {
        let db = Database::open(url, max_connections, acquire_timeout, group_commit, common::migrations!()).await?;
        Ok(Self { db })
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// One round trip of `operation`, in its span (`Database::trip`).
    async fn trip<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.db.trip(operation, call).await
    }

    /// The pool itself, for operators' queries and tests.
    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    /// The row `statement` finds, if any, decoded by `decode`.
    async fn find<T>(&self, statement: Query<'_>, decode: Decode<T>) -> Result<Option<T>, StoreError> {
        let row = statement.fetch_optional(self.pool()).await.map_err(classify)?;
        row.as_ref().map(decode).transpose()
    }

    /// Every row `statement` finds, decoded by `decode`.
    async fn find_all<T>(&self, statement: Query<'_>, decode: Decode<T>) -> Result<Vec<T>, StoreError> {
        let rows = statement.fetch_all(self.pool()).await.map_err(classify)?;
        rows.iter().map(decode).collect()
    }

    /// Runs `statement` and, if it changed a row, the audit insert, in a
    /// transaction of its own; says whether it changed one.
    async fn changed_with_audit(&self, statement: Query<'_>, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(classify)?;
        let changed = changed_with_audit(&mut tx, statement, audit).await?;
        tx.commit().await.map_err(classify)?;
        Ok(changed)
    }

    /// `returning_with_audit` in a transaction of its own.
    async fn returning_with_audit<'q>(
        &self,
        statement: Query<'q>,
        audit: &AuditEntry,
    ) -> Result<Option<CardRow>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(classify)?;
        let row = returning_with_audit(&mut tx, statement, audit).await?;
        tx.commit().await.map_err(classify)?;
        Ok(row)
    }
}

/// Runs `statement` and, if it changed a row, the audit insert, on `conn`
/// (inside the caller's transaction); says whether it changed one.
async fn changed_with_audit(
    conn: &mut AnyConnection,
    statement: Query<'_>,
    audit: &AuditEntry,
) -> Result<bool, StoreError> {
    if statement.execute(&mut *conn).await.map_err(classify)?.rows_affected() == 0 {
        return Ok(false);
    }
    audit_insert(audit).execute(&mut *conn).await.map_err(classify)?;
    Ok(true)
}

/// Runs `statement` (which must return the token's columns) and, if it
/// returned a row, the audit insert, on `conn` (inside the caller's transaction).
async fn returning_with_audit(
    conn: &mut AnyConnection,
    statement: Query<'_>,
    audit: &AuditEntry,
) -> Result<Option<CardRow>, StoreError> {
    let Some(row) = statement.fetch_optional(&mut *conn).await.map_err(classify)? else {
        return Ok(None);
    };
    let row = card_row(&row)?;
    audit_insert(audit).execute(&mut *conn).await.map_err(classify)?;
    Ok(Some(row))
}
