//! A private Redis Cluster for one test: three masters with a replica each,
//! six `redis-server` processes on spare loopback ports (node timeout one
//! second, so a killed master's replica takes over within seconds), joined
//! with `redis-cli --cluster create`. Dropping it kills every node.
use std::process::Command;
use std::time::Duration;

use deadpool_redis::redis;

use super::redis::RedisServer;
use super::util::poll;

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three masters and three replicas, every slot served, `cluster_state:ok` on each node.
    pub async fn start() -> Self {
        let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"];
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(RedisServer::with_args(false, &args).await);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (is redis-tools installed?)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok().await;
        cluster.wait_for_replicas().await;
        cluster
    }

    /// Until every replica's link to its master is up: a replica that never
    /// synced would not be eligible to take over.
    async fn wait_for_replicas(&self) {
        let ports: Vec<u16> = self.nodes.iter().map(RedisServer::port).collect();
        let synced = poll(Duration::from_secs(30), || {
            let ports = ports.clone();
            async move {
                let mut replicas = 0;
                for port in ports {
                    let replication = info(port, &["INFO", "replication"]).await?;
                    if replication.contains("role:slave") {
                        replicas += 1;
                        if !replication.contains("master_link_status:up") {
                            return None;
                        }
                    }
                }
                (replicas == 3).then_some(())
            }
        })
        .await;
        assert!(synced.is_some(), "the cluster's replicas did not sync with their masters");
    }

    /// The seed list for `redis.url` with `redis.cluster = true`.
    pub fn seeds(&self) -> String {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port())).collect::<Vec<_>>().join(",")
    }

    /// Until three running nodes are masters and every running node reports
    /// `cluster_state:ok` (all slots served): after a master's death, once its
    /// replica has taken over.
    pub async fn wait_until_ok(&self) {
        let ports: Vec<u16> = self.nodes.iter().map(RedisServer::port).collect();
        let ok = poll(Duration::from_secs(30), || {
            let ports = ports.clone();
            async move {
                let mut masters = 0;
                for port in ports {
                    match info(port, &["CLUSTER", "INFO"]).await {
                        Some(text) if text.contains("cluster_state:ok") => {}
                        None => continue, // a killed node
                        Some(_) => return None,
                    }
                    masters += usize::from(is_master(port).await);
                }
                (masters == 3).then_some(())
            }
        })
        .await;
        assert!(ok.is_some(), "the Redis Cluster did not reach cluster_state:ok");
    }

    /// The ports of the nodes that are masters now.
    pub async fn masters(&self) -> Vec<u16> {
        let mut masters = Vec::new();
        for node in &self.nodes {
            if is_master(node.port()).await {
                masters.push(node.port());
            }
        }
        masters
    }

    /// `DBSIZE` of each master now.
    pub async fn keys_per_master(&self) -> Vec<i64> {
        let mut sizes = Vec::new();
        for port in self.masters().await {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            sizes.push(redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap());
        }
        sizes
    }

    /// SIGKILL the node on `port` (a master: its replica is promoted after the node timeout).
    pub fn kill9(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port() == port).expect("a node of this cluster");
        node.kill9();
    }
}

/// A node's text reply to `command` (`CLUSTER INFO`, `INFO replication`); `None` when it does not answer.
async fn info(port: u16, command: &[&str]) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd(command[0]).arg(&command[1..]).query_async::<String>(&mut conn).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten()
}

/// Whether the node on `port` is a master now (`INFO replication`'s role).
async fn is_master(port: u16) -> bool {
    info(port, &["INFO", "replication"]).await.is_some_and(|r| r.contains("role:master"))
}
