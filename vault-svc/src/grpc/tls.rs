//! TLS for both ports. The internal port: TLS 1.3 only, a client certificate
//! issued by the platform CA is mandatory, and its DNS name must be on the
//! allow-list; refusal happens in the handshake, before any gRPC is read. The
//! public port: optional server-only TLS (TLS 1.2 and 1.3) for deployments,
//! `common::server::tls`'s, as payments-svc's public port has it. Both are
//! served over the shell's TLS accept loop (`Port::tls`).
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

pub use common::server::tls::TlsError;
use common::server::tls::{certs, private_key};

/// PEM material of the internal port.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial(***)")
    }
}

fn dns_names(names: &[String]) -> Vec<ServerName<'static>> {
    names.iter().filter_map(|n| ServerName::try_from(n.clone()).ok()).collect()
}

/// The name on the allow-list that `cert` is valid for, if any.
fn allowed_name<'n>(cert: &CertificateDer<'_>, allowed: &'n [ServerName<'static>]) -> Option<&'n ServerName<'static>> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    allowed.iter().find(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// Chain validation by webpki, then the allow-list check.
#[derive(Debug)]
struct AllowListVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for AllowListVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        match allowed_name(end_entity, &self.allowed) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls configuration of the internal port.
pub fn server_config(tls: &TlsMaterial, allowed_clients: &[String]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(&tls.ca_pem)? {
        roots.add(ca)?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier = Arc::new(AllowListVerifier { inner, allowed: dns_names(allowed_clients) });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&tls.cert_pem)?, private_key(&tls.key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Server-only TLS for the public port (merchants authenticate with API keys).
pub fn public_server_config(tls: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    common::server::tls::public_server_config(&tls.cert_pem, &tls.key_pem)
}

/// The allow-listed name of the client that made `request` (for logs and audit).
pub fn peer_identity<T>(request: &tonic::Request<T>, allowed_clients: &[String]) -> String {
    let allowed = dns_names(allowed_clients);
    request
        .peer_certs()
        .and_then(|certs| certs.first().and_then(|c| allowed_name(c, &allowed)).map(|n| n.to_str().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}
