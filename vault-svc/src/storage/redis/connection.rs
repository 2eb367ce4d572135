//! What the Redis store sends its commands over: one Redis's multiplexed
//! connection (opened through deadpool) or a Redis Cluster connection
//! (redis-rs's: one multiplexed connection per master, commands routed by
//! their keys' slot, MOVED/ASK and failovers followed). Both are cheap to
//! clone and share; the store keeps them in its ring of slots alike.
use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use deadpool_redis::{Config, Pool, PoolConfig, PoolError, Runtime, Timeouts};

use crate::domain::store::StoreError;

/// A connection of either kind.
#[derive(Clone)]
pub enum Connection {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens new connections: deadpool for one Redis, the cluster client for a cluster.
pub enum Opener {
    Node(Pool),
    Cluster(Box<ClusterClient>),
}

impl Opener {
    /// `urls` is one URL, or for a cluster a comma-separated list of seed nodes
    /// (any of the cluster's nodes; the client learns the rest).
    pub fn new(urls: &str, cluster: bool, pool_size: usize, timeout: Duration) -> Result<Self, StoreError> {
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
        if cluster {
            let seeds: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            let client = ClusterClientBuilder::new(seeds)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                // Few, quick retries of a moved slot or a failing node: the caller's
                // deadline bounds the call anyway.
                .retries(3)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .build()
                .map_err(|e| unavailable(&e))?;
            return Ok(Opener::Cluster(Box::new(client)));
        }
        let mut cfg = Config::from_url(urls.to_owned());
        let mut pool = PoolConfig::new(pool_size);
        pool.timeouts = Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
        cfg.pool = Some(pool);
        Ok(Opener::Node(cfg.create_pool(Some(Runtime::Tokio1)).map_err(|e| unavailable(&e))?))
    }

    /// A new connection; its failures are classified as the store's.
    pub async fn open(
        &self,
        classify: impl Fn(&deadpool_redis::redis::RedisError) -> StoreError,
    ) -> Result<Connection, StoreError> {
        match self {
            Opener::Node(pool) => match pool.get().await {
                Ok(conn) => Ok(Connection::Node(deadpool_redis::Connection::take(conn))),
                Err(PoolError::Backend(e)) => Err(classify(&e)),
                Err(other) => Err(StoreError::Unavailable(other.to_string())),
            },
            Opener::Cluster(client) => {
                let conn: RedisResult<ClusterConnection> = client.get_async_connection().await;
                conn.map(Connection::Cluster).map_err(|e| classify(&e))
            }
        }
    }
}
