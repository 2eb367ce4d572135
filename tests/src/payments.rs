//! Both services: the vault (Redis + PostgreSQL) and a real payments-svc
//! (PostgreSQL) calling it over mTLS as `payments-svc`, with the test
//! acquirer; payments-svc is started through `PaymentsConfig::load_from` with
//! a configuration file written for the test. The platform also makes the
//! merchant's calls (secret key, answers unwrapped) the payment tests repeat.
use std::sync::Arc;

use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Response, Status};

use common::config::Layers;
use payments_svc::config::PaymentsConfig;
use payments_svc::startup::{Application, Dependencies};
use proto::payments::v1 as pb;

use crate::database::{Db, TestDatabase};
use crate::scratch::ScratchDir;
use crate::server::ServerTask;
use crate::vault::{Store, TestVault};
use crate::{OmniTokensClient, PaymentsClient, RegistrationsClient, authed, card};

pub struct TestPlatform {
    pub vault: TestVault,
    /// payments-svc's port (TLS with `start_with_public_tls`).
    pub payments: Channel,
    /// Its plaintext health-only port.
    pub health: Channel,
    pub payments_addr: std::net::SocketAddr,
    pub payments_database_url: String,
    server: ServerTask,
    _database: TestDatabase,
    _dir: ScratchDir,
}

impl TestPlatform {
    pub async fn start() -> Self {
        Self::start_on(Store::Redis).await
    }

    /// With the vault's single-use tokens in `store` (e.g. a Redis Cluster).
    pub async fn start_on(store: Store) -> Self {
        let vault = TestVault::start(store).await;
        let vault_url = format!("https://localhost:{}", vault.internal_addr.port());
        Self::start_with(vault, vault_url, false).await
    }

    /// As `start`, with payments-svc's port served over TLS (a server
    /// certificate for `localhost` from the vault's test CA).
    pub async fn start_with_public_tls() -> Self {
        let vault = TestVault::start(Store::Redis).await;
        let vault_url = format!("https://localhost:{}", vault.internal_addr.port());
        Self::start_with(vault, vault_url, true).await
    }

    /// payments-svc pointed at a vault address where nothing listens.
    pub async fn start_with_vault_down() -> Self {
        let vault = TestVault::start(Store::Redis).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_with(vault, format!("https://localhost:{closed}"), false).await
    }

    async fn start_with(vault: TestVault, vault_url: String, public_tls: bool) -> Self {
        let dir = ScratchDir::new();
        let client = vault.ca.client("payments-svc").unwrap();
        dir.write("certs/ca.pem", &vault.ca.ca_pem);
        dir.write("certs/client.pem", &client.cert_pem);
        dir.write("certs/client.key", &client.key_pem);
        let server_cert = vault.ca.server(&["localhost"]).unwrap();
        dir.write("certs/server.pem", &server_cert.cert_pem);
        dir.write("certs/server.key", &server_cert.key_pem);
        dir.write("reference.key", common::keys::KeySet::random().to_text().as_str());
        let database = TestDatabase::new(Db::Postgres).await;
        let toml = format!(
            r#"addr = "127.0.0.1:0"
public_tls = {public_tls}
metrics_addr = ""
data_dir = {data_dir:?}
acquirer_timeout_ms = 1000
request_timeout_ms = 5000
shutdown_pause_ms = 20
shutdown_drain_secs = 2

[database]
url = {database_url:?}
max_connections = 8
connect_timeout_ms = 5000

[vault]
url = {vault_url:?}
domain = "localhost"

[merchants]
file = {directory:?}

# Leases run on the test's manual clock: work is reconciled once a test moves
# the clock past them.
[reconcile]
interval_ms = 100
"#,
            data_dir = dir.path().display().to_string(),
            database_url = database.url,
            directory = vault.directory_file.display().to_string(),
        );
        let file = dir.write("payments.toml", toml);
        let cfg = PaymentsConfig::load_from(&Layers { file: Some(&file), env: Some(Default::default()) }).unwrap();
        let mut deps = Dependencies::from_config(&cfg).await.unwrap();
        deps.clock = Arc::new(vault.clock.clone());
        let app = Application::bind(&cfg.addr, deps).await.unwrap().with_health_port("127.0.0.1:0").await.unwrap();
        let (addr, health_addr) = (app.addr(), app.health_addr().unwrap());
        let server = ServerTask::spawn("payments-svc", |shutdown| app.run_until(shutdown));
        let payments = if public_tls {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(vault.ca.ca_pem.clone()))
                .domain_name("localhost");
            let url = format!("https://localhost:{}", addr.port());
            Channel::from_shared(url).unwrap().tls_config(tls).unwrap().connect_lazy()
        } else {
            Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy()
        };
        let health = Channel::from_shared(format!("http://{health_addr}")).unwrap().connect_lazy();
        Self {
            vault,
            payments,
            health,
            payments_addr: addr,
            payments_database_url: database.url.clone(),
            server,
            _database: database,
            _dir: dir,
        }
    }

    pub fn skey(&self) -> String {
        self.vault.merchant.test_secret.expose().to_owned()
    }

    pub fn pkey(&self) -> String {
        self.vault.merchant.test_public.expose().to_owned()
    }

    pub fn payments(&self) -> PaymentsClient<Channel> {
        PaymentsClient::new(self.payments.clone())
    }

    pub fn registrations(&self) -> RegistrationsClient<Channel> {
        RegistrationsClient::new(self.payments.clone())
    }

    pub fn omni(&self) -> OmniTokensClient<Channel> {
        OmniTokensClient::new(self.payments.clone())
    }

    /// `CreatePayment` as the merchant's server makes it (with the secret key).
    pub async fn create_payment(&self, request: pb::CreatePaymentRequest) -> Result<pb::Payment, Status> {
        self.payments().create_payment(authed(&self.skey(), request)).await.map(Response::into_inner)
    }

    /// `GetPayment` of `id`, with the secret key.
    pub async fn get_payment(&self, id: &str) -> Result<pb::Payment, Status> {
        let request = authed(&self.skey(), pb::GetPaymentRequest { id: id.into() });
        self.payments().get_payment(request).await.map(Response::into_inner)
    }

    /// `CapturePayment` of `amount` of the PA `id`, with the secret key.
    pub async fn capture(&self, id: &str, amount: i64) -> Result<pb::Payment, Status> {
        let request = authed(&self.skey(), pb::CapturePaymentRequest { id: id.into(), amount });
        self.payments().capture_payment(request).await.map(Response::into_inner)
    }

    /// `RefundPayment` of `amount` of the DB or CP `id`, with the secret key.
    pub async fn refund(&self, id: &str, amount: i64) -> Result<pb::Payment, Status> {
        let request = authed(&self.skey(), pb::RefundPaymentRequest { id: id.into(), amount });
        self.payments().refund_payment(request).await.map(Response::into_inner)
    }

    /// `ReversePayment` of the PA `id`, with the secret key.
    pub async fn reverse(&self, id: &str) -> Result<pb::Payment, Status> {
        let request = authed(&self.skey(), pb::ReversePaymentRequest { id: id.into() });
        self.payments().reverse_payment(request).await.map(Response::into_inner)
    }

    /// `CreateRegistration`, with the secret key.
    pub async fn create_registration(
        &self,
        request: pb::CreateRegistrationRequest,
    ) -> Result<pb::Registration, Status> {
        self.registrations().create_registration(authed(&self.skey(), request)).await.map(Response::into_inner)
    }

    /// The transaction types of the ledger lines `query` selects, in order.
    pub async fn ledger(&self, query: pb::ListTransactionsRequest) -> Vec<String> {
        let request = authed(&self.skey(), query);
        let response = self.payments().list_transactions(request).await.unwrap().into_inner();
        response.transactions.into_iter().map(|t| t.transaction_type).collect()
    }

    /// A single-use token for `number`, made with the public key.
    pub async fn single_use_token(&self, number: &str) -> String {
        self.vault.create_token(&self.pkey(), card(number, "123")).await.unwrap().id
    }

    /// Stops payments-svc, then the vault (each failing the test if it
    /// failed), then drops their databases and files.
    pub async fn stop(self) {
        let Self { vault, server, .. } = self;
        server.stop().await;
        vault.stop().await;
    }
}

/// A repeated, unscheduled, cardholder-initiated standing instruction naming
/// `initial_transaction_id`.
pub fn repeated_cit(initial_transaction_id: &str) -> pb::StandingInstruction {
    pb::StandingInstruction {
        mode: pb::StandingInstructionMode::Repeated as i32,
        r#type: pb::StandingInstructionType::Unscheduled as i32,
        source: pb::StandingInstructionSource::Cit as i32,
        initial_transaction_id: initial_transaction_id.into(),
    }
}

/// `base` with `text` in each of its text fields in turn: `customer_id`,
/// `merchant_transaction_id`, `description`, the standing instruction's
/// `initial_transaction_id`.
pub fn text_in_each_field(text: &str, base: impl Fn() -> pb::CreatePaymentRequest) -> [pb::CreatePaymentRequest; 4] {
    [
        pb::CreatePaymentRequest { customer_id: text.into(), ..base() },
        pb::CreatePaymentRequest { merchant_transaction_id: text.into(), ..base() },
        pb::CreatePaymentRequest { description: text.into(), ..base() },
        pb::CreatePaymentRequest { standing_instruction: Some(repeated_cit(text)), ..base() },
    ]
}

/// `base()` with `text` in each of the card's text fields in turn: the
/// cardholder's name and every billing field but the country.
pub fn text_in_each_card_field(text: &str, base: impl Fn() -> pb::Card) -> [pb::Card; 7] {
    let t = || text.to_owned();
    [
        pb::Card { name: t(), ..base() },
        pb::Card { city: t(), ..base() },
        pb::Card { postal_code: t(), ..base() },
        pb::Card { state: t(), ..base() },
        pb::Card { street1: t(), ..base() },
        pb::Card { street2: t(), ..base() },
        pb::Card { phone_number: t(), ..base() },
    ]
}
