//! What a load run recorded: each call's operation, idempotency key,
//! deadline, outcome and duration, the tokens it made, and the comparisons a
//! test makes between a run and its replay.
use std::time::Duration;

use tonic::Code;

use proto::payments::v1::{self as pb, PaymentType};

use super::APPROVED;

// A journal holds a few thousand of these: their size does not matter, and
// boxing the request would only add noise to every call site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    Create(pb::CreatePaymentRequest),
    Capture(pb::CapturePaymentRequest),
    Reverse(pb::ReversePaymentRequest),
    Refund(pb::RefundPaymentRequest),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(r) if r.payment_type == PaymentType::Pa as i32 => "PA",
            Self::Create(_) => "DB",
            Self::Capture(_) => "CP",
            Self::Reverse(_) => "RV",
            Self::Refund(_) => "RF",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(Box<pb::Payment>),
    Err {
        code: Code,
        reason: String,
        message: String,
    },
    /// No answer within deadline + `HANG_MARGIN`.
    Hung,
}

impl Outcome {
    pub fn payment(&self) -> Option<&pb::Payment> {
        match self {
            Self::Ok(p) => Some(p),
            _ => None,
        }
    }

    pub fn approved(&self) -> bool {
        self.payment().is_some_and(|p| p.result.as_ref().is_some_and(|r| r.code == APPROVED))
    }

    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Ok(_) => Some(Code::Ok),
            Self::Err { code, .. } => Some(*code),
            Self::Hung => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Err { reason, .. } => reason,
            _ => "",
        }
    }

    /// Whether a client should try again with the same key (outage, deadline,
    /// a duplicate still in flight, a hang).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Ok(_) => false,
            Self::Hung => true,
            Self::Err { code, .. } => {
                matches!(
                    code,
                    Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled | Code::Unknown
                )
            }
        }
    }

    /// `OK`, or `CODE/reason` — for summaries.
    pub fn label(&self) -> String {
        match self {
            Self::Ok(_) => "OK".into(),
            Self::Err { code, reason, .. } => format!("{code:?}/{reason}"),
            Self::Hung => "HUNG".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub key: String,
    pub op: Op,
    pub deadline: Duration,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

impl Call {
    /// Answered later than its deadline plus `margin`.
    pub fn late(&self, margin: Duration) -> bool {
        self.elapsed > self.deadline + margin
    }
}

#[derive(Debug, Clone, Default)]
pub struct Journal {
    pub calls: Vec<Call>,
    /// Every single-use token a client created.
    pub tokens: Vec<String>,
    /// CreateToken failures (code and reason), e.g. while the vault is down.
    pub token_failures: Vec<String>,
}

impl Journal {
    /// Outcome labels and how often each occurred, sorted.
    pub fn summary(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for call in &self.calls {
            *counts.entry(format!("{} {}", call.op.name(), call.outcome.label())).or_default() += 1;
        }
        for failure in &self.token_failures {
            *counts.entry(format!("CreateToken {failure}")).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    pub fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.calls.iter().filter(|c| pred(c)).count()
    }

    /// Calls answered later than deadline + `margin`, or not at all.
    pub fn late(&self, margin: Duration) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| c.late(margin) || matches!(c.outcome, Outcome::Hung))
            .map(|c| {
                format!(
                    "{} {}: {} after {:?} (deadline {:?})",
                    c.op.name(),
                    c.key,
                    c.outcome.label(),
                    c.elapsed,
                    c.deadline
                )
            })
            .collect()
    }

    /// Where a replay with the same key disagrees with the first answer: a
    /// different payment, or a refusal of a call that had succeeded.
    pub fn inconsistent_replays(first: &Journal, replay: &Journal) -> Vec<String> {
        first
            .calls
            .iter()
            .zip(&replay.calls)
            .filter_map(|(a, b)| match (&a.outcome, &b.outcome) {
                (Outcome::Ok(p), Outcome::Ok(q)) if p.id != q.id => {
                    Some(format!("{} {}: first payment {} but replay {}", a.op.name(), a.key, p.id, q.id))
                }
                (Outcome::Ok(p), other) if !other.retryable() && other.payment().is_none() => {
                    Some(format!("{} {}: first payment {} but replay {}", a.op.name(), a.key, p.id, other.label()))
                }
                _ => None,
            })
            .collect()
    }
}
