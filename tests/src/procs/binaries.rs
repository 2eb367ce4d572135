//! Finding the service binaries: the `target/<profile>/` folder this test
//! binary was built into (`cargo nextest run --workspace` builds them). When
//! one is missing, `cargo build -p vault-svc -p payments-svc` runs once per
//! test process (cargo's own lock serialises parallel test processes).
//! `cargo nextest run -p e2e` alone does not rebuild other packages'
//! binaries: a binary older than this test binary is reported on stderr, and
//! `PAYVAULT_E2E_BUILD=1` rebuilds them first. `PAYVAULT_E2E_BIN_DIR` points at
//! prebuilt binaries instead.
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub const VAULT_BIN: &str = "vault-svc";
pub const PAYMENTS_BIN: &str = "payments-svc";

/// The folder holding `vault-svc` and `payments-svc`, built and fresh.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("PAYVAULT_E2E_BIN_DIR") {
            let dir = PathBuf::from(dir);
            assert_present(&dir);
            return dir;
        }
        let dir = profile_dir();
        let missing = [VAULT_BIN, PAYMENTS_BIN].iter().any(|b| !dir.join(b).is_file());
        if missing || std::env::var("PAYVAULT_E2E_BUILD").is_ok_and(|v| v == "1") {
            build(&dir);
        }
        assert_present(&dir);
        warn_if_stale(&dir);
        dir
    })
    .clone()
}

/// `…/target/<profile>` from `…/target/<profile>/deps/<test binary>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary lies in a folder");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().unwrap_or(deps) } else { deps };
    dir.to_path_buf()
}

fn build(profile_dir: &std::path::Path) {
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").ok().or_else(|| option_env!("CARGO").map(str::to_owned));
    let mut cmd = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "-p", VAULT_BIN, "-p", PAYMENTS_BIN])
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build for the service binaries");
    assert!(status.success(), "cargo build -p vault-svc -p payments-svc failed: {status}");
}

/// A service binary older than the test binary may predate the code under test.
fn warn_if_stale(dir: &std::path::Path) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(test_built) = std::env::current_exe().ok().and_then(|e| modified(&e)) else { return };
    for bin in [VAULT_BIN, PAYMENTS_BIN] {
        if modified(&dir.join(bin)).is_some_and(|t| t < test_built) {
            eprintln!(
                "note: {} is older than this test binary; run `cargo build -p vault-svc -p payments-svc` \
                 (or PAYVAULT_E2E_BUILD=1) if the services changed",
                dir.join(bin).display()
            );
        }
    }
}

fn assert_present(dir: &std::path::Path) {
    for bin in [VAULT_BIN, PAYMENTS_BIN] {
        assert!(dir.join(bin).is_file(), "{} is missing", dir.join(bin).display());
    }
}
