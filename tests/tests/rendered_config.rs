//! The rendered configuration starts the services. Every overlay under
//! `deploy/k8s/overlays` is rendered (`scripts/validate-manifests --render`:
//! the validator's built-in renderer, which the validator checks against
//! kustomize; the dev overlay with dev-tls.sh's Secrets), and the real
//! vault-svc and payments-svc binaries are started with exactly what each
//! Deployment's container would get: its `envFrom` ConfigMaps, its `env`, its
//! Secret keys as variables and as mounted files, its args. Only what a
//! cluster provides is stood in for:
//!
//! - the stores: the variables naming them (`VAULT__REDIS__URL`,
//!   `VAULT__DATABASE__URL`, `PAYMENTS__DATABASE__URL`) point at this test's
//!   Redis and PostgreSQL (a rendered value must still look like a URL of its
//!   store);
//! - the network: mount paths live under a scratch folder, `0.0.0.0:N`
//!   listens on a spare loopback port, and a URL naming a rendered Service
//!   (`https://vault-svc-headless.payvault.svc:50061`) dials the port that
//!   stands in for its target pod's port — the TLS names checked stay the
//!   rendered ones;
//! - cert-manager: a Certificate's Secret (`tls.crt`, `tls.key`, `ca.crt`) is
//!   issued by the CA its Issuer names, for the Certificate's DNS names and
//!   usage;
//! - the Secrets an overlay expects to exist (prod's): test values of the
//!   documented format, and a Secret the test does not know fails it.
//!
//! Then every probe of every container must pass as the kubelet would ask it,
//! payments-svc must reach the vault over mTLS (its Registrations service
//! follows the vault's health), a public port the configuration puts on TLS
//! must answer TLS for the names of the Services in front of it, and each
//! CronJob's container must run to success. A malformed Secret, such as a KEK
//! without its `v1:` prefix, stops a service and fails the test: the second
//! test shows it does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use e2e::procs::binaries::bin_dir;
use e2e::procs::util::{ScratchDir, spare_port, wait_child};
use e2e::procs::{PgServer, RedisServer, Service, ServiceKind};
use vault_svc::dev::DevCa;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every overlay directory, sorted.
fn overlays() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/k8s/overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The objects of one overlay, as the cluster would get them.
fn render(dir: &Path) -> Vec<Value> {
    let out = Command::new(repo().join("scripts/validate-manifests"))
        .arg("--render")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/validate-manifests (python3)");
    assert!(out.status.success(), "render {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the renderer prints JSON")
}

fn str_of<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn name(o: &Value) -> &str {
    str_of(o, &["metadata", "name"]).unwrap()
}

fn namespace(o: &Value) -> &str {
    str_of(o, &["metadata", "namespace"]).unwrap_or("default")
}

/// The test's stores.
struct Stores {
    redis: String,
    vault_db: String,
    payments_db: String,
}

/// One workload's container, ready to run: what the kubelet would give it.
struct Pod {
    workload: String,
    kind: String,
    binary: ServiceKind,
    args: Vec<String>,
    env: Vec<(String, String)>,
    container: Value,
    dir: PathBuf,
}

impl Pod {
    fn var(&self, name: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

type Tamper = Box<dyn Fn(&str, &str, &mut Vec<u8>)>;

/// The rendered objects and what a cluster would add to them.
struct Cluster {
    objs: Vec<Value>,
    stores: Stores,
    /// Each Secret's keys as the pods get them, made once.
    secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// The CAs of CA Issuers, by the Secret holding the CA.
    cas: HashMap<String, DevCa>,
    /// Each workload's ports: the container port → the loopback port standing in for it.
    ports: HashMap<String, HashMap<u16, u16>>,
    /// Which Secret each mounted file came from (by its path in the container).
    provenance: HashMap<(String, String), String>,
    /// Changes a Secret's value before any pod sees it (secret, key, value).
    tamper: Tamper,
    dir: PathBuf,
}

impl Cluster {
    fn new(objs: Vec<Value>, stores: Stores, dir: &Path) -> Self {
        Self {
            objs,
            stores,
            secrets: HashMap::new(),
            cas: HashMap::new(),
            ports: HashMap::new(),
            provenance: HashMap::new(),
            tamper: Box::new(|_, _, _| {}),
            dir: dir.to_path_buf(),
        }
    }

    fn find(&self, kind: &str, name_: &str) -> Option<&Value> {
        self.objs.iter().find(|o| o["kind"] == kind && name(o) == name_)
    }

    fn certificate_for(&self, secret: &str) -> Option<Value> {
        self.objs
            .iter()
            .find(|o| o["kind"] == "Certificate" && str_of(o, &["spec", "secretName"]) == Some(secret))
            .cloned()
    }

    /// A Secret's keys: rendered, made by cert-manager, or the test's stand-in.
    fn secret(&mut self, secret: &str) -> BTreeMap<String, Vec<u8>> {
        if let Some(data) = self.secrets.get(secret) {
            return data.clone();
        }
        let mut data = if let Some(o) = self.find("Secret", secret) {
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in o.get("data").and_then(Value::as_object).into_iter().flatten() {
                data.insert(k.clone(), b64.decode(v.as_str().unwrap()).expect("base64 Secret data"));
            }
            for (k, v) in o.get("stringData").and_then(Value::as_object).into_iter().flatten() {
                data.insert(k.clone(), v.as_str().unwrap().as_bytes().to_vec());
            }
            data
        } else if let Some(cert) = self.certificate_for(secret) {
            self.issue(&cert)
        } else {
            self.stand_in(secret)
        };
        for (key, value) in data.iter_mut() {
            (self.tamper)(secret, key, value);
        }
        self.secrets.insert(secret.to_owned(), data.clone());
        data
    }

    /// cert-manager's part: the Certificate's kubernetes.io/tls Secret.
    fn issue(&mut self, cert: &Value) -> BTreeMap<String, Vec<u8>> {
        let spec = &cert["spec"];
        let issuer_name = str_of(spec, &["issuerRef", "name"]).unwrap();
        let kind = str_of(spec, &["issuerRef", "kind"]).unwrap_or("Issuer");
        assert_eq!(kind, "Issuer", "Certificate {}: this test issues from namespaced CA Issuers only", name(cert));
        let issuer = self.find("Issuer", issuer_name).unwrap_or_else(|| panic!("Issuer {issuer_name}")).clone();
        let ca_secret = str_of(&issuer, &["spec", "ca", "secretName"])
            .unwrap_or_else(|| panic!("Certificate {}: Issuer {issuer_name} is not a CA Issuer", name(cert)))
            .to_owned();
        let ca = self.cas.entry(ca_secret).or_insert_with(|| DevCa::generate().unwrap());
        let names: Vec<&str> = list(spec, "dnsNames").iter().map(|n| n.as_str().unwrap()).collect();
        let usages: Vec<&str> = list(spec, "usages").iter().map(|u| u.as_str().unwrap()).collect();
        let issued = match (usages.contains(&"server auth"), usages.contains(&"client auth")) {
            (true, false) => ca.server(&names).unwrap(),
            (false, true) => {
                assert_eq!(names.len(), 1, "Certificate {}: a client certificate with one DNS name", name(cert));
                ca.client(names[0]).unwrap()
            }
            _ => panic!("Certificate {}: usages must hold one of server auth, client auth", name(cert)),
        };
        BTreeMap::from([
            ("tls.crt".to_owned(), issued.cert_pem.into_bytes()),
            ("tls.key".to_owned(), issued.key_pem.into_bytes()),
            ("ca.crt".to_owned(), ca.ca_pem.clone().into_bytes()),
        ])
    }

    /// The Secrets an overlay expects to exist (deploy/README.md's table), with test values.
    fn stand_in(&self, secret: &str) -> BTreeMap<String, Vec<u8>> {
        let one = |key: &str, value: String| BTreeMap::from([(key.to_owned(), value.into_bytes())]);
        match secret {
            "vault-kek" => one("kek", vault_svc::crypto::KekSet::random().to_text().to_string()),
            "payments-reference-key" => one("reference.key", common::keys::KeySet::random().to_text().to_string()),
            "merchant-directory" => {
                let file = self.dir.join("merchants.json");
                if !file.exists() {
                    common::auth::create_merchant(&file, "Rendered config").unwrap();
                }
                one("merchants.json", std::fs::read_to_string(&file).unwrap())
            }
            // Replaced by the test's stores below; the value only has to be a URL.
            "vault-redis" => one("url", "rediss://redis.example:6380".into()),
            "vault-database" => one("url", "postgres://vault@postgres.example/vault".into()),
            "payments-database" => one("url", "postgres://payments@postgres.example/payments".into()),
            other => panic!("the overlay needs Secret {other}, for which this test has no stand-in: add one"),
        }
    }

    /// The loopback port standing in for `workload`'s port `port`.
    fn port(&mut self, workload: &str, port: u16) -> u16 {
        *self.ports.entry(workload.to_owned()).or_default().entry(port).or_insert_with(spare_port)
    }

    /// Deployments and CronJobs running payvault's images: (kind, name, pod template).
    fn workloads(&self) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for o in &self.objs {
            let template = match o["kind"].as_str() {
                Some("Deployment") => &o["spec"]["template"],
                Some("CronJob") => &o["spec"]["jobTemplate"]["spec"]["template"],
                _ => continue,
            };
            out.push((o["kind"].as_str().unwrap().to_owned(), name(o).to_owned(), template.clone()));
        }
        out
    }

    /// The workload a Service's selector picks and its container port for `target`
    /// (a port number or name).
    fn backend(&self, service: &Value, port: u16) -> Option<(String, u16)> {
        let entry = list(&service["spec"], "ports").iter().find(|p| p["port"] == port)?;
        let target = entry.get("targetPort").cloned().unwrap_or_else(|| entry["port"].clone());
        let selector = service["spec"]["selector"].as_object()?;
        for (kind, workload, template) in self.workloads() {
            let labels = &template["metadata"]["labels"];
            if kind != "Deployment" || !selector.iter().all(|(k, v)| &labels[k] == v) {
                continue;
            }
            for container in list(&template["spec"], "containers") {
                for p in list(container, "ports") {
                    if p["containerPort"] == target || p["name"] == target {
                        return Some((workload, p["containerPort"].as_u64()? as u16));
                    }
                }
            }
        }
        None
    }

    /// One value as the process on this machine must see it (see the module).
    fn localise(&mut self, workload: &str, ns: &str, value: &str, mounts: &[(String, PathBuf)]) -> String {
        for (mount, local) in mounts {
            if let Some(rest) = value.strip_prefix(mount.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", local.display());
            }
        }
        if let Some(port) = value.strip_prefix("0.0.0.0:").and_then(|p| p.parse::<u16>().ok()) {
            return format!("127.0.0.1:{}", self.port(workload, port));
        }
        if !value.contains("://") {
            return value.to_owned();
        }
        let parts: Vec<String> = value.split(',').map(|url| self.localise_url(ns, url)).collect();
        parts.join(",")
    }

    /// A URL naming a rendered Service, pointed at the port standing in for its pod's.
    fn localise_url(&mut self, ns: &str, url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let Some((host, port)) = authority.rsplit_once(':') else { return url.to_owned() };
        let Ok(port) = port.parse::<u16>() else { return url.to_owned() };
        let mut labels = host.splitn(3, '.');
        let service_name = labels.next().unwrap_or_default();
        let service_ns = labels.next().unwrap_or(ns);
        if !matches!(labels.next(), None | Some("svc") | Some("svc.cluster.local")) {
            return url.to_owned();
        }
        let service = self
            .objs
            .iter()
            .find(|o| {
                o["kind"] == "Service"
                    && name(o) == service_name
                    && namespace(o) == service_ns
                    && o["spec"]["type"] != "ExternalName"
            })
            .cloned();
        let Some(service) = service else { return url.to_owned() };
        let (workload, container_port) =
            self.backend(&service, port).unwrap_or_else(|| panic!("{url}: Service {service_name} has no pod for it"));
        let local = self.port(&workload, container_port);
        let path = if path.is_empty() { String::new() } else { format!("/{path}") };
        format!("{scheme}://localhost:{local}{path}")
    }

    /// Writes `template`'s files under a folder of its own and computes its
    /// container's environment (see the module); `None` for a workload that
    /// does not run one of payvault's images.
    fn pod(&mut self, kind: &str, workload: &str, template: &Value, ns: &str) -> Option<Pod> {
        let containers = list(&template["spec"], "containers");
        let container = containers.first()?.clone();
        let image = str_of(&container, &["image"]).unwrap();
        let binary = if image.contains("payvault/vault-svc") {
            ServiceKind::Vault
        } else if image.contains("payvault/payments-svc") {
            ServiceKind::Payments
        } else {
            eprintln!("{workload}: image {image} is not payvault's: not started");
            return None;
        };
        assert_eq!(containers.len(), 1, "{workload}: one container per pod");
        let dir = self.dir.join(workload);
        std::fs::create_dir_all(&dir).unwrap();

        let volumes: HashMap<String, Value> = list(&template["spec"], "volumes")
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_owned(), v.clone()))
            .collect();
        let mut mounts = Vec::new();
        for m in list(&container, "volumeMounts") {
            let mount_path = m["mountPath"].as_str().unwrap().trim_end_matches('/').to_owned();
            let local = dir.join("root").join(mount_path.trim_start_matches('/'));
            std::fs::create_dir_all(&local).unwrap();
            let volume = &volumes[m["name"].as_str().unwrap()];
            if let Some(secret_name) = str_of(volume, &["secret", "secretName"]) {
                let data = self.secret(secret_name);
                let items: Vec<(String, String)> = match volume["secret"].get("items").and_then(Value::as_array) {
                    Some(items) => items
                        .iter()
                        .map(|i| (i["key"].as_str().unwrap().to_owned(), i["path"].as_str().unwrap().to_owned()))
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
                };
                for (key, path) in items {
                    let value =
                        data.get(&key).unwrap_or_else(|| panic!("{workload}: Secret {secret_name} has no key {key}"));
                    std::fs::write(local.join(&path), value).unwrap();
                    self.provenance
                        .insert((workload.to_owned(), format!("{mount_path}/{path}")), secret_name.to_owned());
                }
            }
            mounts.push((mount_path, local));
        }

        let mut env: Vec<(String, String)> = Vec::new();
        for source in list(&container, "envFrom") {
            if let Some(cm) = str_of(source, &["configMapRef", "name"]) {
                let cm = self.find("ConfigMap", cm).unwrap_or_else(|| panic!("{workload}: ConfigMap {cm}")).clone();
                for (k, v) in cm["data"].as_object().into_iter().flatten() {
                    env.push((k.clone(), v.as_str().unwrap().to_owned()));
                }
            }
            if let Some(secret) = str_of(source, &["secretRef", "name"]) {
                for (k, v) in self.secret(secret) {
                    env.push((k, String::from_utf8(v).unwrap()));
                }
            }
        }
        for e in list(&container, "env") {
            let var = e["name"].as_str().unwrap().to_owned();
            let value = if let Some(v) = e.get("value") {
                v.as_str().unwrap().to_owned()
            } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                let (secret, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                let data = self.secret(secret);
                let value =
                    data.get(key).unwrap_or_else(|| panic!("{workload}: {var}: Secret {secret} has no key {key}"));
                String::from_utf8(value.clone()).unwrap()
            } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                let cm = self.find("ConfigMap", r["name"].as_str().unwrap()).unwrap();
                cm["data"][r["key"].as_str().unwrap()].as_str().unwrap().to_owned()
            } else {
                panic!("{workload}: {var}: an env source this test does not know")
            };
            env.retain(|(k, _)| k != &var);
            env.push((var, value));
        }
        for (var, value) in env.iter_mut() {
            let store = match var.as_str() {
                "VAULT__REDIS__URL" => Some((&self.stores.redis, ["redis://", "rediss://"])),
                "VAULT__DATABASE__URL" => Some((&self.stores.vault_db, ["postgres://", "postgresql://"])),
                "PAYMENTS__DATABASE__URL" => Some((&self.stores.payments_db, ["postgres://", "postgresql://"])),
                _ => None,
            };
            if let Some((ours, schemes)) = store {
                assert!(schemes.iter().any(|s| value.starts_with(s)), "{workload}: {var} is not a store URL");
                *value = ours.clone();
            }
        }
        let env = env.into_iter().map(|(k, v)| (k, self.localise(workload, ns, &v, &mounts))).collect();
        let args = list(&container, "args").iter().map(|a| a.as_str().unwrap().to_owned()).collect();
        Some(Pod { workload: workload.to_owned(), kind: kind.to_owned(), binary, args, env, container, dir })
    }

    /// Every payvault pod of the render: Deployments (the vault first), then CronJobs.
    fn pods(&mut self) -> Vec<Pod> {
        let mut pods = Vec::new();
        for (kind, workload, template) in self.workloads() {
            let ns = self.find(&kind, &workload).map(|o| namespace(o).to_owned()).unwrap();
            pods.extend(self.pod(&kind, &workload, &template, &ns));
        }
        pods.sort_by_key(|p| (p.kind != "Deployment", p.binary != ServiceKind::Vault));
        pods
    }
}

/// `service`'s health on a plaintext port, SERVING within `within`, or the last answer.
async fn serving(channel: Channel, service: &str, within: Duration) -> Option<ServingStatus> {
    let until = Instant::now() + within;
    loop {
        let mut request = tonic::Request::new(HealthCheckRequest { service: service.into() });
        request.set_timeout(Duration::from_secs(1));
        let status = HealthClient::new(channel.clone())
            .check(request)
            .await
            .ok()
            .and_then(|r| ServingStatus::try_from(r.into_inner().status).ok());
        if status == Some(ServingStatus::Serving) || Instant::now() > until {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn plaintext(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy()
}

/// The container port a probe names (a number or a port's name).
fn probe_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let p = list(container, "ports").iter().find(|p| &p["name"] == port).expect("a named probe port");
    p["containerPort"].as_u64().unwrap() as u16
}

/// Starts one overlay's Deployments and checks them as the module says.
async fn start_overlay(overlay: &Path, stores: Stores) {
    let label = overlay.file_name().unwrap().to_string_lossy().into_owned();
    let scratch = ScratchDir::new(&format!("rendered-{label}"));
    let mut cluster = Cluster::new(render(overlay), stores, scratch.path());
    let (deployments, jobs): (Vec<Pod>, Vec<Pod>) = cluster.pods().into_iter().partition(|p| p.kind == "Deployment");
    let mut running: Vec<(Pod, Service)> = Vec::new();
    for pod in deployments {
        assert!(pod.args.is_empty() || pod.args == ["serve"], "{label}/{}: args {:?}", pod.workload, pod.args);
        let ready = pod.container["readinessProbe"]["grpc"].clone();
        let ready_port = cluster.port(&pod.workload, probe_port(&pod.container, &ready["port"]));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ready_port));
        eprintln!("{label}: starting {} (health on {addr})", pod.workload);
        let service = Service::spawn(pod.binary, pod.env.clone(), &pod.dir, addr).await;
        running.push((pod, service));
    }
    assert!(running.iter().any(|(p, _)| p.binary == ServiceKind::Vault), "{label}: no vault-svc Deployment");
    assert!(running.iter().any(|(p, _)| p.binary == ServiceKind::Payments), "{label}: no payments-svc Deployment");

    for (pod, service) in &running {
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let handler = &pod.container[probe];
            if let Some(grpc) = handler.get("grpc") {
                let port = cluster.port(&pod.workload, probe_port(&pod.container, &grpc["port"]));
                let name = grpc.get("service").and_then(Value::as_str).unwrap_or("");
                let status = serving(plaintext(port), name, Duration::from_secs(10)).await;
                assert_eq!(
                    status,
                    Some(ServingStatus::Serving),
                    "{label}/{}: {probe} {name:?}:\n{}",
                    pod.workload,
                    service.logs()
                );
            } else if let Some(tcp) = handler.get("tcpSocket") {
                let port = cluster.port(&pod.workload, probe_port(&pod.container, &tcp["port"]));
                tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("tcpSocket probe");
            }
        }
    }

    // payments-svc → vault over mTLS, with the rendered certificates and names.
    let (payments, payments_service) = running.iter().find(|(p, _)| p.binary == ServiceKind::Payments).unwrap();
    let ready = &payments.container["readinessProbe"]["grpc"];
    let port = cluster.port(&payments.workload, probe_port(&payments.container, &ready["port"]));
    let registrations = serving(plaintext(port), "payvault.payments.v1.Registrations", Duration::from_secs(15)).await;
    assert_eq!(
        registrations,
        Some(ServingStatus::Serving),
        "{label}: payments-svc reaches the vault:\n{}",
        payments_service.logs()
    );

    // A public port the configuration puts on TLS answers TLS for its Services' names.
    for (pod, service) in &running {
        let (tls_var, addr_var, cert_var) = match pod.binary {
            ServiceKind::Vault => ("VAULT__PUBLIC_TLS", "VAULT__PUBLIC_ADDR", "VAULT__TLS__CERT"),
            ServiceKind::Payments => ("PAYMENTS__PUBLIC_TLS", "PAYMENTS__ADDR", "PAYMENTS__TLS__CERT"),
        };
        if pod.var(tls_var) != Some("true") {
            continue;
        }
        let rendered_cert = rendered_var(&cluster, pod, cert_var);
        let secret = cluster.provenance[&(pod.workload.clone(), rendered_cert.clone())].clone();
        let ca = cluster.secret(&secret).remove("ca.crt").expect("the serving Secret's ca.crt");
        let local: std::net::SocketAddr = pod.var(addr_var).unwrap().parse().unwrap();
        let container_port = rendered_var(&cluster, pod, addr_var).rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let names = service_names(&cluster, &pod.workload, container_port);
        assert!(!names.is_empty(), "{label}/{}: no Service in front of its public port", pod.workload);
        for host in names {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca)).domain_name(host.clone());
            let channel =
                Channel::from_shared(format!("https://{local}")).unwrap().tls_config(tls).unwrap().connect_lazy();
            let status = serving(channel, "", Duration::from_secs(5)).await;
            assert_eq!(
                status,
                Some(ServingStatus::Serving),
                "{label}/{}: TLS as {host}:\n{}",
                pod.workload,
                service.logs()
            );
        }
    }

    // Each CronJob's container, once, to success.
    for job in jobs {
        let bin = bin_dir().join(job.binary.binary());
        let mut child = Command::new(&bin)
            .args(&job.args)
            .env_clear()
            .env("RUST_LOG", "info")
            .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&job.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(job.dir.join("job.log")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(job.dir.join("job.err")).unwrap()))
            .spawn()
            .unwrap();
        let status = wait_child(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
        }
        let output = std::fs::read_to_string(job.dir.join("job.log")).unwrap_or_default()
            + &std::fs::read_to_string(job.dir.join("job.err")).unwrap_or_default();
        assert!(status.is_some_and(|s| s.success()), "{label}/{} {:?}: {status:?}\n{output}", job.workload, job.args);
        eprintln!("{label}: {} {:?} ran: {}", job.workload, job.args, output.lines().last().unwrap_or(""));
    }
    drop(running);
}

/// A variable's value as rendered (before localising): re-derived from the container.
fn rendered_var(cluster: &Cluster, pod: &Pod, var: &str) -> String {
    for e in list(&pod.container, "env").iter().rev() {
        if e["name"] == var
            && let Some(v) = e["value"].as_str()
        {
            return v.to_owned();
        }
    }
    for source in list(&pod.container, "envFrom") {
        if let Some(cm) = str_of(source, &["configMapRef", "name"]).and_then(|n| cluster.find("ConfigMap", n))
            && let Some(v) = cm["data"][var].as_str()
        {
            return v.to_owned();
        }
    }
    panic!("{}: {var} is not set", pod.workload)
}

/// `<service>.<namespace>.svc` of every Service in front of `workload`'s `port`.
fn service_names(cluster: &Cluster, workload: &str, port: u16) -> Vec<String> {
    let mut names = Vec::new();
    for svc in cluster.objs.iter().filter(|o| o["kind"] == "Service") {
        for p in list(&svc["spec"], "ports") {
            let Some(service_port) = p["port"].as_u64() else { continue };
            if cluster.backend(svc, service_port as u16) == Some((workload.to_owned(), port)) {
                names.push(format!("{}.{}.svc", name(svc), namespace(svc)));
            }
        }
    }
    names
}

async fn stores(pg: &PgServer, redis: &RedisServer, label: &str) -> Stores {
    let (vault, payments) = (format!("vault_{label}"), format!("payments_{label}"));
    pg.create_database(&vault).await;
    pg.create_database(&payments).await;
    Stores { redis: redis.url(), vault_db: pg.url(&vault), payments_db: pg.url(&payments) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_starts_the_services_with_exactly_its_configuration() {
    let (pg, redis) = tokio::join!(PgServer::new(), RedisServer::new());
    let overlays = overlays();
    assert!(overlays.len() >= 2, "dev and prod at least: {overlays:?}");
    for overlay in overlays {
        let label = overlay.file_name().unwrap().to_string_lossy().replace('-', "_");
        start_overlay(&overlay, stores(&pg, &redis, &label).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kek_without_its_version_prefix_stops_the_vault() {
    let (pg, redis) = tokio::join!(PgServer::new(), RedisServer::new());
    let scratch = ScratchDir::new("rendered-tampered");
    let overlay = repo().join("deploy/k8s/overlays/dev");
    let mut cluster = Cluster::new(render(&overlay), stores(&pg, &redis, "tampered").await, scratch.path());
    cluster.tamper = Box::new(|secret, key, value| {
        if (secret, key) == ("vault-kek", "kek") {
            let text = String::from_utf8(value.clone()).unwrap();
            *value = text.strip_prefix("v1:").expect("the dev KEK starts with v1:").as_bytes().to_vec();
        }
    });
    let vault = cluster.pods().into_iter().find(|p| p.kind == "Deployment" && p.binary == ServiceKind::Vault).unwrap();
    let log = vault.dir.join("vault.log");
    let mut child = Command::new(bin_dir().join(vault.binary.binary()))
        .args(&vault.args)
        .env_clear()
        .envs(vault.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(vault.dir.join("vault.err")).unwrap()))
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default()
        + &std::fs::read_to_string(vault.dir.join("vault.err")).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "the vault started with a KEK without its version:\n{output}");
    assert!(output.contains("malformed"), "it says why:\n{output}");
}
