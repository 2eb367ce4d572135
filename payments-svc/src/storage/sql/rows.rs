//! How payments and ledger lines map to rows: decoding (a value this code
//! does not know is `Corrupt`), the ledger insert and its bindings, and the
//! texts a write must check before SQLite stores them.
use common::text::Text;
use sqlx::any::AnyRow;

use common::database::{column, from_secs, to_secs as secs};

use crate::domain::payment::{
    LedgerEntry, LedgerKind, LedgerRecord, Mandate, MaskedAccount, MaskedCard, Outcome, Payment, PaymentType,
    RecoveryPoint, SourceKind, StandingInstruction, Status,
};
use crate::domain::store::StoreError;
use vault_api::TokenKind;

pub(super) fn payment(row: &AnyRow) -> Result<Payment, StoreError> {
    let bad = || StoreError::Corrupt("unknown value in a payments row".into());
    let brand: Option<String> = column(row, "card_brand")?;
    let card = match brand {
        Some(brand) => Some(MaskedCard {
            brand,
            bin: column::<Option<String>>(row, "card_bin")?.unwrap_or_default(),
            last4: column::<Option<String>>(row, "card_last4")?.unwrap_or_default(),
            exp_month: column::<Option<i64>>(row, "card_exp_month")?.unwrap_or_default() as u8,
            exp_year: column::<Option<i64>>(row, "card_exp_year")?.unwrap_or_default() as u16,
            name: column::<Option<String>>(row, "card_name")?.unwrap_or_default(),
        }),
        None => None,
    };
    let text = |name| column::<Option<String>>(row, name).map(Option::unwrap_or_default);
    let account = match column::<Option<String>>(row, "account_last4")? {
        Some(last4) => Some(MaskedAccount {
            brand: common::bank::BRAND.into(),
            last4,
            country: text("account_country")?,
            bank_code: text("account_bank_code")?,
            holder: text("account_holder")?,
            bic: text("account_bic")?,
        }),
        None => None,
    };
    let mandate = match column::<Option<String>>(row, "mandate_id")? {
        Some(id) => Some(Mandate { id, date_of_signature: text("mandate_signed")? }),
        None => None,
    };
    let si = match column::<Option<String>>(row, "si_mode")? {
        Some(mode) => StandingInstruction::from_codes(
            &mode,
            &column::<Option<String>>(row, "si_type")?.unwrap_or_default(),
            &column::<Option<String>>(row, "si_source")?.unwrap_or_default(),
            column::<Option<String>>(row, "si_initial_id")?.unwrap_or_default(),
        ),
        None => None,
    };
    Ok(Payment {
        id: column(row, "id")?,
        merchant_id: column(row, "merchant_id")?,
        livemode: column::<i64>(row, "livemode")? != 0,
        payment_type: PaymentType::parse(&column::<String>(row, "payment_type")?).ok_or_else(bad)?,
        reference_id: column(row, "reference_id")?,
        amount: column(row, "amount")?,
        currency: column(row, "currency")?,
        status: Status::parse(&column::<String>(row, "status")?).ok_or_else(bad)?,
        result: Outcome { code: column(row, "result_code")?, description: column(row, "result_description")? },
        token: column(row, "token")?,
        registration_id: column(row, "registration_id")?,
        omni_token: column(row, "omni_token")?,
        card,
        account,
        mandate,
        standing_instruction: si,
        captured_amount: column(row, "captured_amount")?,
        refunded_amount: column(row, "refunded_amount")?,
        reversed: column::<i64>(row, "reversed")? != 0,
        acquirer_reference: column(row, "acquirer_reference")?,
        customer_id: column(row, "customer_id")?,
        merchant_transaction_id: column(row, "merchant_transaction_id")?,
        description: column(row, "description")?,
        created_at: from_secs(column::<i64>(row, "created_at")?),
        recovery: RecoveryPoint::parse(&column::<String>(row, "recovery_point")?).ok_or_else(bad)?,
        source_kind: optional(&column::<String>(row, "source_kind")?, SourceKind::parse).ok_or_else(bad)?,
        tokenize: optional(&column::<String>(row, "tokenize")?, TokenKind::parse).ok_or_else(bad)?,
    })
}

/// An optional enum stored as text, empty for none; `None` if the text is unknown.
fn optional<T>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Option<T>> {
    if text.is_empty() { Some(None) } else { parse(text).map(Some) }
}

pub(super) fn ledger_record(row: &AnyRow) -> Result<LedgerRecord, StoreError> {
    let kind: String = column(row, "transaction_type")?;
    let transaction_type = LedgerKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt("unknown ledger kind in a transactions row".into()))?;
    Ok(LedgerRecord {
        seq: column(row, "seq")?,
        entry: LedgerEntry {
            id: column(row, "id")?,
            merchant_id: column(row, "merchant_id")?,
            livemode: column::<i64>(row, "livemode")? != 0,
            transaction_type,
            payment_id: column(row, "payment_id")?,
            reference_id: column(row, "reference_id")?,
            amount: column(row, "amount")?,
            currency: column(row, "currency")?,
            result: Outcome { code: column(row, "result_code")?, description: column(row, "result_description")? },
            token: column(row, "token")?,
            card: MaskedCard {
                brand: column(row, "card_brand")?,
                bin: column(row, "card_bin")?,
                last4: column(row, "card_last4")?,
                ..MaskedCard::default()
            },
            created_at: from_secs(column::<i64>(row, "created_at")?),
        },
    })
}

const LEDGER_INSERT_HEAD: &str = "INSERT INTO transactions (id, merchant_id, livemode, transaction_type, payment_id, \
    reference_id, amount, currency, result_code, result_description, token, card_brand, card_bin, card_last4, \
    created_at) VALUES";

pub(super) type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(super) fn ledger_insert(e: &LedgerEntry) -> Query<'_> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{LEDGER_INSERT_HEAD} ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
    });
    bind_ledger(sqlx::query(SQL.as_str()), LedgerRow::of(e))
}

/// Binds one ledger line's 15 values, in column order.
fn bind_ledger<'q>(query: Query<'q>, r: LedgerRow<'q>) -> Query<'q> {
    query
        .bind(r.id)
        .bind(r.merchant_id)
        .bind(r.livemode)
        .bind(r.transaction_type)
        .bind(r.payment_id)
        .bind(r.reference_id)
        .bind(r.amount)
        .bind(r.currency)
        .bind(r.result_code)
        .bind(r.result_description)
        .bind(r.token)
        .bind(r.card_brand)
        .bind(r.card_bin)
        .bind(r.card_last4)
        .bind(r.created_at)
}

/// A ledger line's values, as `ledger_insert` binds them and the batched
/// insert of `write_ahead` sends them.
#[derive(Clone, Copy, serde::Serialize)]
pub(super) struct LedgerRow<'a> {
    id: &'a str,
    merchant_id: &'a str,
    livemode: i64,
    transaction_type: &'a str,
    payment_id: &'a str,
    reference_id: &'a str,
    amount: i64,
    currency: &'a str,
    result_code: &'a str,
    result_description: &'a str,
    token: &'a str,
    card_brand: &'a str,
    card_bin: &'a str,
    card_last4: &'a str,
    created_at: i64,
}

impl<'a> LedgerRow<'a> {
    pub(super) fn of(e: &'a LedgerEntry) -> Self {
        Self {
            id: &e.id,
            merchant_id: &e.merchant_id,
            livemode: i64::from(e.livemode),
            transaction_type: e.transaction_type.as_str(),
            payment_id: &e.payment_id,
            reference_id: &e.reference_id,
            amount: e.amount,
            currency: &e.currency,
            result_code: &e.result.code,
            result_description: &e.result.description,
            token: &e.token,
            card_brand: &e.card.brand,
            card_bin: &e.card.bin,
            card_last4: &e.card.last4,
            created_at: secs(e.created_at),
        }
    }
}

/// The texts of a payment a write stores.
pub(super) fn payment_texts(p: &Payment) -> impl Iterator<Item = &str> {
    let card = p.card.iter().flat_map(|c| [c.brand.as_str(), &c.bin, &c.last4, &c.name]);
    let si = p.standing_instruction.iter().map(|s| s.initial_transaction_id.as_str());
    let account = p.account.iter().flat_map(|a| [a.last4.as_str(), &a.country, &a.bank_code, &a.holder, &a.bic]);
    let mandate = p.mandate.iter().flat_map(|m| [m.id.as_str(), &m.date_of_signature]);
    let optional = [&p.reference_id, &p.token, &p.registration_id, &p.omni_token, &p.acquirer_reference];
    [p.id.as_str(), &p.merchant_id, &p.currency, &p.result.code, &p.result.description, &p.customer_id]
        .into_iter()
        .chain([p.merchant_transaction_id.as_str(), &p.description])
        .chain(optional.into_iter().filter_map(|t| t.as_deref()))
        .chain(card)
        .chain(si)
        .chain(account)
        .chain(mandate)
}

/// The texts of a ledger line a write stores.
pub(super) fn ledger_texts(e: &LedgerEntry) -> [&str; 12] {
    [
        &e.id,
        &e.merchant_id,
        &e.payment_id,
        &e.reference_id,
        &e.currency,
        &e.result.code,
        &e.result.description,
        &e.token,
        &e.card.brand,
        &e.card.bin,
        &e.card.last4,
        e.transaction_type.as_str(),
    ]
}
