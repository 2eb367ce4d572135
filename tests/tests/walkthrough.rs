//! The README's walk-through, run as a reader runs it: `scripts/run` (on the
//! built binaries, in a fresh folder whose `.payvault/` is its data
//! directory), every ```` ```sh ```` block of README.md through grpcurl and jq
//! with each `# →` comment checked, then Ctrl-C, a restart, and the whole
//! walk-through again. Between the two: a second `scripts/run` is refused in
//! one line, no start logs a refused TLS handshake, Ctrl-C stops payments-svc
//! before the vault, and the first run's single-use token is gone, as the
//! README says; and no card number or IBAN of the walk-through is in either
//! service's log or any file of the data directory. It binds the ports the
//! README names (50051, 50052, 50061, …).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::procs::binaries::bin_dir;
use e2e::procs::util::{send_signal, wait_child};
use e2e::walkthrough::{self, Outcome};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `scripts/run` as a child, its stdout and stderr in one log file.
struct RunScript {
    child: Option<Child>,
    log: PathBuf,
}

fn run_script(home: &Path, log: &str) -> Command {
    let mut command = Command::new(repo().join("scripts/run"));
    command.env("PAYVAULT_BIN_DIR", bin_dir()).env("PAYVAULT_DATA_DIR", home.join(".payvault")).stdin(Stdio::null());
    // The embedded defaults, whatever the suite's environment says.
    for (name, _) in std::env::vars() {
        if ["VAULT__", "PAYMENTS__", "OTEL_", "REDIS_URL", "PAYVAULT_KEK", "RUST_LOG"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            command.env_remove(name);
        }
    }
    let file = File::create(home.join(log)).unwrap();
    command.stdout(file.try_clone().unwrap()).stderr(file);
    command
}

impl RunScript {
    /// Starts it once its fixed ports are free. A port can be taken for a moment
    /// by any outgoing connection on the machine (the services' own included:
    /// connect() draws local ports from the range the fixed ports are in); a
    /// start that lost that race said so in one line, and is tried again.
    fn start(home: &Path, log: &str) -> Self {
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_secs(15);
            let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
            while ![50051, 50052, 50061, 9464, 9465, 50081, 50082].into_iter().all(free) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let child = run_script(home, log).spawn().expect("start scripts/run");
            let mut script = Self { child: Some(child), log: home.join(log) };
            let deadline = Instant::now() + Duration::from_secs(60);
            let exited = loop {
                if script.log().contains("payvault is running") {
                    return script;
                }
                if let Some(status) = script.child.as_mut().unwrap().try_wait().unwrap() {
                    script.child = None;
                    break status;
                }
                assert!(Instant::now() < deadline, "scripts/run did not start within 60 s:\n{}", script.log());
                std::thread::sleep(Duration::from_millis(100));
            };
            let said = script.log();
            if !said.contains("Address already in use") && !said.contains("is in use by another program") {
                panic!("scripts/run exited ({exited}) before it was running:\n{said}");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!(
            "scripts/run lost its ports five times:\n{}",
            std::fs::read_to_string(home.join(log)).unwrap_or_default()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C, as a terminal sends it to the script (the services run in their own sessions).
    fn interrupt(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        send_signal(child.id(), "INT", false);
        let status = wait_child(&mut child, Duration::from_secs(30)).expect("scripts/run stops on Ctrl-C");
        assert!(status.success(), "scripts/run exits 0 on Ctrl-C: {status}\n{}", self.log());
        self.log()
    }
}

impl Drop for RunScript {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM", false);
            let _ = wait_child(&mut child, Duration::from_secs(30));
        }
    }
}

async fn walk(home: &Path, readme: &str) -> Outcome {
    let steps = walkthrough::steps(readme).expect("README.md's blocks parse");
    assert!(steps.len() > 30, "the walk-through has its commands: {}", steps.len());
    let outcome = walkthrough::run(&steps, home, &[], Duration::from_secs(240), &["TOKEN", "PAYVAULT_PKEY"]).await;
    let report: Vec<String> = outcome.failures.iter().map(|f| f.to_string()).collect();
    assert!(report.is_empty(), "README.md's walk-through broke:\n\n{}", report.join("\n\n"));
    outcome
}

/// Up to the banner: the walk-through itself provokes refusals (a call without a client certificate).
fn assert_quiet_start(log: &str) {
    let log = &log[..log.find("payvault is running").expect("the banner")];
    assert!(!log.contains("TLS handshake refused"), "a start logs no refused handshake:\n{log}");
    assert!(!log.contains(" ERROR "), "a start logs no error:\n{log}");
}

/// payments-svc's last line comes before the vault's: the vault served until payments had finished.
fn assert_stopped_in_order(log: &str) {
    let payments = log.find("payments-svc stopped").unwrap_or_else(|| panic!("payments-svc stopped:\n{log}"));
    let vault = log.find("vault-svc stopped").unwrap_or_else(|| panic!("vault-svc stopped:\n{log}"));
    assert!(payments < vault, "payments-svc stops before the vault:\n{log}");
}

/// Neither service's log nor any file of the data directory (payments' and the vault's SQLite
/// files included) holds the walk-through's card numbers or IBAN in clear.
fn assert_no_card_data(home: &Path, log: &str) {
    let secrets = ["4242424242424242", "5555555555554444", "4111111111111111", "370400440532013000"];
    // The services' lines start with their timestamp; the banner (the README's own lines) does not.
    for line in log.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())) {
        for secret in secrets {
            assert!(!line.contains(secret), "a service logged {secret}: {line}");
        }
    }
    for entry in std::fs::read_dir(home.join(".payvault")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        for secret in secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds {secret} in clear", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_through_works_as_written_before_and_after_a_restart() {
    for tool in ["grpcurl", "jq"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        assert!(found.status.success(), "{tool} is needed (scripts/test installs it)");
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let home = e2e::ScratchDir::new();

    let mut first = RunScript::start(home.path(), "run-1.log");
    let banner = first.log();
    assert!(banner.contains("source .payvault/merchant.env"), "the banner prints the first block:\n{banner}");

    // A second copy on the same folder: refused in one line, the running one untouched.
    let second = run_script(home.path(), "run-2.log").output().unwrap();
    let refused = std::fs::read_to_string(home.path().join("run-2.log")).unwrap();
    assert!(!second.status.success());
    assert_eq!(refused.trim().lines().count(), 1, "one clear line:\n{refused}");
    assert!(refused.contains("already running"), "{refused}");
    // Another folder, the same ports: refused in one line too.
    let elsewhere = e2e::ScratchDir::new();
    let second = run_script(elsewhere.path(), "run.log").output().unwrap();
    let refused = std::fs::read_to_string(elsewhere.path().join("run.log")).unwrap();
    assert!(!second.status.success());
    assert_eq!(refused.trim().lines().count(), 1, "one clear line:\n{refused}");
    assert!(refused.contains("port 50051 is in use"), "{refused}");

    let before = walk(home.path(), &readme).await;
    let log = first.interrupt();
    assert_quiet_start(&log);
    assert_stopped_in_order(&log);
    assert_no_card_data(home.path(), &log);

    // After a restart: the durable tokens and payments are kept, the single-use token is gone,
    // and the walk-through works again with its fresh tokens and keys.
    let mut again = RunScript::start(home.path(), "run-3.log");
    let old = Command::new("grpcurl")
        .args(["-plaintext", "-H", &format!("authorization: Bearer {}", before.variables["PAYVAULT_PKEY"])])
        .args(["-d", &format!("{{\"id\":\"{}\"}}", before.variables["TOKEN"])])
        .args(["127.0.0.1:50051", "payvault.vault.v1.Tokens/GetToken"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&old.stderr);
    assert!(
        said.contains("\"reason\":\"token_not_found\""),
        "the README says a restart loses single-use tokens:\n{said}"
    );
    walk(home.path(), &readme).await;
    let log = again.interrupt();
    assert_quiet_start(&log);
    assert_stopped_in_order(&log);
    assert_no_card_data(home.path(), &log);
}
