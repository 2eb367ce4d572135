//! The payments store on PostgreSQL or SQLite through sqlx's Any driver (one
//! set of `$n` statements), migrations embedded and applied at start-up:
//! `PaymentStore` here (a payment written ahead with its reservation in one
//! commit, moved from recovery point to recovery point with its ledger lines
//! and release in one commit each, the reads), the statements they share and
//! the leases and keys in `write_ahead`, the row mapping in `rows`. Every sqlx
//! failure goes through `common::database::classify`; on SQLite a text with a
//! NUL byte is refused before it is written, as PostgreSQL refuses it. The
//! calls a request waits for are bounded by its deadline (`common::deadline`).
use std::time::Duration;

use sqlx::AnyPool;

use common::clock::Millis;
use common::database::{Database, GroupCommit, classify, column, from_secs, to_secs as secs};

use crate::domain::idempotency::Claim;
use crate::domain::payment::{LedgerEntry, LedgerRecord, Payment, Reservation, Scope};
use crate::domain::store::{Backlog, Begun, KeyState, LedgerQuery, PaymentStore, Step, StoreError};

mod rows;
mod write_ahead;

use rows::{Query, ledger_insert, ledger_record, ledger_texts, payment, payment_texts};
use write_ahead::{Advance, advance_payments, begin_payments, begun_in_one_statement, moved_in_one_statement};

#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
}

const COLUMNS: &str = "id, merchant_id, livemode, payment_type, reference_id, amount, currency, status, result_code, \
    result_description, token, registration_id, omni_token, card_brand, card_bin, card_last4, card_exp_month, \
    card_exp_year, card_name, si_mode, si_type, si_source, si_initial_id, captured_amount, refunded_amount, \
    reversed, acquirer_reference, customer_id, merchant_transaction_id, description, created_at, recovery_point, \
    source_kind, tokenize, account_last4, account_country, account_bank_code, account_holder, account_bic, \
    mandate_id, mandate_signed, lease_until";

impl SqlStore {
    /// Connects with the default group commit (`open` takes one).
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        Self::open(url, max_connections, acquire_timeout, &GroupCommit::default()).await
    }

    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        group_commit: &GroupCommit,
    ) -> Result<Self, StoreError> {
        let db = Database::open(url, max_connections, acquire_timeout, group_commit, common::migrations!()).await?;
        Ok(Self { db })
    }

    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// Runs a statement whose result is only success or failure, bounded by
    /// the current deadline.
    async fn run(&self, operation: &'static str, statement: Query<'_>) -> Result<(), StoreError> {
        self.db.trip(operation, async { statement.execute(self.pool()).await.map(|_| ()).map_err(classify) }).await
    }
}

impl PaymentStore for SqlStore {
    async fn begin(
        &self,
        p: &Payment,
        reservation: Option<Reservation>,
        lease_until: Millis,
    ) -> Result<Begun, StoreError> {
        self.db.check_text(payment_texts(p))?;
        let ahead = (p.clone(), reservation, lease_until);
        self.db.write_batched("begin", ahead, begin_payments, begun_in_one_statement).await
    }

    async fn advance(&self, next: &Payment, step: Step<'_>) -> Result<bool, StoreError> {
        self.db.check_text(payment_texts(next).chain(step.ledger.iter().flat_map(ledger_texts)))?;
        let Step { from, ledger, release, lease_until } = step;
        let advance = Advance { next: next.clone(), from, ledger: ledger.to_vec(), release, lease_until };
        self.db.write_batched("advance", advance, advance_payments, moved_in_one_statement).await
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
        self.db
            .trip("get", async {
                let sql =
                    format!("SELECT {COLUMNS} FROM payments WHERE id = $1 AND merchant_id = $2 AND livemode = $3");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(scope.merchant_id)
                    .bind(i64::from(scope.livemode))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(classify)?;
                row.as_ref().map(payment).transpose()
            })
            .await
    }

    async fn has_initial_cit(&self, scope: Scope<'_>, token: &str) -> Result<bool, StoreError> {
        self.db
            .trip("has_initial_cit", async {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM payments WHERE merchant_id = $1 AND livemode = $2 \
                 AND (token = $3 OR registration_id = $3 OR omni_token = $3) AND status = 'approved' \
                 AND si_mode = 'INITIAL' AND si_source = 'CIT' LIMIT 1",
                )
                .bind(scope.merchant_id)
                .bind(i64::from(scope.livemode))
                .bind(token)
                .fetch_optional(self.pool())
                .await
                .map_err(classify)?;
                Ok(found.is_some())
            })
            .await
    }

    async fn record(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        self.db.check_text(ledger_texts(entry))?;
        self.run("record", ledger_insert(entry)).await
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
        let rows = self
            .db
            .trip("ledger", async {
                match query {
                    LedgerQuery::Payment(id) => scoped(&by_payment).bind(id).bind(limit).fetch_all(self.pool()).await,
                    LedgerQuery::Token(token) => scoped(&by_token).bind(token).bind(limit).fetch_all(self.pool()).await,
                    LedgerQuery::Between(from, to) => {
                        scoped(&by_time).bind(secs(from)).bind(secs(to)).bind(limit).fetch_all(self.pool()).await
                    }
                }
                .map_err(classify)
            })
            .await?;
        rows.iter().map(ledger_record).collect()
    }

    async fn acquire_key(&self, claim: &Claim<'_>, now: Millis, lease_until: Millis) -> Result<KeyState, StoreError> {
        self.db.trip("acquire_key", async { self.acquire_key_leased(claim, now, lease_until).await }).await
    }

    async fn renew_key(&self, merchant_id: &str, key: &str, lease_until: Millis) -> Result<(), StoreError> {
        self.renew_key_lease(merchant_id, key, lease_until).await
    }

    async fn sweep_keys(&self, now: Millis, purge_before: Millis) -> Result<(u64, u64), StoreError> {
        self.sweep_idempotency_keys(now, purge_before).await
    }

    async fn complete_key(&self, merchant_id: &str, key: &str, response: &[u8]) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response = $3 WHERE merchant_id = $1 AND key = $2",
        );
        self.run("complete_key", statement.bind(merchant_id).bind(key).bind(response)).await
    }

    async fn release_key(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE idempotency_keys SET state = 'released', locked_until = 0 WHERE merchant_id = $1 AND key = $2 \
             AND state = 'in_flight'",
        );
        self.run("release_key", statement.bind(merchant_id).bind(key)).await
    }

    async fn has_key(&self, merchant_id: &str, key: &str) -> Result<bool, StoreError> {
        self.db.trip("has_key", async { self.key_exists(merchant_id, key).await }).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        // Partial indexes (migration 0004) keep each count to the rows it counts.
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM payments WHERE status = 'pending') AS pending, \
             (SELECT MIN(created_at) FROM payments WHERE status = 'pending') AS oldest, \
             (SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_flight') AS keys_in_flight",
        )
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
        let count = |name| column::<i64>(&row, name).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(Backlog {
            pending: count("pending")?,
            oldest_pending: column::<Option<i64>>(&row, "oldest")?.map(from_secs),
            keys_in_flight: count("keys_in_flight")?,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }
}
