//! The payment record: PA, DB, CP, RV, RF; its result (OPP code); the masked
//! card or bank account (with its SEPA mandate); the standing instruction; and
//! the amounts the state machine tracks (captured, refunded, reversed), which
//! the store also guards.
use common::clock::Millis;
use common::text::Text;
use strum::{EnumString, IntoStaticStr};

pub use super::ledger::{LedgerEntry, LedgerKind, LedgerRecord};
// The scope and the masked card are the vault contract's: one definition.
pub use vault_api::{MaskedAccount, MaskedCard, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, EnumString)]
pub enum PaymentType {
    PA,
    DB,
    CP,
    RV,
    RF,
}

/// Where a payment or follow-up stands. `Pending` means its outcome is not
/// known yet (in progress, or the acquirer did not answer): never approved,
/// never declined, and a pending CP or RF keeps its amount reserved until the
/// reconciler or a retry resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Declined,
    /// It did not happen: the acquirer never processed it.
    Failed,
}

/// The last step of a payment's work that is done, written atomically with
/// its effect (docs/PAYMENTS.md). A resumed payment goes on from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, IntoStaticStr, EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum RecoveryPoint {
    /// Recorded pending, before the vault or the acquirer is asked.
    Started,
    /// The card is known (its masked form recorded) and the acquirer may have
    /// been asked: from here on, a lost answer is learnt by inquiry.
    CardObtained,
    /// The acquirer's definitive answer is recorded with its ledger lines.
    AcquirerAnswered,
    /// The durable token asked for is created (or could not be).
    Tokenized,
    Finished,
}

/// What an initial payment was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum SourceKind {
    Card,
    SingleUse,
    Registration,
    Omni,
    /// A raw bank account (SEPA direct debit).
    Account,
}

/// An OPP result as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: String,
    pub description: String,
}

impl From<common::result_code::ResultCode> for Outcome {
    fn from(r: common::result_code::ResultCode) -> Self {
        Self { code: r.code.into(), description: r.description.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum SiMode {
    Initial,
    Repeated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum SiType {
    Unscheduled,
    Recurring,
    Installment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum SiSource {
    Cit,
    Mit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingInstruction {
    pub mode: SiMode,
    pub kind: SiType,
    pub source: SiSource,
    pub initial_transaction_id: String,
}

impl StandingInstruction {
    pub fn codes(&self) -> (&'static str, &'static str, &'static str) {
        (self.mode.as_str(), self.kind.as_str(), self.source.as_str())
    }

    pub fn from_codes(mode: &str, kind: &str, source: &str, initial: String) -> Option<Self> {
        Some(Self {
            mode: SiMode::parse(mode)?,
            kind: SiType::parse(kind)?,
            source: SiSource::parse(source)?,
            initial_transaction_id: initial,
        })
    }
}

/// A SEPA direct-debit mandate as a DB over a bank account carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate {
    /// The mandate reference: 1–35 characters of SEPA's Latin set.
    pub id: String,
    /// `YYYY-MM-DD`, not after the payment's day.
    pub date_of_signature: String,
}

/// The longest mandate reference SEPA carries (`MndtId`).
pub const MAX_MANDATE_ID: usize = 35;

impl Mandate {
    /// Validates a mandate given at `now`: its reference in SEPA's character
    /// set, its date of signature an ISO 8601 calendar date not in the future.
    pub fn parse(id: &str, date_of_signature: &str, now: Millis) -> Result<Self, &'static str> {
        let sepa = |c: char| c.is_ascii_alphanumeric() || "/-?:().,'+ ".contains(c);
        if id.trim().is_empty() || id.len() > MAX_MANDATE_ID || !id.chars().all(sepa) || id.starts_with("//") {
            return Err(
                "mandate.id must be 1 to 35 letters, digits or / - ? : ( ) . , ' + and spaces, not starting //",
            );
        }
        if common::field::check(id).is_err() {
            return Err("mandate.id must not hold a card number or an IBAN");
        }
        let bad = "mandate.date_of_signature must be an ISO 8601 date (YYYY-MM-DD)";
        let date = iso_date(date_of_signature).ok_or(bad)?;
        let today = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000)).map(|t| t.date());
        if today.is_ok_and(|today| date > today) {
            return Err("mandate.date_of_signature is in the future");
        }
        Ok(Self { id: id.into(), date_of_signature: date_of_signature.into() })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// `pay_…`; for a call with an idempotency key, derived from the key.
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub payment_type: PaymentType,
    /// Of a follow-up: the payment it captures, reverses or refunds.
    pub reference_id: Option<String>,
    /// In minor units of `currency` (ISO 4217).
    pub amount: i64,
    pub currency: String,
    pub status: Status,
    /// The OPP result code and its description.
    pub result: Outcome,
    /// The token the payment was made over (single-use, registration or omni).
    pub token: Option<String>,
    /// The registration it was made over or created.
    pub registration_id: Option<String>,
    /// The omni token it was made over or created.
    pub omni_token: Option<String>,
    /// What is known of the card once the vault has given it: never its number.
    pub card: Option<MaskedCard>,
    /// What is shown of the bank account of a SEPA direct debit: never the IBAN.
    pub account: Option<MaskedAccount>,
    /// The SEPA mandate of a direct debit over a bank account.
    pub mandate: Option<Mandate>,
    pub standing_instruction: Option<StandingInstruction>,
    /// Of a PA: the amount its captures hold (approved or pending); of a DB or
    /// CP: its amount once approved, what refunds may take from.
    pub captured_amount: i64,
    /// What its refunds hold (approved or pending).
    pub refunded_amount: i64,
    /// Of a PA: a reversal holds or has taken it.
    pub reversed: bool,
    /// The acquirer's reference once it has answered.
    pub acquirer_reference: Option<String>,
    /// The merchant's texts, checked before any side effect.
    pub customer_id: String,
    pub merchant_transaction_id: String,
    pub description: String,
    pub created_at: Millis,
    /// The last step of its work that is done (docs/PAYMENTS.md).
    pub recovery: RecoveryPoint,
    /// Of an initial payment: what it was made over.
    pub source_kind: Option<SourceKind>,
    /// Of an initial payment: the durable token to create once approved.
    pub tokenize: Option<vault_api::TokenKind>,
}

impl Payment {
    /// The merchant and mode the payment belongs to.
    pub fn scope(&self) -> Scope<'_> {
        Scope { merchant_id: &self.merchant_id, livemode: self.livemode }
    }

    /// What the ledger shows of the payer: the masked card, or the account as
    /// a card-shaped line (brand DIRECTDEBIT_SEPA, its last four, the holder).
    pub fn shown(&self) -> MaskedCard {
        match (&self.card, &self.account) {
            (Some(card), _) => card.clone(),
            (None, Some(account)) => account_line(account),
            (None, None) => MaskedCard::default(),
        }
    }

    /// Whether this payment is merchant-initiated (a MIT standing instruction).
    pub fn merchant_initiated(&self) -> bool {
        self.standing_instruction.as_ref().is_some_and(|si| si.source == SiSource::Mit)
    }
}

/// A `YYYY-MM-DD` calendar date.
fn iso_date(text: &str) -> Option<time::Date> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i32> {
        let part = text.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    time::Date::from_calendar_date(digits(0..4)?, month, u8::try_from(digits(8..10)?).ok()?).ok()
}

/// A bank account as a ledger line shows it.
pub fn account_line(account: &MaskedAccount) -> MaskedCard {
    MaskedCard {
        brand: account.brand.clone(),
        bin: String::new(),
        last4: account.last4.clone(),
        exp_month: 0,
        exp_year: 0,
        name: account.holder.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::Mandate;

    #[test]
    fn a_mandate_needs_a_sepa_reference_and_a_past_iso_date() {
        let now = 1_796_256_000_000; // 2026-12-03
        assert!(Mandate::parse("MNDT-2026-0001", "2026-11-30", now).is_ok());
        assert!(Mandate::parse("MNDT-2026-0001", "2026-12-03", now).is_ok());
        for (id, date) in [
            ("", "2026-11-30"),
            ("MNDT_1", "2026-11-30"),
            ("//MNDT", "2026-11-30"),
            (&"x".repeat(36), "2026-11-30"),
            ("MNDT-1", "30.11.2026"),
            ("MNDT-1", "2026-02-30"),
            ("MNDT-1", "2026-12-04"),
            ("MNDT-1", ""),
        ] {
            assert!(Mandate::parse(id, date, now).is_err(), "{id} {date}");
        }
    }
}

/// What a follow-up holds on its original while it is pending: the amount
/// added to the PA's captured amount (CP) or to the DB's or CP's refunded
/// amount (RF), or the PA marked reversed (RV). Taken in the same commit that
/// records the follow-up, released in the commit that records its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Capture(i64),
    Reversal,
    Refund(i64),
}
