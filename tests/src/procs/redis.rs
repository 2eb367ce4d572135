//! A private `redis-server` for one test on a spare loopback port: no RDB
//! snapshots, AOF off by default (on with `with_appendonly`), its files in a
//! scratch folder. `kill9` and `start` again on the same port simulate an
//! outage; dropping it kills the server and removes its files.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::util::{ScratchDir, poll, send_signal, spare_port, tail};

pub struct RedisServer {
    dir: ScratchDir,
    port: u16,
    appendonly: bool,
    /// More `redis-server` arguments (a cluster node's).
    args: Vec<String>,
    child: Option<Child>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("port", &self.port).field("appendonly", &self.appendonly).finish()
    }
}

impl RedisServer {
    /// A volatile server (`--save "" --appendonly no`), started and answering PING.
    pub async fn new() -> Self {
        Self::with_appendonly(false).await
    }

    /// With `appendonly`, writes survive `kill9` (AOF, `appendfsync always`).
    pub async fn with_appendonly(appendonly: bool) -> Self {
        Self::with_args(appendonly, &[]).await
    }

    /// With more `redis-server` arguments, e.g. `--cluster-enabled yes`.
    pub async fn with_args(appendonly: bool, args: &[&str]) -> Self {
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut server = Self { dir: ScratchDir::new("redis"), port: spare_port(), appendonly, args, child: None };
        server.start().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_file(&self) -> std::path::PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts the server (again) on the same port and folder; waits for PING.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let log =
            || std::fs::OpenOptions::new().create(true).append(true).open(self.log_file()).expect("open the Redis log");
        let aof = if self.appendonly { "yes" } else { "no" };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", aof])
            .args(["--appendfsync", "always", "--protected-mode", "no", "--daemonize", "no"])
            .args(&self.args)
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log()))
            .stderr(Stdio::from(log()))
            .spawn()
            .expect("spawn redis-server (is Redis installed?)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let up = poll(Duration::from_secs(15), || {
            let addr = addr.clone();
            async move { ping(&addr).await.then_some(()) }
        })
        .await;
        assert!(up.is_some(), "redis-server did not answer on port {}:\n{}", self.port, tail(&self.log_file(), 4000));
    }

    /// SIGKILL: every connection drops at once, nothing is saved.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "KILL", false);
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// `PING` → `+PONG` over a raw connection.
async fn ping(addr: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(true)))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
