//! The vault-svc binary: `serve` (default), `dev-init`, `merchant create`.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use vault_svc::config::VaultConfig;
use vault_svc::startup::{Application, BoxError, Dependencies, shutdown_signal};

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
async fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let cfg = VaultConfig::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cfg).await,
        Command::DevInit { data_dir } => {
            for made in vault_svc::dev::init(&data_dir)? {
                println!("created {made}");
            }
            Ok(())
        }
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
    let deps = Dependencies::from_config(&cfg)?;
    let app = Application::bind(&cfg.public_addr, &cfg.internal_addr, deps).await?;
    app.run_until(shutdown_signal()).await?;
    tracing::info!("vault-svc stopped");
    Ok(())
}
