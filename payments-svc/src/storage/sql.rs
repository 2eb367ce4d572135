//! The payments store on PostgreSQL or SQLite through sqlx's Any driver (one
//! set of `$n` statements), migrations embedded and applied at start-up.
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use common::clock::Millis;

use super::{Begun, KeyState, LedgerQuery, PaymentStore, StoreError};
use crate::domain::payment::{
    LedgerEntry, LedgerKind, LedgerRecord, MaskedCard, Outcome, Payment, PaymentType, RecoveryPoint, Reservation,
    Scope, SourceKind, StandingInstruction, Status,
};
use crate::vault::TokenKind;

mod write_ahead;

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

use common::database::{from_secs, to_secs as secs};

const COLUMNS: &str = "id, merchant_id, livemode, payment_type, reference_id, amount, currency, status, result_code, \
    result_description, token, registration_id, omni_token, card_brand, card_bin, card_last4, card_exp_month, \
    card_exp_year, card_name, si_mode, si_type, si_source, si_initial_id, captured_amount, refunded_amount, \
    reversed, acquirer_reference, customer_id, merchant_transaction_id, description, created_at, recovery_point, \
    source_kind, tokenize, lease_until";

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
        recovery: RecoveryPoint::parse(&get::<String>(row, "recovery_point")?).ok_or_else(bad)?,
        source_kind: optional(&get::<String>(row, "source_kind")?, SourceKind::parse).ok_or_else(bad)?,
        tokenize: optional(&get::<String>(row, "tokenize")?, TokenKind::parse).ok_or_else(bad)?,
    })
}

/// An optional enum stored as text, empty for none; `None` if the text is unknown.
fn optional<T>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Option<T>> {
    if text.is_empty() { Some(None) } else { parse(text).map(Some) }
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

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The insert of one ledger line.
static LEDGER_INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{LEDGER_INSERT_HEAD} ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
});

fn ledger_insert(e: &LedgerEntry) -> Query<'_> {
    bind_ledger(sqlx::query(LEDGER_INSERT_ONE.as_str()), e)
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
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

impl PaymentStore for SqlStore {
    async fn begin(
        &self,
        payment: &Payment,
        reservation: Option<Reservation>,
        lease_until: Millis,
    ) -> Result<Begun, StoreError> {
        self.begin_work(payment, reservation, lease_until).await
    }

    async fn advance(
        &self,
        next: &Payment,
        from: RecoveryPoint,
        ledger: &[LedgerEntry],
        release: Option<Reservation>,
        lease_until: Millis,
    ) -> Result<bool, StoreError> {
        self.advance_work(next, from, ledger, release, lease_until).await
    }

    async fn unfinished(&self, now: Millis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        self.unfinished_work(now, limit).await
    }

    async fn take_lease(&self, id: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        self.take_work_lease(id, now, until).await
    }

    async fn renew_lease(&self, id: &str, until: Millis) -> Result<(), StoreError> {
        self.renew_work_lease(id, until).await
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

    async fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM payments WHERE merchant_id = $1 AND livemode = $2 \
             AND (token = $3 OR registration_id = $3 OR omni_token = $3) AND status = 'approved' \
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
        lease_until: Millis,
    ) -> Result<KeyState, StoreError> {
        self.acquire_key_leased(merchant_id, key, method, request_hash, now, lease_until).await
    }

    async fn renew_key(&self, merchant_id: &str, key: &str, lease_until: Millis) -> Result<(), StoreError> {
        self.renew_key_lease(merchant_id, key, lease_until).await
    }

    async fn sweep_keys(&self, now: Millis, purge_before: Millis) -> Result<(u64, u64), StoreError> {
        self.sweep_idempotency_keys(now, purge_before).await
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
        self.release_key_leased(merchant_id, key).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }
}
