//! The payments store on PostgreSQL or SQLite through sqlx's Any driver (one
//! set of `$n` statements), migrations embedded and applied at start-up.
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use common::clock::Millis;

use common::database::Dialect;

use super::{KeyState, LedgerQuery, PaymentStore, StoreError};
use crate::domain::payment::{
    LedgerEntry, LedgerKind, LedgerRecord, MaskedCard, Outcome, Payment, PaymentType, Scope, StandingInstruction,
    Status,
};

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

use common::database::{from_secs, to_secs as secs};

const COLUMNS: &str = "id, merchant_id, livemode, payment_type, reference_id, amount, currency, status, result_code, \
    result_description, token, registration_id, omni_token, card_brand, card_bin, card_last4, card_exp_month, \
    card_exp_year, card_name, si_mode, si_type, si_source, si_initial_id, captured_amount, refunded_amount, \
    reversed, acquirer_reference, customer_id, merchant_transaction_id, description, created_at";

fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(unavailable)
}

fn payment(row: &AnyRow) -> Result<Payment, StoreError> {
    let bad = || unavailable("unknown value in payments row");
    let brand: Option<String> = get(row, "card_brand")?;
    let card = match brand {
        Some(brand) => Some(MaskedCard {
            brand,
            bin: get::<Option<String>>(row, "card_bin")?.unwrap_or_default(),
            last4: get::<Option<String>>(row, "card_last4")?.unwrap_or_default(),
            exp_month: get::<Option<i64>>(row, "card_exp_month")?.unwrap_or_default() as u8,
            exp_year: get::<Option<i64>>(row, "card_exp_year")?.unwrap_or_default() as u16,
            name: get::<Option<String>>(row, "card_name")?.unwrap_or_default(),
        }),
        None => None,
    };
    let si = match get::<Option<String>>(row, "si_mode")? {
        Some(mode) => StandingInstruction::from_codes(
            &mode,
            &get::<Option<String>>(row, "si_type")?.unwrap_or_default(),
            &get::<Option<String>>(row, "si_source")?.unwrap_or_default(),
            get::<Option<String>>(row, "si_initial_id")?.unwrap_or_default(),
        ),
        None => None,
    };
    Ok(Payment {
        id: get(row, "id")?,
        merchant_id: get(row, "merchant_id")?,
        livemode: get::<i64>(row, "livemode")? != 0,
        payment_type: PaymentType::parse(&get::<String>(row, "payment_type")?).ok_or_else(bad)?,
        reference_id: get(row, "reference_id")?,
        amount: get(row, "amount")?,
        currency: get(row, "currency")?,
        status: Status::parse(&get::<String>(row, "status")?).ok_or_else(bad)?,
        result: Outcome { code: get(row, "result_code")?, description: get(row, "result_description")? },
        token: get(row, "token")?,
        registration_id: get(row, "registration_id")?,
        omni_token: get(row, "omni_token")?,
        card,
        standing_instruction: si,
        captured_amount: get(row, "captured_amount")?,
        refunded_amount: get(row, "refunded_amount")?,
        reversed: get::<i64>(row, "reversed")? != 0,
        acquirer_reference: get(row, "acquirer_reference")?,
        customer_id: get(row, "customer_id")?,
        merchant_transaction_id: get(row, "merchant_transaction_id")?,
        description: get(row, "description")?,
        created_at: from_secs(get::<i64>(row, "created_at")?),
    })
}

fn ledger_record(row: &AnyRow) -> Result<LedgerRecord, StoreError> {
    let kind: String = get(row, "transaction_type")?;
    let transaction_type =
        LedgerKind::parse(&kind).ok_or_else(|| StoreError::Unavailable("unknown ledger kind".into()))?;
    Ok(LedgerRecord {
        seq: get(row, "seq")?,
        entry: LedgerEntry {
            id: get(row, "id")?,
            merchant_id: get(row, "merchant_id")?,
            livemode: get::<i64>(row, "livemode")? != 0,
            transaction_type,
            payment_id: get(row, "payment_id")?,
            reference_id: get(row, "reference_id")?,
            amount: get(row, "amount")?,
            currency: get(row, "currency")?,
            result: Outcome { code: get(row, "result_code")?, description: get(row, "result_description")? },
            token: get(row, "token")?,
            card: MaskedCard {
                brand: get(row, "card_brand")?,
                bin: get(row, "card_bin")?,
                last4: get(row, "card_last4")?,
                ..MaskedCard::default()
            },
            created_at: from_secs(get::<i64>(row, "created_at")?),
        },
    })
}

const LEDGER_INSERT_HEAD: &str = "INSERT INTO transactions (id, merchant_id, livemode, transaction_type, payment_id, \
    reference_id, amount, currency, result_code, result_description, token, card_brand, card_bin, card_last4, \
    created_at) VALUES";
const LEDGER_FIELDS: usize = 15;

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn ledger_insert(e: &LedgerEntry) -> Query<'_> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{LEDGER_INSERT_HEAD} ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
    });
    bind_ledger(sqlx::query(SQL.as_str()), e)
}

/// Binds one ledger line's 15 values, in column order.
fn bind_ledger<'q>(query: Query<'q>, e: &'q LedgerEntry) -> Query<'q> {
    query
        .bind(e.id.as_str())
        .bind(e.merchant_id.as_str())
        .bind(i64::from(e.livemode))
        .bind(e.transaction_type.as_str())
        .bind(e.payment_id.as_str())
        .bind(e.reference_id.as_str())
        .bind(e.amount)
        .bind(e.currency.as_str())
        .bind(e.result.code.as_str())
        .bind(e.result.description.as_str())
        .bind(e.token.as_str())
        .bind(e.card.brand.as_str())
        .bind(e.card.bin.as_str())
        .bind(e.card.last4.as_str())
        .bind(secs(e.created_at))
}

impl SqlStore {
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let (pool, dialect) =
            common::database::connect(url, max_connections, acquire_timeout).await.map_err(unavailable)?;
        let migrator = match dialect {
            common::database::Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            common::database::Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&pool).await.map_err(unavailable)?;
        Ok(Self { pool, dialect })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn conditional(&self, sql: &str, scope: Scope<'_>, id: &str, amount: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .bind(amount)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
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
        match self.dialect {
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
                query.execute(&self.pool).await.map(|_| ()).map_err(unavailable)
            }
            _ => {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                bind_payment(&insert_payment).execute(&mut *tx).await.map_err(unavailable)?;
                for entry in ledger {
                    ledger_insert(entry).execute(&mut *tx).await.map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)
            }
        }
    }

    async fn get(&self, scope: Scope<'_>, id: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1 AND merchant_id = $2 AND livemode = $3");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(scope.merchant_id)
            .bind(i64::from(scope.livemode))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
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
        sqlx::query(
            "UPDATE payments SET captured_amount = captured_amount - $2, refunded_amount = refunded_amount - $3, \
             reversed = CASE WHEN $4 = 1 THEN 0 ELSE reversed END WHERE id = $1",
        )
        .bind(id)
        .bind(captured)
        .bind(refunded)
        .bind(i64::from(reversed))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM payments WHERE merchant_id = $1 AND livemode = $2 AND token = $3 AND status = 'approved' \
             AND si_mode = 'INITIAL' AND si_source = 'CIT' LIMIT 1",
        )
        .bind(scope.merchant_id)
        .bind(i64::from(scope.livemode))
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(found.is_some())
    }

    async fn record(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        ledger_insert(entry).execute(&self.pool).await.map(|_| ()).map_err(unavailable)
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
            LedgerQuery::Payment(id) => scoped(&by_payment).bind(id).bind(limit).fetch_all(&self.pool).await,
            LedgerQuery::Token(token) => scoped(&by_token).bind(token).bind(limit).fetch_all(&self.pool).await,
            LedgerQuery::Between(from, to) => {
                scoped(&by_time).bind(secs(from)).bind(secs(to)).bind(limit).fetch_all(&self.pool).await
            }
        }
        .map_err(unavailable)?;
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
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if inserted.rows_affected() == 1 {
            return Ok(KeyState::Acquired);
        }
        let row = sqlx::query(
            "SELECT method, request_hash, state, response FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        )
        .bind(merchant_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(KeyState::InFlight { request_hash: String::new() }) };
        let stored_method: String = get(&row, "method")?;
        let hash: String = get(&row, "request_hash")?;
        // The same key on another method is another request.
        let hash = if stored_method == method { hash } else { format!("{stored_method}:{hash}") };
        Ok(match get::<String>(&row, "state")?.as_str() {
            "done" => KeyState::Done {
                request_hash: hash,
                response: get::<Option<Vec<u8>>>(&row, "response")?.unwrap_or_default(),
            },
            _ => KeyState::InFlight { request_hash: hash },
        })
    }

    async fn complete_key(&self, merchant_id: &str, key: &str, response: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency_keys SET state = 'done', response = $3 WHERE merchant_id = $1 AND key = $2")
            .bind(merchant_id)
            .bind(key)
            .bind(response)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release_key(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND state = 'in_flight'")
            .bind(merchant_id)
            .bind(key)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }
}
