//! payments-svc's RPCs under load, `Payments.CreatePayment` with the merchant's
//! secret key: a DB payment over a fresh single-use token made before the timed
//! phase (`pay-db-token`), and a one-click DB payment over a registration made
//! per worker before the timed phase (`pay-one-click`). A payment whose result
//! code is not the test-mode approval counts as an error.
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prost::Message;
use proto::payments::v1::payments_client::PaymentsClient;
use proto::payments::v1::registrations_client::RegistrationsClient;
use proto::payments::v1::{CreatePaymentRequest, CreateRegistrationRequest, Payment, create_registration_request};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::Error;
use crate::driver::{Failure, Op, Worker};
use crate::ops::{Stock, status_message};
use crate::report::Supply;
use crate::sizes;

/// What the workers pay with.
#[derive(Debug)]
enum Source {
    /// Single-use tokens, each used once.
    Tokens(Stock<String>),
    /// One registration per worker, used over and over.
    Registrations(Vec<String>),
}

#[derive(Debug)]
struct Shared {
    auth: MetadataValue<Ascii>,
    source: Source,
    observed: OnceLock<usize>,
}

#[derive(Debug)]
pub struct Pay {
    clients: Vec<PaymentsClient<Channel>>,
    shared: Arc<Shared>,
}

pub struct PayWorker {
    client: PaymentsClient<Channel>,
    shared: Arc<Shared>,
    /// One-click: this worker's request, the same every call.
    request: Option<CreatePaymentRequest>,
    observed: bool,
}

fn bearer(secret_key: &str) -> Result<MetadataValue<Ascii>, Error> {
    MetadataValue::try_from(format!("Bearer {secret_key}"))
        .map_err(|_| Error::Setup("PAYVAULT_SKEY is not a valid header value".into()))
}

fn with_auth<T>(message: T, auth: &MetadataValue<Ascii>) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert("authorization", auth.clone());
    req
}

/// Ok for an approved test-mode payment; otherwise its code and description.
fn approved(payment: &Payment) -> Result<(), Failure> {
    match &payment.result {
        Some(r) if r.code == sizes::APPROVED_TEST => Ok(()),
        Some(r) => Err(Failure::Error(format!("result {}: {}", r.code, r.description))),
        None => Err(Failure::Error("a payment without a result".into())),
    }
}

impl Pay {
    /// DB payments over `tokens`, each consumed by one payment.
    pub fn over_tokens(channels: Vec<Channel>, secret_key: &str, tokens: Vec<String>) -> Result<Self, Error> {
        Ok(Self {
            clients: channels.into_iter().map(PaymentsClient::new).collect(),
            shared: Arc::new(Shared {
                auth: bearer(secret_key)?,
                source: Source::Tokens(Stock::new(tokens)),
                observed: OnceLock::new(),
            }),
        })
    }

    /// One-click payments: makes one registration per worker (customer
    /// `bench-<worker>`) with `Registrations.CreateRegistration`, untimed.
    pub async fn one_click(channels: Vec<Channel>, secret_key: &str, workers: usize) -> Result<Self, Error> {
        let auth = bearer(secret_key)?;
        let started = Instant::now();
        let registrars: Vec<_> = channels.iter().cloned().map(RegistrationsClient::new).collect();
        let mut ids = Vec::with_capacity(workers);
        for (worker, mut client) in (0..workers).zip(registrars.into_iter().cycle()) {
            let request = CreateRegistrationRequest {
                source: Some(create_registration_request::Source::Card(sizes::registration_card())),
                customer_id: format!("bench-{worker}"),
                verify: false,
            };
            let registration = client
                .create_registration(with_auth(request, &auth))
                .await
                .map_err(|s| Error::Setup(format!("making registrations before the run: {}", status_message(&s))))?
                .into_inner();
            if registration.id.is_empty() {
                return Err(Error::Setup("CreateRegistration answered without an id".into()));
            }
            ids.push(registration.id);
        }
        eprintln!("loadgen: made {} registrations in {:.1} s (untimed)", ids.len(), started.elapsed().as_secs_f64());
        Ok(Self {
            clients: channels.into_iter().map(PaymentsClient::new).collect(),
            shared: Arc::new(Shared { auth, source: Source::Registrations(ids), observed: OnceLock::new() }),
        })
    }

    /// The encoded size of a real `Payment` seen during the run.
    pub fn observed_response_len(&self) -> Option<usize> {
        self.shared.observed.get().copied()
    }

    /// For payments over single-use tokens: how many were made and used.
    pub fn supply(&self) -> Option<Supply> {
        match &self.shared.source {
            Source::Tokens(stock) => Some(stock.supply()),
            Source::Registrations(_) => None,
        }
    }
}

impl Op for Pay {
    type Worker = PayWorker;

    fn worker(&self, index: usize) -> PayWorker {
        let request = match &self.shared.source {
            Source::Tokens(_) => None,
            Source::Registrations(ids) => {
                ids.get(index % ids.len().max(1)).map(|id| sizes::pay_one_click_request(id.clone()))
            }
        };
        PayWorker {
            client: self.clients[index % self.clients.len()].clone(),
            shared: Arc::clone(&self.shared),
            request,
            observed: false,
        }
    }
}

impl Worker for PayWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        let shared = &self.shared;
        let message = match (&shared.source, &self.request) {
            (Source::Tokens(stock), _) => match stock.take() {
                Some(token) => sizes::pay_db_token_request(token.clone()),
                None => return Err(Failure::Exhausted),
            },
            (Source::Registrations(_), Some(request)) => request.clone(),
            (Source::Registrations(_), None) => return Err(Failure::Error("no registration for this worker".into())),
        };
        match self.client.create_payment(with_auth(message, &shared.auth)).await {
            Ok(r) => {
                let payment = r.into_inner();
                if !self.observed {
                    self.observed = true;
                    shared.observed.get_or_init(|| payment.encoded_len());
                }
                approved(&payment)
            }
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::payments::v1::Result as PayResult;

    #[test]
    fn only_the_test_approval_counts_as_success() {
        let with = |code: &str| Payment {
            result: Some(PayResult { code: code.into(), description: "d".into() }),
            ..Payment::default()
        };
        assert_eq!(approved(&with("000.100.110")), Ok(()));
        assert_eq!(approved(&with("800.100.151")), Err(Failure::Error("result 800.100.151: d".into())));
        assert!(approved(&Payment::default()).is_err());
    }
}
