//! Wiring of vault-svc: its dependencies from configuration, and the public
//! `Tokens` port (plaintext for the local run, or TLS) and the internal `Vault`
//! port (mTLS) handed to the server shell (`common::server`) with the stores it
//! watches and the pool gauges it samples; the optional in-process retention
//! sweeper.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use common::auth::DirectoryHandle;
use common::clock::{SharedClock, SystemClock};
use common::database::pool_gauges;
use common::server::{self, Check, Port, Shell};
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

/// The `service` label of the vault's pool gauges.
const SERVICE: &str = "vault-svc";

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
    /// Call deadline and drain timing.
    pub server: common::server::Settings,
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
                cluster: cfg.redis.cluster,
                key_prefix: cfg.redis.key_prefix.clone(),
                pool_size: cfg.redis.pool_size,
                connect_timeout: Duration::from_millis(cfg.redis.connect_timeout_ms),
            })?),
            None => ConfiguredStore::Memory(MemoryTokenStore::new()),
        };
        let [ca, cert, key] = cfg.tls_paths();
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let directory = cfg.merchants.load(&cfg.data_dir)?;
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
            server: cfg.server_settings(),
            sweep_every: (cfg.retention.sweep_interval_secs > 0)
                .then(|| Duration::from_secs(cfg.retention.sweep_interval_secs)),
            sweep_batch: cfg.retention.batch,
        })
    }
}

pub struct Application {
    public: TcpListener,
    internal: TcpListener,
    /// A plaintext port serving only `grpc.health.v1` (for the kubelet's gRPC
    /// probe, which cannot speak TLS), if configured.
    health: Option<TcpListener>,
    deps: Dependencies,
}

type Tokens = TokensServer<TokensService<ConfiguredStore>>;
type Vault = VaultServer<VaultService<SqlStore, ConfiguredStore>>;

impl Application {
    /// Binds both ports (use port 0 in tests).
    pub async fn bind(public_addr: &str, internal_addr: &str, deps: Dependencies) -> Result<Self, BoxError> {
        let public = server::bind(public_addr).await?;
        let internal = server::bind(internal_addr).await?;
        Ok(Self { public, internal, health: None, deps })
    }

    /// Also serves health alone, in plaintext, on `addr`.
    pub async fn with_health_port(self, addr: &str) -> Result<Self, BoxError> {
        let health = server::bind(addr).await?;
        Ok(Self { health: Some(health), ..self })
    }

    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|h| h.local_addr().ok())
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then drains (see `common::server`).
    /// Health: `Tokens` follows the single-use store, `Vault` both stores.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let Self { public, internal, health, deps } = self;
        let internal_tls = tls::server_config(&deps.tls, &deps.allowed_clients)?;
        let cards = Arc::new(deps.cards);
        let keys = Arc::new(KeyRing::new(deps.keks, cards.clone() as Arc<dyn KeyStore>, deps.clock.clone()));
        let tokens = Arc::new(SingleUseTokens::new(deps.store, keys.clone(), deps.clock.clone(), deps.policy));
        let durable = Arc::new(CardTokens::new(cards.clone(), tokens.clone(), keys, deps.clock.clone()));
        let timeout = deps.server.request_timeout;

        let public_tls = deps.public_tls.then(|| tls::public_server_config(&deps.tls)).transpose()?;
        let public = Port::tcp_or_tls("public", public, public_tls).add_service(Tokens::new(TokensService::new(
            tokens.clone(),
            deps.directory,
            timeout,
        )));
        let internal = Port::tls("internal", internal, internal_tls).add_service(Vault::new(VaultService::new(
            durable,
            deps.allowed_clients.into(),
            timeout,
        )));
        let redis_gauges = {
            let tokens = tokens.clone();
            move || tokens.store().sample_pool()
        };
        let single_use = Check::new("single-use store", move || {
            let tokens = tokens.clone();
            async move { tokens.store().ping().await }
        });
        let durable_store = {
            let cards = cards.clone();
            Check::new("durable store", move || {
                let cards = cards.clone();
                async move { cards.ping().await }
            })
        };

        let sweeper = deps
            .sweep_every
            .map(|every| AbortOnDrop(tokio::spawn(sweep_every(cards.clone(), deps.clock, every, deps.sweep_batch))));
        let mut shell = Shell::new(deps.server)
            .reflect(proto::FILE_DESCRIPTOR_SET)
            .watch(single_use.guards::<Tokens>().guards::<Vault>())
            .watch(durable_store.guards::<Vault>())
            .sample(pool_gauges::sampler(SERVICE, cards.pool()))
            .sample(redis_gauges)
            .port(public)
            .port(internal);
        if let Some(health) = health {
            shell = shell.port(Port::health_only(health));
        }
        shell.run_until(shutdown).await?;
        drop(sweeper);
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The in-process retention sweeper (the CronJob runs `vault-svc sweep` instead).
async fn sweep_every(cards: Arc<SqlStore>, clock: SharedClock, every: Duration, batch: u32) {
    let actor = Actor { name: "retention-sweeper".into(), correlation_id: String::new() };
    retention::counters::register();
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
