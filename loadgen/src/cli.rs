//! The command line: `echo-server`, `run` and `table`, their flags, and the
//! wiring from a parsed `run` to an operation, the driver and the report.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::channels::{self, TlsFiles};
use crate::cpu::{CpuProbe, Server};
use crate::driver::{self, Op, Plan};
use crate::ops::durable::{DetokenizeRegistration, Tokenize};
use crate::ops::echo::Echo;
use crate::ops::payments::Pay;
use crate::ops::pg::PgInsert;
use crate::ops::redis::{Checkout, RedisGetDel, RedisSet};
use crate::ops::vault::{CreateToken, Detokenize};
use crate::report::Report;
use crate::sizes::Sizes;
use crate::{Error, echo, merchant, table};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Drives payvault's RPCs and their baselines; prints one JSON line per run")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A bare tonic echo service: the baseline a vault RPC is judged against.
    EchoServer(EchoServerArgs),
    /// Runs one operation under load and prints its result line.
    Run(Box<RunArgs>),
    /// Prints a Markdown table of result lines (a file of `run` outputs).
    Table {
        /// JSON lines as `run` prints them; `-` for standard input.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct EchoServerArgs {
    #[arg(long, default_value = "127.0.0.1:50071")]
    pub addr: SocketAddr,
    /// Serve TLS with this certificate (PEM) and require client certificates.
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to.
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpKind {
    /// `Tokens.CreateToken` on the vault's public port.
    CreateToken,
    /// `Vault.Detokenize` of fresh single-use tokens on the internal mTLS port.
    Detokenize,
    /// `Vault.Tokenize` on the internal mTLS port: a registration from a new
    /// card for a new customer each call (a row and its TK audit row).
    Tokenize,
    /// `Vault.Detokenize` of a registration per worker (made untimed), over
    /// and over, each call with its DT audit row durably written.
    DetokenizeRegistration,
    /// Plaintext echo sized like CreateTokenRequest → Token.
    Echo,
    /// mTLS echo sized like DetokenizeRequest → DetokenizeResponse.
    EchoTls,
    /// Raw `SET key value NX EX 1800`.
    RedisSet,
    /// Raw `GETDEL key` of pre-filled keys.
    RedisGetdel,
    /// `Payments.CreatePayment`, DB over a fresh single-use token (made untimed
    /// with `Tokens.CreateToken`).
    PayDbToken,
    /// `Payments.CreatePayment`, one-click DB over a registration per worker
    /// (made untimed), a repeated cardholder-initiated payment.
    PayOneClick,
    /// Raw PostgreSQL `INSERT` of a payments-row-sized row into a scratch table.
    PgInsert,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            Self::CreateToken => "create-token",
            Self::Detokenize => "detokenize",
            Self::Tokenize => "tokenize",
            Self::DetokenizeRegistration => "detokenize-registration",
            Self::Echo => "echo",
            Self::EchoTls => "echo-tls",
            Self::RedisSet => "redis-set",
            Self::RedisGetdel => "redis-getdel",
            Self::PayDbToken => "pay-db-token",
            Self::PayOneClick => "pay-one-click",
            Self::PgInsert => "pg-insert",
        }
    }

    /// A generous guess of the throughput an op that consumes pre-made items
    /// could reach here, used to size the supply when `--prefill` is not given.
    fn supply_rate_cap(self) -> f64 {
        match self {
            // A bare Redis GETDEL reached 207,000/s on an Intel guest.
            Self::RedisGetdel => 400_000.0,
            // Each payment costs a detokenize, an acquirer call and durable
            // writes: far below the vault's own rate; tokens take time to make.
            Self::PayDbToken => 8_000.0,
            _ => 25_000.0,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub op: OpKind,
    /// Closed loop: workers issuing back to back. Open loop: the most requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measured time, after the warm-up (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: requests per second on a fixed schedule; latency counts from
    /// each request's scheduled time, so a stall is not hidden.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Workers sharing one gRPC channel (one HTTP/2 connection).
    #[arg(long, default_value_t = 8)]
    pub workers_per_channel: usize,
    /// Per-request deadline.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// payments-svc (Payments, Registrations).
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub payments_addr: String,
    /// The vault's public port (Tokens).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub public_addr: String,
    /// The vault's internal mTLS port (Vault).
    #[arg(long, default_value = "https://localhost:50061")]
    pub internal_addr: String,
    #[arg(long, default_value = "http://127.0.0.1:50071")]
    pub echo_addr: String,
    #[arg(long, default_value = "https://127.0.0.1:50072")]
    pub echo_tls_addr: String,
    /// CA that signed the servers' certificates (PEM).
    #[arg(long, default_value = ".payvault/certs/ca.pem")]
    pub ca: PathBuf,
    /// Client certificate for mTLS (PEM).
    #[arg(long, default_value = ".payvault/certs/client.pem")]
    pub cert: PathBuf,
    #[arg(long, default_value = ".payvault/certs/client.key")]
    pub key: PathBuf,
    /// Name the TLS servers' certificates must carry.
    #[arg(long, default_value = "localhost")]
    pub tls_domain: String,
    /// PAYVAULT_MERCHANT_ID / PAYVAULT_PKEY / PAYVAULT_SKEY lines.
    #[arg(long, default_value = ".payvault/merchant.env")]
    pub merchant_env: PathBuf,

    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Redis connections, as many as the vault's pool holds.
    #[arg(long, default_value_t = 16)]
    pub redis_pool_size: usize,
    /// `held`: the pool's connections shared by the workers, one round trip per
    /// command. `per-op`: a pool checkout per command, which costs deadpool's
    /// recycle `PING` as a second round trip.
    #[arg(long, value_enum, default_value_t = Checkout::Held)]
    pub redis_checkout: Checkout,
    /// Bytes stored per Redis key: about what the vault keeps per single-use
    /// token (sealed card + sealed metadata + merchant and expiry fields). Also
    /// pg-insert's payload: about a payments row (ids, amounts, result, card
    /// metadata).
    #[arg(long, default_value_t = 400)]
    pub value_size: usize,

    /// PostgreSQL for pg-insert; its scratch table goes in the URL's schema.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// PostgreSQL connections for pg-insert, as many as each service's pool holds.
    #[arg(long, default_value_t = 16)]
    pub pg_pool_size: usize,

    /// Items (tokens, keys) made before the timed phase for detokenize and
    /// redis-getdel and pay-db-token; by default (warm-up + duration) × a generous rate cap.
    /// If they run out, the measured window ends there and the report says so.
    #[arg(long)]
    pub prefill: Option<usize>,

    /// A process whose CPU time (utime + stime) is charged to the operation:
    /// `NAME=PID` or `PID`; repeat for several (e.g. the vault and Redis).
    #[arg(long = "server-pid", value_name = "[NAME=]PID", value_parser = Server::process)]
    pub server_pids: Vec<Server>,
    /// Every process of this user is charged to the operation, summed (e.g.
    /// PostgreSQL's backends: `postgres=$(id -u postgres)`); repeatable.
    #[arg(long = "server-uid", value_name = "[NAME=]UID", value_parser = Server::user)]
    pub server_uids: Vec<Server>,
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::EchoServer(args) => echo::serve(&args).await,
        Command::Run(args) => run_op(&args).await,
        Command::Table { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(Error::file(&file))?
            } else {
                std::fs::read_to_string(&file).map_err(Error::file(&file))?
            };
            print!("{}", table::render(&text));
            Ok(())
        }
    }
}

async fn run_op(args: &RunArgs) -> Result<(), Error> {
    if args.concurrency == 0 || args.workers_per_channel == 0 {
        return Err(Error::Setup("--concurrency and --workers-per-channel must be at least 1".into()));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(Error::Setup("--rate must be a positive number".into()));
    }
    let plan = Plan { concurrency: args.concurrency, warmup: args.warmup, duration: args.duration, rate: args.rate };
    let n_channels = args.concurrency.div_ceil(args.workers_per_channel);
    let connect = |addr: &str, tls: Option<TlsFiles>| channels::connect(addr.to_owned(), tls, n_channels, args.timeout);
    let tls = || TlsFiles {
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        domain: args.tls_domain.clone(),
    };
    let mut report = match args.op {
        OpKind::Echo => {
            let sizes = Sizes::create_token();
            let op = Echo::new(connect(&args.echo_addr, None).await?, &sizes);
            measure(args, &plan, n_channels, &op, sizes).await?
        }
        OpKind::EchoTls => {
            let sizes = Sizes::detokenize();
            let op = Echo::new(connect(&args.echo_tls_addr, Some(tls())).await?, &sizes);
            measure(args, &plan, n_channels, &op, sizes).await?
        }
        OpKind::CreateToken => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let op = CreateToken::new(connect(&args.public_addr, None).await?, &m.public_key)?;
            let mut report = measure(args, &plan, n_channels, &op, Sizes::create_token()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report
        }
        OpKind::Detokenize => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let creator = CreateToken::new(connect(&args.public_addr, None).await?, &m.public_key)?;
            let count = supply_size(args, &plan);
            let tokens = creator.make_tokens(count, args.concurrency).await?;
            drop(creator);
            let op = Detokenize::new(connect(&args.internal_addr, Some(tls())).await?, m.merchant_id, tokens);
            let mut report = measure(args, &plan, n_channels, &op, Sizes::detokenize()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report.supply = Some(op.supply());
            report
        }
        OpKind::Tokenize => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let op = Tokenize::new(connect(&args.internal_addr, Some(tls())).await?, m.merchant_id);
            let mut report = measure(args, &plan, n_channels, &op, Sizes::tokenize()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report
        }
        OpKind::DetokenizeRegistration => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let channels = connect(&args.internal_addr, Some(tls())).await?;
            let registrations =
                Tokenize::new(channels.clone(), m.merchant_id.clone()).make_registrations(args.concurrency).await?;
            let op = DetokenizeRegistration::new(channels, m.merchant_id, registrations)?;
            let mut report = measure(args, &plan, n_channels, &op, Sizes::detokenize_registration()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report
        }
        OpKind::PayDbToken => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let secret_key = m.require_secret_key(&args.merchant_env)?;
            let creator = CreateToken::new(connect(&args.public_addr, None).await?, &m.public_key)?;
            let tokens = creator.make_tokens(supply_size(args, &plan), args.concurrency).await?;
            drop(creator);
            let op = Pay::over_tokens(connect(&args.payments_addr, None).await?, secret_key, tokens.ids)?;
            let mut report = measure(args, &plan, n_channels, &op, Sizes::pay_db_token()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report.supply = op.supply();
            report
        }
        OpKind::PayOneClick => {
            let m = merchant::Merchant::read(&args.merchant_env)?;
            let secret_key = m.require_secret_key(&args.merchant_env)?;
            let op = Pay::one_click(connect(&args.payments_addr, None).await?, secret_key, args.concurrency).await?;
            let mut report = measure(args, &plan, n_channels, &op, Sizes::pay_one_click()).await?;
            report.response_bytes_observed = op.observed_response_len();
            report
        }
        OpKind::PgInsert => {
            let op = PgInsert::create(&args.database_url, args.pg_pool_size, args.value_size).await?;
            let result = measure(args, &plan, args.pg_pool_size, &op, Sizes::pg_insert(args.value_size)).await;
            op.drop_table().await?;
            result?
        }
        OpKind::RedisSet => {
            let op = RedisSet::new(&args.redis_url, args.redis_pool_size, args.redis_checkout, args.value_size).await?;
            let sizes = Sizes::redis_set(args.value_size);
            let result = measure(args, &plan, args.redis_pool_size, &op, sizes).await;
            op.cleanup().await?;
            result?
        }
        OpKind::RedisGetdel => {
            let count = supply_size(args, &plan);
            let op = RedisGetDel::prefilled(
                &args.redis_url,
                args.redis_pool_size,
                args.redis_checkout,
                args.value_size,
                count,
            )
            .await?;
            let sizes = Sizes::redis_getdel(args.value_size);
            let result = measure(args, &plan, args.redis_pool_size, &op, sizes).await;
            let supply = op.supply();
            op.cleanup().await?;
            let mut report = result?;
            report.supply = Some(supply);
            report
        }
    };
    report.op = args.op.name();
    if matches!(args.op, OpKind::RedisSet | OpKind::RedisGetdel) {
        report.redis_checkout = Some(match args.redis_checkout {
            Checkout::Held => "held",
            Checkout::PerOp => "per-op",
        });
    }
    println!("{}", report.to_json());
    Ok(())
}

/// How many single-use items to make before the timed phase.
fn supply_size(args: &RunArgs, plan: &Plan) -> usize {
    if let Some(n) = args.prefill {
        return n;
    }
    let secs = (plan.warmup + plan.duration).as_secs_f64();
    let rate = match plan.rate {
        Some(r) => r * 1.05,
        None => args.op.supply_rate_cap(),
    };
    (secs * rate).ceil() as usize + args.concurrency
}

async fn measure<O: Op>(
    args: &RunArgs,
    plan: &Plan,
    connections: usize,
    op: &O,
    sizes: Sizes,
) -> Result<Report, Error> {
    let servers: Vec<Server> = args.server_pids.iter().chain(&args.server_uids).cloned().collect();
    let probe = CpuProbe::new(&servers);
    let outcome = driver::drive(op, plan, &probe).await?;
    Ok(Report::new(plan, connections, sizes, &outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Owner;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "run",
            "--op",
            "redis-getdel",
            "--duration",
            "1s",
            "--server-pid",
            "1",
            "--server-pid",
            "redis=2",
            "--server-uid",
            "postgres=105",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::Run(r)) => {
                assert_eq!(r.op, OpKind::RedisGetdel);
                let pids: Vec<_> = r.server_pids.iter().map(|p| (p.name.as_str(), p.owner)).collect();
                assert_eq!(pids, vec![("1", Owner::Pid(1)), ("redis", Owner::Pid(2))]);
                assert_eq!(r.server_uids, vec![Server { name: "postgres".into(), owner: Owner::Uid(105) }]);
                assert_eq!(r.concurrency, 64);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }
}
