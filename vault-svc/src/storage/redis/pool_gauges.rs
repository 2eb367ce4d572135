//! How the Redis store's connections stand, for the server shell's sampler:
//! `redis_pool_connections{state="open"|"closed"}` and
//! `redis_pool_max_connections`. The store keeps its multiplexed connections
//! in a ring of slots (see `redis`), detached from deadpool, whose own
//! `status()` therefore always reads zero: the slots are the pool. A slot is
//! `closed` until first used and again after its connection failed, until
//! the next call on it opens a new one; many closed slots under load mean
//! Redis is refusing or dropping connections.
use super::RedisTokenStore;

impl RedisTokenStore {
    /// Sets the gauges from the slots (a lock each, held for a read).
    pub fn sample_pool(&self) {
        let open = self.slots.iter().filter(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()).count();
        let slots = self.slots.len();
        metrics::gauge!("redis_pool_connections", "state" => "open").set(open as f64);
        metrics::gauge!("redis_pool_connections", "state" => "closed").set((slots - open) as f64);
        metrics::gauge!("redis_pool_max_connections").set(slots as f64);
    }
}
