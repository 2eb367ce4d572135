//! `CardStore` on SQL: durable tokens and their audit events. Each write
//! commits with its event, in one statement on PostgreSQL; texts with a NUL
//! byte are refused on SQLite as PostgreSQL refuses them (`Invalid`).
use common::clock::Millis;
use common::database::{classify, column, flag, from_secs, to_secs as secs};
use sqlx::any::AnyRow;

use super::{COLUMNS, Dialect, SqlStore, audit_insert, audit_texts, bind_event, card_row, scoped, token_kind};
use crate::domain::audit::{AuditEntry, AuditQuery, AuditRecord};
use crate::domain::store::StoreError;
use crate::domain::store::cards::{
    CardRow, CardStore, DueToken, Instrument, Lookup, Scope, TokenQuery, TokenWrite, UseRetention,
};
use vault_api::token_id::TokenKind;

fn audit_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: column(row, "id")?,
        at: from_secs(column(row, "at")?),
        event_type: column(row, "event_type")?,
        merchant_id: column(row, "merchant_id")?,
        token_id: column(row, "token_id")?,
        actor: column(row, "actor")?,
        correlation_id: column(row, "correlation_id")?,
        outcome: column(row, "outcome")?,
    })
}

impl CardStore for SqlStore {
    async fn insert(&self, r: &CardRow, consumer_ref: Option<&str>, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.trip("insert", async {
            // The customer's first token of its kind ranks 1: the default until
            // another is made default (instants are to the second, so the
            // order of creation cannot tell two made in the same second apart).
            const INSERT: &str = "INSERT INTO card_tokens (id, merchant_id, livemode, kind, customer_id, fingerprint, \
                 meta, card, dek_version, created_at, retain_until, extended, consumer_ref, instrument, default_rank) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, (SELECT CASE WHEN EXISTS \
                 (SELECT 1 FROM card_tokens d WHERE d.merchant_id = $2 AND d.livemode = $3 AND d.kind = $4 \
                 AND d.customer_id = $5 AND d.deleted_at IS NULL) THEN 0 ELSE 1 END)) \
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
                    .bind(r.instrument.as_str())
            };
            let texts = [r.id.as_str(), &r.merchant_id, &r.customer_id, &r.fingerprint, consumer_ref.unwrap_or("")];
            self.db.check_text(texts.into_iter().chain(audit_texts(audit)))?;
            match self.dialect() {
                Dialect::Postgres => {
                    let sql = format!(
                        "WITH t AS ({INSERT} RETURNING id) INSERT INTO audit_events (at, event_type, merchant_id, \
                         token_id, actor, correlation_id, outcome) SELECT $15, $16, $2, t.id, $17, $18, $19 FROM t \
                         RETURNING token_id"
                    );
                    let inserted = bind_event(bind(&sql), audit).fetch_optional(self.pool()).await.map_err(classify)?;
                    Ok(inserted.is_some())
                }
                Dialect::Sqlite => self.changed_with_audit(bind(INSERT), audit).await,
            }
        })
        .await
    }

    async fn find_same_card(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        fingerprint: &str,
    ) -> Result<Option<CardRow>, StoreError> {
        self.trip("find_same_card", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND kind = $3 \
                 AND customer_id = $4 AND fingerprint = $5 AND deleted_at IS NULL"
            );
            let statement = sqlx::query(&sql)
                .bind(scope.merchant_id)
                .bind(i64::from(scope.livemode))
                .bind(kind.as_str())
                .bind(customer_id)
                .bind(fingerprint);
            self.find(statement, card_row).await
        })
        .await
    }

    async fn find_by_consumer(&self, scope: Scope<'_>, consumer_ref: &str) -> Result<Option<CardRow>, StoreError> {
        self.trip("find_by_consumer", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND consumer_ref = $3 \
                 AND deleted_at IS NULL ORDER BY created_at LIMIT 1"
            );
            let statement =
                sqlx::query(&sql).bind(scope.merchant_id).bind(i64::from(scope.livemode)).bind(consumer_ref);
            self.find(statement, card_row).await
        })
        .await
    }

    async fn refresh(
        &self,
        r: &CardRow,
        retain_until_extended: Millis,
        audit: &AuditEntry,
    ) -> Result<Option<CardRow>, StoreError> {
        self.trip("refresh", async {
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
        })
        .await
    }

    async fn mark_used(
        &self,
        w: TokenWrite<'_>,
        now: Millis,
        retention: UseRetention,
        only: Option<Instrument>,
    ) -> Result<Option<CardRow>, StoreError> {
        self.trip("mark_used", async {
            // An account's retention moves with its use, in the same statement
            // (`until`, `extended_until` are the parameters numbered here).
            // `only` is `$<only>`; an empty value takes either instrument.
            let update = |until: u8, extended: u8, only: u8| {
                format!(
                    "UPDATE card_tokens SET last_used_at = $4, retain_until = CASE WHEN instrument = 'account' \
                     THEN (CASE WHEN extended = 1 THEN ${extended} ELSE ${until} END) ELSE retain_until END \
                     WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL AND retain_until > $4 \
                     AND (${only} = '' OR instrument = ${only})"
                )
            };
            let only = only.map(Instrument::as_str).unwrap_or("");
            let statement = |sql| scoped(sql, w.scope, w.id).bind(secs(now));
            let (until, extended) = (secs(retention.until), secs(retention.extended_until));
            match self.dialect() {
                Dialect::Postgres => {
                    let sql = format!(
                        "WITH t AS ({} RETURNING {COLUMNS}), a AS (INSERT INTO audit_events (at, event_type, \
                         merchant_id, token_id, actor, correlation_id, outcome) SELECT $5, $6, t.merchant_id, t.id, $7, \
                         $8, $9 FROM t) SELECT {COLUMNS} FROM t",
                        update(10, 11, 12)
                    );
                    self.find(bind_event(statement(&sql), w.audit).bind(until).bind(extended).bind(only), card_row).await
                }
                Dialect::Sqlite => {
                    let sql = format!("{} RETURNING {COLUMNS}", update(5, 6, 7));
                    self.returning_with_audit(statement(&sql).bind(until).bind(extended).bind(only), w.audit).await
                }
            }
        })
        .await
    }

    async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Lookup<CardRow>, StoreError> {
        self.trip("get", async {
            let sql = format!(
                "SELECT {COLUMNS}, deleted_at FROM card_tokens WHERE id = $1 AND merchant_id = $2 AND livemode = $3"
            );
            let row = scoped(&sql, scope, id).fetch_optional(self.pool()).await.map_err(classify)?;
            let Some(row) = row else { return Ok(Lookup::NotFound) };
            if column::<Option<i64>>(&row, "deleted_at")?.is_some() {
                return Ok(Lookup::Deleted);
            }
            Ok(Lookup::Found(card_row(&row)?))
        })
        .await
    }

    async fn tokens(&self, q: TokenQuery<'_>) -> Result<Vec<CardRow>, StoreError> {
        self.trip("tokens", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND customer_id = $3 \
                 AND deleted_at IS NULL AND id > $4 AND ($6 = '' OR kind = $6) ORDER BY id LIMIT $5"
            );
            let statement = sqlx::query(&sql)
                .bind(q.scope.merchant_id)
                .bind(i64::from(q.scope.livemode))
                .bind(q.customer_id)
                .bind(q.after)
                .bind(i64::from(q.limit))
                .bind(q.kind.map_or("", TokenKind::as_str));
            self.find_all(statement, card_row).await
        })
        .await
    }

    async fn default_registration(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        now: Millis,
    ) -> Result<Option<CardRow>, StoreError> {
        self.trip("default_registration", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND livemode = $2 AND customer_id = $3 \
                 AND kind = $4 AND deleted_at IS NULL AND retain_until > $5 \
                 ORDER BY default_rank DESC, created_at, id LIMIT 1"
            );
            let statement = sqlx::query(&sql)
                .bind(scope.merchant_id)
                .bind(i64::from(scope.livemode))
                .bind(customer_id)
                .bind(TokenKind::Registration.as_str())
                .bind(secs(now));
            self.find(statement, card_row).await
        })
        .await
    }

    async fn mark_default(&self, w: TokenWrite<'_>) -> Result<Option<CardRow>, StoreError> {
        self.trip("mark_default", async {
            let sql = format!(
                "UPDATE card_tokens SET default_rank = (SELECT COALESCE(MAX(d.default_rank), 0) + 1 \
                 FROM card_tokens d WHERE d.merchant_id = $2 AND d.livemode = $3 \
                 AND d.customer_id = card_tokens.customer_id) \
                 WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND kind = $4 AND customer_id <> '' \
                 AND deleted_at IS NULL RETURNING {COLUMNS}"
            );
            let statement = scoped(&sql, w.scope, w.id).bind(TokenKind::Registration.as_str());
            self.returning_with_audit(statement, w.audit).await
        })
        .await
    }

    async fn mark_deleted(&self, w: TokenWrite<'_>, now: Millis) -> Result<bool, StoreError> {
        self.trip("mark_deleted", async {
            let statement = scoped(
                "UPDATE card_tokens SET meta = NULL, card = NULL, deleted_at = $4 \
                 WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL",
                w.scope,
                w.id,
            )
            .bind(secs(now));
            self.changed_with_audit(statement, w.audit).await
        })
        .await
    }

    async fn mark_extended(&self, w: TokenWrite<'_>, retain_until: Millis) -> Result<Option<CardRow>, StoreError> {
        self.trip("mark_extended", async {
            let sql = format!(
                "UPDATE card_tokens SET extended = $4, retain_until = $5 \
                 WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
            );
            let statement = scoped(&sql, w.scope, w.id).bind(1_i64).bind(secs(retain_until));
            self.returning_with_audit(statement, w.audit).await
        })
        .await
    }

    async fn due(&self, now: Millis, limit: u32) -> Result<Vec<DueToken>, StoreError> {
        self.trip("due", async {
            let statement = sqlx::query(
                "SELECT id, merchant_id, livemode, kind FROM card_tokens WHERE deleted_at IS NULL AND retain_until <= $1 \
                 ORDER BY retain_until, id LIMIT $2",
            )
            .bind(secs(now))
            .bind(i64::from(limit));
            let due = |row: &AnyRow| {
                Ok(DueToken {
                    id: column(row, "id")?,
                    merchant_id: column(row, "merchant_id")?,
                    livemode: flag(row, "livemode")?,
                    kind: token_kind(row)?,
                })
            };
            self.find_all(statement, due).await
        })
        .await
    }

    async fn sealed_below(&self, merchant_id: &str, version: u32, limit: u32) -> Result<Vec<CardRow>, StoreError> {
        self.trip("sealed_below", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM card_tokens WHERE merchant_id = $1 AND dek_version < $2 AND deleted_at IS NULL \
                 ORDER BY id LIMIT $3"
            );
            let statement = sqlx::query(&sql).bind(merchant_id).bind(i64::from(version)).bind(i64::from(limit));
            self.find_all(statement, card_row).await
        })
        .await
    }

    async fn reseal(&self, row: &CardRow, meta: &[u8], card: &[u8], version: u32) -> Result<bool, StoreError> {
        self.trip("reseal", async {
            let done = sqlx::query(
                "UPDATE card_tokens SET meta = $2, card = $3, dek_version = $4 \
                 WHERE id = $1 AND dek_version = $5 AND deleted_at IS NULL",
            )
            .bind(row.id.as_str())
            .bind(meta)
            .bind(card)
            .bind(i64::from(version))
            .bind(i64::from(row.dek_version))
            .execute(self.pool())
            .await
            .map_err(classify)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn record(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        self.trip("record", async {
            self.db.check_text(audit_texts(audit))?;
            audit_insert(audit).execute(self.pool()).await.map(|_| ()).map_err(classify)
        })
        .await
    }

    async fn audit_events(&self, q: AuditQuery<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        self.trip("audit_events", async {
            let statement = sqlx::query(
                "SELECT id, at, event_type, merchant_id, token_id, actor, correlation_id, outcome FROM audit_events \
                 WHERE merchant_id = $1 AND ($2 = '' OR token_id = $2) AND at >= $3 AND at <= $4 AND id > $5 \
                 ORDER BY id LIMIT $6",
            )
            .bind(q.merchant_id)
            .bind(q.token_id.unwrap_or(""))
            .bind(secs(q.from))
            .bind(secs(q.to))
            .bind(q.after_id)
            .bind(i64::from(q.limit));
            self.find_all(statement, audit_record).await
        })
        .await
    }
}
