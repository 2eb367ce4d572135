//! Health per service name: a `Check` probes one dependency (a store, a
//! downstream service) and names the services that need it; a service is
//! SERVING while every check guarding it passes. Probes run together every two
//! seconds, each within one second; a transition is logged once. Each probe's
//! latest result is the gauge `health_check_up{check}` (1 or 0), which the
//! store-outage alert reads (deploy/observability/alerts.yaml).
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

const EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A dependency to watch and the services that depend on it.
#[derive(Clone)]
pub struct Check {
    name: &'static str,
    services: Vec<&'static str>,
    probe: Probe,
}

impl Check {
    /// `probe` answers `Ok` while the dependency is usable; `name` is for logs.
    pub fn new<F, Fut, E>(name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let probe: Probe = Arc::new(move || {
            let probe = probe();
            Box::pin(async move { probe.await.map_err(|e| e.to_string()) })
        });
        Self { name, services: Vec::new(), probe }
    }

    /// The service `S` reports NOT_SERVING while this check fails.
    pub fn guards<S: NamedService>(mut self) -> Self {
        self.services.push(S::NAME);
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    async fn run(&self) -> Result<(), String> {
        match tokio::time::timeout(PROBE_TIMEOUT, (self.probe)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }
}

/// The statuses the shell reports.
#[derive(Clone)]
pub(crate) struct Health {
    reporter: HealthReporter,
    services: Arc<[&'static str]>,
    checks: Arc<[Check]>,
}

impl Health {
    /// Services no check guards are SERVING at once; the others start
    /// NOT_SERVING until their first probes pass.
    pub(crate) async fn new(reporter: HealthReporter, services: Vec<&'static str>, checks: Vec<Check>) -> Self {
        for service in &services {
            let guarded = checks.iter().any(|c| c.services.contains(service));
            let status = if guarded { ServingStatus::NotServing } else { ServingStatus::Serving };
            reporter.set_service_status(service, status).await;
        }
        Self { reporter, services: services.into(), checks: checks.into() }
    }

    pub(crate) async fn monitor(self) {
        let mut up: Vec<Option<bool>> = vec![None; self.checks.len()];
        let mut serving: HashMap<&'static str, bool> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let results = futures::future::join_all(self.checks.iter().map(Check::run)).await;
            for ((check, result), last) in self.checks.iter().zip(&results).zip(&mut up) {
                metrics::gauge!("health_check_up", "check" => check.name).set(if result.is_ok() { 1.0 } else { 0.0 });
                if *last != Some(result.is_ok()) {
                    match result {
                        Ok(()) => {
                            tracing::info!(check = check.name, services = ?check.services, "dependency reachable")
                        }
                        Err(error) => tracing::error!(
                            check = check.name, services = ?check.services, %error,
                            "dependency unreachable: its services report NOT_SERVING"
                        ),
                    }
                    *last = Some(result.is_ok());
                }
            }
            for &service in self.services.iter() {
                let mut guards = self.checks.iter().zip(&results).filter(|(c, _)| c.services.contains(&service));
                let ok = guards.all(|(_, r)| r.is_ok());
                if serving.insert(service, ok) != Some(ok) {
                    let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
                    self.reporter.set_service_status(service, status).await;
                }
            }
        }
    }

    /// Every named service NOT_SERVING (the drain); "" stays SERVING.
    pub(crate) async fn not_serving(&self) {
        for service in self.services.iter() {
            self.reporter.set_service_status(service, ServingStatus::NotServing).await;
        }
    }
}
