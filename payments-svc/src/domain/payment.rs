//! The payment record: PA, DB, CP, RV, RF; its result (OPP code); the masked
//! card; the standing instruction; and the amounts the state machine tracks
//! (captured, refunded, reversed), which the store also guards.
use common::clock::Millis;
use common::text::Text;
use strum::{EnumString, IntoStaticStr};

pub use super::ledger::{LedgerEntry, LedgerKind, LedgerRecord};
// The scope and the masked card are the vault contract's: one definition.
pub use vault_api::{MaskedCard, Scope};

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

    /// Whether this payment is merchant-initiated (a MIT standing instruction).
    pub fn merchant_initiated(&self) -> bool {
        self.standing_instruction.as_ref().is_some_and(|si| si.source == SiSource::Mit)
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
