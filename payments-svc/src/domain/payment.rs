//! The payment record: PA, DB, CP, RV, RF; its result (OPP code); the masked
//! card; the standing instruction; and the amounts the state machine tracks
//! (captured, refunded, reversed), which the store also guards.
use common::clock::Millis;

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskedCard {
    pub brand: String,
    pub bin: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub name: String,
}

impl MaskedCard {
    pub fn of(card: &common::card::Card) -> Self {
        Self {
            brand: card.number.brand().as_str().into(),
            bin: card.number.bin().into(),
            last4: card.number.last4().into(),
            exp_month: card.expiry.month,
            exp_year: card.expiry.year,
            name: card.name.clone(),
        }
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

/// Whose payments: one merchant in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub merchant_id: &'a str,
    pub livemode: bool,
}

impl<'a> Scope<'a> {
    /// The scope an authenticated key gives.
    pub fn of(caller: &'a common::auth::Caller) -> Self {
        Self { merchant_id: &caller.merchant_id, livemode: caller.livemode }
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

/// What a ledger line records: a payment operation, or an event in a card
/// token's life (OPP's RG/DR for registrations, Till's TK/DT/DL for omni tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    PA,
    DB,
    CP,
    RV,
    RF,
    /// A registration created.
    RG,
    /// A registration deleted (deregistered).
    DR,
    /// An omni token created.
    TK,
    /// An omni token detokenized for a payment.
    DT,
    /// An omni token deleted.
    DL,
}

impl LedgerKind {
    pub const ALL: [Self; 10] =
        [Self::PA, Self::DB, Self::CP, Self::RV, Self::RF, Self::RG, Self::DR, Self::TK, Self::DT, Self::DL];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PA => "PA",
            Self::DB => "DB",
            Self::CP => "CP",
            Self::RV => "RV",
            Self::RF => "RF",
            Self::RG => "RG",
            Self::DR => "DR",
            Self::TK => "TK",
            Self::DT => "DT",
            Self::DL => "DL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The line of a payment operation shares the payment's id.
    pub fn of_payment(payment_type: PaymentType) -> Self {
        match payment_type {
            PaymentType::PA => Self::PA,
            PaymentType::DB => Self::DB,
            PaymentType::CP => Self::CP,
            PaymentType::RV => Self::RV,
            PaymentType::RF => Self::RF,
        }
    }

    pub fn is_payment(self) -> bool {
        matches!(self, Self::PA | Self::DB | Self::CP | Self::RV | Self::RF)
    }
}

/// One line of the transaction ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub transaction_type: LedgerKind,
    pub payment_id: String,
    pub reference_id: String,
    pub amount: i64,
    pub currency: String,
    pub result: Outcome,
    pub token: String,
    pub card: MaskedCard,
    pub created_at: Millis,
}

/// A ledger entry as read back, with its position in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub seq: i64,
    pub entry: LedgerEntry,
}
