//! Single questions a fault test asks the payments database about one
//! payment, one token or one request: what it stored, how often it paid.
use super::{Invariants, int, text};

impl Invariants {
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
}
