//! The load itself: concurrent clients, each running the flow mix (DB,
//! DB→RF, PA→CP→RF, PA→RV) over fresh single-use tokens, with amounts from a
//! seeded generator, until its flows or the run's time are used up.
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::payments::v1 as pb;

use super::{Call, Driver, Journal, Op, db_over, new_key, pa_over};

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

impl Journal {
    /// Journals `call`; the id of its payment if it was approved.
    fn push_approved(&mut self, call: Call) -> Option<String> {
        let approved = call.outcome.payment().filter(|_| call.outcome.approved()).map(|p| p.id.clone());
        self.calls.push(call);
        approved
    }
}

impl Driver {
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
            let in_time = || Instant::now() < until;
            if flow < 55 {
                // DB, and a partial refund of some of them.
                let db = journal.push_approved(step(Op::Create(db_over(&token, amount))).await);
                if let Some(id) = db.filter(|_| flow >= 40 && in_time()) {
                    let rf = Op::Refund(pb::RefundPaymentRequest { id, amount: off_timeouts(amount / 2) });
                    journal.calls.push(step(rf).await);
                }
            } else if flow < 85 {
                // PA → partial CP → partial RF of the capture.
                let pa = journal.push_approved(step(Op::Create(pa_over(&token, amount))).await);
                if let Some(id) = pa.filter(|_| in_time()) {
                    let capture = off_timeouts(amount - amount / 4);
                    let cp = step(Op::Capture(pb::CapturePaymentRequest { id, amount: capture })).await;
                    if let Some(cp_id) = journal.push_approved(cp).filter(|_| in_time()) {
                        let rf = Op::Refund(pb::RefundPaymentRequest { id: cp_id, amount: off_timeouts(capture / 3) });
                        journal.calls.push(step(rf).await);
                    }
                }
            } else {
                // PA → RV.
                let pa = journal.push_approved(step(Op::Create(pa_over(&token, amount))).await);
                if let Some(id) = pa.filter(|_| in_time()) {
                    journal.calls.push(step(Op::Reverse(pb::ReversePaymentRequest { id })).await);
                }
            }
            tokio::time::sleep(config.pause).await;
        }
        journal
    }
}
