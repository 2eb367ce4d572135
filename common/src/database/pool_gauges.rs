//! Saturation of a service's SQL pool, for the server shell's sampler:
//! `db_pool_connections{service, state="in_use"|"idle"}` and
//! `db_pool_max_connections{service}`. In use near the maximum means calls
//! are about to wait for a connection (and, past the acquire timeout, fail as
//! `store_unavailable`). Reading them touches no connection: `size()` and
//! `num_idle()` are the pool's own counters.
use sqlx::AnyPool;

/// Sets the gauges of `pool`, labelled with the service that owns it.
pub fn sample(service: &'static str, pool: &AnyPool) {
    let (open, idle) = (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
    let in_use = open.saturating_sub(idle);
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "idle").set(f64::from(idle.min(open)));
    metrics::gauge!("db_pool_max_connections", "service" => service)
        .set(f64::from(pool.options().get_max_connections()));
}

/// A sample for `common::server::Shell::sample`.
pub fn sampler(service: &'static str, pool: &AnyPool) -> impl Fn() + Send + Sync + 'static {
    let pool = pool.clone();
    move || sample(service, &pool)
}
