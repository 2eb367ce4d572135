//! Building and running payments-svc: the `Payments`, `Registrations` and
//! `OmniTokens` services with health and reflection on one port, a store
//! monitor that drives health, graceful shutdown.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use common::auth::DirectoryHandle;
use common::clock::{SharedClock, SystemClock};
use proto::payments::v1::omni_tokens_server::OmniTokensServer;
use proto::payments::v1::payments_server::PaymentsServer;
use proto::payments::v1::registrations_server::RegistrationsServer;
use vault_api::{GrpcVault, VaultEndpoint};

use crate::acquirer::test_acquirer::TestAcquirer;
use crate::config::PaymentsConfig;
use crate::domain::flows::Payments;
use crate::domain::reconcile::{self, Schedule};
use crate::domain::store::PaymentStore;
use crate::grpc::Shared;
use crate::grpc::omni_tokens::OmniTokensService;
use crate::grpc::payments::PaymentsService;
use crate::grpc::registrations::RegistrationsService;
use crate::storage::sql::SqlStore;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVICES: [&str; 4] =
    ["", "payvault.payments.v1.Payments", "payvault.payments.v1.Registrations", "payvault.payments.v1.OmniTokens"];

pub struct Dependencies {
    pub store: SqlStore,
    pub vault: GrpcVault,
    pub directory: DirectoryHandle,
    pub clock: SharedClock,
    pub acquirer_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_drain: Duration,
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
        let directory = DirectoryHandle::load(&cfg.merchants_file())?;
        directory.spawn_reloader(Duration::from_secs(cfg.merchants.reload_secs.max(1)));
        let timeout = Duration::from_millis(cfg.database.connect_timeout_ms);
        Ok(Self {
            store: SqlStore::connect(&cfg.database_url(), cfg.database.max_connections, timeout).await?,
            vault: GrpcVault::connect_lazy(&endpoint)?,
            directory,
            clock: Arc::new(SystemClock),
            acquirer_timeout: Duration::from_millis(cfg.acquirer_timeout_ms),
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            shutdown_drain: Duration::from_secs(cfg.shutdown_drain_secs),
            lease: Duration::from_millis(cfg.idempotency.lease_ms.max(1)),
            reconcile_every: (cfg.reconcile.interval_ms > 0).then(|| Duration::from_millis(cfg.reconcile.interval_ms)),
            reconcile: schedule(cfg),
        })
    }
}

/// How the reconciler runs, from configuration.
pub fn schedule(cfg: &PaymentsConfig) -> Schedule {
    Schedule { batch: cfg.reconcile.batch.max(1), key_retention: Duration::from_secs(cfg.idempotency.retention_secs) }
}

/// One reconciler pass over the configured stores (`payments-svc reconcile`).
pub async fn reconcile_once(cfg: &PaymentsConfig) -> Result<crate::domain::reconcile::Pass, BoxError> {
    let deps = Dependencies::from_config(cfg).await?;
    let payments = Payments::new(
        Arc::new(deps.store),
        Arc::new(deps.vault),
        Arc::new(TestAcquirer),
        deps.clock,
        deps.acquirer_timeout,
    )
    .with_lease(deps.lease);
    Ok(payments.reconcile(deps.reconcile).await?)
}

pub struct Application {
    listener: TcpListener,
    deps: Dependencies,
}

impl Application {
    pub async fn bind(addr: &str, deps: Dependencies) -> Result<Self, BoxError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
        Ok(Self { listener, deps })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let Self { listener, deps } = self;
        let store = Arc::new(deps.store);
        let payments = Arc::new(
            Payments::new(
                store.clone(),
                Arc::new(deps.vault),
                Arc::new(TestAcquirer),
                deps.clock,
                deps.acquirer_timeout,
            )
            .with_lease(deps.lease),
        );
        let reconciler = deps
            .reconcile_every
            .map(|every| tokio::spawn(reconcile::run_every(payments.clone(), every, deps.reconcile)));
        let tracker = tokio_util::task::TaskTracker::new();
        let shared = Arc::new(Shared {
            payments,
            directory: deps.directory,
            max_deadline: deps.request_timeout,
            tracker: tracker.clone(),
        });
        let (health, health_service) = tonic_health::server::health_reporter();
        let monitor = {
            let health = health.clone();
            tokio::spawn(async move {
                let mut last = None;
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tick.tick().await;
                    let up = matches!(tokio::time::timeout(Duration::from_secs(1), store.ping()).await, Ok(Ok(())));
                    if last != Some(up) {
                        let status = if up { ServingStatus::Serving } else { ServingStatus::NotServing };
                        for service in SERVICES {
                            health.set_service_status(service, status).await;
                        }
                        last = Some(up);
                    }
                }
            })
        };
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(SERVICES[1])
                .with_service_name(SERVICES[2])
                .with_service_name(SERVICES[3])
                .with_service_name("grpc.health.v1.Health")
        };
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = Server::builder()
            .layer(common::metrics::GrpcMetricsLayer)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(PaymentsServer::new(PaymentsService(shared.clone())))
            .add_service(RegistrationsServer::new(RegistrationsService(shared.clone())))
            .add_service(OmniTokensServer::new(OmniTokensService(shared)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            });
        // Serving ends when the listener has stopped and in-flight calls have
        // answered; the work they detached is waited for as well, within the
        // same drain limit. Work the limit cuts stays pending under its lease.
        let server = async {
            server.await?;
            tracker.close();
            tracker.wait().await;
            Ok::<(), tonic::transport::Error>(())
        };
        let on_stop = async {
            monitor.abort();
            for service in SERVICES {
                health.set_service_status(service, ServingStatus::NotServing).await;
            }
            let _ = stop_tx.send(true);
        };
        let served = common::lifecycle::serve_until(server, shutdown, on_stop, deps.shutdown_drain).await;
        if let Some(reconciler) = reconciler {
            reconciler.abort();
        }
        served.map_err(BoxError::from)
    }
}
