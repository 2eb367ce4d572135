//! The money invariants of issue 8, checked on the payments database itself
//! (PostgreSQL): amounts reserved only by their transactions, one ledger line
//! per approved operation, single-use tokens paid at most once, no key in
//! flight and no payment pending past its lease. Written against the schema of
//! migration 0002 (statuses pending|approved|declined|failed, `recovery_point`,
//! `lease_until`, `idempotency_keys.locked_until`), and falling back to
//! `created_at + assumed lease` where those columns do not exist yet, so it runs
//! on 0001 too. Violations are readable sentences naming ids and amounts only.
use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

/// Statuses under which a CP, RF or RV keeps its effect on the original reserved.
const RESERVING: &str = "('approved', 'pending')";

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

/// Row counts for a test's log line (what was exercised).
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// `(payment_type, status, count)`.
    pub payments: Vec<(String, String, i64)>,
    /// `(state, count)`.
    pub keys: Vec<(String, i64)>,
    pub ledger_lines: i64,
}

impl Census {
    pub fn payments_total(&self) -> i64 {
        self.payments.iter().map(|(_, _, n)| n).sum()
    }

    pub fn count(&self, payment_type: &str, status: &str) -> i64 {
        self.payments.iter().filter(|(t, s, _)| t == payment_type && s == status).map(|(_, _, n)| n).sum()
    }
}

pub struct Invariants {
    pool: PgPool,
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

    async fn columns(&self) -> HashSet<(String, String)> {
        let rows = sqlx::query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name IN ('payments', 'transactions', 'idempotency_keys')",
        )
        .fetch_all(&self.pool)
        .await
        .expect("read information_schema");
        rows.iter().map(|r| (text(r, 0), text(r, 1))).collect()
    }

    /// Every violated invariant, one sentence each; empty when all hold.
    pub async fn check(&self, options: &InvariantOptions) -> Vec<String> {
        let columns = self.columns().await;
        let has = |table: &str, column: &str| columns.contains(&(table.to_owned(), column.to_owned()));
        let grace = secs(options.grace);
        let lease = secs(options.assumed_lease);
        let mut violations = Vec::new();
        let mut run = |rows: Vec<PgRow>, say: &dyn Fn(&PgRow) -> String| violations.extend(rows.iter().map(say));

        run(
            self.rows(
                "SELECT id, amount, captured_amount FROM payments \
                 WHERE payment_type = 'PA' AND captured_amount > amount",
            )
            .await,
            &|r| format!("PA {}: captured_amount {} exceeds the authorized {}", text(r, 0), int(r, 2), int(r, 1)),
        );
        run(
            self.rows(&format!(
                "SELECT p.id, p.captured_amount, COALESCE(SUM(c.amount), 0)::BIGINT FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'CP' AND c.status IN {RESERVING} \
                 WHERE p.payment_type = 'PA' GROUP BY p.id, p.captured_amount \
                 HAVING p.captured_amount <> COALESCE(SUM(c.amount), 0)"
            ))
            .await,
            &|r| {
                format!(
                    "PA {}: captured_amount {} but its approved/pending captures sum to {}",
                    text(r, 0),
                    int(r, 1),
                    int(r, 2)
                )
            },
        );
        run(
            self.rows(
                "SELECT id, payment_type, refunded_amount, captured_amount FROM payments \
                 WHERE payment_type IN ('DB', 'CP') AND refunded_amount > captured_amount",
            )
            .await,
            &|r| format!("{} {}: refunded_amount {} exceeds captured {}", text(r, 1), text(r, 0), int(r, 2), int(r, 3)),
        );
        run(
            self.rows(&format!(
                "SELECT p.id, p.payment_type, p.refunded_amount, COALESCE(SUM(c.amount), 0)::BIGINT FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'RF' AND c.status IN {RESERVING} \
                 WHERE p.payment_type IN ('DB', 'CP') GROUP BY p.id, p.payment_type, p.refunded_amount \
                 HAVING p.refunded_amount <> COALESCE(SUM(c.amount), 0)"
            ))
            .await,
            &|r| {
                format!(
                    "{} {}: refunded_amount {} but its approved/pending refunds sum to {}",
                    text(r, 1),
                    text(r, 0),
                    int(r, 2),
                    int(r, 3)
                )
            },
        );
        run(
            self.rows("SELECT id, captured_amount FROM payments WHERE payment_type = 'PA' AND reversed <> 0 AND captured_amount <> 0")
                .await,
            &|r| format!("PA {}: reversed but captured_amount is {}", text(r, 0), int(r, 1)),
        );
        run(
            self.rows(&format!(
                "SELECT p.id, p.reversed, COUNT(c.id) FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'RV' AND c.status IN {RESERVING} \
                 WHERE p.payment_type = 'PA' GROUP BY p.id, p.reversed \
                 HAVING (p.reversed <> 0) <> (COUNT(c.id) > 0) OR COUNT(c.id) > 1"
            ))
            .await,
            &|r| {
                format!(
                    "PA {}: reversed = {} but it has {} approved/pending reversals",
                    text(r, 0),
                    int(r, 1),
                    int(r, 2)
                )
            },
        );
        run(
            self.rows(
                "SELECT c.id, c.payment_type, COALESCE(o.payment_type, '') FROM payments c \
                 LEFT JOIN payments o ON o.id = c.reference_id \
                 WHERE c.payment_type IN ('CP', 'RV', 'RF') AND NOT ( \
                   (c.payment_type IN ('CP', 'RV') AND o.payment_type = 'PA') OR \
                   (c.payment_type = 'RF' AND o.payment_type IN ('DB', 'CP')))",
            )
            .await,
            &|r| {
                let original = text(r, 2);
                let original = if original.is_empty() { "no payment".to_owned() } else { original };
                format!("{} {}: refers to {original}", text(r, 1), text(r, 0))
            },
        );

        // The ledger: one line per approved operation, never two, none without its payment.
        run(
            self.rows(
                "SELECT p.id, p.payment_type, COUNT(t.id) FROM payments p \
                 LEFT JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
                 WHERE p.status = 'approved' GROUP BY p.id, p.payment_type HAVING COUNT(t.id) <> 1",
            )
            .await,
            &|r| format!("{} {}: approved with {} ledger lines (want 1)", text(r, 1), text(r, 0), int(r, 2)),
        );
        run(
            self.rows(
                "SELECT p.id, p.payment_type, p.status, COUNT(t.id) FROM payments p \
                 JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
                 WHERE p.status <> 'approved' GROUP BY p.id, p.payment_type, p.status HAVING COUNT(t.id) > 1",
            )
            .await,
            &|r| format!("{} {}: {} with {} ledger lines", text(r, 1), text(r, 0), text(r, 2), int(r, 3)),
        );
        run(
            self.rows(
                "SELECT t.id, t.transaction_type, t.payment_id FROM transactions t \
                 WHERE t.transaction_type IN ('PA', 'DB', 'CP', 'RV', 'RF') \
                 AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = t.payment_id)",
            )
            .await,
            &|r| {
                format!(
                    "ledger line {} ({}) names payment {:?}, which does not exist",
                    text(r, 0),
                    text(r, 1),
                    text(r, 2)
                )
            },
        );
        run(
            self.rows(
                "SELECT p.id, p.payment_type, p.amount, t.amount FROM payments p \
                 JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
                 WHERE t.amount <> p.amount",
            )
            .await,
            &|r| format!("{} {}: amount {} but its ledger line says {}", text(r, 1), text(r, 0), int(r, 2), int(r, 3)),
        );

        // A single-use token pays at most one initial payment.
        run(
            self.rows(
                "SELECT COUNT(*), MIN(id), MAX(id) FROM payments \
                 WHERE payment_type IN ('PA', 'DB') AND token LIKE 'tokn\\_%' AND status <> 'failed' \
                 GROUP BY token HAVING COUNT(*) > 1",
            )
            .await,
            &|r| format!("one single-use token paid {} initial payments ({} … {})", int(r, 0), text(r, 1), text(r, 2)),
        );

        // Statuses: the target set once migration 0002 is in, today's set before.
        let statuses = if has("payments", "recovery_point") {
            "('pending', 'approved', 'declined', 'failed')"
        } else {
            "('approved', 'declined', 'timed_out', 'rejected')"
        };
        run(
            self.rows(&format!("SELECT id, payment_type, status FROM payments WHERE status NOT IN {statuses}")).await,
            &|r| format!("{} {}: unknown status {:?}", text(r, 1), text(r, 0), text(r, 2)),
        );

        let now = "EXTRACT(EPOCH FROM now())::BIGINT";
        if options.keys_settled {
            let until = if has("idempotency_keys", "locked_until") {
                format!("COALESCE(locked_until, created_at + {lease})")
            } else {
                format!("created_at + {lease}")
            };
            run(
                self.rows(&format!(
                    "SELECT key, method, {now} - ({until}) FROM idempotency_keys \
                     WHERE state = 'in_flight' AND {until} < {now} - {grace}"
                ))
                .await,
                &|r| {
                    let key: String = text(r, 0).chars().take(48).collect();
                    format!("idempotency key {key:?} ({}) in flight {} s past its lease", text(r, 1), int(r, 2))
                },
            );
        }
        if options.pending_resolved {
            let until = if has("payments", "lease_until") {
                format!("COALESCE(lease_until, created_at + {lease})")
            } else {
                format!("created_at + {lease}")
            };
            run(
                self.rows(&format!(
                    "SELECT id, payment_type, {now} - ({until}) FROM payments \
                     WHERE status = 'pending' AND {until} < {now} - {grace}"
                ))
                .await,
                &|r| format!("{} {}: pending {} s past its lease", text(r, 1), text(r, 0), int(r, 2)),
            );
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

    /// Of `tokens` (single-use tokens the vault reports used), those that paid
    /// no payment: a token burned with nothing to show for it.
    pub async fn tokens_without_payment(&self, used_tokens: &[String]) -> Vec<String> {
        let rows = sqlx::query(
            "SELECT t FROM UNNEST($1::TEXT[]) AS t \
             WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.token = t AND p.payment_type IN ('PA', 'DB'))",
        )
        .bind(used_tokens)
        .fetch_all(&self.pool)
        .await
        .expect("query payments by token");
        rows.iter().map(|r| format!("single-use token {} is used but paid no payment", text(r, 0))).collect()
    }

    /// The `payments` rows a request would have written: those with this
    /// description, customer or merchant transaction id.
    pub async fn payments_matching(&self, needle: &str) -> i64 {
        // PostgreSQL text never holds a NUL: look for what would be left of it.
        let needle = needle.replace('\0', "");
        let row = sqlx::query(
            "SELECT COUNT(*) FROM payments WHERE description = $1 OR customer_id = $1 \
             OR merchant_transaction_id = $1 OR si_initial_id = $1",
        )
        .bind(needle.as_str())
        .fetch_one(&self.pool)
        .await
        .expect("count payments");
        int(&row, 0)
    }

    /// Payments of `token` (any type).
    pub async fn payments_of_token(&self, token: &str) -> i64 {
        // A payment the vault refused before the acquirer (its token already
        // used) is recorded FAILED and paid nothing.
        let row = sqlx::query("SELECT COUNT(*) FROM payments WHERE token = $1 AND status <> 'failed'")
            .bind(token)
            .fetch_one(&self.pool)
            .await
            .expect("count payments");
        int(&row, 0)
    }

    /// The stored status and captured amount of one payment.
    pub async fn payment(&self, id: &str) -> Option<(String, i64)> {
        let row = sqlx::query("SELECT status, captured_amount FROM payments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .expect("read a payment");
        row.map(|r| (text(&r, 0), int(&r, 1)))
    }

    pub async fn census(&self) -> Census {
        let payments = self
            .rows("SELECT payment_type, status, COUNT(*) FROM payments GROUP BY 1, 2 ORDER BY 1, 2")
            .await
            .iter()
            .map(|r| (text(r, 0), text(r, 1), int(r, 2)))
            .collect();
        let keys = self
            .rows("SELECT state, COUNT(*) FROM idempotency_keys GROUP BY 1 ORDER BY 1")
            .await
            .iter()
            .map(|r| (text(r, 0), int(r, 1)))
            .collect();
        let ledger_lines = self.rows("SELECT COUNT(*) FROM transactions").await.first().map(|r| int(r, 0)).unwrap_or(0);
        Census { payments, keys, ledger_lines }
    }

    async fn rows(&self, sql: &str) -> Vec<PgRow> {
        sqlx::query(sql).fetch_all(&self.pool).await.unwrap_or_else(|e| panic!("invariant query failed: {e}\n{sql}"))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn text(row: &PgRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i).ok().flatten().unwrap_or_default()
}

fn int(row: &PgRow, i: usize) -> i64 {
    row.try_get::<Option<i64>, _>(i).ok().flatten().unwrap_or_default()
}
