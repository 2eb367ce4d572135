//! The durable writes of the vault's hot paths — a new token (`insert`), the
//! same card tokenized again (`refresh`), a token used (`mark_used`, what
//! Detokenize writes) — as group-commit jobs (`common::database::committer`):
//! each owns its values and runs on a connection inside a transaction the
//! committer shares with other callers' writes. Each writes its token and its
//! audit event together, in one statement on PostgreSQL, and writes nothing
//! when it changes no token.
use common::clock::Millis;
use common::database::batched::{distinct, json};
use common::database::{classify, column, to_secs as secs};
use futures::future::BoxFuture;
use sqlx::AnyConnection;

use super::{COLUMNS, Dialect, audit_insert, bind_event, card_row, returning_with_audit};
use crate::domain::audit::AuditEntry;
use crate::domain::store::StoreError;
use crate::domain::store::cards::{CardRow, Instrument, UseRetention};

/// A new token and its event.
pub(super) struct Insert {
    pub dialect: Dialect,
    pub row: CardRow,
    pub consumer_ref: Option<String>,
    pub audit: AuditEntry,
}

/// Whether the token was written first of its customer's and kind (its
/// `default_rank` is 1), or `None`: a live token of the same card, customer
/// and kind exists.
pub(super) fn insert<'c>(
    w: &'c Insert,
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Option<bool>, StoreError>> {
    Box::pin(async move {
        // The customer's first token of its kind ranks 1: the default until
        // another is made default (instants are to the second, so the order
        // of creation cannot tell two made in the same second apart).
        const INSERT: &str = "INSERT INTO card_tokens (id, merchant_id, livemode, kind, customer_id, fingerprint, \
             meta, card, dek_version, created_at, retain_until, extended, consumer_ref, instrument, default_rank) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, (SELECT CASE WHEN EXISTS \
             (SELECT 1 FROM card_tokens d WHERE d.merchant_id = $2 AND d.livemode = $3 AND d.kind = $4 \
             AND d.customer_id = $5 AND d.deleted_at IS NULL) THEN 0 ELSE 1 END)) \
             ON CONFLICT (merchant_id, livemode, kind, customer_id, fingerprint) WHERE deleted_at IS NULL DO NOTHING";
        let r = &w.row;
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
                .bind(w.consumer_ref.as_deref())
                .bind(r.instrument.as_str())
        };
        let ranked = match w.dialect {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH t AS ({INSERT} RETURNING id, default_rank), a AS (INSERT INTO audit_events (at, \
                     event_type, merchant_id, token_id, actor, correlation_id, outcome) SELECT $15, $16, $2, t.id, \
                     $17, $18, $19 FROM t) SELECT default_rank FROM t"
                );
                bind_event(bind(&sql), &w.audit).fetch_optional(&mut *conn).await.map_err(classify)?
            }
            Dialect::Sqlite => {
                let sql = format!("{INSERT} RETURNING default_rank");
                let ranked = bind(&sql).fetch_optional(&mut *conn).await.map_err(classify)?;
                if ranked.is_some() {
                    audit_insert(&w.audit).execute(&mut *conn).await.map_err(classify)?;
                }
                ranked
            }
        };
        ranked.map(|row| column::<i64>(&row, "default_rank").map(|rank| rank > 0)).transpose()
    })
}

/// A live token's sealed card and retention, renewed by a new tokenize of
/// the same card, with its event.
pub(super) struct Refresh {
    pub row: CardRow,
    pub retain_until_extended: Millis,
    pub audit: AuditEntry,
}

pub(super) fn refresh<'c>(
    w: &'c Refresh,
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Option<CardRow>, StoreError>> {
    Box::pin(async move {
        let sql = format!(
            "UPDATE card_tokens SET meta = $2, card = $3, dek_version = $4, \
             retain_until = CASE WHEN extended = 1 THEN $6 ELSE $5 END \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let r = &w.row;
        let statement = sqlx::query(&sql)
            .bind(r.id.as_str())
            .bind(r.meta.as_slice())
            .bind(r.card.as_slice())
            .bind(i64::from(r.dek_version))
            .bind(secs(r.retain_until))
            .bind(secs(w.retain_until_extended));
        returning_with_audit(conn, statement, &w.audit).await
    })
}

/// A use of a live token in its scope (`only`: of that instrument alone), with
/// its event; an account's retention moves with it.
pub(super) struct MarkUsed {
    pub dialect: Dialect,
    pub merchant_id: String,
    pub livemode: bool,
    pub id: String,
    pub now: Millis,
    pub retention: UseRetention,
    pub only: Option<Instrument>,
    pub audit: AuditEntry,
}

/// The token as used, or `None`: no live token of that instrument there.
pub(super) fn mark_used<'c>(
    w: &'c MarkUsed,
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Option<CardRow>, StoreError>> {
    Box::pin(async move {
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
        let only = w.only.map(Instrument::as_str).unwrap_or("");
        let statement = |sql| {
            sqlx::query(sql)
                .bind(w.id.as_str())
                .bind(w.merchant_id.as_str())
                .bind(i64::from(w.livemode))
                .bind(secs(w.now))
        };
        let (until, extended) = (secs(w.retention.until), secs(w.retention.extended_until));
        match w.dialect {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH t AS ({} RETURNING {COLUMNS}), a AS (INSERT INTO audit_events (at, event_type, \
                     merchant_id, token_id, actor, correlation_id, outcome) SELECT $5, $6, t.merchant_id, t.id, $7, \
                     $8, $9 FROM t) SELECT {COLUMNS} FROM t",
                    update(10, 11, 12)
                );
                let statement = bind_event(statement(&sql), &w.audit).bind(until).bind(extended).bind(only);
                let row = statement.fetch_optional(&mut *conn).await.map_err(classify)?;
                row.as_ref().map(card_row).transpose()
            }
            Dialect::Sqlite => {
                let sql = format!("{} RETURNING {COLUMNS}", update(5, 6, 7));
                returning_with_audit(conn, statement(&sql).bind(until).bind(extended).bind(only), &w.audit).await
            }
        }
    })
}

/// Several uses (`mark_used` each) in one statement on PostgreSQL: one
/// `UPDATE … FROM json_to_recordset` of every use, its audit events inserted
/// by the same statement for the tokens it changed, each caller answered
/// with its own token or `None`. A statement per use costs a round trip and a
/// wake-up of the backend each. On SQLite, or when two uses of a batch are of
/// one token (the second must see the first), each runs as `mark_used`.
pub(super) fn mark_used_many<'c>(
    batch: &'c [&'c MarkUsed],
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Vec<Option<CardRow>>, StoreError>> {
    Box::pin(async move {
        if batch.len() == 1 || !many_in_one_statement(batch) {
            let mut used = Vec::with_capacity(batch.len());
            for w in batch {
                used.push(mark_used(w, &mut *conn).await?);
            }
            return Ok(used);
        }
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let returning = COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ");
            format!(
                "WITH x AS (SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (id text, merchant_id text, \
                 livemode bigint, now bigint, until bigint, extended_until bigint, only_instrument text, at bigint, \
                 event_type text, actor text, correlation_id text, outcome text)) WITH ORDINALITY AS x), \
                 t AS (UPDATE card_tokens c SET last_used_at = x.now, retain_until = CASE WHEN c.instrument = \
                 'account' THEN (CASE WHEN c.extended = 1 THEN x.extended_until ELSE x.until END) \
                 ELSE c.retain_until END FROM x WHERE c.id = x.id AND c.merchant_id = x.merchant_id \
                 AND c.livemode = x.livemode AND c.deleted_at IS NULL AND c.retain_until > x.now \
                 AND (x.only_instrument = '' OR c.instrument = x.only_instrument) \
                 RETURNING {returning}, x.ordinality AS n), \
                 a AS (INSERT INTO audit_events (at, event_type, merchant_id, token_id, actor, correlation_id, \
                 outcome) SELECT x.at, x.event_type, t.merchant_id, t.id, x.actor, x.correlation_id, x.outcome \
                 FROM t JOIN x ON x.ordinality = t.n ORDER BY t.n) \
                 SELECT * FROM t"
            )
        });
        let uses: Vec<UseRow<'_>> = batch.iter().map(|w| UseRow::of(w)).collect();
        let rows = sqlx::query(SQL.as_str()).bind(json(&uses)?).fetch_all(&mut *conn).await.map_err(classify)?;
        let mut used: Vec<Option<CardRow>> = batch.iter().map(|_| None).collect();
        for row in &rows {
            let n = column::<i64>(row, "n")?;
            let slot = usize::try_from(n - 1).ok().and_then(|i| used.get_mut(i));
            let slot = slot.ok_or_else(|| StoreError::Corrupt("a use answered for a row it did not send".into()))?;
            *slot = Some(card_row(row)?);
        }
        Ok(used)
    })
}

/// Whether `mark_used_many` writes `batch` with its multi-row statement:
/// on PostgreSQL, each use of a different token.
fn many_in_one_statement(batch: &[&MarkUsed]) -> bool {
    batch.iter().all(|w| w.dialect == Dialect::Postgres) && distinct(batch.iter().map(|w| w.id.as_str()))
}

/// Whether `mark_used_many` writes `batch` with one statement: one use on
/// PostgreSQL (`mark_used`'s), or several in the multi-row statement.
pub(super) fn uses_in_one_statement(batch: &[&MarkUsed], _: &AnyConnection) -> bool {
    match batch {
        [one] => one.dialect == Dialect::Postgres,
        _ => many_in_one_statement(batch),
    }
}

/// One use of `mark_used_many`: the values `mark_used` binds.
#[derive(serde::Serialize)]
struct UseRow<'a> {
    id: &'a str,
    merchant_id: &'a str,
    livemode: i64,
    now: i64,
    until: i64,
    extended_until: i64,
    only_instrument: &'a str,
    at: i64,
    event_type: &'a str,
    actor: &'a str,
    correlation_id: &'a str,
    outcome: &'a str,
}

impl<'a> UseRow<'a> {
    fn of(w: &'a MarkUsed) -> Self {
        Self {
            id: &w.id,
            merchant_id: &w.merchant_id,
            livemode: i64::from(w.livemode),
            now: secs(w.now),
            until: secs(w.retention.until),
            extended_until: secs(w.retention.extended_until),
            only_instrument: w.only.map(Instrument::as_str).unwrap_or(""),
            at: secs(w.audit.at),
            event_type: w.audit.event_type,
            actor: &w.audit.actor,
            correlation_id: &w.audit.correlation_id,
            outcome: &w.audit.outcome,
        }
    }
}
