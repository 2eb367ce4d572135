//! The vault's RPCs under load: `Tokens.CreateToken` on the public port with
//! the merchant's public key, and `Vault.Detokenize` on the internal mTLS port,
//! each call consuming a fresh single-use token made before the timed phase.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prost::Message;
use proto::vault::v1::tokens_client::TokensClient;
use proto::vault::v1::vault_client::VaultClient;
use proto::vault::v1::{CreateTokenRequest, DetokenizeRequest};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::Error;
use crate::driver::{Failure, Op, Worker};
use crate::ops::{Stock, status_message};
use crate::report::Supply;
use crate::sizes;

#[derive(Debug)]
pub struct CreateToken {
    clients: Vec<TokensClient<Channel>>,
    auth: MetadataValue<Ascii>,
    request: CreateTokenRequest,
    observed: Arc<OnceLock<usize>>,
}

pub struct CreateTokenWorker {
    client: TokensClient<Channel>,
    auth: MetadataValue<Ascii>,
    request: CreateTokenRequest,
    /// Set by the first worker to get a response: its encoded size.
    observed: Option<Arc<OnceLock<usize>>>,
}

impl CreateToken {
    pub fn new(channels: Vec<Channel>, public_key: &str) -> Result<Self, Error> {
        let auth = MetadataValue::try_from(format!("Bearer {public_key}"))
            .map_err(|_| Error::Setup("PAYVAULT_PKEY is not a valid header value".into()))?;
        Ok(Self {
            clients: channels.into_iter().map(TokensClient::new).collect(),
            auth,
            request: sizes::create_token_request(),
            observed: Arc::new(OnceLock::new()),
        })
    }

    /// The encoded size of a real `Token` seen during the run.
    pub fn observed_response_len(&self) -> Option<usize> {
        self.observed.get().copied()
    }

    /// Makes `count` single-use tokens with `concurrency` callers, untimed.
    /// Stops at the first error: a run on a broken vault measures nothing.
    pub async fn make_tokens(&self, count: usize, concurrency: usize) -> Result<Tokens, Error> {
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..concurrency.max(1))
            .map(|i| {
                let mut w = self.worker(i);
                w.observed = None;
                let (next, failed) = (Arc::clone(&next), Arc::clone(&failed));
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    let mut livemode = false;
                    while !failed.load(Ordering::Relaxed) && next.fetch_add(1, Ordering::Relaxed) < count {
                        match w.client.create_token(w.request()).await {
                            Ok(t) => {
                                let t = t.into_inner();
                                livemode |= t.livemode;
                                ids.push(t.id);
                            }
                            Err(s) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(status_message(&s));
                            }
                        }
                    }
                    Ok((ids, livemode))
                })
            })
            .collect();
        let mut tokens = Tokens { ids: Vec::with_capacity(count), livemode: false };
        for t in tasks {
            let (ids, livemode) = t
                .await
                .map_err(|e| Error::Setup(format!("a token maker died: {e}")))?
                .map_err(|e| Error::Setup(format!("making tokens before the run: {e}")))?;
            tokens.ids.extend(ids);
            tokens.livemode |= livemode;
        }
        let secs = started.elapsed().as_secs_f64();
        let n = tokens.ids.len();
        eprintln!(
            "loadgen: made {n} single-use tokens in {secs:.1} s ({:.0}/s, untimed)",
            n as f64 / secs.max(f64::MIN_POSITIVE)
        );
        Ok(tokens)
    }
}

impl CreateTokenWorker {
    fn request(&self) -> Request<CreateTokenRequest> {
        let mut req = Request::new(self.request.clone());
        req.metadata_mut().insert("authorization", self.auth.clone());
        req
    }
}

impl Op for CreateToken {
    type Worker = CreateTokenWorker;

    fn worker(&self, index: usize) -> CreateTokenWorker {
        CreateTokenWorker {
            client: self.clients[index % self.clients.len()].clone(),
            auth: self.auth.clone(),
            request: self.request.clone(),
            observed: Some(Arc::clone(&self.observed)),
        }
    }
}

impl Worker for CreateTokenWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        let request = self.request();
        match self.client.create_token(request).await {
            Ok(r) => {
                if let Some(o) = self.observed.take() {
                    o.get_or_init(|| r.get_ref().encoded_len());
                }
                Ok(())
            }
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}

/// Single-use tokens made for a detokenize run; all of one mode (the key's).
#[derive(Debug)]
pub struct Tokens {
    pub ids: Vec<String>,
    pub livemode: bool,
}

#[derive(Debug)]
struct DetokenizeShared {
    merchant_id: String,
    livemode: bool,
    tokens: Stock<String>,
    /// Unique per run, so `consumer_ref`s never collide with an earlier run's.
    run: String,
    counter: AtomicU64,
    observed: OnceLock<usize>,
}

#[derive(Debug)]
pub struct Detokenize {
    clients: Vec<VaultClient<Channel>>,
    shared: Arc<DetokenizeShared>,
}

pub struct DetokenizeWorker {
    client: VaultClient<Channel>,
    shared: Arc<DetokenizeShared>,
    observed: bool,
}

impl Detokenize {
    pub fn new(channels: Vec<Channel>, merchant_id: String, tokens: Tokens) -> Self {
        Self {
            clients: channels.into_iter().map(VaultClient::new).collect(),
            shared: Arc::new(DetokenizeShared {
                merchant_id,
                livemode: tokens.livemode,
                tokens: Stock::new(tokens.ids),
                run: format!("lg-{:08x}-", rand::random::<u32>()),
                counter: AtomicU64::new(0),
                observed: OnceLock::new(),
            }),
        }
    }

    pub fn observed_response_len(&self) -> Option<usize> {
        self.shared.observed.get().copied()
    }

    pub fn supply(&self) -> Supply {
        self.shared.tokens.supply()
    }
}

impl Op for Detokenize {
    type Worker = DetokenizeWorker;

    fn worker(&self, index: usize) -> DetokenizeWorker {
        DetokenizeWorker {
            client: self.clients[index % self.clients.len()].clone(),
            shared: Arc::clone(&self.shared),
            observed: false,
        }
    }
}

impl Worker for DetokenizeWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        let shared = &self.shared;
        let Some(token) = shared.tokens.take() else {
            return Err(Failure::Exhausted);
        };
        let n = shared.counter.fetch_add(1, Ordering::Relaxed);
        let request = DetokenizeRequest {
            merchant_id: shared.merchant_id.clone(),
            token: token.clone(),
            consumer_ref: format!("{}{n}", shared.run),
            livemode: shared.livemode,
            instrument: "card".into(),
        };
        match self.client.detokenize(request).await {
            Ok(r) => {
                if !self.observed {
                    self.observed = true;
                    shared.observed.get_or_init(|| r.get_ref().encoded_len());
                }
                Ok(())
            }
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}
