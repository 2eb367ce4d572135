//! The vault's durable tokens under load, on the internal mTLS port:
//! `Vault.Tokenize` of a registration from a card never seen before (a new
//! customer each call, so every call stores a row and its `TK` audit row),
//! and `Vault.Detokenize` of registrations made before the timed phase, each
//! call writing its `DT` audit row durably.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prost::Message;
use proto::vault::v1::vault_client::VaultClient;
use proto::vault::v1::{DetokenizeRequest, TokenKind, TokenizeRequest, tokenize_request};
use tonic::transport::Channel;

use crate::Error;
use crate::driver::{Failure, Op, Worker};
use crate::ops::status_message;
use crate::sizes;

/// What every call of a run shares: the merchant, a run prefix that keeps
/// customers and card numbers apart from earlier runs', and a counter.
#[derive(Debug)]
struct Run {
    merchant_id: String,
    prefix: String,
    /// The first 8 of a card number's 15 digits before its check digit.
    card_base: u64,
    counter: AtomicU64,
    observed: OnceLock<usize>,
}

impl Run {
    fn new(merchant_id: String) -> Self {
        let random = rand::random::<u32>();
        Self {
            merchant_id,
            prefix: format!("lg-{random:08x}-"),
            card_base: 4_000_000 + u64::from(random % 1_000_000),
            counter: AtomicU64::new(0),
            observed: OnceLock::new(),
        }
    }

    /// A registration request for a card and customer no call has used.
    fn tokenize_request(&self) -> TokenizeRequest {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut card = sizes::card();
        card.number = visa_number(self.card_base, n);
        card.security_code.clear();
        TokenizeRequest {
            merchant_id: self.merchant_id.clone(),
            kind: TokenKind::Registration as i32,
            source: Some(tokenize_request::Source::Card(card)),
            customer_id: format!("{}{n}", self.prefix),
            consumer_ref: String::new(),
            livemode: false,
        }
    }

    fn observe(&self, len: impl FnOnce() -> usize) {
        self.observed.get_or_init(len);
    }
}

/// A 16-digit Luhn-valid number: `base` (7 digits, starting with 4), `n` in
/// the next 8, then the check digit. Distinct for distinct `n` below 10^8.
fn visa_number(base: u64, n: u64) -> String {
    let body = format!("{base:07}{:08}", n % 100_000_000);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// `Vault.Tokenize`: a new registration each call.
#[derive(Debug)]
pub struct Tokenize {
    clients: Vec<VaultClient<Channel>>,
    run: Arc<Run>,
}

pub struct TokenizeWorker {
    client: VaultClient<Channel>,
    run: Arc<Run>,
}

impl Tokenize {
    pub fn new(channels: Vec<Channel>, merchant_id: String) -> Self {
        Self { clients: channels.into_iter().map(VaultClient::new).collect(), run: Arc::new(Run::new(merchant_id)) }
    }

    pub fn observed_response_len(&self) -> Option<usize> {
        self.run.observed.get().copied()
    }

    /// Makes `count` registrations, untimed, for a detokenize run.
    pub async fn make_registrations(&self, count: usize) -> Result<Vec<String>, Error> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(count);
        let mut client = self.clients[0].clone();
        for _ in 0..count {
            let stored = client
                .tokenize(self.run.tokenize_request())
                .await
                .map_err(|s| Error::Setup(format!("making registrations before the run: {}", status_message(&s))))?;
            ids.push(stored.into_inner().id);
        }
        eprintln!("loadgen: made {count} registrations in {:.1} s (untimed)", started.elapsed().as_secs_f64());
        Ok(ids)
    }
}

impl Op for Tokenize {
    type Worker = TokenizeWorker;

    fn worker(&self, index: usize) -> TokenizeWorker {
        TokenizeWorker { client: self.clients[index % self.clients.len()].clone(), run: Arc::clone(&self.run) }
    }
}

impl Worker for TokenizeWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        match self.client.tokenize(self.run.tokenize_request()).await {
            Ok(r) if r.get_ref().id.is_empty() => Err(Failure::Error("a registration without an id".into())),
            Ok(r) => {
                self.run.observe(|| r.get_ref().encoded_len());
                Ok(())
            }
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}

/// `Vault.Detokenize` of a registration: one per worker, used over and over.
#[derive(Debug)]
pub struct DetokenizeRegistration {
    clients: Vec<VaultClient<Channel>>,
    merchant_id: Arc<str>,
    registrations: Vec<String>,
    observed: Arc<OnceLock<usize>>,
}

pub struct DetokenizeRegistrationWorker {
    client: VaultClient<Channel>,
    request: DetokenizeRequest,
    observed: Arc<OnceLock<usize>>,
}

impl DetokenizeRegistration {
    pub fn new(channels: Vec<Channel>, merchant_id: String, registrations: Vec<String>) -> Result<Self, Error> {
        if registrations.is_empty() {
            return Err(Error::Setup("no registrations to detokenize".into()));
        }
        Ok(Self {
            clients: channels.into_iter().map(VaultClient::new).collect(),
            merchant_id: merchant_id.into(),
            registrations,
            observed: Arc::new(OnceLock::new()),
        })
    }

    pub fn observed_response_len(&self) -> Option<usize> {
        self.observed.get().copied()
    }
}

impl Op for DetokenizeRegistration {
    type Worker = DetokenizeRegistrationWorker;

    fn worker(&self, index: usize) -> DetokenizeRegistrationWorker {
        DetokenizeRegistrationWorker {
            client: self.clients[index % self.clients.len()].clone(),
            request: DetokenizeRequest {
                merchant_id: self.merchant_id.to_string(),
                token: self.registrations[index % self.registrations.len()].clone(),
                consumer_ref: String::new(),
                livemode: false,
                instrument: "card".into(),
            },
            observed: Arc::clone(&self.observed),
        }
    }
}

impl Worker for DetokenizeRegistrationWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        match self.client.detokenize(self.request.clone()).await {
            Ok(r) if r.get_ref().card.is_none() => Err(Failure::Error("no card came back".into())),
            Ok(r) => {
                self.observed.get_or_init(|| r.get_ref().encoded_len());
                Ok(())
            }
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_luhn_valid_and_distinct() {
        let a = visa_number(4_123_456, 0);
        let b = visa_number(4_123_456, 1);
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        for n in [a, b, visa_number(4_999_999, 99_999_999)] {
            assert!(common::card::luhn_valid(&n), "{n}");
        }
        // Stripe's test Visa: 424242424242424 + check digit 2.
        assert_eq!(visa_number(4_242_424, 24_242_424), "4242424242424242");
    }

    #[test]
    fn every_request_is_a_new_customer_and_card() {
        let run = Run::new("mrch_x".into());
        let (a, b) = (run.tokenize_request(), run.tokenize_request());
        assert_ne!(a.customer_id, b.customer_id);
        let number = |r: &TokenizeRequest| match &r.source {
            Some(tokenize_request::Source::Card(c)) => c.number.clone(),
            _ => String::new(),
        };
        assert_ne!(number(&a), number(&b));
        assert_eq!(a.kind, TokenKind::Registration as i32);
    }
}
