//! Conversions between payments' generated messages and domain types.
use common::text::Text;
use prost_types::Timestamp;

use common::bank::BankAccountInput;
use common::card::{Billing, CardInput};
use common::clock::Millis;
use proto::payments::v1 as pb;
use vault_api::StoredToken;

use crate::domain::PaymentError;
use crate::domain::flows::{MandateInput, NewPayment, Source};
use crate::domain::payment::{
    LedgerRecord, Mandate, MaskedAccount, MaskedCard, Outcome, Payment, PaymentType, SiMode, SiSource, SiType,
    StandingInstruction, Status,
};

pub fn timestamp(ms: Millis) -> Option<Timestamp> {
    (ms != 0).then(|| Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 })
}

pub fn millis(ts: Option<&Timestamp>) -> Millis {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Takes the card's strings out of the message, billing address included,
/// ready for `Card::validate`.
pub fn card_input(c: &mut pb::Card) -> CardInput {
    let take = std::mem::take::<String>;
    CardInput {
        number: take(&mut c.number),
        expiration_month: c.expiration_month,
        expiration_year: c.expiration_year,
        name: take(&mut c.name),
        security_code: take(&mut c.security_code),
        billing: Billing {
            city: take(&mut c.city),
            country: take(&mut c.country),
            postal_code: take(&mut c.postal_code),
            state: take(&mut c.state),
            street1: take(&mut c.street1),
            street2: take(&mut c.street2),
            phone_number: take(&mut c.phone_number),
        },
    }
}

/// Takes the account's strings out of the message, ready for `BankAccount::validate`.
pub fn account_input(a: &mut pb::BankAccount) -> BankAccountInput {
    let take = std::mem::take::<String>;
    BankAccountInput {
        iban: take(&mut a.iban),
        bic: take(&mut a.bic),
        holder: take(&mut a.holder),
        country: take(&mut a.country),
    }
}

/// What is shown of a bank account: never the IBAN.
pub fn account(a: &MaskedAccount) -> pb::AccountMetadata {
    pb::AccountMetadata {
        brand: a.brand.clone(),
        last_digits: a.last4.clone(),
        country: a.country.clone(),
        bank_code: a.bank_code.clone(),
        holder: a.holder.clone(),
        bic: a.bic.clone(),
    }
}

fn pb_mandate(m: &Mandate) -> pb::Mandate {
    pb::Mandate { id: m.id.clone(), date_of_signature: m.date_of_signature.clone() }
}

pub fn payment_type(value: i32) -> Result<PaymentType, PaymentError> {
    Ok(match pb::PaymentType::try_from(value) {
        Ok(pb::PaymentType::Pa) => PaymentType::PA,
        Ok(pb::PaymentType::Db) => PaymentType::DB,
        Ok(pb::PaymentType::Cp) => PaymentType::CP,
        Ok(pb::PaymentType::Rv) => PaymentType::RV,
        Ok(pb::PaymentType::Rf) => PaymentType::RF,
        _ => return Err(PaymentError::InvalidArgument("payment_type must be PAYMENT_TYPE_PA or PAYMENT_TYPE_DB")),
    })
}

fn pb_payment_type(t: PaymentType) -> i32 {
    (match t {
        PaymentType::PA => pb::PaymentType::Pa,
        PaymentType::DB => pb::PaymentType::Db,
        PaymentType::CP => pb::PaymentType::Cp,
        PaymentType::RV => pb::PaymentType::Rv,
        PaymentType::RF => pb::PaymentType::Rf,
    }) as i32
}

pub fn standing_instruction(si: Option<&pb::StandingInstruction>) -> Result<Option<StandingInstruction>, PaymentError> {
    let Some(si) = si else { return Ok(None) };
    let invalid = PaymentError::InvalidArgument("standing_instruction needs mode, type and source (no _UNSPECIFIED)");
    let mode = match pb::StandingInstructionMode::try_from(si.mode) {
        Ok(pb::StandingInstructionMode::Initial) => SiMode::Initial,
        Ok(pb::StandingInstructionMode::Repeated) => SiMode::Repeated,
        _ => return Err(invalid),
    };
    let kind = match pb::StandingInstructionType::try_from(si.r#type) {
        Ok(pb::StandingInstructionType::Unscheduled) => SiType::Unscheduled,
        Ok(pb::StandingInstructionType::Recurring) => SiType::Recurring,
        Ok(pb::StandingInstructionType::Installment) => SiType::Installment,
        _ => return Err(invalid),
    };
    let source = match pb::StandingInstructionSource::try_from(si.source) {
        Ok(pb::StandingInstructionSource::Cit) => SiSource::Cit,
        Ok(pb::StandingInstructionSource::Mit) => SiSource::Mit,
        _ => return Err(invalid),
    };
    Ok(Some(StandingInstruction { mode, kind, source, initial_transaction_id: si.initial_transaction_id.clone() }))
}

fn pb_standing_instruction(si: &StandingInstruction) -> pb::StandingInstruction {
    pb::StandingInstruction {
        mode: match si.mode {
            SiMode::Initial => pb::StandingInstructionMode::Initial,
            SiMode::Repeated => pb::StandingInstructionMode::Repeated,
        } as i32,
        r#type: match si.kind {
            SiType::Unscheduled => pb::StandingInstructionType::Unscheduled,
            SiType::Recurring => pb::StandingInstructionType::Recurring,
            SiType::Installment => pb::StandingInstructionType::Installment,
        } as i32,
        source: match si.source {
            SiSource::Cit => pb::StandingInstructionSource::Cit,
            SiSource::Mit => pb::StandingInstructionSource::Mit,
        } as i32,
        initial_transaction_id: si.initial_transaction_id.clone(),
    }
}

/// An initial payment as requested.
pub fn new_payment(r: pb::CreatePaymentRequest) -> Result<NewPayment, PaymentError> {
    Ok(NewPayment {
        payment_type: payment_type(r.payment_type)?,
        amount: r.amount,
        currency: r.currency,
        standing_instruction: standing_instruction(r.standing_instruction.as_ref())?,
        source: source(r.source),
        create_registration: r.create_registration,
        create_omni_token: r.create_omni_token,
        customer_id: r.customer_id,
        merchant_transaction_id: r.merchant_transaction_id,
        description: r.description,
        mandate: r.mandate.map(|m| MandateInput { id: m.id, date_of_signature: m.date_of_signature }),
    })
}

pub fn source(source: Option<pb::create_payment_request::Source>) -> Source {
    use pb::create_payment_request::Source as S;
    match source {
        Some(S::Card(mut c)) => Source::Card(Box::new(card_input(&mut c))),
        Some(S::Token(t)) => Source::Token(t),
        Some(S::RegistrationId(r)) => Source::Registration(r),
        Some(S::OmniToken(o)) => Source::Omni(o),
        Some(S::BankAccount(mut a)) => Source::Account(Box::new(account_input(&mut a))),
        None => Source::CustomerDefault,
    }
}

/// The masked card of a payment or ledger line: no billing address.
pub fn card(m: &MaskedCard) -> pb::CardMetadata {
    pb::CardMetadata {
        brand: m.brand.clone(),
        bin: m.bin.clone(),
        last_digits: m.last4.clone(),
        expiration_month: i32::from(m.exp_month),
        expiration_year: i32::from(m.exp_year),
        name: m.name.clone(),
        ..Default::default()
    }
}

/// A durable token's card: the masked card and the vault's billing address.
fn stored_card(t: &StoredToken) -> pb::CardMetadata {
    let b = &t.billing;
    pb::CardMetadata {
        city: b.city.clone(),
        country: b.country.clone(),
        postal_code: b.postal_code.clone(),
        state: b.state.clone(),
        street1: b.street1.clone(),
        street2: b.street2.clone(),
        phone_number: b.phone_number.clone(),
        ..card(&t.card)
    }
}

/// A card's metadata without its billing address: what payments-svc may keep
/// of a response under its idempotency key.
pub fn without_billing(card: &mut Option<pb::CardMetadata>) {
    if let Some(c) = card {
        let masked = std::mem::take(c);
        *c = pb::CardMetadata {
            brand: masked.brand,
            bin: masked.bin,
            last_digits: masked.last_digits,
            expiration_month: masked.expiration_month,
            expiration_year: masked.expiration_year,
            name: masked.name,
            ..Default::default()
        };
    }
}

/// Puts the vault's billing address back into a card's metadata.
pub fn with_billing(card: &mut Option<pb::CardMetadata>, billing: &Billing) {
    if let Some(c) = card {
        c.city = billing.city.clone();
        c.country = billing.country.clone();
        c.postal_code = billing.postal_code.clone();
        c.state = billing.state.clone();
        c.street1 = billing.street1.clone();
        c.street2 = billing.street2.clone();
        c.phone_number = billing.phone_number.clone();
    }
}

pub fn result(o: &Outcome) -> pb::Result {
    pb::Result { code: o.code.clone(), description: o.description.clone() }
}

pub fn payment(p: &Payment) -> pb::Payment {
    pb::Payment {
        id: p.id.clone(),
        payment_type: pb_payment_type(p.payment_type),
        reference_id: p.reference_id.clone().unwrap_or_default(),
        amount: p.amount,
        currency: p.currency.clone(),
        result: Some(result(&p.result)),
        registration_id: p.registration_id.clone().unwrap_or_default(),
        omni_token: p.omni_token.clone().unwrap_or_default(),
        card: p.card.as_ref().map(card),
        account: p.account.as_ref().map(account),
        mandate: p.mandate.as_ref().map(pb_mandate),
        standing_instruction: p.standing_instruction.as_ref().map(pb_standing_instruction),
        captured_amount: p.captured_amount,
        refunded_amount: p.refunded_amount,
        created_at: timestamp(p.created_at),
        livemode: p.livemode,
        merchant_transaction_id: p.merchant_transaction_id.clone(),
        customer_id: p.customer_id.clone(),
        description: p.description.clone(),
        reversed: p.reversed,
        status: pb_status(p.status) as i32,
    }
}

fn pb_status(status: Status) -> pb::PaymentStatus {
    match status {
        Status::Pending => pb::PaymentStatus::Pending,
        Status::Approved => pb::PaymentStatus::Approved,
        Status::Declined => pb::PaymentStatus::Declined,
        Status::Failed => pb::PaymentStatus::Failed,
    }
}

pub fn transaction(r: &LedgerRecord) -> pb::Transaction {
    let e = &r.entry;
    pb::Transaction {
        id: e.id.clone(),
        transaction_type: r.entry.transaction_type.as_str().into(),
        payment_id: e.payment_id.clone(),
        reference_id: e.reference_id.clone(),
        amount: e.amount,
        currency: e.currency.clone(),
        result: Some(result(&e.result)),
        token: e.token.clone(),
        // A bank account's line: brand DIRECTDEBIT_SEPA, its last four, the holder.
        card: (e.card.brand != common::bank::BRAND).then(|| card(&e.card)),
        account: (e.card.brand == common::bank::BRAND).then(|| pb::AccountMetadata {
            brand: e.card.brand.clone(),
            last_digits: e.card.last4.clone(),
            ..Default::default()
        }),
        created_at: timestamp(e.created_at),
    }
}

pub fn registration(t: &StoredToken, result_: &Outcome) -> pb::Registration {
    pb::Registration {
        id: t.id.clone(),
        customer_id: t.customer_id.clone(),
        card: t.account.is_none().then(|| stored_card(t)),
        account: t.account.as_ref().map(account),
        last_used_at: t.last_used_at.and_then(timestamp),
        result: Some(result(result_)),
        created_at: timestamp(t.created_at),
        retain_until: timestamp(t.retain_until),
        extended: t.extended,
        is_default: t.is_default,
    }
}

pub fn omni_token(t: &StoredToken, result_: &Outcome) -> pb::OmniToken {
    pb::OmniToken {
        id: t.id.clone(),
        customer_id: t.customer_id.clone(),
        card: Some(stored_card(t)),
        created_at: timestamp(t.created_at),
        retain_until: timestamp(t.retain_until),
        result: Some(result(result_)),
        extended: t.extended,
    }
}
