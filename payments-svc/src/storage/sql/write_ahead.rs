//! The statements of write-ahead work on SQL: a payment's bindings, the
//! two durable writes of a payment's life (`begin_payment`: written ahead with
//! its reservation; `advance_payment`: moved to its next recovery point with
//! its ledger lines and release), run by the group committer in a transaction
//! shared with other payments' (or, when a batch of them is one statement —
//! `begun_in_one_statement`, `moved_in_one_statement` — as that statement
//! alone), the conditional updates that take and release
//! a follow-up's reservation, the leases the reconciler takes over, and
//! idempotency keys with leases. Every guard is a condition of the statement
//! itself, so two workers racing on one payment or key can never both succeed.
use common::clock::Millis;
use common::database::batched::{distinct, json, on_postgres};
use common::database::{classify, column, to_secs as secs};
use common::text::Text;
use futures::future::BoxFuture;
use sqlx::AnyConnection;

use super::rows::{LedgerRow, Query, ledger_insert, payment};
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
        let inserted = bind_payment(sqlx::query(INSERT.as_str()), PaymentRow::of(p, *lease_until))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        if inserted.rows_affected() == 0 {
            return existing(p, &mut *conn).await;
        }
        reserve(p, *reservation, &mut *conn).await
    })
}

/// Writes payments ahead (`begin_payment` each) with one insert on
/// PostgreSQL: `INSERT … SELECT … FROM json_to_recordset … ON CONFLICT DO
/// NOTHING RETURNING id`; an id already stored is then read as
/// `begin_payment` reads it, and a follow-up's reservation is taken (or its
/// insert undone) one by one. On SQLite, or when two payments of a batch
/// share an id, each runs as `begin_payment`.
pub(super) fn begin_payments<'c>(
    batch: &'c [&'c Ahead],
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Vec<Begun>, StoreError>> {
    Box::pin(async move {
        if !inserted_as_one(batch, conn) {
            let mut begun = Vec::with_capacity(batch.len());
            for ahead in batch {
                begun.push(begin_payment(ahead, &mut *conn).await?);
            }
            return Ok(begun);
        }
        static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let types = PAYMENT_COLUMN_TYPES.iter().map(|(c, t)| format!("{c} {t}")).collect::<Vec<_>>().join(", ");
            format!(
                "INSERT INTO payments ({COLUMNS}) SELECT {COLUMNS} FROM json_to_recordset($1::json) AS x({types}) \
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            )
        });
        let rows: Vec<PaymentRow<'_>> =
            batch.iter().map(|(p, _, lease_until)| PaymentRow::of(p, *lease_until)).collect();
        let inserted: Vec<String> =
            sqlx::query_scalar(INSERT.as_str()).bind(json(&rows)?).fetch_all(&mut *conn).await.map_err(classify)?;
        let inserted: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
        let mut begun = Vec::with_capacity(batch.len());
        for (p, reservation, _) in batch.iter() {
            begun.push(if inserted.contains(p.id.as_str()) {
                reserve(p, *reservation, &mut *conn).await?
            } else {
                existing(p, &mut *conn).await?
            });
        }
        Ok(begun)
    })
}

/// Whether `begin_payments` inserts `batch` with its one multi-row insert:
/// on PostgreSQL, each payment a different id.
fn inserted_as_one(batch: &[&Ahead], conn: &AnyConnection) -> bool {
    on_postgres(conn) && distinct(batch.iter().map(|(p, ..)| p.id.as_str()))
}

/// Whether `begin_payments` writes `batch` with one statement: its insert,
/// when no payment of it takes a reservation (what follows the insert then
/// only reads: the payments whose ids were taken).
pub(super) fn begun_in_one_statement(batch: &[&Ahead], conn: &AnyConnection) -> bool {
    inserted_as_one(batch, conn) && batch.iter().all(|(p, reservation, _)| taken(p, *reservation).is_none())
}

/// The reservation `p` takes on its original, if it takes one.
fn taken(p: &Payment, reservation: Option<Reservation>) -> Option<(Reservation, &str)> {
    reservation.zip(p.reference_id.as_deref())
}

/// The payment stored under `p`'s id (which `p`'s insert found taken).
async fn existing(p: &Payment, conn: &mut AnyConnection) -> Result<Begun, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1");
    let row = sqlx::query(&sql).bind(p.id.as_str()).fetch_one(&mut *conn).await.map_err(classify)?;
    let existing = payment(&row)?;
    // Another merchant's payment with this id is not this request's.
    if existing.merchant_id != p.merchant_id || existing.livemode != p.livemode {
        return Ok(Begun::Refused);
    }
    Ok(Begun::Existing(Box::new(existing)))
}

/// Takes the reservation of `p`, just inserted, on its original; one the
/// original cannot give undoes the insert.
async fn reserve(p: &Payment, reservation: Option<Reservation>, conn: &mut AnyConnection) -> Result<Begun, StoreError> {
    let Some((reservation, original)) = taken(p, reservation) else {
        return Ok(Begun::New);
    };
    let reserved = sqlx::query(reserve_sql(reservation))
        .bind(original)
        .bind(amount(reservation))
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    if reserved.rows_affected() == 1 {
        return Ok(Begun::New);
    }
    sqlx::query("DELETE FROM payments WHERE id = $1")
        .bind(p.id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(Begun::Refused)
}

/// The SQL type of each of `COLUMNS`, in its order.
const PAYMENT_COLUMN_TYPES: [(&str, &str); 42] = [
    ("id", "text"),
    ("merchant_id", "text"),
    ("livemode", "bigint"),
    ("payment_type", "text"),
    ("reference_id", "text"),
    ("amount", "bigint"),
    ("currency", "text"),
    ("status", "text"),
    ("result_code", "text"),
    ("result_description", "text"),
    ("token", "text"),
    ("registration_id", "text"),
    ("omni_token", "text"),
    ("card_brand", "text"),
    ("card_bin", "text"),
    ("card_last4", "text"),
    ("card_exp_month", "bigint"),
    ("card_exp_year", "bigint"),
    ("card_name", "text"),
    ("si_mode", "text"),
    ("si_type", "text"),
    ("si_source", "text"),
    ("si_initial_id", "text"),
    ("captured_amount", "bigint"),
    ("refunded_amount", "bigint"),
    ("reversed", "bigint"),
    ("acquirer_reference", "text"),
    ("customer_id", "text"),
    ("merchant_transaction_id", "text"),
    ("description", "text"),
    ("created_at", "bigint"),
    ("recovery_point", "text"),
    ("source_kind", "text"),
    ("tokenize", "text"),
    ("account_last4", "text"),
    ("account_country", "text"),
    ("account_bank_code", "text"),
    ("account_holder", "text"),
    ("account_bic", "text"),
    ("mandate_id", "text"),
    ("mandate_signed", "text"),
    ("lease_until", "bigint"),
];

/// A payment's columns, as `begin_payment` binds them and `begin_payments` sends them.
#[derive(Clone, Copy, serde::Serialize)]
struct PaymentRow<'a> {
    id: &'a str,
    merchant_id: &'a str,
    livemode: i64,
    payment_type: &'a str,
    reference_id: Option<&'a str>,
    amount: i64,
    currency: &'a str,
    status: &'a str,
    result_code: &'a str,
    result_description: &'a str,
    token: Option<&'a str>,
    registration_id: Option<&'a str>,
    omni_token: Option<&'a str>,
    #[serde(flatten)]
    card: CardColumns<'a>,
    si_mode: Option<&'a str>,
    si_type: Option<&'a str>,
    si_source: Option<&'a str>,
    si_initial_id: Option<&'a str>,
    captured_amount: i64,
    refunded_amount: i64,
    reversed: i64,
    acquirer_reference: Option<&'a str>,
    customer_id: &'a str,
    merchant_transaction_id: &'a str,
    description: &'a str,
    created_at: i64,
    recovery_point: &'a str,
    source_kind: &'a str,
    tokenize: &'a str,
    #[serde(flatten)]
    account: AccountColumns<'a>,
    mandate_id: Option<&'a str>,
    mandate_signed: Option<&'a str>,
    lease_until: i64,
}

impl<'a> PaymentRow<'a> {
    fn of(p: &'a Payment, lease_until: Millis) -> Self {
        let si = p.standing_instruction.as_ref();
        let codes = si.map(|s| s.codes());
        Self {
            id: &p.id,
            merchant_id: &p.merchant_id,
            livemode: i64::from(p.livemode),
            payment_type: p.payment_type.as_str(),
            reference_id: p.reference_id.as_deref(),
            amount: p.amount,
            currency: &p.currency,
            status: p.status.as_str(),
            result_code: &p.result.code,
            result_description: &p.result.description,
            token: p.token.as_deref(),
            registration_id: p.registration_id.as_deref(),
            omni_token: p.omni_token.as_deref(),
            card: CardColumns::of(p.card.as_ref()),
            si_mode: codes.map(|c| c.0),
            si_type: codes.map(|c| c.1),
            si_source: codes.map(|c| c.2),
            si_initial_id: si.map(|s| s.initial_transaction_id.as_str()),
            captured_amount: p.captured_amount,
            refunded_amount: p.refunded_amount,
            reversed: i64::from(p.reversed),
            acquirer_reference: p.acquirer_reference.as_deref(),
            customer_id: &p.customer_id,
            merchant_transaction_id: &p.merchant_transaction_id,
            description: &p.description,
            created_at: secs(p.created_at),
            recovery_point: p.recovery.as_str(),
            source_kind: p.source_kind.map_or("", |k| k.as_str()),
            tokenize: p.tokenize.map_or("", |k| k.as_str()),
            account: AccountColumns::of(p.account.as_ref()),
            mandate_id: p.mandate.as_ref().map(|m| m.id.as_str()),
            mandate_signed: p.mandate.as_ref().map(|m| m.date_of_signature.as_str()),
            lease_until: secs(lease_until),
        }
    }
}

/// A masked card's six columns, null without a card.
#[derive(Clone, Copy, serde::Serialize)]
struct CardColumns<'a> {
    card_brand: Option<&'a str>,
    card_bin: Option<&'a str>,
    card_last4: Option<&'a str>,
    card_exp_month: Option<i64>,
    card_exp_year: Option<i64>,
    card_name: Option<&'a str>,
}

impl<'a> CardColumns<'a> {
    fn of(card: Option<&'a MaskedCard>) -> Self {
        Self {
            card_brand: card.map(|c| c.brand.as_str()),
            card_bin: card.map(|c| c.bin.as_str()),
            card_last4: card.map(|c| c.last4.as_str()),
            card_exp_month: card.map(|c| i64::from(c.exp_month)),
            card_exp_year: card.map(|c| i64::from(c.exp_year)),
            card_name: card.map(|c| c.name.as_str()),
        }
    }
}

/// A masked bank account's five columns, null without one.
#[derive(Clone, Copy, serde::Serialize)]
struct AccountColumns<'a> {
    account_last4: Option<&'a str>,
    account_country: Option<&'a str>,
    account_bank_code: Option<&'a str>,
    account_holder: Option<&'a str>,
    account_bic: Option<&'a str>,
}

impl<'a> AccountColumns<'a> {
    fn of(account: Option<&'a MaskedAccount>) -> Self {
        Self {
            account_last4: account.map(|a| a.last4.as_str()),
            account_country: account.map(|a| a.country.as_str()),
            account_bank_code: account.map(|a| a.bank_code.as_str()),
            account_holder: account.map(|a| a.holder.as_str()),
            account_bic: account.map(|a| a.bic.as_str()),
        }
    }
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
        let r = MoveRow::of(a);
        let moved = sqlx::query(
            "UPDATE payments SET captured_amount = CASE WHEN status = 'pending' THEN $2 ELSE captured_amount END, \
             status = $3, result_code = $4, result_description = $5, registration_id = $6, omni_token = $7, \
             card_brand = $8, card_bin = $9, card_last4 = $10, card_exp_month = $11, card_exp_year = $12, \
             card_name = $13, acquirer_reference = $14, recovery_point = $15, lease_until = $16, \
             account_last4 = $18, account_country = $19, account_bank_code = $20, account_holder = $21, \
             account_bic = $22 WHERE id = $1 AND recovery_point = $17",
        )
        .bind(r.id)
        .bind(r.captured_amount)
        .bind(r.status)
        .bind(r.result_code)
        .bind(r.result_description)
        .bind(r.registration_id)
        .bind(r.omni_token);
        let moved = bind_card(moved, r.card)
            .bind(r.acquirer_reference)
            .bind(r.recovery_point)
            .bind(r.lease_until)
            .bind(r.from_point);
        let moved = bind_account(moved, r.account).execute(&mut *conn).await.map_err(classify)?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        for entry in &a.ledger {
            ledger_insert(entry).execute(&mut *conn).await.map_err(classify)?;
        }
        if let Some((reservation, original)) = release(a) {
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

/// Moves payments (`advance_payment` each) in one statement on PostgreSQL:
/// `ADVANCE_MANY`, an `UPDATE … FROM json_to_recordset` of all the moves with
/// an `INSERT … SELECT` of the ledger lines of those that moved, then the
/// releases (follow-ups only) one by one. A statement per write costs a
/// round trip and a wake-up of the backend each; a batch of twenty moves costs
/// one. On SQLite (one local writer, no round trip), or when two moves of a
/// batch are of one payment (a client's retry racing the reconciler: the
/// second must see the first), each runs as `advance_payment`.
pub(super) fn advance_payments<'c>(
    batch: &'c [&'c Advance],
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<Vec<bool>, StoreError>> {
    Box::pin(async move {
        if !moved_as_one(batch, conn) {
            let mut moved = Vec::with_capacity(batch.len());
            for advance in batch {
                moved.push(advance_payment(advance, &mut *conn).await?);
            }
            return Ok(moved);
        }
        let moves: Vec<MoveRow<'_>> = batch.iter().map(|a| MoveRow::of(a)).collect();
        let lines: Vec<MoveLine<'_>> = batch
            .iter()
            .flat_map(|a| a.ledger.iter().map(|e| MoveLine { move_id: &a.next.id, line: LedgerRow::of(e) }))
            .collect();
        let moved: Vec<String> = sqlx::query_scalar(ADVANCE_MANY.as_str())
            .bind(json(&moves)?)
            .bind(json(&lines)?)
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
        let moved: std::collections::HashSet<&str> = moved.iter().map(String::as_str).collect();
        for a in batch.iter().filter(|a| moved.contains(a.next.id.as_str())) {
            if let Some((reservation, original)) = release(a) {
                sqlx::query(release_sql(reservation))
                    .bind(original)
                    .bind(amount(reservation))
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?;
            }
        }
        Ok(batch.iter().map(|a| moved.contains(a.next.id.as_str())).collect())
    })
}

/// Whether `advance_payments` writes `batch` with one statement
/// (`ADVANCE_MANY`): when none of its moves releases a reservation.
pub(super) fn moved_in_one_statement(batch: &[&Advance], conn: &AnyConnection) -> bool {
    moved_as_one(batch, conn) && batch.iter().all(|a| release(a).is_none())
}

/// Whether `advance_payments` moves `batch` with `ADVANCE_MANY`: on
/// PostgreSQL, each move of a different payment.
fn moved_as_one(batch: &[&Advance], conn: &AnyConnection) -> bool {
    on_postgres(conn) && distinct(batch.iter().map(|a| a.next.id.as_str()))
}

/// The reservation a move gives back to its original, if it gives one.
fn release(a: &Advance) -> Option<(Reservation, &str)> {
    a.release.zip(a.next.reference_id.as_deref())
}

/// A ledger line of the move of payment `move_id`, as `ADVANCE_MANY` reads it.
#[derive(serde::Serialize)]
struct MoveLine<'a> {
    move_id: &'a str,
    #[serde(flatten)]
    line: LedgerRow<'a>,
}

/// `MOVE_MANY` of `$1` and, in the same statement, the ledger lines of `$2`
/// (a JSON array of `MoveLine`, in its order) of the payments that moved.
static ADVANCE_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH m AS ({MOVE_MANY}), l AS (INSERT INTO transactions (id, merchant_id, livemode, transaction_type, \
         payment_id, reference_id, amount, currency, result_code, result_description, token, card_brand, card_bin, \
         card_last4, created_at) SELECT x.id, x.merchant_id, x.livemode, x.transaction_type, x.payment_id, \
         x.reference_id, x.amount, x.currency, x.result_code, x.result_description, x.token, x.card_brand, \
         x.card_bin, x.card_last4, x.created_at FROM ROWS FROM (json_to_recordset($2::json) AS (move_id text, \
         id text, merchant_id text, livemode bigint, transaction_type text, payment_id text, reference_id text, \
         amount bigint, currency text, result_code text, result_description text, token text, card_brand text, \
         card_bin text, card_last4 text, created_at bigint)) WITH ORDINALITY AS x \
         WHERE x.move_id IN (SELECT id FROM m) ORDER BY x.ordinality) SELECT id FROM m"
    )
});

/// `advance_payment`'s update for every row of `$1`, a JSON array of `MoveRow`.
const MOVE_MANY: &str = "UPDATE payments AS p SET \
    captured_amount = CASE WHEN p.status = 'pending' THEN x.captured_amount ELSE p.captured_amount END, \
    status = x.status, result_code = x.result_code, result_description = x.result_description, \
    registration_id = x.registration_id, omni_token = x.omni_token, card_brand = x.card_brand, \
    card_bin = x.card_bin, card_last4 = x.card_last4, card_exp_month = x.card_exp_month, \
    card_exp_year = x.card_exp_year, card_name = x.card_name, acquirer_reference = x.acquirer_reference, \
    recovery_point = x.recovery_point, lease_until = x.lease_until, account_last4 = x.account_last4, \
    account_country = x.account_country, account_bank_code = x.account_bank_code, \
    account_holder = x.account_holder, account_bic = x.account_bic \
    FROM json_to_recordset($1::json) AS x(id text, captured_amount bigint, status text, result_code text, \
    result_description text, registration_id text, omni_token text, card_brand text, card_bin text, \
    card_last4 text, card_exp_month bigint, card_exp_year bigint, card_name text, acquirer_reference text, \
    recovery_point text, lease_until bigint, from_point text, account_last4 text, account_country text, \
    account_bank_code text, account_holder text, account_bic text) \
    WHERE p.id = x.id AND p.recovery_point = x.from_point RETURNING p.id";

/// A move's values, as `advance_payment` binds them and `MOVE_MANY` reads them.
#[derive(Clone, Copy, serde::Serialize)]
struct MoveRow<'a> {
    id: &'a str,
    captured_amount: i64,
    status: &'a str,
    result_code: &'a str,
    result_description: &'a str,
    registration_id: Option<&'a str>,
    omni_token: Option<&'a str>,
    #[serde(flatten)]
    card: CardColumns<'a>,
    acquirer_reference: Option<&'a str>,
    recovery_point: &'a str,
    lease_until: i64,
    from_point: &'a str,
    #[serde(flatten)]
    account: AccountColumns<'a>,
}

impl<'a> MoveRow<'a> {
    fn of(a: &'a Advance) -> Self {
        let next = &a.next;
        Self {
            id: &next.id,
            captured_amount: next.captured_amount,
            status: next.status.as_str(),
            result_code: &next.result.code,
            result_description: &next.result.description,
            registration_id: next.registration_id.as_deref(),
            omni_token: next.omni_token.as_deref(),
            card: CardColumns::of(next.card.as_ref()),
            acquirer_reference: next.acquirer_reference.as_deref(),
            recovery_point: next.recovery.as_str(),
            lease_until: if next.recovery == RecoveryPoint::Finished { 0 } else { secs(a.lease_until) },
            from_point: a.from.as_str(),
            account: AccountColumns::of(next.account.as_ref()),
        }
    }
}

/// Binds a payment's columns, in `COLUMNS` order.
fn bind_payment<'q>(query: Query<'q>, r: PaymentRow<'q>) -> Query<'q> {
    let query = query
        .bind(r.id)
        .bind(r.merchant_id)
        .bind(r.livemode)
        .bind(r.payment_type)
        .bind(r.reference_id)
        .bind(r.amount)
        .bind(r.currency)
        .bind(r.status)
        .bind(r.result_code)
        .bind(r.result_description)
        .bind(r.token)
        .bind(r.registration_id)
        .bind(r.omni_token);
    let query = bind_card(query, r.card)
        .bind(r.si_mode)
        .bind(r.si_type)
        .bind(r.si_source)
        .bind(r.si_initial_id)
        .bind(r.captured_amount)
        .bind(r.refunded_amount)
        .bind(r.reversed)
        .bind(r.acquirer_reference)
        .bind(r.customer_id)
        .bind(r.merchant_transaction_id)
        .bind(r.description)
        .bind(r.created_at)
        .bind(r.recovery_point)
        .bind(r.source_kind)
        .bind(r.tokenize);
    bind_account(query, r.account).bind(r.mandate_id).bind(r.mandate_signed).bind(r.lease_until)
}

/// Binds a masked bank account's five columns (last4, country, bank code,
/// holder, BIC).
fn bind_account<'q>(query: Query<'q>, a: AccountColumns<'q>) -> Query<'q> {
    query
        .bind(a.account_last4)
        .bind(a.account_country)
        .bind(a.account_bank_code)
        .bind(a.account_holder)
        .bind(a.account_bic)
}

/// Binds a masked card's six columns (brand, bin, last4, expiry month and
/// year, name).
fn bind_card<'q>(query: Query<'q>, c: CardColumns<'q>) -> Query<'q> {
    query
        .bind(c.card_brand)
        .bind(c.card_bin)
        .bind(c.card_last4)
        .bind(c.card_exp_month)
        .bind(c.card_exp_year)
        .bind(c.card_name)
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
