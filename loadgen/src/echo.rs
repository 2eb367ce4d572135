//! The echo baseline: generated types for `proto/echo.proto` and a bare tonic
//! server that answers with as many payload bytes as the client asks for,
//! optionally over TLS with client certificates required, like the vault's
//! internal port.
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::Error;
use crate::cli::EchoServerArgs;

#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("payvault.loadgen.echo.v1");
}

use pb::echo_server::{Echo, EchoServer};
use pb::{EchoRequest, EchoResponse};

/// Larger asks are refused: the baseline mimics small vault messages.
const MAX_RESPONSE: u32 = 1 << 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let size = request.get_ref().response_size;
        if size > MAX_RESPONSE {
            return Err(Status::invalid_argument("response_size is too large"));
        }
        Ok(Response::new(EchoResponse { payload: vec![0; size as usize] }))
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve(args: &EchoServerArgs) -> Result<(), Error> {
    let mut builder = Server::builder();
    if let (Some(cert), Some(key), Some(ca)) = (&args.tls_cert, &args.tls_key, &args.client_ca) {
        let read = |p: &std::path::PathBuf| std::fs::read(p).map_err(Error::file(p));
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(cert)?, read(key)?))
            .client_ca_root(Certificate::from_pem(read(ca)?));
        builder = builder.tls_config(tls)?;
    }
    eprintln!(
        "loadgen echo-server listening on {} ({})",
        args.addr,
        if args.tls_cert.is_some() { "mTLS" } else { "plaintext" }
    );
    builder.add_service(EchoServer::new(EchoService)).serve_with_shutdown(args.addr, shutdown()).await?;
    Ok(())
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
