//! The vault-svc binary: `serve` (default), `dev-init`, `merchant create`,
//! `sweep` (retention, for the CronJob) and `keys` (split, rotate-kek, reencrypt).
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use common::clock::{Clock, SystemClock};
use common::lifecycle::shutdown_signal;
use vault_svc::config::{KeyProviderKind, VaultConfig};
use vault_svc::crypto::{KekSet, KeyProvider, KeyRing};
use vault_svc::domain::audit::Actor;
use vault_svc::domain::store::cards::KeyStore;
use vault_svc::domain::{key_rotation, retention};
use vault_svc::startup::{Application, BoxError, Dependencies};
use vault_svc::storage::sql::SqlStore;

/// mimalloc: the services allocate per call (gRPC frames, futures, rows);
/// glibc's malloc spent ~10 % of vault-svc's CPU under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vault-svc", about = "payvault card vault")]
struct Cli {
    /// Optional configuration file (TOML); `VAULT__…` environment variables override it.
    #[arg(long, global = true, env = "VAULT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and internal gRPC ports.
    Serve,
    /// Create the local development set-up (dev KEK, dev CA and certificates, test merchant).
    DevInit {
        #[arg(long, default_value = ".payvault")]
        data_dir: PathBuf,
    },
    /// Manage the merchant directory.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Delete the card tokens whose retention has ended (run by the Kubernetes CronJob).
    Sweep {
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// Key management: custodian shares, KEK rotation, re-encryption.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Split the KEK into N custodian shares (N-of-N XOR) and a public check file.
    Split {
        #[arg(long)]
        custodians: usize,
        /// KEK file to split; default from configuration.
        #[arg(long)]
        kek_file: Option<PathBuf>,
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Re-wrap every data key under the newest KEK version of the configured
    /// key source (resumable; keys already moved are skipped).
    RotateKek {
        /// First append a new random version to the KEK file. In a fleet, add
        /// the version to the KEK Secret and roll out first instead, so no
        /// replica meets a data key wrapped under a version it lacks.
        #[arg(long)]
        add_version: bool,
    },
    /// Move every durable card record to a new data-key version, in batches;
    /// a run that was killed is resumed by the next one.
    Reencrypt {
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
}

#[derive(Subcommand)]
enum MerchantCommand {
    /// Add a merchant and print its keys once (only their hashes are stored).
    Create {
        #[arg(long)]
        name: String,
        /// Directory file; default from configuration.
        #[arg(long)]
        directory: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::lifecycle::exit_code("vault-svc", run(Cli::parse()).await)
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let cfg = VaultConfig::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cfg).await,
        Command::DevInit { data_dir } => {
            for made in vault_svc::dev::init(&data_dir)? {
                println!("created {made}");
            }
            Ok(())
        }
        Command::Sweep { batch } => {
            let cards = cfg.connect_database().await?;
            let actor = Actor { name: "retention-sweeper".into(), correlation_id: String::new() };
            let deleted = retention::sweep(&cards, SystemClock.now_ms(), batch, &actor).await?;
            println!("retention sweep: {deleted} card tokens deleted");
            Ok(())
        }
        Command::Keys { command } => keys(&cfg, command).await,
        Command::Merchant { command: MerchantCommand::Create { name, directory } } => {
            let path = directory.unwrap_or_else(|| cfg.merchants_file());
            let m = common::auth::create_merchant(&path, &name)?;
            println!("merchant {} added to {}; these keys are shown only once:", m.id, path.display());
            println!("  test public key  {}", m.test_public.expose());
            println!("  test secret key  {}", m.test_secret.expose());
            println!("  live public key  {}", m.live_public.expose());
            println!("  live secret key  {}", m.live_secret.expose());
            Ok(())
        }
    }
}

fn key_ring(keks: KekSet, cards: &Arc<SqlStore>) -> KeyRing {
    KeyRing::new(keks, cards.clone() as Arc<dyn KeyStore>, Arc::new(SystemClock))
}

async fn keys(cfg: &VaultConfig, command: KeysCommand) -> Result<(), BoxError> {
    let actor = Actor { name: "key-operator".into(), correlation_id: common::ids::hex(8) };
    match command {
        KeysCommand::Split { custodians, kek_file, out_dir } => {
            let path = kek_file.unwrap_or_else(|| cfg.kek_file());
            let keks = vault_svc::crypto::FileKeyProvider { path }.load()?;
            let (shares, check) = vault_svc::crypto::custodian::split(&keks, custodians)?;
            std::fs::create_dir_all(&out_dir)?;
            for (i, share) in shares.iter().enumerate() {
                let file = out_dir.join(format!("share-{}", i + 1));
                std::fs::write(&file, share.as_bytes())?;
                println!("wrote {} (give it to custodian {})", file.display(), i + 1);
            }
            std::fs::write(out_dir.join("kek.check"), check)?;
            println!("wrote {} (public)", out_dir.join("kek.check").display());
        }
        KeysCommand::RotateKek { add_version } => {
            if add_version {
                if cfg.keys.provider == KeyProviderKind::Custodians {
                    return Err("with custodian shares, add the KEK version in a key ceremony and split it again \
                                (keys split), roll the service out, then run keys rotate-kek"
                        .into());
                }
                let path = cfg.kek_file();
                let rotated = vault_svc::crypto::FileKeyProvider { path: path.clone() }.load()?.with_new_version();
                // The new version is on disk before anything is wrapped under it.
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, rotated.to_text().as_bytes())?;
                std::fs::rename(&tmp, &path)?;
                println!("KEK version {} added to {}", rotated.current().0, path.display());
            }
            let keks = cfg.key_provider().load()?;
            let version = keks.current().0;
            let cards = Arc::new(cfg.connect_database().await?);
            let moved = key_rotation::rotate_kek(&key_ring(keks, &cards), &actor).await?;
            println!("{moved} data keys re-wrapped under KEK version {version}");
        }
        KeysCommand::Reencrypt { batch } => {
            let cards = Arc::new(cfg.connect_database().await?);
            let ring = key_ring(cfg.key_provider().load()?, &cards);
            let now = SystemClock.now_ms();
            let report = key_rotation::reencrypt(&*cards, &*cards, &ring, now, batch, &actor).await?;
            let how = if report.resumed { "resumed" } else { "started" };
            println!("re-encryption run {} {how} and finished: {} records moved", report.rotation_id, report.records);
        }
    }
    Ok(())
}

async fn serve(cfg: VaultConfig) -> Result<(), BoxError> {
    let _telemetry = common::telemetry::init("vault-svc", &cfg.telemetry);
    match &cfg.redis.url {
        Some(_) => tracing::info!(
            public = %cfg.public_addr, internal = %cfg.internal_addr,
            "vault-svc starting: single-use tokens in Redis"
        ),
        None => tracing::warn!(
            public = %cfg.public_addr, internal = %cfg.internal_addr,
            "vault-svc starting in embedded single-node mode: single-use tokens in process memory \
             (lost on restart, not shared between replicas); set REDIS_URL for production"
        ),
    }
    if !cfg.metrics_addr.is_empty() {
        common::metrics::install(cfg.metrics_addr.parse().map_err(|_| "metrics_addr is not an address")?)?;
    }
    let deps = Dependencies::from_config(&cfg).await?;
    let mut app = Application::bind(&cfg.public_addr, &cfg.internal_addr, deps).await?;
    if !cfg.health_addr.is_empty() {
        app = app.with_health_port(&cfg.health_addr).await?;
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("vault-svc stopped");
    Ok(())
}
