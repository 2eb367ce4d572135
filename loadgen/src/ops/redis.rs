//! Raw Redis baselines through deadpool-redis, as the vault reaches Redis:
//! `SET key value NX EX 1800` (what storing a token costs at least) and
//! `GETDEL key` of pre-filled keys (what consuming one costs at least). Keys
//! carry a random per-run prefix and are removed at the end.
//!
//! deadpool-redis recycles a connection on every `Pool::get` with an
//! `UNWATCH`+`PING` round trip, so a checkout per command costs two round
//! trips. The baseline therefore defaults to one round trip per command: the
//! pool's connections are taken out once and shared by the workers (they are
//! multiplexed). `--redis-checkout per-op` measures the checkout-per-command
//! pattern instead.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, Cmd, FromRedisValue, Value};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime};

use crate::Error;
use crate::driver::{Failure, Op, Worker};
use crate::ops::Stock;
use crate::report::Supply;

/// The vault's single-use token lifetime.
const TTL_SECONDS: u64 = 1800;
/// Keys per pipeline when filling and cleaning up.
const BATCH: usize = 1000;

fn pool(url: &str, size: usize) -> Result<Pool, Error> {
    let mut cfg = Config::from_url(url);
    cfg.pool = Some(PoolConfig::new(size.max(1)));
    cfg.create_pool(Some(Runtime::Tokio1)).map_err(|e| Error::RedisPool(e.to_string()))
}

async fn conn(pool: &Pool) -> Result<deadpool_redis::Connection, Error> {
    pool.get().await.map_err(|e| Error::RedisPool(e.to_string()))
}

/// How workers reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Checkout {
    /// The pool's connections, taken out once and shared: one round trip per command.
    Held,
    /// `Pool::get` per command, paying deadpool's recycle `PING` each time.
    PerOp,
}

/// A worker's way to Redis.
enum Link {
    Held(MultiplexedConnection),
    Pooled(Pool),
}

impl Link {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, Failure> {
        let failed = |e: redis::RedisError| Failure::Error(e.to_string());
        match self {
            Self::Held(c) => cmd.query_async(c).await.map_err(failed),
            Self::Pooled(p) => {
                let mut c = p.get().await.map_err(|e| Failure::Error(e.to_string()))?;
                cmd.query_async(&mut c).await.map_err(failed)
            }
        }
    }
}

/// The connections workers share.
struct Links {
    pool: Pool,
    held: Vec<MultiplexedConnection>,
}

impl Links {
    /// With `Checkout::Held`, opens every connection of the pool now, untimed.
    async fn open(url: &str, size: usize, checkout: Checkout) -> Result<Self, Error> {
        let pool = pool(url, size)?;
        let mut held = Vec::new();
        if checkout == Checkout::Held {
            let mut conns = Vec::with_capacity(size);
            for _ in 0..size.max(1) {
                conns.push(conn(&pool).await?);
            }
            held = conns.into_iter().map(deadpool_redis::Connection::take).collect();
        }
        Ok(Self { pool, held })
    }

    fn link(&self, worker: usize) -> Link {
        match self.held.len() {
            0 => Link::Pooled(self.pool.clone()),
            n => Link::Held(self.held[worker % n].clone()),
        }
    }
}

/// `loadgen:<random>:` — shaped like the vault's `<prefix>su:{tokn_…}` keys.
fn run_prefix() -> String {
    format!("loadgen:{:012x}:", rand::random::<u64>() >> 16)
}

fn key(prefix: &str, i: u64) -> String {
    format!("{prefix}{{tokn_test_{i:024}}}")
}

/// Removes `keys` in pipelined `UNLINK`s.
async fn unlink(pool: &Pool, keys: &[String]) -> Result<(), Error> {
    let mut c = conn(pool).await?;
    for chunk in keys.chunks(BATCH) {
        redis::cmd("UNLINK").arg(chunk).query_async::<()>(&mut c).await?;
    }
    Ok(())
}

/// A Redis operation: the connections its workers share, and `S`, the
/// state they share besides (the keys to write or to consume).
pub struct RedisOp<S> {
    links: Links,
    shared: Arc<S>,
}

/// One worker of a `RedisOp`: its way to Redis and the shared state.
pub struct RedisWorker<S> {
    link: Link,
    shared: Arc<S>,
}

impl<S: Send + Sync + 'static> Op for RedisOp<S>
where
    RedisWorker<S>: Worker,
{
    type Worker = RedisWorker<S>;

    fn worker(&self, index: usize) -> RedisWorker<S> {
        RedisWorker { link: self.links.link(index), shared: Arc::clone(&self.shared) }
    }
}

/// `SET key value NX EX 1800` of fresh keys.
pub type RedisSet = RedisOp<NewKeys>;

/// `GETDEL key` of pre-filled keys, each once.
pub type RedisGetDel = RedisOp<Stock<String>>;

/// The keys `RedisSet` writes: the run's prefix and a counter, and the value.
pub struct NewKeys {
    prefix: String,
    value: Vec<u8>,
    next: AtomicU64,
}

impl RedisSet {
    pub async fn new(url: &str, pool_size: usize, checkout: Checkout, value_size: usize) -> Result<Self, Error> {
        Ok(Self {
            links: Links::open(url, pool_size, checkout).await?,
            shared: Arc::new(NewKeys { prefix: run_prefix(), value: vec![0xa5; value_size], next: AtomicU64::new(0) }),
        })
    }

    /// Removes every key the run wrote.
    pub async fn cleanup(&self) -> Result<(), Error> {
        let s = &self.shared;
        let keys: Vec<String> = (0..s.next.load(Ordering::Relaxed)).map(|i| key(&s.prefix, i)).collect();
        unlink(&self.links.pool, &keys).await
    }
}

impl Worker for RedisWorker<NewKeys> {
    async fn call(&mut self) -> Result<(), Failure> {
        let s = &self.shared;
        let k = key(&s.prefix, s.next.fetch_add(1, Ordering::Relaxed));
        let mut cmd = redis::cmd("SET");
        cmd.arg(k).arg(s.value.as_slice()).arg("NX").arg("EX").arg(TTL_SECONDS);
        match self.link.query::<Value>(&cmd).await? {
            Value::Okay => Ok(()),
            other => Err(Failure::Error(format!("SET NX answered {other:?}"))),
        }
    }
}

impl RedisGetDel {
    /// Writes `count` keys of `value_size` bytes (untimed), ready to be consumed.
    pub async fn prefilled(
        url: &str,
        pool_size: usize,
        checkout: Checkout,
        value_size: usize,
        count: usize,
    ) -> Result<Self, Error> {
        let started = Instant::now();
        let links = Links::open(url, pool_size, checkout).await?;
        let prefix = run_prefix();
        let keys: Vec<String> = (0..count as u64).map(|i| key(&prefix, i)).collect();
        let value = vec![0xa5_u8; value_size];
        let mut c = conn(&links.pool).await?;
        for chunk in keys.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("SET").arg(k).arg(value.as_slice()).arg("EX").arg(TTL_SECONDS).ignore();
            }
            pipe.query_async::<()>(&mut c).await?;
        }
        drop(c);
        eprintln!(
            "loadgen: wrote {count} keys of {value_size} bytes in {:.1} s (untimed)",
            started.elapsed().as_secs_f64()
        );
        Ok(Self { links, shared: Arc::new(Stock::new(keys)) })
    }

    pub fn supply(&self) -> Supply {
        self.shared.supply()
    }

    /// Removes the keys the run did not consume.
    pub async fn cleanup(&self) -> Result<(), Error> {
        unlink(&self.links.pool, self.shared.unused()).await
    }
}

impl Worker for RedisWorker<Stock<String>> {
    async fn call(&mut self) -> Result<(), Failure> {
        let Some(k) = self.shared.take() else {
            return Err(Failure::Exhausted);
        };
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(k);
        match self.link.query::<Option<Vec<u8>>>(&cmd).await? {
            Some(_) => Ok(()),
            None => Err(Failure::Error("GETDEL found no value".into())),
        }
    }
}
