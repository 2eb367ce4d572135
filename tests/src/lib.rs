//! Test harness: starts a real vault-svc on loopback ports (port 0) with a dev
//! CA, a dev KEK, two merchants and the chosen token store, and hands out
//! generated clients for its public and internal ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod procs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use common::auth::{DirectoryHandle, NewMerchant, create_merchant};
use common::clock::ManualClock;
use common::ids;
use proto::vault::v1 as pb;
use vault_svc::crypto::kek::{KekSet, Key};
use vault_svc::dev::DevCa;
use vault_svc::domain::single_use::Policy;
use vault_svc::grpc::tls::TlsMaterial;
use vault_svc::startup::{Application, Dependencies};
use vault_svc::storage::ConfiguredStore;
use vault_svc::storage::memory::MemoryTokenStore;
use vault_svc::storage::redis::{RedisSettings, RedisTokenStore};
use vault_svc::storage::sql::SqlStore;

pub use pb::tokens_client::TokensClient;
pub use pb::vault_client::VaultClient;

/// Tests use their own Redis database (15) so they never meet local or
/// benchmark data; `TEST_REDIS_URL` overrides it.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A real PostgreSQL, in a fresh schema.
    Postgres,
    /// A fresh SQLite file.
    Sqlite,
}

/// A migrated durable store of its own: a new schema on PostgreSQL (through
/// `search_path`) or a new SQLite file. Returns the store and its URL.
pub async fn test_database(db: Db) -> (SqlStore, String) {
    let url = database_url(db).await;
    let store = SqlStore::connect(&url, 8, Duration::from_secs(5)).await.unwrap();
    (store, url)
}

/// The URL of an empty database of its own: a new PostgreSQL schema or SQLite file.
pub async fn database_url(db: Db) -> String {
    match db {
        Db::Postgres => {
            sqlx::any::install_default_drivers();
            let schema = format!("test_{}", ids::hex(8));
            let admin = sqlx::AnyPool::connect(&postgres_url()).await.expect("PostgreSQL must be running");
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
            admin.close().await;
            let sep = if postgres_url().contains('?') { '&' } else { '?' };
            format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_url())
        }
        Db::Sqlite => format!("sqlite://{}?mode=rwc", temp_dir().join("store.db").display()),
    }
}

#[derive(Debug, Clone)]
pub enum Store {
    Memory,
    /// A real Redis under a fresh key prefix.
    Redis,
    /// Any Redis URL (e.g. one that never answers).
    RedisAt(String),
}

pub struct TestVault {
    pub public: Channel,
    pub public_addr: std::net::SocketAddr,
    pub internal_addr: std::net::SocketAddr,
    pub ca: Arc<DevCa>,
    pub merchant: NewMerchant,
    pub other_merchant: NewMerchant,
    pub clock: ManualClock,
    pub redis_prefix: Option<String>,
    /// The durable store's URL (for direct inspection in tests).
    pub database_url: String,
    /// The vault's KEK set.
    pub keks: KekSet,
    /// The merchant directory file both services load.
    pub directory_file: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("payvault-e2e-{}", ids::hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestVault {
    pub async fn start(store: Store) -> Self {
        Self::start_with(store, false).await
    }

    /// As `start`, with the public port served over TLS (server certificate
    /// for `localhost` from the test CA).
    pub async fn start_with_public_tls(store: Store) -> Self {
        Self::start_with(store, true).await
    }

    async fn start_with(store: Store, public_tls: bool) -> Self {
        let dir = temp_dir();
        let directory_file = dir.join("merchants.json");
        let merchant = create_merchant(&directory_file, "Shop A").unwrap();
        let other_merchant = create_merchant(&directory_file, "Shop B").unwrap();
        let ca = Arc::new(DevCa::generate().unwrap());
        let server = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        let clock = ManualClock::starting_now();
        let mut redis_prefix = None;
        let redis = |url: String, prefix: String| {
            ConfiguredStore::Redis(
                RedisTokenStore::new(&RedisSettings {
                    url,
                    key_prefix: prefix,
                    pool_size: 8,
                    connect_timeout: Duration::from_millis(500),
                })
                .unwrap(),
            )
        };
        // Production pairs Redis with PostgreSQL; the embedded run pairs the
        // in-process store with SQLite.
        let db = if matches!(store, Store::Memory) { Db::Sqlite } else { Db::Postgres };
        let (cards, database_url) = test_database(db).await;
        let store = match store {
            Store::Memory => ConfiguredStore::Memory(MemoryTokenStore::new()),
            Store::Redis => {
                let prefix = format!("e2e:{}:", ids::hex(8));
                redis_prefix = Some(prefix.clone());
                redis(redis_url(), prefix)
            }
            Store::RedisAt(url) => redis(url, "e2e:".into()),
        };
        let keks = KekSet::new(BTreeMap::from([(1, Key::random())])).unwrap();
        let deps = Dependencies {
            store,
            cards,
            keks: keks.clone(),
            directory: DirectoryHandle::load(&directory_file).unwrap(),
            clock: Arc::new(clock.clone()),
            tls: TlsMaterial {
                ca_pem: ca.ca_pem.clone().into_bytes(),
                cert_pem: server.cert_pem.into_bytes(),
                key_pem: server.key_pem.into_bytes(),
            },
            public_tls,
            allowed_clients: vec!["payments-svc".into()],
            policy: Policy::default(),
            request_timeout: Duration::from_secs(5),
            shutdown_drain: Duration::from_secs(2),
            sweep_every: None,
            sweep_batch: 100,
        };
        let app = Application::bind("127.0.0.1:0", "127.0.0.1:0", deps).await.unwrap();
        let (public_addr, internal_addr) = (app.public_addr(), app.internal_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let public = if public_tls {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.ca_pem.clone()))
                .domain_name("localhost");
            let url = format!("https://localhost:{}", public_addr.port());
            Channel::from_shared(url).unwrap().tls_config(tls).unwrap().connect_lazy()
        } else {
            Channel::from_shared(format!("http://{public_addr}")).unwrap().connect_lazy()
        };
        Self {
            public,
            public_addr,
            internal_addr,
            ca,
            merchant,
            other_merchant,
            clock,
            redis_prefix,
            database_url,
            keks,
            directory_file,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn tokens(&self) -> TokensClient<Channel> {
        TokensClient::new(self.public.clone())
    }

    /// A channel to the internal port presenting a client certificate for `name`
    /// issued by `ca` (`None`: no client certificate at all).
    pub fn internal_channel(&self, client: Option<(&DevCa, &str)>) -> Channel {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.ca_pem.clone()))
            .domain_name("localhost");
        if let Some((ca, name)) = client {
            let cert = ca.client(name).unwrap();
            tls = tls.identity(Identity::from_pem(cert.cert_pem, cert.key_pem));
        }
        Channel::from_shared(format!("https://localhost:{}", self.internal_addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    /// The internal client as payments-svc would hold it.
    pub fn vault(&self) -> VaultClient<Channel> {
        VaultClient::new(self.internal_channel(Some((&self.ca, "payments-svc"))))
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Adds `authorization: Bearer <key>` to a request.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// A valid test card: Visa 4242…, expiring 12 of the year after next.
pub fn card(number: &str, security_code: &str) -> pb::Card {
    pb::Card {
        number: number.into(),
        expiration_month: 12,
        expiration_year: 2040,
        name: "Jane Doe".into(),
        security_code: security_code.into(),
        country: "th".into(),
        city: "Bangkok".into(),
        postal_code: "10320".into(),
        ..Default::default()
    }
}

pub fn create_request(card: pb::Card) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest { card: Some(card) }
}

pub fn detokenize_request(merchant_id: &str, token: &str, consumer_ref: &str) -> pb::DetokenizeRequest {
    pb::DetokenizeRequest {
        merchant_id: merchant_id.into(),
        token: token.into(),
        consumer_ref: consumer_ref.into(),
        livemode: token.starts_with("tokn_") && !token.starts_with("tokn_test_"),
    }
}

/// The `ErrorInfo` reason of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    common::grpc::error_reason(status).unwrap_or_default()
}

/// Every value stored under `prefix` in Redis, as lossy text (for PAN scans).
pub async fn redis_values(prefix: &str) -> Vec<String> {
    use deadpool_redis::redis;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut values = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let raw: Vec<Vec<u8>> = if kind == "hash" {
            redis::cmd("HVALS").arg(&key).query_async(&mut conn).await.unwrap()
        } else {
            vec![redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap()]
        };
        values.extend(raw.iter().map(|v| String::from_utf8_lossy(v).into_owned()));
        values.push(key);
    }
    values
}

/// A `Tokenize` request for a card.
pub fn tokenize_card(merchant_id: &str, kind: pb::TokenKind, card: pb::Card, customer_id: &str) -> pb::TokenizeRequest {
    pb::TokenizeRequest {
        merchant_id: merchant_id.into(),
        kind: kind as i32,
        source: Some(pb::tokenize_request::Source::Card(card)),
        customer_id: customer_id.into(),
        consumer_ref: String::new(),
        livemode: false,
    }
}

/// Scoped requests of the internal API for a test-mode merchant.
pub fn scoped<T>(message: T, correlation_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-correlation-id", correlation_id.parse().unwrap());
    request
}

impl TestVault {
    /// Another connection to this vault's durable store.
    pub async fn sql(&self) -> SqlStore {
        SqlStore::connect(&self.database_url, 4, Duration::from_secs(5)).await.unwrap()
    }
}

/// Every value in the durable store's tables, as lossy text (for PAN scans):
/// text as is, integers in decimal, blobs as their raw bytes.
pub async fn database_values(store: &SqlStore) -> Vec<String> {
    table_values(store.pool(), &["card_tokens", "data_keys", "audit_events", "key_rotations"]).await
}

/// Every value of `tables`, as `database_values` renders them.
pub async fn table_values(pool: &sqlx::AnyPool, tables: &[&str]) -> Vec<String> {
    use sqlx::Row;
    let mut values = Vec::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(pool).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    values.push(text);
                } else if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
                    values.push(n.to_string());
                } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    values.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
    }
    values
}

pub use proto::payments::v1::omni_tokens_client::OmniTokensClient;
pub use proto::payments::v1::payments_client::PaymentsClient;
pub use proto::payments::v1::registrations_client::RegistrationsClient;

/// Both services: the vault (Redis + PostgreSQL) and payments-svc (PostgreSQL)
/// calling it over mTLS as `payments-svc`, with the test acquirer.
pub struct TestPlatform {
    pub vault: TestVault,
    pub payments: Channel,
    pub payments_database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestPlatform {
    pub async fn start() -> Self {
        let vault = TestVault::start(Store::Redis).await;
        let vault_url = format!("https://localhost:{}", vault.internal_addr.port());
        Self::start_with(vault, vault_url).await
    }

    /// payments-svc pointed at a vault address where nothing listens.
    pub async fn start_with_vault_down() -> Self {
        let vault = TestVault::start(Store::Redis).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_with(vault, format!("https://localhost:{closed}")).await
    }

    async fn start_with(vault: TestVault, vault_url: String) -> Self {
        use payments_svc::startup::{Application, Dependencies};
        use payments_svc::vault::grpc::{GrpcVault, VaultEndpoint};
        let client = vault.ca.client("payments-svc").unwrap();
        let endpoint = VaultEndpoint {
            url: vault_url,
            domain: "localhost".into(),
            ca_pem: vault.ca.ca_pem.clone().into_bytes(),
            cert_pem: client.cert_pem.into_bytes(),
            key_pem: client.key_pem.into_bytes(),
        };
        let payments_database_url = database_url(Db::Postgres).await;
        let deps = Dependencies {
            store: payments_svc::storage::sql::SqlStore::connect(&payments_database_url, 8, Duration::from_secs(5))
                .await
                .unwrap(),
            vault: GrpcVault::connect_lazy(&endpoint).unwrap(),
            directory: DirectoryHandle::load(&vault.directory_file).unwrap(),
            clock: Arc::new(vault.clock.clone()),
            acquirer_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            shutdown_drain: Duration::from_secs(2),
        };
        let app = Application::bind("127.0.0.1:0", deps).await.unwrap();
        let addr = app.addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let payments = Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
        Self { vault, payments, payments_database_url, shutdown: Some(tx), task: Some(task) }
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

    /// A single-use token for `number`, made with the public key.
    pub async fn single_use_token(&self, number: &str) -> String {
        let request = authed(&self.pkey(), create_request(card(number, "123")));
        self.vault.tokens().create_token(request).await.unwrap().into_inner().id
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.vault.stop().await;
    }
}
