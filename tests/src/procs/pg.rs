//! A private PostgreSQL cluster for one test: `initdb` into a scratch folder,
//! a postmaster on a spare loopback port (fsync on, trust auth, no Unix
//! socket); `kill9` SIGKILLs the postmaster and its backends at once, as a
//! crash would. The server stays in the test's process group, so a test runner
//! that kills a timed-out test takes it down too. Run as the `postgres` user when this process is root
//! (initdb refuses root). Dropping it kills the cluster and removes its files.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::util::{ScratchDir, is_root, poll, send_signal, spare_port, tail, user_ids, wait_child};

/// The OS user the cluster runs as when this process is root.
const PG_USER: &str = "postgres";

pub struct PgServer {
    bindir: PathBuf,
    dir: ScratchDir,
    port: u16,
    child: Option<Child>,
    /// `Some((uid, gid))` when the server runs as another user (we are root).
    owner: Option<(u32, u32)>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer").field("port", &self.port).field("dir", &self.dir.path()).finish()
    }
}

/// Where `initdb` and `postgres` live: `pg_config --bindir` when it holds
/// them, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
pub fn pg_bindir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| has_server(dir))
        .expect("PostgreSQL server binaries (initdb, postgres) are installed")
}

impl PgServer {
    /// Creates and starts a new cluster; returns once it accepts connections.
    pub async fn new() -> Self {
        let bindir = pg_bindir();
        let dir = ScratchDir::new("pg");
        let owner =
            if is_root() { Some(user_ids(PG_USER).expect("a postgres OS user to run PostgreSQL as")) } else { None };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster folder");
        }
        let mut server = Self { bindir, dir, port: spare_port(), child: None, owner };
        server.initdb();
        server.start().await;
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log (initdb's output and the postmaster's, appended across restarts).
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `program args…` as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        match self.owner {
            // setpriv execs in place: the child's pid is the program's pid.
            Some(_) => {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--reuid", PG_USER, "--regid", PG_USER, "--init-groups", "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    fn log_stdio(&self) -> (Stdio, Stdio) {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_file())
                .expect("open the PostgreSQL log file")
        };
        (Stdio::from(open()), Stdio::from(open()))
    }

    fn initdb(&self) {
        let (out, err) = self.log_stdio();
        let status = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .current_dir(self.dir.path())
            .stdout(out)
            .stderr(err)
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed: {status}\n{}", tail(&self.log_file(), 4000));
    }

    /// Starts the postmaster (again) on the same port and data folder and waits
    /// until it accepts connections. After `kill9` it runs crash recovery first.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        for attempt in 0.. {
            let (out, err) = self.log_stdio();
            let child = self
                .command("postgres")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-p", &self.port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
                .args(["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=100"])
                .args(["-c", "shared_buffers=16MB", "-c", "logging_collector=off"])
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("spawn postgres");
            self.child = Some(child);
            if self.wait_ready(Duration::from_secs(30)).await {
                return;
            }
            // The port may have been taken meanwhile, or the old shared memory
            // is not released yet: try again a few times.
            self.kill9();
            assert!(attempt < 3, "PostgreSQL did not start on port {}:\n{}", self.port, tail(&self.log_file(), 4000));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        use sqlx::Connection;
        let url = self.url("postgres");
        let ready = poll(timeout, || {
            let url = url.clone();
            let exited = self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            async move {
                if exited {
                    return Some(false);
                }
                let conn = tokio::time::timeout(Duration::from_secs(2), sqlx::PgConnection::connect(&url)).await;
                match conn {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        Some(true)
                    }
                    _ => None,
                }
            }
        })
        .await;
        ready == Some(true)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database.
    pub async fn create_database(&self, name: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await.expect("connect to the test cluster");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("CREATE DATABASE");
        let _ = conn.close().await;
    }

    /// Fast shutdown (SIGINT: abort sessions, checkpoint, exit) and wait for it.
    pub fn stop_fast(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "INT", false);
            if wait_child(&mut child, Duration::from_secs(20)).is_none() {
                self.child = Some(child);
                self.kill9();
            }
        }
    }

    /// SIGKILL to the postmaster and every backend: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let backends = children_of(child.id());
            send_signal(child.id(), "KILL", false);
            for pid in backends {
                send_signal(pid, "KILL", false);
            }
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// The pids whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid …: the comm may hold spaces, so read after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            ppid == Some(pid)
        })
        .collect()
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // The scratch folder (dropped next) removes the data files.
        self.kill9();
    }
}
