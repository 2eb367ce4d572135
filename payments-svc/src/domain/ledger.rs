//! The transaction ledger's lines: every payment operation (PA DB CP RV RF)
//! and every event in a card token's life (RG DR TK DT DL), with ids, amounts,
//! result, token reference and masked card; never a card number.
use common::clock::Millis;
use strum::{EnumString, IntoStaticStr};

use super::payment::{MaskedCard, Outcome, PaymentType};

/// What a ledger line records: a payment operation, or an event in a card
/// token's life (OPP's RG/DR for registrations, Till's TK/DT/DL for omni tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, EnumString)]
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
