//! Wiring of payments-svc: its dependencies from configuration, and the
//! `Payments`, `Registrations` and `OmniTokens` services on one port, handed to
//! the server shell (`common::server`) with the database it watches.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use common::auth::DirectoryHandle;
use common::clock::{SharedClock, SystemClock};
use common::server::{Check, Port, Shell};
use proto::payments::v1::omni_tokens_server::OmniTokensServer;
use proto::payments::v1::payments_server::PaymentsServer;
use proto::payments::v1::registrations_server::RegistrationsServer;

use crate::acquirer::test_acquirer::TestAcquirer;
use crate::config::PaymentsConfig;
use crate::domain::flows::Payments;
use crate::grpc::Shared;
use crate::grpc::omni_tokens::OmniTokensService;
use crate::grpc::payments::PaymentsService;
use crate::grpc::registrations::RegistrationsService;
use crate::storage::PaymentStore;
use crate::storage::sql::SqlStore;
use crate::vault::grpc::{GrpcVault, VaultEndpoint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type PaymentsApi = PaymentsServer<PaymentsService<SqlStore, GrpcVault, TestAcquirer>>;
type RegistrationsApi = RegistrationsServer<RegistrationsService<SqlStore, GrpcVault, TestAcquirer>>;
type OmniTokensApi = OmniTokensServer<OmniTokensService<SqlStore, GrpcVault, TestAcquirer>>;

pub struct Dependencies {
    pub store: SqlStore,
    pub vault: GrpcVault,
    pub directory: DirectoryHandle,
    pub clock: SharedClock,
    pub acquirer_timeout: Duration,
    /// Call deadline and drain timing.
    pub server: common::server::Settings,
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
        let directory = cfg.merchants.load(&cfg.data_dir)?;
        let timeout = Duration::from_millis(cfg.database.connect_timeout_ms);
        Ok(Self {
            store: SqlStore::connect(&cfg.database_url(), cfg.database.max_connections, timeout).await?,
            vault: GrpcVault::connect_lazy(&endpoint)?,
            directory,
            clock: Arc::new(SystemClock),
            acquirer_timeout: Duration::from_millis(cfg.acquirer_timeout_ms),
            server: cfg.server_settings(),
        })
    }
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

    /// Serves until `shutdown` resolves, then drains (see `common::server`).
    /// Health: every service follows the payments database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let Self { listener, deps } = self;
        let store = Arc::new(deps.store);
        let payments = Arc::new(Payments::new(
            store.clone(),
            Arc::new(deps.vault),
            Arc::new(TestAcquirer),
            deps.clock,
            deps.acquirer_timeout,
        ));
        let max_deadline = deps.server.request_timeout;
        let shared = Arc::new(Shared { payments, directory: deps.directory, max_deadline });
        let database = Check::new("payments database", move || {
            let store = store.clone();
            async move { store.ping().await }
        });
        let port = Port::tcp("payments", listener)
            .add_service(PaymentsApi::new(PaymentsService(shared.clone())))
            .add_service(RegistrationsApi::new(RegistrationsService(shared.clone())))
            .add_service(OmniTokensApi::new(OmniTokensService(shared)));
        Shell::new(deps.server)
            .reflect(proto::FILE_DESCRIPTOR_SET)
            .watch(database.guards::<PaymentsApi>().guards::<RegistrationsApi>().guards::<OmniTokensApi>())
            .port(port)
            .run_until(shutdown)
            .await?;
        Ok(())
    }
}
