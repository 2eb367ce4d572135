//! The statements of write-ahead work on SQL: a payment's bindings, the
//! two durable writes of a payment's life (`begin_payment`: written ahead with
//! its reservation; `advance_payment`: moved to its next recovery point with
//! its ledger lines and release), run by the group committer in a transaction
//! shared with other payments', the conditional updates that take and release
//! a follow-up's reservation, the leases the reconciler takes over, and
//! idempotency keys with leases. Every guard is a condition of the statement
//! itself, so two workers racing on one payment or key can never both succeed.
use common::clock::Millis;
use common::database::{classify, column, to_secs as secs};
use common::text::Text;
use futures::future::BoxFuture;
use sqlx::AnyConnection;

use super::rows::{Query, ledger_insert, payment};
use super::{COLUMNS, SqlStore};
use crate::domain::idempotency::Claim;
use crate::domain::payment::{LedgerEntry, MaskedAccount, MaskedCard, Payment, RecoveryPoint, Reservation};
use crate::domain::store::{Begun, KeyState, StoreError};

/// A payment written ahead: the payment, the reservation it takes on its
/// original, and its lease.
type Ahead = (Payment, Option<Reservation>, Millis);

/// Writes a new payment, and its reservation on the original, as one; an
/// existing id answers with the payment stored under it. A reservation the
/// original cannot give leaves nothing written: the insert is undone by a
/// delete in the same transaction, which the committer shares with others.
pub(super) fn begin_payment<'c>(
    (p, reservation, lease_until): &'c Ahead,
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Begun, StoreError>> {
    Box::pin(async move {
        static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let values = (1..=42).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            format!("INSERT INTO payments ({COLUMNS}) VALUES ({values}) ON CONFLICT (id) DO NOTHING")
        });
        let inserted = bind_payment(sqlx::query(INSERT.as_str()), p)
            .bind(secs(*lease_until))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        if inserted.rows_affected() == 0 {
            let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1");
            let row = sqlx::query(&sql).bind(p.id.as_str()).fetch_one(&mut *conn).await.map_err(classify)?;
            let existing = payment(&row)?;
            // Another merchant's payment with this id is not this request's.
            if existing.merchant_id != p.merchant_id || existing.livemode != p.livemode {
                return Ok(Begun::Refused);
            }
            return Ok(Begun::Existing(Box::new(existing)));
        }
        if let (Some(reservation), Some(original)) = (*reservation, p.reference_id.as_deref()) {
            let reserved = sqlx::query(reserve_sql(reservation))
                .bind(original)
                .bind(amount(reservation))
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            if reserved.rows_affected() != 1 {
                sqlx::query("DELETE FROM payments WHERE id = $1")
                    .bind(p.id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?;
                return Ok(Begun::Refused);
            }
        }
        Ok(Begun::New)
    })
}

/// A payment's move to its next recovery point (`Step`, owned).
pub(super) struct Advance {
    pub next: Payment,
    pub from: RecoveryPoint,
    pub ledger: Vec<LedgerEntry>,
    pub release: Option<Reservation>,
    pub lease_until: Millis,
}

/// Moves a payment from `from` to its next state with its ledger lines and
/// the release of its reservation, as one; `false` (nothing written) when it
/// is no longer at `from`.
pub(super) fn advance_payment<'c>(
    a: &'c Advance,
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<bool, StoreError>> {
    Box::pin(async move {
        let next = &a.next;
        let moved = sqlx::query(
            "UPDATE payments SET captured_amount = CASE WHEN status = 'pending' THEN $2 ELSE captured_amount END, \
             status = $3, result_code = $4, result_description = $5, registration_id = $6, omni_token = $7, \
             card_brand = $8, card_bin = $9, card_last4 = $10, card_exp_month = $11, card_exp_year = $12, \
             card_name = $13, acquirer_reference = $14, recovery_point = $15, lease_until = $16, \
             account_last4 = $18, account_country = $19, account_bank_code = $20, account_holder = $21, \
             account_bic = $22 WHERE id = $1 AND recovery_point = $17",
        )
        .bind(next.id.as_str())
        .bind(next.captured_amount)
        .bind(next.status.as_str())
        .bind(next.result.code.as_str())
        .bind(next.result.description.as_str())
        .bind(next.registration_id.as_deref())
        .bind(next.omni_token.as_deref());
        let moved = bind_card(moved, next.card.as_ref())
            .bind(next.acquirer_reference.as_deref())
            .bind(next.recovery.as_str())
            .bind(if next.recovery == RecoveryPoint::Finished { 0 } else { secs(a.lease_until) })
            .bind(a.from.as_str());
        let moved = bind_account(moved, next.account.as_ref()).execute(&mut *conn).await.map_err(classify)?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        for entry in &a.ledger {
            ledger_insert(entry).execute(&mut *conn).await.map_err(classify)?;
        }
        if let (Some(reservation), Some(original)) = (a.release, next.reference_id.as_deref()) {
            sqlx::query(release_sql(reservation))
                .bind(original)
                .bind(amount(reservation))
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
        }
        Ok(true)
    })
}

/// Binds a payment's columns, in `COLUMNS` order, all but the last (`lease_until`).
fn bind_payment<'q>(query: Query<'q>, p: &'q Payment) -> Query<'q> {
    let si = p.standing_instruction.as_ref().map(|s| s.codes());
    let query = query
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
        .bind(p.omni_token.as_deref());
    let query = bind_card(query, p.card.as_ref())
        .bind(si.map(|s| s.0))
        .bind(si.map(|s| s.1))
        .bind(si.map(|s| s.2))
        .bind(p.standing_instruction.as_ref().map(|s| s.initial_transaction_id.as_str()))
        .bind(p.captured_amount)
        .bind(p.refunded_amount)
        .bind(i64::from(p.reversed))
        .bind(p.acquirer_reference.as_deref())
        .bind(p.customer_id.as_str())
        .bind(p.merchant_transaction_id.as_str())
        .bind(p.description.as_str())
        .bind(secs(p.created_at))
        .bind(p.recovery.as_str())
        .bind(p.source_kind.map_or("", |k| k.as_str()))
        .bind(p.tokenize.map_or("", |k| k.as_str()));
    bind_account(query, p.account.as_ref())
        .bind(p.mandate.as_ref().map(|m| m.id.as_str()))
        .bind(p.mandate.as_ref().map(|m| m.date_of_signature.as_str()))
}

/// Binds a masked bank account's five columns (last4, country, bank code,
/// holder, BIC), null without an account.
fn bind_account<'q>(query: Query<'q>, account: Option<&'q MaskedAccount>) -> Query<'q> {
    query
        .bind(account.map(|a| a.last4.as_str()))
        .bind(account.map(|a| a.country.as_str()))
        .bind(account.map(|a| a.bank_code.as_str()))
        .bind(account.map(|a| a.holder.as_str()))
        .bind(account.map(|a| a.bic.as_str()))
}

/// Binds a masked card's six columns (brand, bin, last4, expiry month and
/// year, name), null without a card.
fn bind_card<'q>(query: Query<'q>, card: Option<&'q MaskedCard>) -> Query<'q> {
    query
        .bind(card.map(|c| c.brand.as_str()))
        .bind(card.map(|c| c.bin.as_str()))
        .bind(card.map(|c| c.last4.as_str()))
        .bind(card.map(|c| i64::from(c.exp_month)))
        .bind(card.map(|c| i64::from(c.exp_year)))
        .bind(card.map(|c| c.name.as_str()))
}

/// The conditional update that takes a reservation on the original (`$1`),
/// within its limits; the amount is `$2`.
fn reserve_sql(reservation: Reservation) -> &'static str {
    match reservation {
        Reservation::Capture(_) => {
            "UPDATE payments SET captured_amount = captured_amount + $2 WHERE id = $1 AND payment_type = 'PA' \
             AND status = 'approved' AND reversed = 0 AND captured_amount + $2 <= amount"
        }
        Reservation::Reversal => {
            "UPDATE payments SET reversed = 1 WHERE id = $1 AND payment_type = 'PA' AND status = 'approved' \
             AND reversed = 0 AND captured_amount = 0 AND $2 = 0"
        }
        Reservation::Refund(_) => {
            "UPDATE payments SET refunded_amount = refunded_amount + $2 WHERE id = $1 \
             AND payment_type IN ('DB', 'CP') AND status = 'approved' AND refunded_amount + $2 <= captured_amount"
        }
    }
}

fn release_sql(reservation: Reservation) -> &'static str {
    match reservation {
        Reservation::Capture(_) => "UPDATE payments SET captured_amount = captured_amount - $2 WHERE id = $1",
        Reservation::Reversal => "UPDATE payments SET reversed = 0 WHERE id = $1 AND $2 = 0",
        Reservation::Refund(_) => "UPDATE payments SET refunded_amount = refunded_amount - $2 WHERE id = $1",
    }
}

fn amount(reservation: Reservation) -> i64 {
    match reservation {
        Reservation::Capture(amount) | Reservation::Refund(amount) => amount,
        Reservation::Reversal => 0,
    }
}

impl SqlStore {
    pub(super) async fn unfinished_work(&self, now: Millis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE recovery_point <> 'finished' AND lease_until < $1 \
             ORDER BY lease_until LIMIT $2"
        );
        let rows =
            sqlx::query(&sql).bind(secs(now)).bind(i64::from(limit)).fetch_all(self.pool()).await.map_err(classify)?;
        rows.iter().map(payment).collect()
    }

    pub(super) async fn take_work_lease(&self, id: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE payments SET lease_until = $3 WHERE id = $1 AND lease_until < $2 AND recovery_point <> 'finished'",
        )
        .bind(id)
        .bind(secs(now))
        .bind(secs(until))
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(taken.rows_affected() == 1)
    }

    pub(super) async fn renew_work_lease(&self, id: &str, until: Millis) -> Result<(), StoreError> {
        let statement =
            sqlx::query("UPDATE payments SET lease_until = $2 WHERE id = $1 AND recovery_point <> 'finished'");
        self.run("renew_lease", statement.bind(id).bind(secs(until))).await
    }

    pub(super) async fn acquire_key_leased(
        &self,
        claim: &Claim<'_>,
        now: Millis,
        lease_until: Millis,
    ) -> Result<KeyState, StoreError> {
        // `$1`–`$4`: the claim's owner, key, method and request hash.
        let claimed = |sql| sqlx::query(sql).bind(claim.owner).bind(claim.key).bind(claim.method).bind(claim.hash);
        // A new key; else a released key, or one whose owner's lease ran out,
        // taken by the same request. `$5`: now, `$6`: the lease's end.
        let statements = [
            "INSERT INTO idempotency_keys (merchant_id, key, method, request_hash, state, created_at, locked_until) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5, $6) ON CONFLICT (merchant_id, key) DO NOTHING",
            "UPDATE idempotency_keys SET state = 'in_flight', locked_until = $6 WHERE merchant_id = $1 AND key = $2 \
             AND method = $3 AND request_hash = $4 AND (state = 'released' OR (state = 'in_flight' AND locked_until < $5))",
        ];
        for sql in statements {
            let claim = claimed(sql).bind(secs(now)).bind(secs(lease_until));
            if claim.execute(self.pool()).await.map_err(classify)?.rows_affected() == 1 {
                return Ok(KeyState::Acquired);
            }
        }
        let row = sqlx::query(
            "SELECT method, request_hash, state, response FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        )
        .bind(claim.owner)
        .bind(claim.key)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(KeyState::InFlight { request_hash: String::new() }) };
        let stored_method: String = column(&row, "method")?;
        let hash: String = column(&row, "request_hash")?;
        // The same key on another method is another request.
        let hash = if stored_method == claim.method { hash } else { format!("{stored_method}:{hash}") };
        Ok(match column::<String>(&row, "state")?.as_str() {
            "done" => KeyState::Done {
                request_hash: hash,
                response: column::<Option<Vec<u8>>>(&row, "response")?.unwrap_or_default(),
            },
            _ => KeyState::InFlight { request_hash: hash },
        })
    }

    pub(super) async fn key_exists(&self, merchant_id: &str, key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM idempotency_keys WHERE merchant_id = $1 AND key = $2")
            .bind(merchant_id)
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
        Ok(row.is_some())
    }

    pub(super) async fn renew_key_lease(&self, merchant_id: &str, key: &str, until: Millis) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $3 WHERE merchant_id = $1 AND key = $2 AND state = 'in_flight'",
        );
        self.run("renew_key", statement.bind(merchant_id).bind(key).bind(secs(until))).await
    }

    pub(super) async fn sweep_idempotency_keys(
        &self,
        now: Millis,
        purge_before: Millis,
    ) -> Result<(u64, u64), StoreError> {
        let released = sqlx::query(
            "UPDATE idempotency_keys SET state = 'released', locked_until = 0 WHERE state = 'in_flight' \
             AND locked_until < $1",
        )
        .bind(secs(now))
        .execute(self.pool())
        .await
        .map_err(classify)?;
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(secs(purge_before))
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok((released.rows_affected(), purged.rows_affected()))
    }
}
