//! The payment record: PA, DB, CP, RV, RF; its result (OPP code); the masked
//! card; the standing instruction; and the amounts the state machine tracks
//! (captured, refunded, reversed), which the store also guards.
use common::clock::Millis;

pub use super::ledger::{LedgerEntry, LedgerKind, LedgerRecord};
// The scope and the masked card are the vault contract's: one definition.
pub use vault_api::{MaskedCard, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentType {
    PA,
    DB,
    CP,
    RV,
    RF,
}

impl PaymentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PA => "PA",
            Self::DB => "DB",
            Self::CP => "CP",
            Self::RV => "RV",
            Self::RF => "RF",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PA" => Self::PA,
            "DB" => Self::DB,
            "CP" => Self::CP,
            "RV" => Self::RV,
            "RF" => Self::RF,
            _ => return None,
        })
    }
}

/// Where a payment or follow-up stands. `Pending` means its outcome is not
/// known yet (in progress, or the acquirer did not answer): never approved,
/// never declined, and a pending CP or RF keeps its amount reserved until the
/// reconciler or a retry resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Declined,
    /// It did not happen: the acquirer never processed it.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "declined" => Self::Declined,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// The last step of a payment's work that is done, written atomically with
/// its effect (docs/PAYMENTS.md). A resumed payment goes on from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

impl RecoveryPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::CardObtained => "card_obtained",
            Self::AcquirerAnswered => "acquirer_answered",
            Self::Tokenized => "tokenized",
            Self::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "started" => Self::Started,
            "card_obtained" => Self::CardObtained,
            "acquirer_answered" => Self::AcquirerAnswered,
            "tokenized" => Self::Tokenized,
            "finished" => Self::Finished,
            _ => return None,
        })
    }
}

/// What an initial payment was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Card,
    SingleUse,
    Registration,
    Omni,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::SingleUse => "single_use",
            Self::Registration => "registration",
            Self::Omni => "omni",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "card" => Self::Card,
            "single_use" => Self::SingleUse,
            "registration" => Self::Registration,
            "omni" => Self::Omni,
            _ => return None,
        })
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiMode {
    Initial,
    Repeated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiType {
    Unscheduled,
    Recurring,
    Installment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        let mode = match self.mode {
            SiMode::Initial => "INITIAL",
            SiMode::Repeated => "REPEATED",
        };
        let kind = match self.kind {
            SiType::Unscheduled => "UNSCHEDULED",
            SiType::Recurring => "RECURRING",
            SiType::Installment => "INSTALLMENT",
        };
        let source = match self.source {
            SiSource::Cit => "CIT",
            SiSource::Mit => "MIT",
        };
        (mode, kind, source)
    }

    pub fn from_codes(mode: &str, kind: &str, source: &str, initial: String) -> Option<Self> {
        Some(Self {
            mode: match mode {
                "INITIAL" => SiMode::Initial,
                "REPEATED" => SiMode::Repeated,
                _ => return None,
            },
            kind: match kind {
                "UNSCHEDULED" => SiType::Unscheduled,
                "RECURRING" => SiType::Recurring,
                "INSTALLMENT" => SiType::Installment,
                _ => return None,
            },
            source: match source {
                "CIT" => SiSource::Cit,
                "MIT" => SiSource::Mit,
                _ => return None,
            },
            initial_transaction_id: initial,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub payment_type: PaymentType,
    pub reference_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub status: Status,
    pub result: Outcome,
    /// The token the payment was made over (single-use, registration or omni).
    pub token: Option<String>,
    /// The registration it was made over or created.
    pub registration_id: Option<String>,
    /// The omni token it was made over or created.
    pub omni_token: Option<String>,
    pub card: Option<MaskedCard>,
    pub standing_instruction: Option<StandingInstruction>,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub reversed: bool,
    pub acquirer_reference: Option<String>,
    pub customer_id: String,
    pub merchant_transaction_id: String,
    pub description: String,
    pub created_at: Millis,
    pub recovery: RecoveryPoint,
    /// Of an initial payment: what it was made over.
    pub source_kind: Option<SourceKind>,
    /// Of an initial payment: the durable token to create once approved.
    pub tokenize: Option<vault_api::TokenKind>,
}

impl Payment {
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
