//! The payments store on PostgreSQL or SQLite through sqlx's Any driver (one
//! set of `$n` statements), migrations embedded and applied at start-up: the
//! statements of `PaymentStore` here, the row mapping in `rows`. Every sqlx
//! failure goes through `common::database::classify`; on SQLite a text with a
//! NUL byte is refused before it is written, as PostgreSQL refuses it.
use std::time::Duration;

use sqlx::AnyPool;

use common::clock::Millis;
use common::database::{Database, Dialect, classify, column, to_secs as secs};

use crate::domain::payment::{LedgerEntry, LedgerRecord, Payment, Scope};
use crate::domain::store::{KeyState, LedgerQuery, PaymentStore, StoreError};

mod rows;

use rows::{
    LEDGER_FIELDS, LEDGER_INSERT_HEAD, Query, bind_ledger, ledger_insert, ledger_record, ledger_texts, payment,
    payment_texts,
};

#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
}

const COLUMNS: &str = "id, merchant_id, livemode, payment_type, reference_id, amount, currency, status, result_code, \
    result_description, token, registration_id, omni_token, card_brand, card_bin, card_last4, card_exp_month, \
    card_exp_year, card_name, si_mode, si_type, si_source, si_initial_id, captured_amount, refunded_amount, \
    reversed, acquirer_reference, customer_id, merchant_transaction_id, description, created_at";

impl SqlStore {
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let migrations = |dialect| match dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        Ok(Self { db: Database::open(url, max_connections, acquire_timeout, migrations).await? })
    }

    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// Runs a statement whose result is only success or failure.
    async fn run(&self, statement: Query<'_>) -> Result<(), StoreError> {
        statement.execute(self.pool()).await.map(|_| ()).map_err(classify)
    }

    async fn conditional(&self, sql: &str, scope: Scope<'_>, id: &str, amount: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(amount)
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }
}

impl PaymentStore for SqlStore {
    async fn insert(&self, p: &Payment, ledger: &[LedgerEntry]) -> Result<(), StoreError> {
        const FIELDS: usize = 31;
        let placeholders =
            |from: usize, n: usize| (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let insert_payment = format!("INSERT INTO payments ({COLUMNS}) VALUES ({})", placeholders(1, FIELDS));
        let card = p.card.clone().unwrap_or_default();
        let has_card = p.card.is_some();
        let si = p.standing_instruction.as_ref().map(|s| (s.codes(), s.initial_transaction_id.clone()));
        let bind_payment = |sql| {
            sqlx::query(sql)
                .bind(p.id.as_str())
                .bind(p.merchant_id.as_str())
                .bind(i64::from(p.livemode))
                .bind(p.payment_type.as_str())
                .bind(p.reference_id.as_deref())
                .bind(p.amount)
                .bind(p.currency.as_str())
                .bind(p.status.as_str())
                .bind(p.result.code.as_str())
                .bind(p.result.description.as_str())
                .bind(p.token.as_deref())
                .bind(p.registration_id.as_deref())
                .bind(p.omni_token.as_deref())
                .bind(has_card.then(|| card.brand.clone()))
                .bind(has_card.then(|| card.bin.clone()))
                .bind(has_card.then(|| card.last4.clone()))
                .bind(has_card.then_some(i64::from(card.exp_month)))
                .bind(has_card.then_some(i64::from(card.exp_year)))
                .bind(has_card.then(|| card.name.clone()))
                .bind(si.as_ref().map(|s| s.0.0))
                .bind(si.as_ref().map(|s| s.0.1))
                .bind(si.as_ref().map(|s| s.0.2))
                .bind(si.as_ref().map(|s| s.1.clone()))
                .bind(p.captured_amount)
                .bind(p.refunded_amount)
                .bind(i64::from(p.reversed))
                .bind(p.acquirer_reference.as_deref())
                .bind(p.customer_id.as_str())
                .bind(p.merchant_transaction_id.as_str())
                .bind(p.description.as_str())
                .bind(secs(p.created_at))
        };
        self.db.check_text(payment_texts(p).chain(ledger.iter().flat_map(ledger_texts)))?;
        match self.db.dialect() {
            // One statement, one round trip, one commit: the payment and its
            // ledger lines (a data-modifying CTE always runs to completion).
            Dialect::Postgres if !ledger.is_empty() => {
                let rows: Vec<String> = (0..ledger.len())
                    .map(|i| format!("({})", placeholders(FIELDS + 1 + i * LEDGER_FIELDS, LEDGER_FIELDS)))
                    .collect();
                let sql = format!("WITH p AS ({insert_payment}) {LEDGER_INSERT_HEAD} {}", rows.join(", "));
                let mut query = bind_payment(&sql);
                for e in ledger {
                    query = bind_ledger(query, e);
                }
                query.execute(self.pool()).await.map(|_| ()).map_err(classify)
            }
            _ => {
                let mut tx = self.pool().begin().await.map_err(classify)?;
                bind_payment(&insert_payment).execute(&mut *tx).await.map_err(classify)?;
                for entry in ledger {
                    ledger_insert(entry).execute(&mut *tx).await.map_err(classify)?;
                }
                tx.commit().await.map_err(classify)
            }
        }
    }

    async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1 AND merchant_id = $2 AND livemode = $3");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
        row.as_ref().map(payment).transpose()
    }

    async fn reserve_capture(&self, scope: Scope<'_>, id: &str, amount: i64) -> Result<bool, StoreError> {
        self.conditional(
            "UPDATE payments SET captured_amount = captured_amount + $4 WHERE id = $1 AND merchant_id = $2 \
             AND livemode = $3 AND payment_type = 'PA' AND status = 'approved' AND reversed = 0 \
             AND captured_amount + $4 <= amount",
            scope,
            id,
            amount,
        )
        .await
    }

    async fn reserve_reversal(&self, scope: Scope<'_>, id: &str) -> Result<bool, StoreError> {
        self.conditional(
            "UPDATE payments SET reversed = 1 WHERE id = $1 AND merchant_id = $2 AND livemode = $3 \
             AND payment_type = 'PA' AND status = 'approved' AND reversed = 0 AND captured_amount = 0 AND $4 = 0",
            scope,
            id,
            0,
        )
        .await
    }

    async fn reserve_refund(&self, scope: Scope<'_>, id: &str, amount: i64) -> Result<bool, StoreError> {
        self.conditional(
            "UPDATE payments SET refunded_amount = refunded_amount + $4 WHERE id = $1 AND merchant_id = $2 \
             AND livemode = $3 AND payment_type IN ('DB', 'CP') AND status = 'approved' \
             AND refunded_amount + $4 <= captured_amount",
            scope,
            id,
            amount,
        )
        .await
    }

    async fn release(&self, id: &str, captured: i64, refunded: i64, reversed: bool) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE payments SET captured_amount = captured_amount - $2, refunded_amount = refunded_amount - $3, \
             reversed = CASE WHEN $4 = 1 THEN 0 ELSE reversed END WHERE id = $1",
        )
        .bind(id)
        .bind(captured)
        .bind(refunded)
        .bind(i64::from(reversed));
        self.run(statement).await
    }

    async fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM payments WHERE merchant_id = $1 AND livemode = $2 AND token = $3 AND status = 'approved' \
             AND si_mode = 'INITIAL' AND si_source = 'CIT' LIMIT 1",
        )
        .bind(scope.merchant_id)
        .bind(i64::from(scope.livemode))
        .bind(token)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        Ok(found.is_some())
    }

    async fn record(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        self.db.check_text(ledger_texts(entry))?;
        self.run(ledger_insert(entry)).await
    }

    async fn ledger(
        &self,
        scope: Scope<'_>,
        query: LedgerQuery<'_>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        let base = "SELECT id, merchant_id, livemode, transaction_type, payment_id, reference_id, amount, currency, \
                    result_code, result_description, token, card_brand, card_bin, card_last4, created_at, seq \
                    FROM transactions WHERE merchant_id = $1 AND livemode = $2 AND seq > $3";
        let by_payment = format!("{base} AND (payment_id = $4 OR reference_id = $4) ORDER BY seq LIMIT $5");
        let by_token = format!("{base} AND token = $4 ORDER BY seq LIMIT $5");
        let by_time = format!("{base} AND created_at >= $4 AND created_at <= $5 ORDER BY seq LIMIT $6");
        let scoped = |sql| sqlx::query(sql).bind(scope.merchant_id).bind(i64::from(scope.livemode)).bind(after_seq);
        let limit = i64::from(limit);
        let rows = match query {
            LedgerQuery::Payment(id) => scoped(&by_payment).bind(id).bind(limit).fetch_all(self.pool()).await,
            LedgerQuery::Token(token) => scoped(&by_token).bind(token).bind(limit).fetch_all(self.pool()).await,
            LedgerQuery::Between(from, to) => {
                scoped(&by_time).bind(secs(from)).bind(secs(to)).bind(limit).fetch_all(self.pool()).await
            }
        }
        .map_err(classify)?;
        rows.iter().map(ledger_record).collect()
    }

    async fn acquire_key(
        &self,
        merchant_id: &str,
        key: &str,
        method: &str,
        request_hash: &str,
        now: Millis,
    ) -> Result<KeyState, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (merchant_id, key, method, request_hash, state, created_at) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5) ON CONFLICT (merchant_id, key) DO NOTHING",
        )
        .bind(merchant_id)
        .bind(key)
        .bind(method)
        .bind(request_hash)
        .bind(secs(now))
        .execute(self.pool())
        .await
        .map_err(classify)?;
        if inserted.rows_affected() == 1 {
            return Ok(KeyState::Acquired);
        }
        let row = sqlx::query(
            "SELECT method, request_hash, state, response FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        )
        .bind(merchant_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(KeyState::InFlight { request_hash: String::new() }) };
        let stored_method: String = column(&row, "method")?;
        let hash: String = column(&row, "request_hash")?;
        // The same key on another method is another request.
        let hash = if stored_method == method { hash } else { format!("{stored_method}:{hash}") };
        Ok(match column::<String>(&row, "state")?.as_str() {
            "done" => KeyState::Done {
                request_hash: hash,
                response: column::<Option<Vec<u8>>>(&row, "response")?.unwrap_or_default(),
            },
            _ => KeyState::InFlight { request_hash: hash },
        })
    }

    async fn complete_key(&self, merchant_id: &str, key: &str, response: &[u8]) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response = $3 WHERE merchant_id = $1 AND key = $2",
        );
        self.run(statement.bind(merchant_id).bind(key).bind(response)).await
    }

    async fn release_key(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        let statement =
            sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND state = 'in_flight'");
        self.run(statement.bind(merchant_id).bind(key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }
}
