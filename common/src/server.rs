//! The one server shell both services run in. A service hands it its tonic
//! services grouped by port and the dependencies to watch; the shell adds, on
//! every port, `grpc.health.v1` (one status per service name, driven by the
//! checks that guard it; "" is liveness and stays SERVING while the process
//! lives), server reflection (v1 and v1alpha, so old and new grpcurl work), the
//! per-call span, log line and RED metrics (`trace`), and the per-call
//! deadline and correlation id (`call`); it samples the gauges the services
//! hand it (`sampler`) while it serves. On
//! shutdown it drains: every service NOT_SERVING, a pause so load balancers
//! stop routing, stop accepting, then in-flight calls finish within the drain
//! limit.
pub mod call;
pub mod health;
pub mod sampler;
pub mod tls;
pub mod trace;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tonic::transport::server::Connected;

pub use call::{CallInfo, CallLayer, DEFAULT_MAX_METADATA};
pub use health::Check;
pub use sampler::Sample;
pub use trace::TraceLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Serve = Box<
    dyn FnOnce(Routes, Settings, BoxFuture<'static, ()>) -> BoxFuture<'static, Result<(), tonic::transport::Error>>
        + Send,
>;

/// The timing of calls and of the drain.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Upper bound on any call, whatever the caller's `grpc-timeout`.
    pub request_timeout: Duration,
    /// After SIGTERM, how long the ports keep accepting while reporting
    /// NOT_SERVING, so load balancers and kube-proxy stop routing here first.
    pub shutdown_pause: Duration,
    /// How long in-flight calls may take to finish once accepting stops.
    pub shutdown_drain: Duration,
    /// The metadata a call may carry (`call::DEFAULT_MAX_METADATA` by
    /// default); more is RESOURCE_EXHAUSTED / `metadata_too_large` on that
    /// call alone. HTTP/2 itself accepts header blocks up to
    /// `HTTP2_MAX_HEADER_LIST`, so a larger one never costs the connection.
    pub max_metadata: usize,
}

/// The header-block size HTTP/2 accepts (its SETTINGS_MAX_HEADER_LIST_SIZE);
/// beyond it the stream (or, for a flood of frames, the connection) is
/// refused by the HTTP/2 layer.
pub const HTTP2_MAX_HEADER_LIST: u32 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("health check {check:?} guards {service}, which no port serves")]
    UnservedService { check: &'static str, service: &'static str },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("{port} port: {error}")]
    Serve { port: &'static str, error: tonic::transport::Error },
}

/// One listening port and the services it serves.
pub struct Port {
    label: &'static str,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    serve: Serve,
}

impl Port {
    /// A plaintext port.
    pub fn tcp(label: &'static str, listener: TcpListener) -> Self {
        Self::incoming(label, TcpListenerStream::new(listener))
    }

    /// A TLS port: every connection's handshake with `config` first
    /// ([`tls::incoming`]).
    pub fn tls(label: &'static str, listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        Self::incoming(label, tls::incoming(listener, config))
    }

    /// A TLS port with `config`, or a plaintext one without (a public port
    /// whose TLS is a setting).
    pub fn tcp_or_tls(label: &'static str, listener: TcpListener, config: Option<Arc<rustls::ServerConfig>>) -> Self {
        match config {
            Some(config) => Self::tls(label, listener, config),
            None => Self::tcp(label, listener),
        }
    }

    /// A plaintext port that serves `grpc.health.v1` (and its reflection)
    /// alone, with every service's status as the ports serving it report it:
    /// for the kubelet's gRPC probes, which cannot speak TLS. It carries no
    /// API, so it may stay plaintext where every other port is TLS.
    pub fn health_only(listener: TcpListener) -> Self {
        Self::tcp("health", listener)
    }

    /// A port over any stream of accepted connections (e.g. TLS handshakes
    /// already done); `label` names it in logs and errors.
    pub fn incoming<I, IO, IE>(label: &'static str, incoming: I) -> Self
    where
        I: Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IO::ConnectInfo: Clone + Send + Sync + 'static,
        IE: Into<BoxError>,
    {
        let serve: Serve = Box::new(move |routes, settings, stop| {
            Box::pin(async move {
                let call = CallLayer::new(settings.request_timeout).max_metadata(settings.max_metadata);
                Server::builder()
                    .http2_max_header_list_size(HTTP2_MAX_HEADER_LIST.max(settings.max_metadata as u32))
                    .layer(trace::TraceLayer)
                    .layer(call)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await
            })
        });
        Self { label, routes: RoutesBuilder::default(), services: Vec::new(), serve }
    }

    /// Serves `service` on this port; its health status is reported under its
    /// `NamedService::NAME` and reflection advertises it here.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.services.push(S::NAME);
        self
    }
}

/// Binds `addr` (`host:port`; port 0 picks one), the error naming it.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr: addr.to_owned(), source })
}

#[derive(Debug, thiserror::Error)]
#[error("bind {addr}: {source}")]
pub struct BindError {
    addr: String,
    source: std::io::Error,
}

/// The shell: settings, descriptor sets for reflection, health checks, ports.
pub struct Shell {
    settings: Settings,
    descriptor_sets: Vec<&'static [u8]>,
    checks: Vec<Check>,
    samples: Vec<Sample>,
    ports: Vec<Port>,
    detached: Option<tokio_util::task::TaskTracker>,
}

impl Shell {
    pub fn new(settings: Settings) -> Self {
        let descriptor_sets = vec![tonic_health::pb::FILE_DESCRIPTOR_SET, tonic_types::pb::FILE_DESCRIPTOR_SET];
        Self { settings, descriptor_sets, checks: Vec::new(), samples: Vec::new(), ports: Vec::new(), detached: None }
    }

    /// Work the services run detached from their calls (see payments'
    /// idempotent calls): the drain waits for it too, within the same limit.
    pub fn detached(mut self, tracker: tokio_util::task::TaskTracker) -> Self {
        self.detached = Some(tracker);
        self
    }

    /// Registers an encoded `FileDescriptorSet` (the services' protos) with
    /// reflection. Health's and the google.rpc types' are always there, so
    /// grpcurl can print the `ErrorInfo` of a failed call.
    pub fn reflect(mut self, encoded_file_descriptor_set: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded_file_descriptor_set);
        self
    }

    /// Watches a dependency; the services it guards follow its health.
    pub fn watch(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Sets gauges from in-process state while the shell serves (see `sampler`).
    pub fn sample(mut self, sample: impl Fn() + Send + Sync + 'static) -> Self {
        self.samples.push(std::sync::Arc::new(sample));
        self
    }

    pub fn port(mut self, port: Port) -> Self {
        self.ports.push(port);
        self
    }

    /// Serves every port until `shutdown` resolves (or a port fails), then drains.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ShellError> {
        let Self { settings, descriptor_sets, checks, samples, ports, detached } = self;
        let served: Vec<&'static str> = ports.iter().flat_map(|p| p.services.iter().copied()).collect();
        for check in &checks {
            if let Some(service) = check.services().iter().find(|s| !served.contains(s)) {
                return Err(ShellError::UnservedService { check: check.name(), service });
            }
        }
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = health::Health::new(reporter, served, checks).await;
        let monitor = AbortOnDrop(tokio::spawn(health.clone().monitor()));
        let _sampler = AbortOnDrop(tokio::spawn(sampler::run(samples.into())));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut servers = Vec::with_capacity(ports.len());
        for Port { label, mut routes, services, serve } in ports {
            let reflection = || {
                let mut builder = tonic_reflection::server::Builder::configure();
                for set in &descriptor_sets {
                    builder = builder.register_encoded_file_descriptor_set(set);
                }
                for name in &services {
                    builder = builder.with_service_name(*name);
                }
                builder.with_service_name("grpc.health.v1.Health")
            };
            routes.add_service(health_service.clone());
            routes.add_service(reflection().build_v1()?);
            routes.add_service(reflection().build_v1alpha()?);
            let mut stop = stop_rx.clone();
            let stop: BoxFuture<'static, ()> = Box::pin(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            let server = serve(routes.routes(), settings, stop);
            servers.push(async move { server.await.map_err(|error| ShellError::Serve { port: label, error }) });
        }
        let servers = futures::future::try_join_all(servers);
        tokio::pin!(servers);

        tokio::select! {
            result = &mut servers => return result.map(|_| ()),
            () = shutdown => {}
        }
        drop(monitor);
        health.not_serving().await;
        tracing::info!(pause_ms = settings.shutdown_pause.as_millis() as u64, "shutting down: reporting NOT_SERVING");
        tokio::select! {
            result = &mut servers => return result.map(|_| ()),
            () = tokio::time::sleep(settings.shutdown_pause) => {}
        }
        let _ = stop_tx.send(true);
        tracing::info!(drain_secs = settings.shutdown_drain.as_secs(), "stopped accepting: draining in-flight calls");
        let drained = async {
            let result = (&mut servers).await.map(|_| ());
            if let Some(work) = &detached {
                work.close();
                work.wait().await;
            }
            result
        };
        match tokio::time::timeout(settings.shutdown_drain, drained).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("drain limit reached; closing remaining calls");
                Ok(())
            }
        }
    }
}

/// Aborts a background task when the shell no longer needs it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
