//! gRPC channels: several HTTP/2 connections to one address, so that a single
//! connection is not the bottleneck, optionally over mTLS. The vault op and its
//! echo baseline get the same layout.
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Error;

/// Files for an mTLS client: the CA that signed the server, our certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The name the server's certificate must carry.
    pub domain: String,
}

impl TlsFiles {
    fn config(&self) -> Result<ClientTlsConfig, Error> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(Error::file(p));
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)?))
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
            .domain_name(self.domain.clone()))
    }
}

/// Opens `count` channels to `addr`, each its own connection.
pub async fn connect(
    addr: String,
    tls: Option<TlsFiles>,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Channel>, Error> {
    let failed = |source| Error::Connect { addr: addr.clone(), source };
    let mut endpoint =
        Endpoint::from_shared(addr.clone()).map_err(failed)?.timeout(timeout).connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.config()?).map_err(failed)?;
    }
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        channels.push(endpoint.connect().await.map_err(failed)?);
    }
    Ok(channels)
}
