//! Development set-up for the embedded run (`vault-svc dev-init`): a dev KEK,
//! payments-svc's dev reference key, a dev CA with a server certificate for
//! localhost, client certificates for payments-svc and for an operator (a
//! person with grpcurl, audited under their own name), and a test merchant
//! whose keys go to `merchant.env`.
//! Never for production: there the KEK, certificates and directory come from
//! Kubernetes Secrets.
use std::fs;
use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use common::auth::create_merchant;

use crate::crypto::kek::KekSet;

/// A development certificate authority that can issue server and client certificates.
pub struct DevCa {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM-encoded.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "payvault dev CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let ca_pem = params.self_signed(&key)?.pem();
        Ok(Self { ca_pem, issuer: Issuer::new(params, key) })
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Result<IssuedCert, rcgen::Error> {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("payvault"));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    pub fn server(&self, names: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    pub fn client(&self, name: &str) -> Result<IssuedCert, rcgen::Error> {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevInitError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    #[error(transparent)]
    Directory(#[from] common::auth::DirectoryError),
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevInitError> {
    let io = |e| DevInitError::Io(path.display().to_string(), e);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).and_then(|mut f| f.write_all(contents)).map_err(io)
}

/// The client certificate name payments-svc presents to the internal port.
pub const PAYMENTS_CLIENT: &str = "payments-svc";
/// The client certificate name of a person calling the internal port with grpcurl.
pub const OPERATOR_CLIENT: &str = "operator";

/// Creates whatever of the dev set-up is missing under `dir`; returns what it made.
pub fn init(dir: &Path) -> Result<Vec<&'static str>, DevInitError> {
    let mut made = Vec::new();
    let certs = dir.join("certs");
    fs::create_dir_all(&certs).map_err(|e| DevInitError::Io(certs.display().to_string(), e))?;

    let kek = dir.join("kek");
    if !kek.exists() {
        let set = KekSet::random();
        write_private(&kek, set.to_text().as_bytes())?;
        made.push("dev KEK (kek)");
    }

    // payments-svc's key for the references it stores (idempotency keys and
    // request hashes are kept only as HMACs under it).
    let reference_key = dir.join("reference.key");
    if !reference_key.exists() {
        write_private(&reference_key, KekSet::random().to_text().as_bytes())?;
        made.push("payments-svc reference key (reference.key)");
    }

    // The CA's key is not kept: when any file is missing, the whole set is issued again.
    let files = ["ca.pem", "server.pem", "server.key", "client.pem", "client.key", "operator.pem", "operator.key"];
    if files.iter().any(|f| !certs.join(f).exists()) {
        let ca = DevCa::generate()?;
        let server = ca.server(&["localhost", "127.0.0.1"])?;
        write_private(&certs.join("ca.pem"), ca.ca_pem.as_bytes())?;
        write_private(&certs.join("server.pem"), server.cert_pem.as_bytes())?;
        write_private(&certs.join("server.key"), server.key_pem.as_bytes())?;
        // payments-svc's identity, and a person's (grpcurl), so the audit trail tells them apart.
        for (name, file) in [(PAYMENTS_CLIENT, "client"), (OPERATOR_CLIENT, "operator")] {
            let client = ca.client(name)?;
            write_private(&certs.join(format!("{file}.pem")), client.cert_pem.as_bytes())?;
            write_private(&certs.join(format!("{file}.key")), client.key_pem.as_bytes())?;
        }
        made.push("dev CA, server, payments-svc and operator client certificates (certs/)");
    }

    let env = dir.join("merchant.env");
    if !env.exists() {
        let m = create_merchant(&dir.join("merchants.json"), "Test merchant")?;
        let text = format!(
            "PAYVAULT_MERCHANT_ID={}\nPAYVAULT_PKEY={}\nPAYVAULT_SKEY={}\n",
            m.id,
            m.test_public.expose(),
            m.test_secret.expose()
        );
        write_private(&env, text.as_bytes())?;
        made.push("test merchant (merchants.json, keys in merchant.env)");
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;
    use crate::crypto::{FileKeyProvider, KeyProvider};
    use crate::grpc::tls::{TlsMaterial, server_config};
    use common::auth::{DirectoryHandle, KeyKind};

    #[test]
    fn init_makes_a_working_set_up_once() {
        let dir = std::env::temp_dir().join(format!("payvault-dev-{}", common::ids::hex(8)));
        assert_eq!(init(&dir).unwrap().len(), 4);
        assert!(init(&dir).unwrap().is_empty(), "a second run keeps what exists");

        FileKeyProvider { path: dir.join("kek") }.load().unwrap();
        common::keys::KeySet::load("PAYVAULT_TEST_UNSET", &dir.join("reference.key")).unwrap();
        let read = |f: &str| fs::read(dir.join("certs").join(f)).unwrap();
        assert!(!read("operator.pem").is_empty() && !read("operator.key").is_empty());
        let tls = TlsMaterial { ca_pem: read("ca.pem"), cert_pem: read("server.pem"), key_pem: read("server.key") };
        server_config(&tls, &["payments-svc".into()]).unwrap();

        let env = fs::read_to_string(dir.join("merchant.env")).unwrap();
        let value = |name: &str| env.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap().to_owned();
        let directory = DirectoryHandle::load(&dir.join("merchants.json")).unwrap();
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {}", value("PAYVAULT_PKEY")).parse().unwrap());
        let caller = directory.authenticate(&md, &[KeyKind::Public]).unwrap();
        assert_eq!(caller.merchant_id, value("PAYVAULT_MERCHANT_ID"));
        assert!(!caller.livemode);
        assert!(value("PAYVAULT_SKEY").starts_with("skey_test_"));
    }
}
