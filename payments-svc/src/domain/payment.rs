//! The payment record: PA, DB, CP, RV, RF; its result (OPP code); the masked
//! card; the standing instruction; and the amounts the state machine tracks
//! (captured, refunded, reversed), which the store also guards.
use common::clock::Millis;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Approved,
    Declined,
    /// The acquirer did not answer in time: never reported as approved.
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approved" => Self::Approved,
            "declined" => Self::Declined,
            "timed_out" => Self::TimedOut,
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
    /// The token the payment used or created (single-use, registration or omni).
    pub token: Option<String>,
    pub registration_id: Option<String>,
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
}

/// One line of the transaction ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    /// PA DB CP RV RF RG DR TK DT DL.
    pub transaction_type: &'static str,
    pub payment_id: String,
    pub reference_id: String,
    pub amount: i64,
    pub currency: String,
    pub result: Outcome,
    pub token: String,
    pub card: MaskedCard,
    pub created_at: Millis,
}

/// A ledger entry as read back (its type as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub seq: i64,
    pub entry: LedgerEntry,
    pub transaction_type: String,
}
