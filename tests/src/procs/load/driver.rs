//! The driver's single calls — a token, one journaled payment call under its
//! key and deadline, a `GetPayment`, the vault's view of tokens — and the
//! replays of a journal with the same keys.
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use proto::payments::v1::{self as pb, payments_client::PaymentsClient};
use proto::vault::v1::{self as vpb, tokens_client::TokensClient};

use super::super::platform::{Keys, Platform};
use super::{Call, HANG_MARGIN, Journal, Op, Outcome};

/// The clients and keys the driver calls with; cheap to clone.
#[derive(Clone)]
pub struct Driver {
    payments: PaymentsClient<Channel>,
    tokens: TokensClient<Channel>,
    keys: Keys,
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

    /// Where the vault's `charge_status` of a token disagrees with the
    /// payment made with it (`journal`: the last answer of each call): an
    /// approved DB → `successful`; an approved PA as payments now holds it →
    /// `reversed`, `successful` once captured, else `pending`; declined →
    /// `failed`.
    pub async fn charge_status_mismatches(&self, journal: &Journal) -> Vec<String> {
        let mut mismatches = Vec::new();
        for call in &journal.calls {
            let (Op::Create(request), Outcome::Ok(payment)) = (&call.op, &call.outcome) else { continue };
            let Some(pb::create_payment_request::Source::Token(token)) = &request.source else { continue };
            let pa = payment.payment_type == pb::PaymentType::Pa as i32;
            let want = if call.outcome.approved() && pa {
                match self.get(&payment.id).await {
                    Ok(now) if now.reversed => "reversed",
                    Ok(now) if now.captured_amount > 0 => "successful",
                    Ok(_) => "pending",
                    Err(status) => {
                        mismatches.push(format!("PA payment {}: GetPayment failed: {status}", payment.id));
                        continue;
                    }
                }
            } else if call.outcome.approved() {
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
