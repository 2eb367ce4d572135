//! The durable store on PostgreSQL (production) or SQLite (the embedded
//! default), through sqlx's Any driver: one set of statements with `$n`
//! placeholders serves both. Migrations are embedded and applied at start-up.
//! Hot paths (tokenize, detokenize) are one statement on PostgreSQL, writing
//! the token and its audit event in one commit; SQLite, in-process, uses a
//! local transaction instead of data-modifying CTEs, which it lacks.
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use common::clock::Millis;
use vault_api::TokenKind;

use super::StoreError;
use super::card_store::{
    AuditEntry, AuditQuery, AuditRecord, CardRow, CardStore, DueToken, KeyPurpose, KeyStore, Lookup, Scope, WrappedKey,
};

pub use common::database::Dialect;

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

use common::database::{from_secs as ms, to_secs as secs};

const COLUMNS: &str = "id, merchant_id, livemode, kind, customer_id, fingerprint, meta, card, dek_version, \
                       created_at, last_used_at, retain_until, extended";

const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, event_type, merchant_id, token_id, actor, correlation_id, \
                            outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Flags are 0/1 integers on both backends (the Any driver cannot decode
/// SQLite booleans).
fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column).map_err(unavailable)? != 0)
}

fn card_row(row: &AnyRow) -> Result<CardRow, StoreError> {
    let kind: String = row.try_get("kind").map_err(unavailable)?;
    Ok(CardRow {
        id: row.try_get("id").map_err(unavailable)?,
        merchant_id: row.try_get("merchant_id").map_err(unavailable)?,
        livemode: flag(row, "livemode")?,
        kind: TokenKind::parse(&kind).ok_or_else(|| unavailable("unknown token kind in store"))?,
        customer_id: row.try_get("customer_id").map_err(unavailable)?,
        fingerprint: row.try_get("fingerprint").map_err(unavailable)?,
        meta: row.try_get::<Option<Vec<u8>>, _>("meta").map_err(unavailable)?.unwrap_or_default(),
        card: row.try_get::<Option<Vec<u8>>, _>("card").map_err(unavailable)?.unwrap_or_default(),
        dek_version: row.try_get::<i64, _>("dek_version").map_err(unavailable)? as u32,
        created_at: ms(row.try_get("created_at").map_err(unavailable)?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at").map_err(unavailable)?.map(ms),
        retain_until: ms(row.try_get("retain_until").map_err(unavailable)?),
        extended: flag(row, "extended")?,
    })
}

fn wrapped_key(row: &AnyRow) -> Result<WrappedKey, StoreError> {
    let purpose: String = row.try_get("purpose").map_err(unavailable)?;
    Ok(WrappedKey {
        merchant_id: row.try_get("merchant_id").map_err(unavailable)?,
        purpose: KeyPurpose::parse(&purpose).ok_or_else(|| unavailable("unknown key purpose in store"))?,
        version: row.try_get::<i64, _>("version").map_err(unavailable)? as u32,
        kek_version: row.try_get::<i64, _>("kek_version").map_err(unavailable)? as u32,
        wrapped: row.try_get("wrapped").map_err(unavailable)?,
        created_at: ms(row.try_get("created_at").map_err(unavailable)?),
        rotation_id: row.try_get("rotation_id").map_err(unavailable)?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

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

impl SqlStore {
    /// Connects (creating a SQLite file if needed) and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let (pool, dialect) =
            common::database::connect(url, max_connections, acquire_timeout).await.map_err(unavailable)?;
        let store = Self { pool, dialect };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        };
        migrator.run(&self.pool).await.map_err(unavailable)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool itself, for operators' queries and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    /// Runs `statement` and, if it changed a row, the audit insert, in one
    /// transaction; says whether it changed one.
    async fn changed_with_audit(&self, statement: Query<'_>, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        if statement.execute(&mut *tx).await.map_err(unavailable)?.rows_affected() == 0 {
            return Ok(false);
        }
        audit_insert(audit).execute(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    /// Runs `statement` (which must return the token's columns) and, if it
    /// returned a row, the audit insert, in one transaction.
    async fn returning_with_audit<'q>(
        &self,
        statement: Query<'q>,
        audit: &AuditEntry,
    ) -> Result<Option<CardRow>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row = statement.fetch_optional(&mut *tx).await.map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let row = card_row(&row)?;
        let audit = AuditEntry { token_id: row.id.clone(), ..audit.clone() };
        audit_insert(&audit).execute(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(row))
    }
}

impl CardStore for SqlStore {
    async fn insert(&self, r: &CardRow, consumer_ref: Option<&str>, audit: &AuditEntry) -> Result<bool, StoreError> {
        const INSERT: &str = "INSERT INTO card_tokens (id, merchant_id, livemode, kind, customer_id, fingerprint, \
             meta, card, dek_version, created_at, retain_until, extended, consumer_ref) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (merchant_id, livemode, kind, customer_id, fingerprint) WHERE deleted_at IS NULL DO NOTHING";
        let bind = |sql| {
            sqlx::query(sql)
                .bind(r.id.as_str())
                .bind(r.merchant_id.as_str())
                .bind(i64::from(r.livemode))
                .bind(r.kind.as_str())
                .bind(r.customer_id.as_str())
                .bind(r.fingerprint.as_str())
                .bind(r.meta.as_slice())
                .bind(r.card.as_slice())
                .bind(i64::from(r.dek_version))
                .bind(secs(r.created_at))
                .bind(secs(r.retain_until))
                .bind(i64::from(r.extended))
                .bind(consumer_ref)
        };
        match self.dialect {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH t AS ({INSERT} RETURNING id) INSERT INTO audit_events (at, event_type, merchant_id, \
                     token_id, actor, correlation_id, outcome) SELECT $14, $15, $2, t.id, $16, $17, $18 FROM t \
                     RETURNING token_id"
                );
                let inserted = bind(&sql)
                    .bind(secs(audit.at))
                    .bind(audit.event_type)
                    .bind(audit.actor.as_str())
                    .bind(audit.correlation_id.as_str())
                    .bind(audit.outcome.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(inserted.is_some())
            }
            Dialect::Sqlite => self.changed_with_audit(bind(INSERT), audit).await,
        }
    }

    async fn find_same_card(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        fingerprint: &str,
    ) -> Result<Option<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND kind = $3 \
             AND customer_id = $4 AND fingerprint = $5 AND deleted_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(kind.as_str())
            .bind(customer_id)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(card_row).transpose()
    }

    async fn find_by_consumer(&self, scope: Scope<'_>, consumer_ref: &str) -> Result<Option<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND consumer_ref = $3 \
             AND deleted_at IS NULL ORDER BY created_at LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(consumer_ref)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(card_row).transpose()
    }

    async fn refresh(
        &self,
        r: &CardRow,
        retain_until_extended: Millis,
        audit: &AuditEntry,
    ) -> Result<Option<CardRow>, StoreError> {
        let sql = format!(
            "UPDATE card_tokens SET meta = $2, card = $3, dek_version = $4, \
             retain_until = CASE WHEN extended = 1 THEN $6 ELSE $5 END \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let statement = sqlx::query(&sql)
            .bind(r.id.as_str())
            .bind(r.meta.as_slice())
            .bind(r.card.as_slice())
            .bind(i64::from(r.dek_version))
            .bind(secs(r.retain_until))
            .bind(secs(retain_until_extended));
        self.returning_with_audit(statement, audit).await
    }

    async fn use_token(
        &self,
        scope: Scope<'_>,
        id: &str,
        now: Millis,
        audit: &AuditEntry,
    ) -> Result<Lookup<CardRow>, StoreError> {
        const UPDATE: &str = "UPDATE card_tokens SET last_used_at = $4 WHERE id = $1 AND merchant_id = $2 \
                              AND livemode = $3 AND deleted_at IS NULL AND retain_until > $4";
        let found = match self.dialect {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH t AS ({UPDATE} RETURNING {COLUMNS}), a AS (INSERT INTO audit_events (at, event_type, \
                     merchant_id, token_id, actor, correlation_id, outcome) SELECT $5, $6, t.merchant_id, t.id, $7, \
                     $8, $9 FROM t) SELECT {COLUMNS} FROM t"
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(scope.merchant_id)
                    .bind(i64::from(scope.livemode))
                    .bind(secs(now))
                    .bind(secs(audit.at))
                    .bind(audit.event_type)
                    .bind(audit.actor.as_str())
                    .bind(audit.correlation_id.as_str())
                    .bind(audit.outcome.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(card_row).transpose()?
            }
            Dialect::Sqlite => {
                let sql = format!("{UPDATE} RETURNING {COLUMNS}");
                let statement =
                    sqlx::query(&sql).bind(id).bind(scope.merchant_id).bind(i64::from(scope.livemode)).bind(secs(now));
                self.returning_with_audit(statement, audit).await?
            }
        };
        match found {
            Some(row) => Ok(Lookup::Found(row)),
            None => Ok(match self.get(scope, id).await? {
                // Past retention and not yet swept: as good as deleted.
                Lookup::Found(_) | Lookup::Deleted => Lookup::Deleted,
                Lookup::NotFound => Lookup::NotFound,
            }),
        }
    }

    async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Lookup<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, deleted_at FROM card_tokens WHERE id = $1 AND merchant_id = $2 AND livemode = $3"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else { return Ok(Lookup::NotFound) };
        if row.try_get::<Option<i64>, _>("deleted_at").map_err(unavailable)?.is_some() {
            return Ok(Lookup::Deleted);
        }
        Ok(Lookup::Found(card_row(&row)?))
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        kind: Option<TokenKind>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND customer_id = $3 \
             AND deleted_at IS NULL AND id > $4 AND ($6 = '' OR kind = $6) ORDER BY id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(customer_id)
            .bind(after)
            .bind(i64::from(limit))
            .bind(kind.map_or("", TokenKind::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(card_row).collect()
    }

    async fn delete(
        &self,
        scope: Scope<'_>,
        id: &str,
        now: Millis,
        audit: &AuditEntry,
    ) -> Result<Lookup<()>, StoreError> {
        let statement = sqlx::query(
            "UPDATE card_tokens SET meta = NULL, card = NULL, deleted_at = $4 \
             WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(scope.merchant_id)
        .bind(i64::from(scope.livemode))
        .bind(secs(now));
        if self.changed_with_audit(statement, audit).await? {
            return Ok(Lookup::Found(()));
        }
        Ok(match self.get(scope, id).await? {
            Lookup::NotFound => Lookup::NotFound,
            _ => Lookup::Deleted,
        })
    }

    async fn extend(
        &self,
        scope: Scope<'_>,
        id: &str,
        retain_until: Millis,
        audit: &AuditEntry,
    ) -> Result<Lookup<CardRow>, StoreError> {
        let sql = format!(
            "UPDATE card_tokens SET extended = $4, retain_until = $5 \
             WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let statement = sqlx::query(&sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(1_i64)
            .bind(secs(retain_until));
        match self.returning_with_audit(statement, audit).await? {
            Some(row) => Ok(Lookup::Found(row)),
            None => self.get(scope, id).await,
        }
    }

    async fn due(&self, now: Millis, limit: u32) -> Result<Vec<DueToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, merchant_id, livemode, kind FROM card_tokens WHERE deleted_at IS NULL AND retain_until <= $1 \
             ORDER BY retain_until, id LIMIT $2",
        )
        .bind(secs(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind").map_err(unavailable)?;
                Ok(DueToken {
                    id: row.try_get("id").map_err(unavailable)?,
                    merchant_id: row.try_get("merchant_id").map_err(unavailable)?,
                    livemode: flag(row, "livemode")?,
                    kind: TokenKind::parse(&kind).ok_or_else(|| unavailable("unknown token kind in store"))?,
                })
            })
            .collect()
    }

    async fn sealed_below(&self, merchant_id: &str, version: u32, limit: u32) -> Result<Vec<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND dek_version < $2 AND deleted_at IS NULL \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(merchant_id)
            .bind(i64::from(version))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(card_row).collect()
    }

    async fn reseal(&self, row: &CardRow, meta: &[u8], card: &[u8], version: u32) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE card_tokens SET meta = $2, card = $3, dek_version = $4 \
             WHERE id = $1 AND dek_version = $5 AND deleted_at IS NULL",
        )
        .bind(row.id.as_str())
        .bind(meta)
        .bind(card)
        .bind(i64::from(version))
        .bind(i64::from(row.dek_version))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        audit_insert(audit).execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    async fn audit_events(&self, q: AuditQuery<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, event_type, merchant_id, token_id, actor, correlation_id, outcome FROM audit_events \
             WHERE merchant_id = $1 AND ($2 = '' OR token_id = $2) AND at >= $3 AND at <= $4 AND id > $5 \
             ORDER BY id LIMIT $6",
        )
        .bind(q.merchant_id)
        .bind(q.token_id.unwrap_or(""))
        .bind(secs(q.from))
        .bind(secs(q.to))
        .bind(q.after_id)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id").map_err(unavailable)?,
                    at: ms(row.try_get("at").map_err(unavailable)?),
                    event_type: row.try_get("event_type").map_err(unavailable)?,
                    merchant_id: row.try_get("merchant_id").map_err(unavailable)?,
                    token_id: row.try_get("token_id").map_err(unavailable)?,
                    actor: row.try_get("actor").map_err(unavailable)?,
                    correlation_id: row.try_get("correlation_id").map_err(unavailable)?,
                    outcome: row.try_get("outcome").map_err(unavailable)?,
                })
            })
            .collect()
    }
}

const KEY_COLUMNS: &str = "merchant_id, purpose, version, kek_version, wrapped, created_at, rotation_id";

impl KeyStore for SqlStore {
    fn data_keys<'a>(&'a self, merchant_id: &'a str) -> BoxFuture<'a, Result<Vec<WrappedKey>, StoreError>> {
        async move {
            let sql = format!("SELECT {KEY_COLUMNS} FROM data_keys WHERE merchant_id = $1");
            let rows = sqlx::query(&sql).bind(merchant_id).fetch_all(&self.pool).await.map_err(unavailable)?;
            rows.iter().map(wrapped_key).collect()
        }
        .boxed()
    }

    fn insert_data_key<'a>(
        &'a self,
        k: &'a WrappedKey,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let statement = sqlx::query(
                "INSERT INTO data_keys (merchant_id, purpose, version, kek_version, wrapped, created_at, rotation_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant_id, purpose, version) DO NOTHING",
            )
            .bind(k.merchant_id.as_str())
            .bind(k.purpose.as_str())
            .bind(i64::from(k.version))
            .bind(i64::from(k.kek_version))
            .bind(k.wrapped.as_slice())
            .bind(secs(k.created_at))
            .bind(k.rotation_id);
            self.changed_with_audit(statement, audit).await
        }
        .boxed()
    }

    fn all_data_keys(&self) -> BoxFuture<'_, Result<Vec<WrappedKey>, StoreError>> {
        async move {
            let sql = format!("SELECT {KEY_COLUMNS} FROM data_keys ORDER BY merchant_id, purpose, version");
            let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(unavailable)?;
            rows.iter().map(wrapped_key).collect()
        }
        .boxed()
    }

    fn rewrap<'a>(
        &'a self,
        k: &'a WrappedKey,
        from_kek: u32,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let statement = sqlx::query(
                "UPDATE data_keys SET kek_version = $4, wrapped = $5 \
                 WHERE merchant_id = $1 AND purpose = $2 AND version = $3 AND kek_version = $6",
            )
            .bind(k.merchant_id.as_str())
            .bind(k.purpose.as_str())
            .bind(i64::from(k.version))
            .bind(i64::from(k.kek_version))
            .bind(k.wrapped.as_slice())
            .bind(i64::from(from_kek));
            self.changed_with_audit(statement, audit).await
        }
        .boxed()
    }

    fn open_rotation(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM key_rotations WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
        }
        .boxed()
    }

    fn start_rotation(&self, at: Millis) -> BoxFuture<'_, Result<i64, StoreError>> {
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO key_rotations (id, started_at) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1 FROM key_rotations RETURNING id",
            )
            .bind(secs(at))
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
        }
        .boxed()
    }

    fn finish_rotation(&self, id: i64, at: Millis) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            sqlx::query("UPDATE key_rotations SET finished_at = $2 WHERE id = $1")
                .bind(id)
                .bind(secs(at))
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(unavailable)
        }
        .boxed()
    }
}
