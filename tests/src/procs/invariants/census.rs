//! Row counts of the payments database for a test's log line: what a run
//! exercised, by payment type and status, key state and ledger lines.
use super::{Invariants, int, text};

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

impl Invariants {
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
}
