//! TLS for the shell's ports, shared by both services: PEM parsing, the
//! server-only configuration of a public port (TLS 1.2 and 1.3, no client
//! certificate: merchants authenticate with API keys), and the accept loop
//! that runs handshakes off the accept path, so a slow or silent client never
//! stalls the port. A service that needs more (the vault's internal port:
//! TLS 1.3 and allow-listed client certificates) builds its own
//! `ServerConfig` and hands it to [`Port::tls`](super::Port::tls) all the same.
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS material: {0}")]
    Pem(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Every certificate in `pem`, in order (leaf first in a chain file).
pub fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(TlsError::Pem("no certificate in the PEM file".into())),
        Err(e) => Err(TlsError::Pem(e.to_string())),
    }
}

/// The private key in `pem` (PKCS#8, PKCS#1 or SEC1, as cert-manager and
/// openssl write them).
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem(e.to_string()))
}

/// Server-only TLS for a public port, with the certificate chain and key given.
pub fn public_server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs(cert_pem)?, private_key(key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client went away mid-handshake rather than failing it.
fn hung_up(error: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(error.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Accepted TLS connections (authenticated, where the config asks for it) for
/// `tonic`'s `serve_with_incoming`. Handshakes run concurrently so a slow
/// client cannot stall the accept loop; a refused handshake is logged and
/// dropped (at DEBUG when the client simply hung up: a port probe, or a
/// balancer dropping a spare connection).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer): (TcpStream, SocketAddr) = tokio::select! {
                _ = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = async {
                    // A port probe connects and closes without a byte: not a refused handshake.
                    if tcp.peek(&mut [0u8; 1]).await? == 0 {
                        return Ok(None);
                    }
                    acceptor.accept(tcp).await.map(Some)
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(Some(stream))) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Ok(None)) => tracing::debug!(%peer, "connection closed before any TLS byte"),
                    // The client hung up mid-handshake (a balancer dropping a spare connection):
                    // nothing was refused.
                    Ok(Err(error)) if hung_up(&error) => {
                        tracing::debug!(%peer, %error, "client closed during the TLS handshake")
                    }
                    Ok(Err(error)) => tracing::warn!(%peer, %error, "TLS handshake refused"),
                    Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
