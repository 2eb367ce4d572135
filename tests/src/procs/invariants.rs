//! The money invariants of issue 8, checked on the payments database itself
//! (PostgreSQL): amounts reserved only by their transactions, one ledger line
//! per approved operation, single-use tokens paid at most once, no key in
//! flight and no payment pending past its lease. Written against the schema of
//! migration 0002 (statuses pending|approved|declined|failed, `recovery_point`,
//! `lease_until`, `idempotency_keys.locked_until`), and falling back to
//! `created_at + assumed lease` where those columns do not exist yet, so it runs
//! on 0001 too. Violations are readable sentences naming ids and amounts only.
//!
//! This module holds the checker and its options; `rules` the invariants
//! themselves, `census` the row counts a test logs, `lookups` the single
//! questions a test asks about one payment or token.
use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

mod census;
mod lookups;
mod rules;

pub use census::Census;

#[derive(Debug, Clone)]
pub struct InvariantOptions {
    /// Slack on every lease: clock steps, a reconciler pass under way.
    pub grace: Duration,
    /// The lease assumed where the schema has no `locked_until` / `lease_until`.
    pub assumed_lease: Duration,
    /// No idempotency key is `in_flight` past its lease + grace.
    pub keys_settled: bool,
    /// No payment is `pending` past its lease + grace (set once the reconciler has run).
    pub pending_resolved: bool,
}

impl Default for InvariantOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(2),
            assumed_lease: Duration::from_secs(30),
            keys_settled: true,
            pending_resolved: true,
        }
    }
}

impl InvariantOptions {
    /// Only the amount and ledger invariants (while work may still legitimately be in flight).
    pub fn amounts_only() -> Self {
        Self { keys_settled: false, pending_resolved: false, ..Self::default() }
    }

    /// Everything, for a lease of `lease` (the one the services were given).
    pub fn settled(lease: Duration) -> Self {
        Self { assumed_lease: lease, ..Self::default() }
    }
}

pub struct Invariants {
    pool: PgPool,
}

/// The `(table, column)` pairs of the payments schema, to tell its migrations apart.
struct Schema(HashSet<(String, String)>);

impl Schema {
    fn has(&self, table: &str, column: &str) -> bool {
        self.0.contains(&(table.to_owned(), column.to_owned()))
    }
}

impl Invariants {
    pub async fn connect(url: &str) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .expect("connect to the payments database");
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn schema(&self) -> Schema {
        let rows = sqlx::query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name IN ('payments', 'transactions', 'idempotency_keys')",
        )
        .fetch_all(&self.pool)
        .await
        .expect("read information_schema");
        Schema(rows.iter().map(|r| (text(r, 0), text(r, 1))).collect())
    }

    /// Every violated invariant, one sentence each; empty when all hold.
    pub async fn check(&self, options: &InvariantOptions) -> Vec<String> {
        let schema = self.schema().await;
        let mut violations = Vec::new();
        for rule in rules::rules(&schema, options) {
            violations.extend(self.rows(&rule.sql).await.iter().map(rule.say));
        }
        violations
    }

    /// Panics listing every violation (with `context`: which test, which phase).
    pub async fn assert_hold(&self, options: &InvariantOptions, context: &str) {
        let violations = self.check(options).await;
        assert!(
            violations.is_empty(),
            "{context}: {} invariant violations:\n  {}\n{:?}",
            violations.len(),
            violations.join("\n  "),
            self.census().await
        );
    }

    async fn rows(&self, sql: &str) -> Vec<PgRow> {
        sqlx::query(sql).fetch_all(&self.pool).await.unwrap_or_else(|e| panic!("invariant query failed: {e}\n{sql}"))
    }
}

fn text(row: &PgRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i).ok().flatten().unwrap_or_default()
}

fn int(row: &PgRow, i: usize) -> i64 {
    row.try_get::<Option<i64>, _>(i).ok().flatten().unwrap_or_default()
}
