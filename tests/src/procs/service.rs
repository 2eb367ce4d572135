//! A service binary (`vault-svc` or `payments-svc`) as a child process: its
//! configuration only through the environment it is given (inherited
//! `VAULT_*`, `PAYMENTS_*`, `REDIS_URL`, `DATABASE_URL` and `OTEL_*` are
//! removed), stdout and stderr appended to files in its folder, started when
//! `grpc.health.v1.Health/Check` answers SERVING for its service names.
//! `kill9`, `sigterm`, `wait_exit` and `restart` (same ports, same
//! environment) drive faults.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::util::{send_signal, tail, wait_child};

/// How long a start may take before the harness gives up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Vault,
    Payments,
}

impl ServiceKind {
    pub fn binary(self) -> &'static str {
        match self {
            Self::Vault => super::binaries::VAULT_BIN,
            Self::Payments => super::binaries::PAYMENTS_BIN,
        }
    }

    /// The health service names that must be SERVING before the process counts as started.
    pub fn health_names(self) -> &'static [&'static str] {
        match self {
            Self::Vault => &["payvault.vault.v1.Tokens", "payvault.vault.v1.Vault"],
            Self::Payments => &["payvault.payments.v1.Payments"],
        }
    }
}

pub struct Service {
    kind: ServiceKind,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// The plaintext gRPC port: the vault's public port, payments' only port.
    addr: SocketAddr,
    channel: Channel,
    child: Option<Child>,
    starts: u32,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("kind", &self.kind).field("addr", &self.addr).finish()
    }
}

/// Variables of the test's own environment that would reconfigure a service.
fn inherited_config(name: &str) -> bool {
    ["VAULT_", "PAYMENTS_", "OTEL_"].iter().any(|p| name.starts_with(p)) || matches!(name, "REDIS_URL" | "DATABASE_URL")
}

impl Service {
    /// Starts `kind` with exactly `env` (plus `RUST_LOG=info` unless given),
    /// logging into `dir`, answering plaintext gRPC on `addr`; waits for SERVING.
    pub async fn spawn(kind: ServiceKind, env: Vec<(String, String)>, dir: &Path, addr: SocketAddr) -> Self {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        let mut service = Self { kind, env, dir: dir.to_path_buf(), addr, channel, child: None, starts: 0 };
        service.start().await;
        service
    }

    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The environment the process is started with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Changes one variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// A lazily connecting channel to `addr` (reconnects after a restart).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn stdout_file(&self) -> PathBuf {
        self.dir.join(format!("{}.stdout.log", self.kind.binary()))
    }

    pub fn stderr_file(&self) -> PathBuf {
        self.dir.join(format!("{}.stderr.log", self.kind.binary()))
    }

    /// Everything the process wrote so far, across restarts (stdout then stderr).
    pub fn logs(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        read(self.stdout_file()) + &read(self.stderr_file())
    }

    fn log_tail(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", tail(&self.stdout_file(), 3000), tail(&self.stderr_file(), 3000))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts the process (again) with the same environment and ports and
    /// waits until it is SERVING; panics with its log tail if it is not within
    /// `START_TIMEOUT`.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.kind.binary());
        self.starts += 1;
        let open = |path: PathBuf| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open a log file");
            let _ = writeln!(file, "=== harness: start {} ===", self.starts);
            file
        };
        let bin = super::binaries::bin_dir().join(self.kind.binary());
        let mut cmd = Command::new(&bin);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(inherited_config) {
                cmd.env_remove(name);
            }
        }
        if !self.env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(open(self.stdout_file())))
            .stderr(Stdio::from(open(self.stderr_file())));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_serving(START_TIMEOUT).await;
    }

    /// Waits until every health name is SERVING; panics (with the log tail) if
    /// the process exits or the timeout passes first.
    pub async fn wait_serving(&mut self, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{} exited during start-up ({status}):\n{}", self.kind.binary(), self.log_tail());
            }
            let mut all = true;
            for name in self.kind.health_names() {
                all &= self.health(name).await == Some(ServingStatus::Serving);
            }
            if all {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} not SERVING within {timeout:?}:\n{}",
                self.kind.binary(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The health status of `service` ("" is liveness), `None` if the call fails.
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest { service: service.into() });
        request.set_timeout(Duration::from_millis(800));
        let call = tokio::time::timeout(Duration::from_secs(1), client.check(request)).await;
        match call {
            Ok(Ok(response)) => ServingStatus::try_from(response.into_inner().status).ok(),
            _ => None,
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown); the process stays owned until `wait_exit`.
    pub fn sigterm(&self) {
        if let Some(child) = &self.child {
            send_signal(child.id(), "TERM", false);
        }
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None`
    /// if it is still running (it then stays owned, and `kill9` ends it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(status)
    }

    /// `kill9` if still running, then `start` with the same ports and environment.
    pub async fn restart(&mut self) {
        self.kill9();
        self.start().await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}
