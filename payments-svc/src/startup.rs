//! Wiring of payments-svc: its dependencies from configuration, and the
//! `Payments`, `Registrations` and `OmniTokens` services on one port
//! (plaintext for the local run, or TLS), handed to the server shell
//! (`common::server`) with the database it watches, the pool gauges it
//! samples and the detached work its drain waits for, and optionally a
//! plaintext health-only port for probes; the in-process reconciler (which
//! also samples the backlog gauges).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use common::auth::DirectoryHandle;
use common::clock::{SharedClock, SystemClock};
use common::database::pool_gauges;
use common::keys::KeySet;
use common::server::tls::ServerConfig;
use common::server::{self, Check, Port, Shell};
use proto::payments::v1::omni_tokens_server::OmniTokensServer;
use proto::payments::v1::payments_server::PaymentsServer;
use proto::payments::v1::registrations_server::RegistrationsServer;
use vault_api::{Balancing, GrpcVault, VaultEndpoint};

use crate::acquirer::test_acquirer::TestAcquirer;
use crate::config::{PaymentsConfig, VaultBalance};
use crate::domain::flows::Payments;
use crate::domain::reconcile::{self, Pass, Schedule};
use crate::domain::references::References;
use crate::domain::store::PaymentStore;
use crate::grpc::Shared;
use crate::grpc::omni_tokens::OmniTokensService;
use crate::grpc::payments::PaymentsService;
use crate::grpc::registrations::RegistrationsService;
use crate::storage::sql::SqlStore;

/// The environment variable that, when set, holds the reference key (lines
/// separated by newlines or `;`) instead of its file.
pub const REFERENCE_KEY_ENV: &str = "PAYMENTS_REFERENCE_KEY";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `service` label of the payments pool gauges.
const SERVICE: &str = "payments-svc";

type PaymentsApi = PaymentsServer<PaymentsService<SqlStore, GrpcVault, TestAcquirer>>;
type RegistrationsApi = RegistrationsServer<RegistrationsService<SqlStore, GrpcVault, TestAcquirer>>;
type OmniTokensApi = OmniTokensServer<OmniTokensService<SqlStore, GrpcVault, TestAcquirer>>;

pub struct Dependencies {
    pub store: SqlStore,
    pub vault: GrpcVault,
    /// TLS on the public port, with its server certificate (`None`: plaintext).
    pub public_tls: Option<Arc<ServerConfig>>,
    pub directory: DirectoryHandle,
    /// What idempotency keys and requests are stored keyed under.
    pub references: References,
    pub clock: SharedClock,
    pub acquirer_timeout: Duration,
    /// Call deadline and drain timing.
    pub server: common::server::Settings,
    /// How long a worker owns a payment and its key before another may take it over.
    pub lease: Duration,
    /// The in-process reconciler's interval (`None`: only the CronJob runs it).
    pub reconcile_every: Option<Duration>,
    pub reconcile: Schedule,
}

impl Dependencies {
    pub async fn from_config(cfg: &PaymentsConfig) -> Result<Self, BoxError> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let [ca, cert, key] = cfg.vault_tls_paths();
        let endpoint = VaultEndpoint {
            url: cfg.vault.url.clone(),
            domain: cfg.vault.domain.clone(),
            ca_pem: read(&ca)?,
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
        };
        let public_tls = match cfg.public_tls {
            true => {
                let [cert, key] = cfg.public_tls_paths();
                Some(server::tls::public_server_config(&read(&cert)?, &read(&key)?)?)
            }
            false => None,
        };
        let directory = cfg.merchants.load(&cfg.data_dir)?;
        let reference_file = cfg.reference_key_file();
        let references = KeySet::load(REFERENCE_KEY_ENV, &reference_file)
            .map_err(|e| format!("reference key ({} or {REFERENCE_KEY_ENV}): {e}", reference_file.display()))?;
        let timeout = Duration::from_millis(cfg.database.connect_timeout_ms);
        Ok(Self {
            store: SqlStore::open(
                &cfg.database_url(),
                cfg.database.max_connections,
                timeout,
                &cfg.database.group_commit,
            )
            .await?,
            vault: match cfg.vault.balance {
                VaultBalance::Dns => {
                    let resolve_every = Duration::from_millis(cfg.vault.resolve_interval_ms.max(100));
                    GrpcVault::connect_balanced(&endpoint, Balancing { resolve_every, ..Balancing::default() })?
                }
                VaultBalance::Off => GrpcVault::connect_lazy(&endpoint)?,
            },
            public_tls,
            directory,
            references: References::new(references),
            clock: Arc::new(SystemClock),
            acquirer_timeout: Duration::from_millis(cfg.acquirer_timeout_ms),
            server: cfg.server_settings(),
            lease: Duration::from_millis(cfg.idempotency.lease_ms.max(1)),
            reconcile_every: (cfg.reconcile.interval_ms > 0).then(|| Duration::from_millis(cfg.reconcile.interval_ms)),
            reconcile: Schedule {
                batch: cfg.reconcile.batch.max(1),
                key_retention: Duration::from_secs(cfg.idempotency.retention_secs),
            },
        })
    }

    /// The payments domain over these dependencies, and what the server needs besides.
    fn assemble(self, tracker: &tokio_util::task::TaskTracker) -> Assembled {
        let store = Arc::new(self.store);
        let vault_probe = self.vault.clone();
        let vault = Arc::new(self.vault);
        let payments = Payments::new(store.clone(), vault, Arc::new(TestAcquirer), self.clock, self.acquirer_timeout)
            .with_lease(self.lease)
            .with_tracker(tracker.clone());
        Assembled {
            payments: Arc::new(payments),
            references: Arc::new(self.references),
            store,
            vault: vault_probe,
            public_tls: self.public_tls,
            directory: self.directory,
            server: self.server,
            reconcile_every: self.reconcile_every,
            schedule: self.reconcile,
        }
    }
}

struct Assembled {
    payments: Arc<Payments<SqlStore, GrpcVault, TestAcquirer>>,
    references: Arc<References>,
    store: Arc<SqlStore>,
    /// What the vault health check asks.
    vault: GrpcVault,
    public_tls: Option<Arc<ServerConfig>>,
    directory: DirectoryHandle,
    server: common::server::Settings,
    reconcile_every: Option<Duration>,
    schedule: Schedule,
}

/// One reconciler pass over the configured stores (`payments-svc reconcile`).
pub async fn reconcile_once(cfg: &PaymentsConfig) -> Result<Pass, BoxError> {
    // The pass waits for the charge-status reports it queues.
    let parts = Dependencies::from_config(cfg).await?.assemble(&tokio_util::task::TaskTracker::new());
    Ok(parts.payments.reconcile(parts.schedule).await?)
}

pub struct Application {
    listener: TcpListener,
    /// A plaintext port serving only `grpc.health.v1` (for the kubelet's gRPC
    /// probe, which cannot speak TLS), if configured.
    health: Option<TcpListener>,
    deps: Dependencies,
}

impl Application {
    pub async fn bind(addr: &str, deps: Dependencies) -> Result<Self, BoxError> {
        Ok(Self { listener: server::bind(addr).await?, health: None, deps })
    }

    /// Also serves health alone, in plaintext, on `addr`.
    pub async fn with_health_port(self, addr: &str) -> Result<Self, BoxError> {
        Ok(Self { health: Some(server::bind(addr).await?), ..self })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|h| h.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains (see `common::server`):
    /// in-flight calls and the work they detached finish within the drain
    /// limit; work the limit cuts stays pending under its lease for the
    /// reconciler. Health: every service follows the payments database and
    /// the vault.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let Self { listener, health, deps } = self;
        // The work calls detach and the charge-status reports: the drain waits for both.
        let tracker = tokio_util::task::TaskTracker::new();
        let Assembled { payments, references, store, vault, public_tls, directory, server, reconcile_every, schedule } =
            deps.assemble(&tracker);
        let reconciler =
            reconcile_every.map(|every| tokio::spawn(reconcile::run_every(payments.clone(), every, schedule)));
        let max_deadline = server.request_timeout;
        let shared = Arc::new(Shared { payments, directory, references, max_deadline, tracker: tracker.clone() });
        let pool = pool_gauges::sampler(SERVICE, store.pool());
        let database = Check::new("payments database", move || {
            let store = store.clone();
            async move { store.ping().await }
        });
        // Every service follows the vault too: token, registration and omni
        // payments need it, and a balancer should send them where it answers.
        let vault = Check::new("vault", move || {
            let vault = vault.clone();
            async move { vault.serving().await }
        });
        let port = Port::tcp_or_tls("payments", listener, public_tls)
            .add_service(PaymentsApi::new(PaymentsService(shared.clone())))
            .add_service(RegistrationsApi::new(RegistrationsService(shared.clone())))
            .add_service(OmniTokensApi::new(OmniTokensService(shared)));
        let mut shell = Shell::new(server)
            .reflect(proto::FILE_DESCRIPTOR_SET)
            .watch(database.guards::<PaymentsApi>().guards::<RegistrationsApi>().guards::<OmniTokensApi>())
            .watch(vault.guards::<PaymentsApi>().guards::<RegistrationsApi>().guards::<OmniTokensApi>())
            .sample(pool)
            .port(port)
            .detached(tracker);
        if let Some(health) = health {
            shell = shell.port(Port::health_only(health));
        }
        let served = shell.run_until(shutdown).await;
        if let Some(reconciler) = reconciler {
            reconciler.abort();
        }
        Ok(served?)
    }
}
