//! `CardStore` on SQL: durable tokens and their audit events. Each write
//! commits with its event, in one statement on PostgreSQL; texts with a NUL
//! byte are refused on SQLite as PostgreSQL refuses them (`Invalid`).
use common::clock::Millis;
use common::database::{classify, column, flag, from_secs, to_secs as secs};
use sqlx::any::AnyRow;

use super::{COLUMNS, SqlStore, audit_insert, audit_texts, card_row, scoped, token_kind, writes};
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
    async fn insert(
        &self,
        r: &CardRow,
        consumer_ref: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<Option<bool>, StoreError> {
        let texts = [r.id.as_str(), &r.merchant_id, &r.customer_id, &r.fingerprint, consumer_ref.unwrap_or("")];
        self.db.check_text(texts.into_iter().chain(audit_texts(audit)))?;
        let insert = writes::Insert {
            dialect: self.dialect(),
            row: r.clone(),
            consumer_ref: consumer_ref.map(str::to_owned),
            audit: audit.clone(),
        };
        self.db.write("insert", insert, writes::insert).await
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
        let refresh = writes::Refresh { row: r.clone(), retain_until_extended, audit: audit.clone() };
        self.db.write("refresh", refresh, writes::refresh).await
    }

    async fn mark_used(
        &self,
        w: TokenWrite<'_>,
        now: Millis,
        retention: UseRetention,
        only: Option<Instrument>,
    ) -> Result<Option<CardRow>, StoreError> {
        let used = writes::MarkUsed {
            dialect: self.dialect(),
            merchant_id: w.scope.merchant_id.to_owned(),
            livemode: w.scope.livemode,
            id: w.id.to_owned(),
            now,
            retention,
            only,
            audit: w.audit.clone(),
        };
        self.db.write_batched("mark_used", used, writes::mark_used_many, writes::uses_in_one_statement).await
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
