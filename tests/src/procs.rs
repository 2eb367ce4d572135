//! Real-process harness for fault tests: private PostgreSQL clusters and Redis
//! servers (and a Redis Cluster of six) on spare loopback ports, the built `vault-svc` and `payments-svc`
//! binaries as child processes, an invariant checker over the payments
//! database and a journaled load driver. Everything a test starts is stopped
//! and removed when its handle drops; the shared servers on 6379/5432 are
//! never touched.

pub mod binaries;
pub mod invariants;
pub mod load;
pub mod pg;
pub mod platform;
pub mod redis;
pub mod redis_cluster;
pub mod service;
pub mod util;

pub use invariants::{InvariantOptions, Invariants};
pub use load::{Call, Driver, Journal, LoadConfig, Op, Outcome};
pub use pg::PgServer;
pub use platform::{Keys, MetricsPorts, Platform, PlatformOptions, Process, recovery_env};
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use service::{Service, ServiceKind};
