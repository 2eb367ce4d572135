//! payments-svc's configuration through the real loader: unknown keys stop
//! start-up naming them; the environment overrides the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use common::config::Layers;
use payments_svc::config::PaymentsConfig;

fn load(file: Option<&std::path::Path>, env: &[(&str, &str)]) -> Result<PaymentsConfig, String> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    PaymentsConfig::load_from(&Layers { file, env: Some(env) }).map_err(|e| e.to_string())
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let error = load(None, &[("PAYMENTS__VAULT__DOMIAN", "vault.internal")]).unwrap_err();
    assert!(error.contains("domian"), "{error}");
    let error = load(None, &[("PAYMENTS__MERCHANTS__RELOAD", "5")]).unwrap_err();
    assert!(error.contains("reload"), "{error}");
}

#[test]
fn the_environment_overrides_the_file() {
    let path = std::env::temp_dir().join(format!("payvault-payments-{}.toml", common::ids::hex(8)));
    std::fs::write(&path, "acquirer_timeout_ms = 900\nshutdown_pause_ms = 5\n[vault]\ndomain = \"vault.internal\"\n")
        .unwrap();
    let cfg = load(Some(&path), &[("PAYMENTS__ACQUIRER_TIMEOUT_MS", "1200")]);
    let _ = std::fs::remove_file(&path);
    let cfg = cfg.unwrap();
    assert_eq!(cfg.acquirer_timeout_ms, 1200);
    assert_eq!(cfg.vault.domain, "vault.internal");
    assert_eq!(cfg.server_settings().shutdown_pause, std::time::Duration::from_millis(5));
}

#[test]
fn balancing_and_public_tls_are_typed_settings() {
    use payments_svc::config::VaultBalance;
    let cfg = load(None, &[]).unwrap();
    assert_eq!((cfg.vault.balance, cfg.public_tls, cfg.health_addr.as_str()), (VaultBalance::Dns, false, ""));
    let cfg = load(
        None,
        &[
            ("PAYMENTS__VAULT__BALANCE", "off"),
            ("PAYMENTS__PUBLIC_TLS", "true"),
            ("PAYMENTS__TLS__CERT", "/etc/payvault/public-tls/server.pem"),
            ("PAYMENTS__HEALTH_ADDR", "0.0.0.0:50072"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.vault.balance, VaultBalance::Off);
    assert!(cfg.public_tls);
    assert_eq!(cfg.public_tls_paths()[0], std::path::PathBuf::from("/etc/payvault/public-tls/server.pem"));
    assert_eq!(cfg.health_addr, "0.0.0.0:50072");
    let error = load(None, &[("PAYMENTS__VAULT__BALANCE", "round-robin")]).unwrap_err();
    assert!(error.contains("round-robin"), "{error}");
}
