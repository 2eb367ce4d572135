//! The invariants themselves, in the order they are reported: each a query
//! for the rows that break it and the sentence that says how, in ids and
//! amounts only.
use std::time::Duration;

use sqlx::postgres::PgRow;

use super::{InvariantOptions, Schema, int, text};

/// Statuses under which a CP, RF or RV keeps its effect on the original reserved.
const RESERVING: &str = "('approved', 'pending')";

/// The database's clock, in epoch seconds as the schema stores instants.
const NOW: &str = "EXTRACT(EPOCH FROM now())::BIGINT";

/// One invariant: the rows that break it, and what to say of each.
pub(super) struct Rule {
    pub sql: String,
    pub say: fn(&PgRow) -> String,
}

impl Rule {
    fn new(sql: impl Into<String>, say: fn(&PgRow) -> String) -> Self {
        Self { sql: sql.into(), say }
    }
}

/// Every invariant `options` asks for, on this `schema`.
pub(super) fn rules(schema: &Schema, options: &InvariantOptions) -> Vec<Rule> {
    let mut rules = amounts();
    rules.extend(ledger());
    rules.push(Rule::new(
        // A single-use token pays at most one initial payment.
        "SELECT COUNT(*), MIN(id), MAX(id) FROM payments \
         WHERE payment_type IN ('PA', 'DB') AND token LIKE 'tokn\\_%' AND status <> 'failed' \
         GROUP BY token HAVING COUNT(*) > 1",
        |r| format!("one single-use token paid {} initial payments ({} … {})", int(r, 0), text(r, 1), text(r, 2)),
    ));
    rules.push(statuses(schema));
    let (lease, grace) = (secs(options.assumed_lease), secs(options.grace));
    if options.keys_settled {
        let keys = Leased { table: "idempotency_keys", lease_column: "locked_until", select: "key, method" };
        rules.push(keys.past_lease(schema, "state = 'in_flight'", lease, grace, |r| {
            let key: String = text(r, 0).chars().take(48).collect();
            format!("idempotency key {key:?} ({}) in flight {} s past its lease", text(r, 1), int(r, 2))
        }));
    }
    if options.pending_resolved {
        let payments = Leased { table: "payments", lease_column: "lease_until", select: "id, payment_type" };
        rules.push(payments.past_lease(schema, "status = 'pending'", lease, grace, |r| {
            format!("{} {}: pending {} s past its lease", text(r, 1), text(r, 0), int(r, 2))
        }));
    }
    rules
}

/// Amounts reserved only by their transactions, and follow-ups referring to
/// the payment type they apply to.
fn amounts() -> Vec<Rule> {
    vec![
        Rule::new(
            "SELECT id, amount, captured_amount FROM payments \
             WHERE payment_type = 'PA' AND captured_amount > amount",
            |r| format!("PA {}: captured_amount {} exceeds the authorized {}", text(r, 0), int(r, 2), int(r, 1)),
        ),
        Rule::new(
            format!(
                "SELECT p.id, p.captured_amount, COALESCE(SUM(c.amount), 0)::BIGINT FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'CP' AND c.status IN {RESERVING} \
                 WHERE p.payment_type = 'PA' GROUP BY p.id, p.captured_amount \
                 HAVING p.captured_amount <> COALESCE(SUM(c.amount), 0)"
            ),
            |r| {
                let (id, captured, captures) = (text(r, 0), int(r, 1), int(r, 2));
                format!("PA {id}: captured_amount {captured} but its approved/pending captures sum to {captures}")
            },
        ),
        Rule::new(
            "SELECT id, payment_type, refunded_amount, captured_amount FROM payments \
             WHERE payment_type IN ('DB', 'CP') AND refunded_amount > captured_amount",
            |r| format!("{} {}: refunded_amount {} exceeds captured {}", text(r, 1), text(r, 0), int(r, 2), int(r, 3)),
        ),
        Rule::new(
            format!(
                "SELECT p.id, p.payment_type, p.refunded_amount, COALESCE(SUM(c.amount), 0)::BIGINT FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'RF' AND c.status IN {RESERVING} \
                 WHERE p.payment_type IN ('DB', 'CP') GROUP BY p.id, p.payment_type, p.refunded_amount \
                 HAVING p.refunded_amount <> COALESCE(SUM(c.amount), 0)"
            ),
            |r| {
                let (kind, id, refunded, refunds) = (text(r, 1), text(r, 0), int(r, 2), int(r, 3));
                format!("{kind} {id}: refunded_amount {refunded} but its approved/pending refunds sum to {refunds}")
            },
        ),
        Rule::new(
            "SELECT id, captured_amount FROM payments WHERE payment_type = 'PA' AND reversed <> 0 AND captured_amount <> 0",
            |r| format!("PA {}: reversed but captured_amount is {}", text(r, 0), int(r, 1)),
        ),
        Rule::new(
            format!(
                "SELECT p.id, p.reversed, COUNT(c.id) FROM payments p \
                 LEFT JOIN payments c ON c.reference_id = p.id AND c.payment_type = 'RV' AND c.status IN {RESERVING} \
                 WHERE p.payment_type = 'PA' GROUP BY p.id, p.reversed \
                 HAVING (p.reversed <> 0) <> (COUNT(c.id) > 0) OR COUNT(c.id) > 1"
            ),
            |r| {
                let (id, reversed, reversals) = (text(r, 0), int(r, 1), int(r, 2));
                format!("PA {id}: reversed = {reversed} but it has {reversals} approved/pending reversals")
            },
        ),
        Rule::new(
            "SELECT c.id, c.payment_type, COALESCE(o.payment_type, '') FROM payments c \
             LEFT JOIN payments o ON o.id = c.reference_id \
             WHERE c.payment_type IN ('CP', 'RV', 'RF') AND NOT ( \
               (c.payment_type IN ('CP', 'RV') AND o.payment_type = 'PA') OR \
               (c.payment_type = 'RF' AND o.payment_type IN ('DB', 'CP')))",
            |r| {
                let original = text(r, 2);
                let original = if original.is_empty() { "no payment".to_owned() } else { original };
                format!("{} {}: refers to {original}", text(r, 1), text(r, 0))
            },
        ),
    ]
}

/// The ledger: one line per approved operation, never two, none without its
/// payment, each for its payment's amount.
fn ledger() -> Vec<Rule> {
    vec![
        Rule::new(
            "SELECT p.id, p.payment_type, COUNT(t.id) FROM payments p \
             LEFT JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
             WHERE p.status = 'approved' GROUP BY p.id, p.payment_type HAVING COUNT(t.id) <> 1",
            |r| format!("{} {}: approved with {} ledger lines (want 1)", text(r, 1), text(r, 0), int(r, 2)),
        ),
        Rule::new(
            "SELECT p.id, p.payment_type, p.status, COUNT(t.id) FROM payments p \
             JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
             WHERE p.status <> 'approved' GROUP BY p.id, p.payment_type, p.status HAVING COUNT(t.id) > 1",
            |r| format!("{} {}: {} with {} ledger lines", text(r, 1), text(r, 0), text(r, 2), int(r, 3)),
        ),
        Rule::new(
            "SELECT t.id, t.transaction_type, t.payment_id FROM transactions t \
             WHERE t.transaction_type IN ('PA', 'DB', 'CP', 'RV', 'RF') \
             AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = t.payment_id)",
            |r| {
                let (line, kind, payment) = (text(r, 0), text(r, 1), text(r, 2));
                format!("ledger line {line} ({kind}) names payment {payment:?}, which does not exist")
            },
        ),
        Rule::new(
            "SELECT p.id, p.payment_type, p.amount, t.amount FROM payments p \
             JOIN transactions t ON t.payment_id = p.id AND t.transaction_type = p.payment_type \
             WHERE t.amount <> p.amount",
            |r| format!("{} {}: amount {} but its ledger line says {}", text(r, 1), text(r, 0), int(r, 2), int(r, 3)),
        ),
    ]
}

/// Statuses: the target set once migration 0002 is in, today's set before.
fn statuses(schema: &Schema) -> Rule {
    let statuses = if schema.has("payments", "recovery_point") {
        "('pending', 'approved', 'declined', 'failed')"
    } else {
        "('approved', 'declined', 'timed_out', 'rejected')"
    };
    Rule::new(format!("SELECT id, payment_type, status FROM payments WHERE status NOT IN {statuses}"), |r| {
        format!("{} {}: unknown status {:?}", text(r, 1), text(r, 0), text(r, 2))
    })
}

/// A table whose rows hold a lease: until `lease_column` where the schema
/// has it, else until `created_at` plus the assumed lease.
struct Leased {
    table: &'static str,
    lease_column: &'static str,
    /// The columns that name a row in a violation.
    select: &'static str,
}

impl Leased {
    /// Rows in `state` (a condition) past their lease plus `grace` seconds;
    /// `say` reads the `select` columns, then the seconds past the lease.
    fn past_lease(&self, schema: &Schema, state: &str, lease: i64, grace: i64, say: fn(&PgRow) -> String) -> Rule {
        let Self { table, lease_column, select } = self;
        let until = if schema.has(table, lease_column) {
            format!("COALESCE({lease_column}, created_at + {lease})")
        } else {
            format!("created_at + {lease}")
        };
        Rule::new(
            format!("SELECT {select}, {NOW} - ({until}) FROM {table} WHERE {state} AND {until} < {NOW} - {grace}"),
            say,
        )
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}
