//! A small journaled load driver: N concurrent clients, each paying over fresh
//! single-use tokens (CreateToken with the public key, then CreatePayment with
//! the secret key) in a mix of flows — DB, DB→RF, PA→CP→RF, PA→RV — every
//! mutating call under a unique `idempotency-key` and a client deadline. Each
//! call is journaled with its key, request, outcome and duration, so a test
//! can afterwards retry every call with the same key and request. Bounded in
//! calls and in time; loopback only.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::transport::Channel;

use proto::payments::v1::{self as pb, PaymentType, payments_client::PaymentsClient};
use proto::vault::v1::{self as vpb, tokens_client::TokensClient};

use super::platform::{Keys, Platform};

/// An answer later than its deadline by more than this counts as a hang.
pub const HANG_MARGIN: Duration = Duration::from_secs(2);

/// The test acquirer's approval code in test mode.
pub const APPROVED: &str = "000.100.110";

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

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub clients: usize,
    /// Flows per client (a flow is 1–3 payment calls).
    pub flows_per_client: usize,
    /// Client deadline of every call.
    pub deadline: Duration,
    /// The whole run stops starting new calls after this.
    pub max_time: Duration,
    /// Pause between a client's flows.
    pub pause: Duration,
    /// Percentage of flows whose first payment's amount ends in 99 or 98 (the
    /// test acquirer's timeouts: processed / never processed), alternately.
    pub slow_percent: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            clients: 4,
            flows_per_client: 15,
            deadline: Duration::from_secs(3),
            max_time: Duration::from_secs(15),
            pause: Duration::from_millis(20),
            slow_percent: 0,
        }
    }
}

/// The clients and keys the driver calls with; cheap to clone.
#[derive(Clone)]
pub struct Driver {
    payments: PaymentsClient<Channel>,
    tokens: TokensClient<Channel>,
    keys: Keys,
}

/// A small deterministic generator (xorshift), seeded per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An amount of 100..=5000 minor units that never ends in 98 or 99 (the
    /// test acquirer's timeouts).
    fn amount(&mut self) -> i64 {
        let cents = i64::try_from(self.below(98)).unwrap_or(0);
        i64::try_from(1 + self.below(49)).unwrap_or(1) * 100 + cents
    }
}

/// `amount` moved off the test acquirer's timeout endings (…98, …99).
fn off_timeouts(amount: i64) -> i64 {
    if amount % 100 >= 98 { amount - 2 } else { amount }
}

pub fn new_key() -> String {
    format!("e2e-{}", common::ids::hex(12))
}

pub fn db_over(token: &str, amount: i64) -> pb::CreatePaymentRequest {
    create(PaymentType::Db, token, amount)
}

pub fn pa_over(token: &str, amount: i64) -> pb::CreatePaymentRequest {
    create(PaymentType::Pa, token, amount)
}

fn create(kind: PaymentType, token: &str, amount: i64) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        payment_type: kind as i32,
        amount,
        currency: "EUR".into(),
        source: Some(pb::create_payment_request::Source::Token(token.into())),
        ..Default::default()
    }
}

impl Driver {
    pub fn new(platform: &Platform) -> Self {
        Self { payments: platform.payments_client(), tokens: platform.tokens_client(), keys: platform.keys.clone() }
    }

    /// A single-use token for `number`, or the failure's `code/reason`.
    pub async fn token(&self, number: &str, deadline: Duration) -> Result<String, String> {
        let mut request = crate::authed(&self.keys.pkey, crate::create_request(crate::card(number, "123")));
        request.set_timeout(deadline);
        let mut tokens = self.tokens.clone();
        match tokio::time::timeout(deadline + HANG_MARGIN, tokens.create_token(request)).await {
            Ok(Ok(token)) => Ok(token.into_inner().id),
            Ok(Err(status)) => Err(format!("{:?}/{}", status.code(), crate::reason(&status))),
            Err(_) => Err("HUNG".into()),
        }
    }

    /// The vault's view of a single-use token: `(used, charge_status)`.
    pub async fn token_state(&self, token: &str) -> Option<(bool, String)> {
        let mut request = crate::authed(&self.keys.pkey, vpb::GetTokenRequest { id: token.into() });
        request.set_timeout(Duration::from_secs(5));
        let token = self.tokens.clone().get_token(request).await.ok()?.into_inner();
        Some((token.used, token.charge_status))
    }

    /// Of `tokens`, those the vault reports used.
    pub async fn used_tokens(&self, tokens: &[String]) -> Vec<String> {
        let mut used = Vec::new();
        for token in tokens {
            if self.token_state(token).await.is_some_and(|(u, _)| u) {
                used.push(token.clone());
            }
        }
        used
    }

    /// Where the vault's `charge_status` of a token disagrees with the final
    /// answer of the payment made with it (`journal`: the last answer of each
    /// call): approved → `successful`, declined → `failed`.
    pub async fn charge_status_mismatches(&self, journal: &Journal) -> Vec<String> {
        let mut mismatches = Vec::new();
        for call in &journal.calls {
            let (Op::Create(request), Outcome::Ok(payment)) = (&call.op, &call.outcome) else { continue };
            let Some(pb::create_payment_request::Source::Token(token)) = &request.source else { continue };
            let want = if call.outcome.approved() {
                "successful"
            } else if payment.result.as_ref().is_some_and(|r| r.code.starts_with("800.")) {
                "failed"
            } else {
                continue;
            };
            match self.token_state(token).await {
                Some((_, status)) if status == want => {}
                got => mismatches.push(format!(
                    "{} payment {}: token charge_status {:?}, want {want:?}",
                    call.op.name(),
                    payment.id,
                    got.map(|(_, s)| s)
                )),
            }
        }
        mismatches
    }

    /// One journaled call: `op` under `key` with a client deadline.
    pub async fn call(&self, key: &str, op: &Op, deadline: Duration) -> Call {
        fn prepare<T>(skey: &str, key: &str, message: T, deadline: Duration) -> tonic::Request<T> {
            let mut request = crate::authed(skey, message);
            request.metadata_mut().insert("idempotency-key", key.parse().expect("an ASCII idempotency key"));
            request.set_timeout(deadline);
            request
        }
        let skey = self.keys.skey.as_str();
        let mut client = self.payments.clone();
        let started = Instant::now();
        let answer = async {
            match op.clone() {
                Op::Create(m) => client.create_payment(prepare(skey, key, m, deadline)).await,
                Op::Capture(m) => client.capture_payment(prepare(skey, key, m, deadline)).await,
                Op::Reverse(m) => client.reverse_payment(prepare(skey, key, m, deadline)).await,
                Op::Refund(m) => client.refund_payment(prepare(skey, key, m, deadline)).await,
            }
        };
        let outcome = match tokio::time::timeout(deadline + HANG_MARGIN, answer).await {
            Ok(Ok(payment)) => Outcome::Ok(Box::new(payment.into_inner())),
            Ok(Err(status)) => Outcome::Err {
                code: status.code(),
                reason: crate::reason(&status),
                message: status.message().to_owned(),
            },
            Err(_) => Outcome::Hung,
        };
        Call { key: key.to_owned(), op: op.clone(), deadline, outcome, elapsed: started.elapsed() }
    }

    /// `GetPayment` by id.
    pub async fn get(&self, id: &str) -> Result<pb::Payment, tonic::Status> {
        let mut request = crate::authed(&self.keys.skey, pb::GetPaymentRequest { id: id.into() });
        request.set_timeout(Duration::from_secs(5));
        self.payments.clone().get_payment(request).await.map(tonic::Response::into_inner)
    }

    /// Runs `config.clients` clients concurrently and returns their merged journal.
    pub async fn run(&self, config: &LoadConfig) -> Journal {
        let until = Instant::now() + config.max_time;
        let config = Arc::new(config.clone());
        let mut tasks = Vec::new();
        for client in 0..config.clients {
            let (driver, config) = (self.clone(), config.clone());
            let seed =
                0x9E37_79B9_7F4A_7C15u64 ^ (u64::try_from(client).unwrap_or(0) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            tasks.push(tokio::spawn(async move { driver.client(Rng(seed), &config, until).await }));
        }
        let mut journal = Journal::default();
        for task in tasks {
            let part = task.await.expect("a load client panicked");
            journal.calls.extend(part.calls);
            journal.tokens.extend(part.tokens);
            journal.token_failures.extend(part.token_failures);
        }
        journal
    }

    async fn client(&self, mut rng: Rng, config: &LoadConfig, until: Instant) -> Journal {
        let mut journal = Journal::default();
        for _ in 0..config.flows_per_client {
            if Instant::now() >= until {
                break;
            }
            let number = if rng.below(10) == 0 { "4000000000000002" } else { "4242424242424242" };
            let token = match self.token(number, config.deadline).await {
                Ok(token) => token,
                Err(failure) => {
                    journal.token_failures.push(failure);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            journal.tokens.push(token.clone());
            let mut amount = rng.amount();
            if rng.below(100) < config.slow_percent {
                amount = amount / 100 * 100 + if rng.below(2) == 0 { 99 } else { 98 };
            }
            let flow = rng.below(100);
            let step = |op: Op| {
                let driver = self.clone();
                let deadline = config.deadline;
                async move { driver.call(&new_key(), &op, deadline).await }
            };
            if flow < 55 {
                // DB, and a partial refund of some of them.
                let db = step(Op::Create(db_over(&token, amount))).await;
                let refund = db.outcome.approved() && flow >= 40 && Instant::now() < until;
                let id = db.outcome.payment().map(|p| p.id.clone()).unwrap_or_default();
                journal.calls.push(db);
                if refund {
                    journal.calls.push(
                        step(Op::Refund(pb::RefundPaymentRequest { id, amount: off_timeouts(amount / 2) })).await,
                    );
                }
            } else if flow < 85 {
                // PA → partial CP → partial RF of the capture.
                let pa = step(Op::Create(pa_over(&token, amount))).await;
                let approved = pa.outcome.approved();
                let id = pa.outcome.payment().map(|p| p.id.clone()).unwrap_or_default();
                journal.calls.push(pa);
                if approved && Instant::now() < until {
                    let capture = off_timeouts(amount - amount / 4);
                    let cp = step(Op::Capture(pb::CapturePaymentRequest { id, amount: capture })).await;
                    let approved = cp.outcome.approved();
                    let cp_id = cp.outcome.payment().map(|p| p.id.clone()).unwrap_or_default();
                    journal.calls.push(cp);
                    if approved && Instant::now() < until {
                        let rf = Op::Refund(pb::RefundPaymentRequest { id: cp_id, amount: off_timeouts(capture / 3) });
                        journal.calls.push(step(rf).await);
                    }
                }
            } else {
                // PA → RV.
                let pa = step(Op::Create(pa_over(&token, amount))).await;
                let approved = pa.outcome.approved();
                let id = pa.outcome.payment().map(|p| p.id.clone()).unwrap_or_default();
                journal.calls.push(pa);
                if approved && Instant::now() < until {
                    journal.calls.push(step(Op::Reverse(pb::ReversePaymentRequest { id })).await);
                }
            }
            tokio::time::sleep(config.pause).await;
        }
        journal
    }

    /// Every journaled call once more, with its key and its request, in order
    /// (`concurrency` at a time); the replay journal is index-aligned with `journal`.
    pub async fn retry(&self, journal: &Journal, deadline: Duration, concurrency: usize) -> Journal {
        let mut calls = Vec::with_capacity(journal.calls.len());
        for chunk in journal.calls.chunks(concurrency.max(1)) {
            let answers = futures::future::join_all(chunk.iter().map(|c| self.call(&c.key, &c.op, deadline))).await;
            calls.extend(answers);
        }
        Journal { calls, tokens: journal.tokens.clone(), token_failures: Vec::new() }
    }

    /// Retries every call, then again those whose answer is retryable, until
    /// none is or `budget` has passed; returns the last answer of each call.
    pub async fn retry_until_settled(&self, journal: &Journal, deadline: Duration, budget: Duration) -> Journal {
        let until = Instant::now() + budget;
        let mut last = self.retry(journal, deadline, 8).await;
        while Instant::now() < until {
            let pending: Vec<usize> =
                last.calls.iter().enumerate().filter(|(_, c)| c.outcome.retryable()).map(|(i, _)| i).collect();
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again =
                Journal { calls: pending.iter().map(|&i| journal.calls[i].clone()).collect(), ..Journal::default() };
            let answers = self.retry(&again, deadline, 8).await;
            for (i, call) in pending.into_iter().zip(answers.calls) {
                last.calls[i] = call;
            }
        }
        last
    }
}
