//! A real vault-svc on loopback ports (port 0), started as production starts
//! it: a configuration file written for the test, loaded by
//! `VaultConfig::load_from`, then `Dependencies::from_config`. The test keeps
//! a dev CA, the KEK, two merchants and a manual clock.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use common::auth::{NewMerchant, create_merchant};
use common::clock::ManualClock;
use common::config::Layers;
use common::ids;
use proto::vault::v1 as pb;
use vault_svc::config::VaultConfig;
use vault_svc::crypto::kek::{KekSet, Key};
use vault_svc::dev::DevCa;
use vault_svc::startup::{Application, Dependencies};
use vault_svc::storage::sql::SqlStore;

use crate::database::{Db, TestDatabase};
use crate::scratch::ScratchDir;
use crate::server::ServerTask;
use crate::{TokensClient, VaultClient, authed, create_request};

#[derive(Debug, Clone)]
pub enum Store {
    Memory,
    /// A real Redis under a fresh key prefix.
    Redis,
    /// Any Redis URL (e.g. one that never answers).
    RedisAt(String),
    /// A Redis Cluster's seed nodes (comma-separated), under a fresh key prefix.
    RedisCluster(String),
}

pub struct TestVault {
    pub public: Channel,
    /// The plaintext health-only port.
    pub health: Channel,
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
    // Dropped in this order: the server first, then what it used.
    server: ServerTask,
    _database: TestDatabase,
    _dir: ScratchDir,
}

/// The test's settings, as a vault-svc configuration file.
fn config_file(dir: &ScratchDir, store: &Store, redis_prefix: Option<&str>, database_url: &str, tls: bool) -> PathBuf {
    let redis = match store {
        Store::Memory => String::new(),
        Store::Redis => {
            format!("url = {:?}\nkey_prefix = {:?}\n", crate::redis::redis_url(), redis_prefix.unwrap_or(""))
        }
        Store::RedisAt(url) => format!("url = {url:?}\nkey_prefix = \"e2e:\"\n"),
        Store::RedisCluster(seeds) => {
            format!("url = {seeds:?}\ncluster = true\nkey_prefix = {:?}\n", redis_prefix.unwrap_or(""))
        }
    };
    let toml = format!(
        r#"public_addr = "127.0.0.1:0"
internal_addr = "127.0.0.1:0"
public_tls = {tls}
metrics_addr = ""
data_dir = {data_dir:?}
request_timeout_ms = 5000
shutdown_pause_ms = 20
shutdown_drain_secs = 2

[redis]
{redis}pool_size = 8
connect_timeout_ms = 500

[database]
url = {database_url:?}
max_connections = 8
connect_timeout_ms = 5000

[keys]
provider = "file"

[tls]
allowed_clients = ["payments-svc"]

[retention]
sweep_interval_secs = 0
batch = 100
"#,
        data_dir = dir.path().display().to_string(),
    );
    dir.write("vault.toml", toml)
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
        let dir = ScratchDir::new();
        let directory_file = dir.path().join("merchants.json");
        let merchant = create_merchant(&directory_file, "Shop A").unwrap();
        let other_merchant = create_merchant(&directory_file, "Shop B").unwrap();
        let ca = Arc::new(DevCa::generate().unwrap());
        let server = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        dir.write("certs/ca.pem", &ca.ca_pem);
        dir.write("certs/server.pem", &server.cert_pem);
        dir.write("certs/server.key", &server.key_pem);
        let keks = KekSet::new(std::collections::BTreeMap::from([(1, Key::random())])).unwrap();
        dir.write("kek", keks.to_text().as_bytes());
        let clock = ManualClock::starting_now();
        let redis_prefix =
            matches!(store, Store::Redis | Store::RedisCluster(_)).then(|| format!("e2e:{}:", ids::hex(8)));
        // Production pairs Redis with PostgreSQL; the embedded run pairs the
        // in-process store with SQLite.
        let database = TestDatabase::new(if matches!(store, Store::Memory) { Db::Sqlite } else { Db::Postgres }).await;

        let file = config_file(&dir, &store, redis_prefix.as_deref(), &database.url, public_tls);
        let cfg = VaultConfig::load_from(&Layers { file: Some(&file), env: Some(Default::default()) }).unwrap();
        let mut deps = Dependencies::from_config(&cfg).await.unwrap();
        deps.clock = Arc::new(clock.clone());
        let app = Application::bind(&cfg.public_addr, &cfg.internal_addr, deps).await.unwrap();
        let app = app.with_health_port("127.0.0.1:0").await.unwrap();
        let (public_addr, internal_addr) = (app.public_addr(), app.internal_addr());
        let health_addr = app.health_addr().unwrap();
        let server = ServerTask::spawn("vault-svc", |shutdown| app.run_until(shutdown));
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
            health: Channel::from_shared(format!("http://{health_addr}")).unwrap().connect_lazy(),
            public_addr,
            internal_addr,
            ca,
            merchant,
            other_merchant,
            clock,
            redis_prefix,
            database_url: database.url.clone(),
            keks,
            directory_file,
            server,
            _database: database,
            _dir: dir,
        }
    }

    pub fn tokens(&self) -> TokensClient<Channel> {
        TokensClient::new(self.public.clone())
    }

    /// `CreateToken` for `card` on the public port, authenticated with `key`.
    pub async fn create_token(&self, key: &str, card: pb::Card) -> Result<pb::Token, tonic::Status> {
        self.tokens().create_token(authed(key, create_request(card))).await.map(tonic::Response::into_inner)
    }

    /// `GetToken` of `id` on the public port, authenticated with `key`.
    pub async fn get_token(&self, key: &str, id: &str) -> Result<pb::Token, tonic::Status> {
        let request = authed(key, pb::GetTokenRequest { id: id.into() });
        self.tokens().get_token(request).await.map(tonic::Response::into_inner)
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

    /// Another connection to this vault's durable store.
    pub async fn sql(&self) -> SqlStore {
        SqlStore::connect(&self.database_url, 4, Duration::from_secs(5)).await.unwrap()
    }

    /// Stops the vault (failing the test if it failed), then drops its
    /// database and files.
    pub async fn stop(self) {
        let Self { server, .. } = self;
        server.stop().await;
    }
}
