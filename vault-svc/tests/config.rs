//! Start-up configuration through the real loader and the real binary: a typo
//! in a key or a value stops start-up with an error that names it; a file and
//! the environment layer as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::config::Layers;
use common::telemetry::LogFormat;
use vault_svc::config::{KeyProviderKind, VaultConfig};

struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("payvault-config-{}.toml", common::ids::hex(8)));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn load(file: Option<&TempFile>, env: &[(&str, &str)]) -> Result<VaultConfig, String> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    VaultConfig::load_from(&Layers { file: file.map(|f| f.0.as_path()), env: Some(env) }).map_err(|e| e.to_string())
}

/// `vault-svc serve` with these variables: its exit status and stderr.
fn serve(env: &[(&str, &str)]) -> (bool, String) {
    let data_dir = std::env::temp_dir().join(format!("payvault-config-{}", common::ids::hex(8)));
    let mut command = Command::new(env!("CARGO_BIN_EXE_vault-svc"));
    command.arg("serve").env("VAULT__DATA_DIR", &data_dir).env("VAULT__METRICS_ADDR", "");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_typo_in_the_key_provider_stops_start_up_naming_the_value() {
    let error = load(None, &[("VAULT__KEYS__PROVIDER", "custodian")]).unwrap_err();
    assert!(error.contains("custodian") && error.contains("keys.provider"), "{error}");

    let (ok, stderr) = serve(&[("VAULT__KEYS__PROVIDER", "custodian")]);
    assert!(!ok, "start-up must fail");
    assert!(stderr.contains("custodian for key `keys.provider`"), "the error names the value: {stderr}");
}

#[test]
fn an_unknown_key_stops_start_up_naming_it() {
    let file = TempFile::new("[keys]\nprovder = \"custodians\"\n");
    let error = load(Some(&file), &[]).unwrap_err();
    assert!(error.contains("provder"), "{error}");

    let error = load(None, &[("VAULT__REQUEST_TIMEOUT", "5000")]).unwrap_err();
    assert!(error.contains("request_timeout"), "{error}");

    let (ok, stderr) = serve(&[("VAULT__KEYS__PROVDER", "custodians")]);
    assert!(!ok, "start-up must fail");
    assert!(stderr.contains("provder"), "the error names the key: {stderr}");
}

#[test]
fn an_unknown_log_format_is_refused_and_the_old_name_still_accepted() {
    assert!(load(None, &[("VAULT__TELEMETRY__LOG_FORMAT", "yaml")]).unwrap_err().contains("yaml"));
    for (value, format) in [("pretty", LogFormat::Text), ("text", LogFormat::Text), ("json", LogFormat::Json)] {
        let cfg = load(None, &[("VAULT__TELEMETRY__LOG_FORMAT", value)]).unwrap();
        assert_eq!(cfg.telemetry.log_format, format, "{value}");
    }
}

#[test]
fn the_environment_overrides_the_file_and_lists_are_comma_separated() {
    let file = TempFile::new(
        r#"request_timeout_ms = 1234
shutdown_pause_ms = 10

[keys]
provider = "custodians"
share_files = ["/shares/a", "/shares/b"]

[tls]
allowed_clients = ["payments-svc", "reconciler"]
"#,
    );
    let cfg = load(Some(&file), &[]).unwrap();
    assert_eq!(cfg.request_timeout_ms, 1234);
    assert_eq!(cfg.keys.provider, KeyProviderKind::Custodians);
    assert_eq!(cfg.keys.share_files, ["/shares/a", "/shares/b"]);
    assert_eq!(cfg.allowed_clients(), ["payments-svc", "reconciler"]);
    assert_eq!(cfg.shutdown_pause_ms, 10);

    let cfg = load(
        Some(&file),
        &[
            ("VAULT__REQUEST_TIMEOUT_MS", "777"),
            ("VAULT__TLS__ALLOWED_CLIENTS", "payments-svc, ledger-svc"),
            ("VAULT__KEYS__SHARE_FILES", "/s/1,/s/2,/s/3"),
            ("VAULT__KEYS__PROVIDER", "file"),
            ("REDIS_URL", "redis://127.0.0.1:6379/3"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.request_timeout_ms, 777, "the environment wins over the file");
    assert_eq!(cfg.allowed_clients(), ["payments-svc", "ledger-svc"]);
    assert_eq!(cfg.keys.share_files.len(), 3);
    assert_eq!(cfg.keys.provider, KeyProviderKind::File);
    assert_eq!(cfg.redis.url.as_deref(), Some("redis://127.0.0.1:6379/3"), "REDIS_URL fills in redis.url");
    assert_eq!(cfg.shutdown_pause_ms, 10, "a key the environment does not set keeps the file's value");
}

#[test]
fn defaults_need_no_file() {
    let cfg = load(None, &[]).unwrap();
    assert_eq!(cfg.keys.provider, KeyProviderKind::File);
    assert_eq!(cfg.allowed_clients(), ["payments-svc"]);
    assert_eq!(cfg.shutdown_pause_ms, 2_000);
}
