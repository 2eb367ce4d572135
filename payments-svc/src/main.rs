//! The payments-svc binary: `serve` (default) and `reconcile` (one pass of the
//! reconciler, for the Kubernetes CronJob).
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use common::lifecycle::shutdown_signal;
use payments_svc::config::PaymentsConfig;
use payments_svc::startup::{Application, BoxError, Dependencies};

/// mimalloc: the services allocate per call (gRPC frames, futures, rows);
/// glibc's malloc spent ~10 % of vault-svc's CPU under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "payments-svc", about = "payvault payments")]
struct Cli {
    /// Optional configuration file (TOML); `PAYMENTS__…` environment variables override it.
    #[arg(long, global = true, env = "PAYMENTS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Payments, Registrations and OmniTokens services.
    Serve,
    /// Resolve payments whose owner is gone (one pass) and purge old idempotency records.
    Reconcile,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::lifecycle::exit_code("payments-svc", run(Cli::parse()).await)
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let cfg = PaymentsConfig::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = common::telemetry::init("payments-svc", &cfg.telemetry);
            let embedded = cfg.database.url.is_none();
            tracing::info!(
                addr = %cfg.addr, tls = cfg.public_tls, vault = %cfg.vault.url, embedded_database = embedded,
                "payments-svc starting"
            );
            if !cfg.metrics_addr.is_empty() {
                common::metrics::install(cfg.metrics_addr.parse().map_err(|_| "metrics_addr is not an address")?)?;
            }
            let deps = Dependencies::from_config(&cfg).await?;
            let mut app = Application::bind(&cfg.addr, deps).await?;
            if !cfg.health_addr.is_empty() {
                app = app.with_health_port(&cfg.health_addr).await?;
            }
            app.run_until(shutdown_signal()).await?;
            tracing::info!("payments-svc stopped");
            Ok(())
        }
        Command::Reconcile => {
            let _telemetry = common::telemetry::init("payments-svc", &cfg.telemetry);
            let pass = payments_svc::startup::reconcile_once(&cfg).await?;
            println!(
                "reconcile: {} resolved, {} still pending, {} errors, {} keys released, {} keys purged",
                pass.resolved, pass.still_pending, pass.errors, pass.keys_released, pass.keys_purged
            );
            Ok(())
        }
    }
}
