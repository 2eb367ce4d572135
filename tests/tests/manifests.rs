//! The Kubernetes overlays' Secret literals are what the services read: the
//! dev overlay's KEK parses with the vault's own key provider format, and its
//! merchant directory with the directory loader's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The value of `name=` among the overlay's `secretGenerator` literals.
fn literal(overlay: &str, name: &str) -> String {
    let path = format!("{}/../deploy/k8s/overlays/{overlay}/kustomization.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the overlay");
    let prefix = format!("{name}=");
    text.lines()
        .map(|line| line.trim().trim_start_matches("- ").trim_matches('\''))
        .find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name}= literal in {path}"))
}

#[test]
fn the_dev_overlays_secrets_are_what_the_services_read() {
    let kek =
        vault_svc::crypto::KekSet::parse(&literal("dev", "kek")).expect("the dev KEK parses as the vault reads it");
    assert_eq!(kek.current().0, 1);
    let reference = common::keys::KeySet::parse(&literal("dev", "reference.key"))
        .expect("the dev reference key parses as payments-svc reads it");
    assert_eq!(reference.current().0, 1);
    let dir = e2e::scratch::ScratchDir::new();
    let path = dir.write("merchants.json", literal("dev", "merchants.json"));
    common::auth::DirectoryFile::read(&path).expect("the dev merchant directory reads as the services read it");
}
