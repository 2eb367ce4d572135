//! Client-side balancing over every vault replica. One HTTP/2 connection to a
//! Service's virtual IP would pin all of a payments pod's calls to whichever
//! vault pod kube-proxy picked when it connected; instead the vault's name (a
//! headless Service, whose DNS records are its ready pods) is resolved with
//! `tokio::net::lookup_host` now and every `resolve_every`, and tonic's
//! balanced channel (`Channel::balance_channel`: power of two choices over one
//! connection per address) spreads the calls over the addresses.
//!
//! DNS follows a pod's death only after the endpoints controller, the DNS
//! cache and the next resolution have caught up, seconds during which a dead
//! address would take every other call. So each address also keeps a
//! `grpc.health.v1` Watch of `payvault.vault.v1.Vault` open on a connection of
//! its own: the balancer holds the addresses whose watch says SERVING (and a
//! new one until its watch has answered: DNS names only ready pods). A vault
//! that dies resets that stream (and an unreachable one misses the HTTP/2
//! keep-alive), one that drains reports NOT_SERVING before it stops
//! accepting, one that loses a store reports NOT_SERVING too; each leaves the
//! balancer at once, and comes back when a new watch (every `rewatch_after`)
//! sees it SERVING. A watch is closed as soon as it reports anything else, so
//! it never holds a draining vault's shutdown open.
//!
//! When no address is SERVING the balancer holds every resolved address, and
//! before any name has resolved (or when resolution fails) it holds the
//! configured URLs themselves: calls then fail fast with UNAVAILABLE, or reach
//! a vault whose health lags, as one plain channel would, rather than wait on
//! an empty balancer. `url` may list several URLs, comma-separated (vaults
//! outside one Service); every address of every name is an endpoint.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The health service name an address must report SERVING to take calls.
const VAULT_SERVICE: &str = "payvault.vault.v1.Vault";
/// Room for a burst of membership changes between two polls of the balancer.
const CHANGES_CAPACITY: usize = 256;
/// A name that does not resolve within this keeps its last addresses.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on the watch connections, so a vault that vanished without a
/// reset (its node died) leaves the balancer within interval + timeout.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the vault's names become the balancer's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balancing {
    /// How often every name is resolved again.
    pub resolve_every: Duration,
    /// After an address's watch ended or reported anything but SERVING, how
    /// long until it is watched again.
    pub rewatch_after: Duration,
}

impl Default for Balancing {
    fn default() -> Self {
        Self { resolve_every: Duration::from_secs(5), rewatch_after: Duration::from_secs(1) }
    }
}

/// Builds the endpoint of one URL (`https://10.0.0.7:50061`) with the
/// client's TLS identity and connection settings.
pub(crate) type MakeEndpoint = Arc<dyn Fn(&str) -> Result<Endpoint, String> + Send + Sync>;

/// A balanced channel over `urls` (one URL, or several comma-separated),
/// kept up to date by a background task that ends when the channel's last
/// clone is dropped. Needs a Tokio runtime.
pub(crate) fn channel(urls: &str, make: MakeEndpoint, balancing: Balancing) -> Result<Channel, String> {
    let targets =
        urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(Target::parse).collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err("no vault url".into());
    }
    let (channel, changes) = Channel::balance_channel(CHANGES_CAPACITY);
    let mut published = HashSet::new();
    for target in &targets {
        let key = Key::Url(target.url.clone());
        changes.try_send(Change::Insert(key.clone(), make(&target.url)?)).map_err(|e| e.to_string())?;
        published.insert(key);
    }
    let last = vec![HashSet::new(); targets.len()];
    let balancer = Balancer { targets, last, make, changes, balancing, published, mode: Mode::Urls };
    tokio::spawn(balancer.run());
    Ok(channel)
}

/// What the balancer holds: a configured URL (resolved by tonic on connect),
/// or one resolved address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Url(String),
    Addr(SocketAddr),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url) => f.write_str(url),
            Self::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// One configured URL: resolved by its host and port.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|_| format!("vault url {url} is not a valid URI"))?;
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().ok_or_else(|| format!("vault url {url} has no host"))?;
        // An IPv6 literal is bracketed in a URI, not in a name to resolve.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        Ok(Self { url: url.to_owned(), scheme, host, port })
    }
}

/// One resolved address: what its watch last said, and the watch.
struct Member {
    health: Health,
    _watch: AbortOnDrop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Not reported yet: a new address of a headless Service is a ready pod,
    /// so it takes calls until its watch says otherwise.
    Unknown,
    Serving,
    NotServing,
}

struct Balancer {
    targets: Vec<Target>,
    /// Each target's addresses at its last successful resolution.
    last: Vec<HashSet<SocketAddr>>,
    make: MakeEndpoint,
    changes: mpsc::Sender<Change<Key, Endpoint>>,
    balancing: Balancing,
    /// What the balancer holds now, and by which rule.
    published: HashSet<Key>,
    mode: Mode,
}

/// Which addresses the balancer holds (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Those not reported NOT_SERVING (or gone).
    Serving,
    AllResolved,
    Urls,
}

impl Balancer {
    async fn run(mut self) {
        let (report, mut reports) = mpsc::unbounded_channel::<(SocketAddr, bool)>();
        let mut members: HashMap<SocketAddr, Member> = HashMap::new();
        let mut resolve = tokio::time::interval(self.balancing.resolve_every.max(Duration::from_millis(100)));
        resolve.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.changes.closed() => return,
                _ = resolve.tick() => {
                    let addrs = self.resolve().await;
                    members.retain(|addr, _| addrs.contains_key(addr));
                    for (addr, scheme) in addrs {
                        if members.contains_key(&addr) {
                            continue;
                        }
                        match (self.make)(&format!("{scheme}://{addr}")) {
                            Ok(endpoint) => {
                                let watch = watch(addr, endpoint, report.clone(), self.balancing.rewatch_after);
                                let watch = AbortOnDrop(tokio::spawn(watch));
                                members.insert(addr, Member { health: Health::Unknown, _watch: watch });
                            }
                            Err(error) => tracing::warn!(%addr, %error, "vault address left out"),
                        }
                    }
                }
                Some((addr, serving)) = reports.recv() => {
                    if let Some(member) = members.get_mut(&addr) {
                        member.health = if serving { Health::Serving } else { Health::NotServing };
                    }
                }
            }
            if self.publish(&members).await.is_err() {
                return;
            }
        }
    }

    /// Every address of every target; a target that does not resolve keeps
    /// its last addresses.
    async fn resolve(&mut self) -> HashMap<SocketAddr, String> {
        let mut all = HashMap::new();
        for (target, last) in self.targets.iter().zip(self.last.iter_mut()) {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => {
                    let addrs: HashSet<SocketAddr> = addrs.collect();
                    if addrs != *last {
                        tracing::info!(name = %target.host, addrs = ?addrs, "vault name resolved");
                    }
                    *last = addrs;
                }
                Ok(Err(error)) => {
                    tracing::warn!(name = %target.host, %error, "vault name did not resolve; keeping its last addresses")
                }
                Err(_) => {
                    tracing::warn!(name = %target.host, "vault name resolution timed out; keeping its last addresses")
                }
            }
            all.extend(last.iter().map(|addr| (*addr, target.scheme.clone())));
        }
        all
    }

    /// Brings the balancer to the SERVING addresses (or every address, or
    /// the URLs: see the module). `Err` once the channel is gone.
    async fn publish(&mut self, members: &HashMap<SocketAddr, Member>) -> Result<(), ()> {
        let serving: HashSet<Key> =
            members.iter().filter(|(_, m)| m.health != Health::NotServing).map(|(a, _)| Key::Addr(*a)).collect();
        let (mode, wanted) = if !serving.is_empty() {
            (Mode::Serving, serving)
        } else if !members.is_empty() {
            (Mode::AllResolved, members.keys().map(|a| Key::Addr(*a)).collect())
        } else {
            (Mode::Urls, self.targets.iter().map(|t| Key::Url(t.url.clone())).collect())
        };
        if mode != self.mode {
            match mode {
                Mode::Serving => tracing::info!("balancing over the vault addresses that are SERVING"),
                Mode::AllResolved => {
                    tracing::warn!(addresses = members.len(), "no vault address is SERVING: balancing over all of them")
                }
                Mode::Urls => tracing::warn!("no vault name has resolved: balancing over the configured URLs"),
            }
            self.mode = mode;
        }
        let gone: Vec<Key> = self.published.difference(&wanted).cloned().collect();
        let new: Vec<Key> = wanted.difference(&self.published).cloned().collect();
        for key in new {
            let url = match &key {
                Key::Url(url) => url.clone(),
                Key::Addr(addr) => format!("{}://{addr}", self.scheme_of(addr)),
            };
            let Ok(endpoint) = (self.make)(&url) else { continue };
            tracing::info!(endpoint = %key, "vault endpoint added to the balancer");
            self.changes.send(Change::Insert(key.clone(), endpoint)).await.map_err(|_| ())?;
            self.published.insert(key);
        }
        for key in gone {
            tracing::info!(endpoint = %key, "vault endpoint removed from the balancer");
            self.changes.send(Change::Remove(key.clone())).await.map_err(|_| ())?;
            self.published.remove(&key);
        }
        Ok(())
    }

    fn scheme_of(&self, addr: &SocketAddr) -> &str {
        self.targets
            .iter()
            .zip(&self.last)
            .find(|(_, addrs)| addrs.contains(addr))
            .map_or("https", |(t, _)| t.scheme.as_str())
    }
}

/// Watches `addr`'s health on a connection of its own and reports each
/// status (true: SERVING); a stream that ends, fails or says anything but
/// SERVING is closed and reported as not serving, and watched again after
/// `rewatch_after`.
async fn watch(
    addr: SocketAddr,
    endpoint: Endpoint,
    report: mpsc::UnboundedSender<(SocketAddr, bool)>,
    rewatch_after: Duration,
) {
    let channel = endpoint
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy();
    loop {
        let request = HealthCheckRequest { service: VAULT_SERVICE.into() };
        if let Ok(response) = HealthClient::new(channel.clone()).watch(request).await {
            let mut updates = response.into_inner();
            while let Ok(Some(update)) = updates.message().await {
                let serving = update.status() == ServingStatus::Serving;
                if report.send((addr, serving)).is_err() {
                    return;
                }
                if !serving {
                    break;
                }
            }
        }
        if report.send((addr, false)).is_err() {
            return;
        }
        tokio::time::sleep(rewatch_after).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_their_urls() {
        let t = Target::parse("https://vault-svc-headless.payvault.svc:50061").unwrap();
        assert_eq!((t.scheme.as_str(), t.host.as_str(), t.port), ("https", "vault-svc-headless.payvault.svc", 50061));
        let t = Target::parse("https://[::1]:7").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7));
        assert_eq!(Target::parse("https://vault").unwrap().port, 443);
        assert!(Target::parse("not a url").is_err());
    }
}
