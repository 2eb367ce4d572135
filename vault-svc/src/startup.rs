//! Building and running vault-svc: the public `Tokens` port (plaintext for the
//! local run) and the internal `Vault` port (mTLS), each with health and
//! reflection; a monitor of both stores that drives health; the optional
//! in-process retention sweeper; graceful shutdown.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use common::auth::DirectoryHandle;
use common::clock::{SharedClock, SystemClock};
use proto::vault::v1::tokens_server::TokensServer;
use proto::vault::v1::vault_server::VaultServer;

use crate::config::VaultConfig;
use crate::crypto::{KekSet, KeyRing};
use crate::domain::audit::Actor;
use crate::domain::card_token::CardTokens;
use crate::domain::retention;
use crate::domain::single_use::{Policy, SingleUseTokens};
use crate::domain::store::TokenStore;
use crate::domain::store::cards::KeyStore;
use crate::grpc::tls::{self, TlsMaterial};
use crate::grpc::tokens::TokensService;
use crate::grpc::vault::VaultService;
use crate::storage::ConfiguredStore;
use crate::storage::memory::MemoryTokenStore;
use crate::storage::redis::{RedisSettings, RedisTokenStore};
use crate::storage::sql::SqlStore;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything the vault is built from; tests assemble this themselves.
pub struct Dependencies {
    pub store: ConfiguredStore,
    /// Durable tokens, data keys and audit (PostgreSQL or SQLite).
    pub cards: SqlStore,
    pub keks: KekSet,
    pub directory: DirectoryHandle,
    pub clock: SharedClock,
    pub tls: TlsMaterial,
    /// Serve the public port over TLS too.
    pub public_tls: bool,
    pub allowed_clients: Vec<String>,
    pub policy: Policy,
    pub request_timeout: Duration,
    pub shutdown_drain: Duration,
    /// Run the retention sweeper inside the service this often (`None`: only
    /// the `vault-svc sweep` job does).
    pub sweep_every: Option<Duration>,
    pub sweep_batch: u32,
}

impl Dependencies {
    /// Loads keys, directory, certificates and both stores from configuration.
    pub async fn from_config(cfg: &VaultConfig) -> Result<Self, BoxError> {
        let store = match &cfg.redis.url {
            Some(url) => ConfiguredStore::Redis(RedisTokenStore::new(&RedisSettings {
                url: url.clone(),
                key_prefix: cfg.redis.key_prefix.clone(),
                pool_size: cfg.redis.pool_size,
                connect_timeout: Duration::from_millis(cfg.redis.connect_timeout_ms),
            })?),
            None => ConfiguredStore::Memory(MemoryTokenStore::new()),
        };
        let [ca, cert, key] = cfg.tls_paths();
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let directory = DirectoryHandle::load(&cfg.merchants_file())?;
        directory.spawn_reloader(Duration::from_secs(cfg.merchants.reload_secs.max(1)));
        Ok(Self {
            store,
            cards: cfg.connect_database().await?,
            keks: cfg.key_provider().load()?,
            directory,
            clock: Arc::new(SystemClock),
            tls: TlsMaterial { ca_pem: read(&ca)?, cert_pem: read(&cert)?, key_pem: read(&key)? },
            public_tls: cfg.public_tls,
            allowed_clients: cfg.allowed_clients(),
            policy: Policy::default(),
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            shutdown_drain: Duration::from_secs(cfg.shutdown_drain_secs),
            sweep_every: (cfg.retention.sweep_interval_secs > 0)
                .then(|| Duration::from_secs(cfg.retention.sweep_interval_secs)),
            sweep_batch: cfg.retention.batch,
        })
    }
}

pub struct Application {
    public: TcpListener,
    internal: TcpListener,
    deps: Dependencies,
}

const SERVICES: [&str; 3] = ["", "payvault.vault.v1.Tokens", "payvault.vault.v1.Vault"];

impl Application {
    /// Binds both ports (use port 0 in tests).
    pub async fn bind(public_addr: &str, internal_addr: &str, deps: Dependencies) -> Result<Self, BoxError> {
        let public = TcpListener::bind(public_addr).await.map_err(|e| format!("bind {public_addr}: {e}"))?;
        let internal = TcpListener::bind(internal_addr).await.map_err(|e| format!("bind {internal_addr}: {e}"))?;
        Ok(Self { public, internal, deps })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, stops
    /// accepting, and lets in-flight calls finish within the drain limit.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let Self { public, internal, deps } = self;
        let internal_tls = tls::server_config(&deps.tls, &deps.allowed_clients)?;
        let public_tls = if deps.public_tls { Some(tls::public_server_config(&deps.tls)?) } else { None };
        let cards = Arc::new(deps.cards);
        let keys = Arc::new(KeyRing::new(deps.keks, cards.clone() as Arc<dyn KeyStore>, deps.clock.clone()));
        let tokens = Arc::new(SingleUseTokens::new(deps.store, keys.clone(), deps.clock.clone(), deps.policy));
        let durable = Arc::new(CardTokens::new(cards.clone(), tokens.clone(), keys, deps.clock.clone()));
        let allowed: Arc<[String]> = deps.allowed_clients.into();

        let (health, health_service) = tonic_health::server::health_reporter();
        let monitor = tokio::spawn(monitor_stores(tokens.clone(), cards.clone(), health.clone()));
        let sweeper =
            deps.sweep_every.map(|every| tokio::spawn(sweep_every(cards, deps.clock, every, deps.sweep_batch)));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let public_router = Server::builder()
            .layer(common::metrics::GrpcMetricsLayer)
            .add_service(health_service.clone())
            .add_service(TokensServer::new(TokensService::new(tokens.clone(), deps.directory, deps.request_timeout)));
        let public_router = with_reflection(public_router, "payvault.vault.v1.Tokens")?;
        let public_stop = stopped(stop_rx.clone());
        let public_server = async {
            match public_tls {
                Some(config) => {
                    public_router.serve_with_incoming_shutdown(tls::incoming(public, config), public_stop).await
                }
                None => public_router.serve_with_incoming_shutdown(TcpListenerStream::new(public), public_stop).await,
            }
        };
        let internal_router = Server::builder()
            .layer(common::metrics::GrpcMetricsLayer)
            .add_service(health_service)
            .add_service(VaultServer::new(VaultService::new(durable, allowed, deps.request_timeout)));
        let internal_server = with_reflection(internal_router, "payvault.vault.v1.Vault")?
            .serve_with_incoming_shutdown(tls::incoming(internal, internal_tls), stopped(stop_rx));

        let servers = async { tokio::try_join!(public_server, internal_server).map(|_| ()) };
        let on_stop = async {
            monitor.abort();
            for service in SERVICES {
                health.set_service_status(service, ServingStatus::NotServing).await;
            }
            let _ = stop_tx.send(true);
        };
        let result = common::lifecycle::serve_until(servers, shutdown, on_stop, deps.shutdown_drain).await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        result.map_err(BoxError::from)
    }
}

/// The in-process retention sweeper (the CronJob runs `vault-svc sweep` instead).
async fn sweep_every(cards: Arc<SqlStore>, clock: SharedClock, every: Duration, batch: u32) {
    let actor = Actor { name: "retention-sweeper".into(), correlation_id: String::new() };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match retention::sweep(&*cards, clock.now_ms(), batch, &actor).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention sweep"),
            Err(error) => tracing::warn!(%error, "retention sweep failed; retrying next interval"),
        }
    }
}

/// Server reflection advertising `service` and health: v1 for current grpcurl
/// and tools, v1alpha for older grpcurl (≤ 1.8). The google.rpc types are
/// registered so grpcurl can print the `ErrorInfo` of a failed call.
fn with_reflection<L>(router: Router<L>, service: &str) -> Result<Router<L>, BoxError> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
    };
    Ok(router.add_service(builder().build_v1()?).add_service(builder().build_v1alpha()?))
}

/// Pings both stores every two seconds and reports SERVING / NOT_SERVING.
async fn monitor_stores<S: TokenStore>(tokens: Arc<SingleUseTokens<S>>, cards: Arc<SqlStore>, health: HealthReporter) {
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let both = async { tokens.store().ping().await.and(cards.ping().await) };
        let up = matches!(tokio::time::timeout(Duration::from_secs(1), both).await, Ok(Ok(())));
        if last != Some(up) {
            let status = if up { ServingStatus::Serving } else { ServingStatus::NotServing };
            for service in SERVICES {
                health.set_service_status(service, status).await;
            }
            if up {
                tracing::info!("stores reachable: serving");
            } else {
                tracing::error!("a store is unreachable: not serving");
            }
            last = Some(up);
        }
    }
}
