//! The Redis token store. Each operation is one round trip: a Lua script (sent
//! by EVALSHA) or one command. A token is two keys sharing the hash tag of its
//! id, so they sit in one Redis Cluster slot:
//!   `<prefix>su:{id}`   hash: m = merchant, x = expires_at, r = retain_until,
//!                       d = sealed metadata, u / ua = consumer and time once used,
//!                       cs = the consumer's charge status (never moved back a
//!                       stage: `charge_script`);
//!                       TTL = retention (7 days)
//!   `<prefix>su:{id}:c` sealed card; TTL = usable window, then the replay window
//! Connections: deadpool-redis opens them (with its timeouts), or for a Redis
//! Cluster redis-rs's cluster client (`connection`), then the store
//! keeps them — multiplexed, so many calls share one — in a ring of slots and
//! hands out clones. A checkout from the pool per call would cost a second
//! round trip (deadpool's recycle check sends UNWATCH and PING each time); a
//! slot is emptied only when its connection fails, and refilled on next use.
//! Instants are stored as `seconds.millis` (e.g. `1796003123.456`), never as a
//! 13-digit millisecond count that a card-number scan of the store would flag.
//! `pool_gauges` reports the slots. In a cluster every script's keys are one
//! token's two keys, which share its hash tag and so its slot.
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, RedisError, RedisResult, RetryMethod, Script, Value};

use common::clock::Millis;
use vault_api::ChargeStatus;

use crate::domain::store::{Claim, Consumed, NewSingleUse, SingleUseRecord, StoreError, TokenStore};

mod connection;
mod pool_gauges;

use connection::{Connection, Opener};

const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'x', ARGV[2], 'd', ARGV[3], 'r', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
";

/// Replies: {0} not found, {1} used, {2} expired, {3, meta, card} replay,
/// {4, meta, card} consumed now.
const CONSUME: &str = r"
local h = redis.call('HMGET', KEYS[1], 'm', 'x', 'd', 'u', 'ua', 'r')
local now = tonumber(ARGV[3])
if not h[1] or h[1] ~= ARGV[1] or now >= tonumber(h[6]) then return {0} end
if h[4] then
  if h[4] == ARGV[2] and now < tonumber(h[5]) + tonumber(ARGV[4]) then
    local c = redis.call('GET', KEYS[2])
    if c then return {3, h[3], c} end
  end
  return {1}
end
if now >= tonumber(h[2]) then
  redis.call('DEL', KEYS[2])
  return {2}
end
local c = redis.call('GET', KEYS[2])
if not c then return {2} end
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'ua', ARGV[3])
redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[4]) * 1000))
return {4, h[3], c}
";

/// Replies 1 when the token now shows the status: it is the merchant's,
/// `consumer` used it, and it showed no status of the same or a later stage
/// (or this very one). The stage of each status is the domain's
/// (`ChargeStatus::stage`), written into the script once, at start.
fn charge_script() -> String {
    let stages: Vec<String> = ChargeStatus::ALL
        .into_iter()
        .filter(|c| c.reportable())
        .map(|c| format!("{} = {}", c.as_str(), c.stage()))
        .collect();
    format!(
        r"
local stage = {{ {} }}
local new = stage[ARGV[3]]
if not new then return redis.error_reply('not a reportable charge status') end
local h = redis.call('HMGET', KEYS[1], 'm', 'u', 'cs')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 0 end
if h[3] == ARGV[3] then return 1 end
if h[3] and (stage[h[3]] or 0) >= new then return 0 end
redis.call('HSET', KEYS[1], 'cs', ARGV[3])
return 1
",
        stages.join(", ")
    )
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// One Redis's URL, or a cluster's seed nodes, comma-separated.
    pub url: String,
    /// A Redis Cluster: commands are routed by slot and follow failovers.
    pub cluster: bool,
    /// Prepended to every key (no braces); lets tests and tenants share a server.
    pub key_prefix: String,
    pub pool_size: usize,
    /// How long to wait for a connection from the pool or a new one to open.
    pub connect_timeout: Duration,
}

pub struct RedisTokenStore {
    opener: Opener,
    slots: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
    prefix: String,
    create: Script,
    consume: Script,
    charge: Script,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokenStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// The one place a Redis failure becomes a `StoreError`: a broken, refused or
/// slow connection, or a server that says "not now" (loading, failover,
/// cluster down, out of memory), is `Unavailable`; a reply this code cannot use
/// (a script error, an unexpected type) is `Corrupt` and is not retried.
fn classify(e: &RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
        || e.code() == Some("OOM")
        || !matches!(e.retry_method(), RetryMethod::NoRetry);
    if transient { StoreError::Unavailable(e.to_string()) } else { StoreError::Corrupt(e.to_string()) }
}

impl RedisTokenStore {
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let opener = Opener::new(&settings.url, settings.cluster, settings.pool_size, settings.connect_timeout)?;
        Ok(Self {
            opener,
            slots: (0..settings.pool_size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            prefix: settings.key_prefix.clone(),
            create: Script::new(CREATE),
            consume: Script::new(CONSUME),
            charge: Script::new(&charge_script()),
        })
    }

    fn keys(&self, id: &str) -> (String, String) {
        let hash = format!("{}su:{{{id}}}", self.prefix);
        let card = format!("{hash}:c");
        (hash, card)
    }

    /// A connection from the next slot, opened through the pool if the slot is
    /// empty; `true` when it was open already (it may have broken since).
    async fn conn(&self) -> Result<(usize, Connection, bool), StoreError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = self.slots[slot].lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok((slot, conn, true));
        }
        Ok((slot, self.open(slot).await?, false))
    }

    /// A new connection, kept in `slot`.
    async fn open(&self, slot: usize) -> Result<Connection, StoreError> {
        let conn = self.opener.open(classify).await?;
        *self.slots[slot].lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `command` on a slot's connection: one round trip. A connection
    /// that was open before and turns out dropped (Redis restarted since, so
    /// the command never reached it) is replaced and the command sent once
    /// more, on the new one; every other failure is the answer.
    async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Result<T, StoreError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        common::telemetry::spans::round_trip("redis", operation, async {
            let (slot, conn, was_open) = self.conn().await?;
            match command(conn).await {
                Err(e) if was_open && e.is_connection_dropped() => {
                    tracing::debug!(error = %e, "Redis connection dropped; sending on a new one");
                    let conn = self.open(slot).await?;
                    command(conn).await.map_err(|e| self.failed(slot, e))
                }
                result => result.map_err(|e| self.failed(slot, e)),
            }
        })
        .await
    }

    /// Maps a command error; a broken connection leaves its slot for a new one.
    fn failed(&self, slot: usize, e: RedisError) -> StoreError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
            *self.slots[slot].lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        classify(&e)
    }
}

/// `1796003123456` ms → `"1796003123.456"`.
fn instant(ms: Millis) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn parse_instant(s: &str) -> Option<Millis> {
    let (secs, millis) = s.split_once('.').unwrap_or((s, "0"));
    Some(secs.parse::<Millis>().ok()? * 1000 + format!("{millis:0<3}")[..3].parse::<Millis>().ok()?)
}

fn bytes(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::BulkString(b)) => b.clone(),
        _ => Vec::new(),
    }
}

impl TokenStore for RedisTokenStore {
    async fn create(&self, t: &NewSingleUse) -> Result<bool, StoreError> {
        let (hash, card) = self.keys(&t.id);
        let created: i64 = self
            .run("create", |mut conn| {
                let mut invocation = self.create.key(&hash);
                invocation.key(&card).arg(&t.merchant_id).arg(instant(t.expires_at));
                invocation.arg(t.meta.as_slice()).arg(t.card.as_slice());
                invocation.arg((t.expires_at - t.created_at).max(1)).arg((t.retain_until - t.created_at).max(1));
                invocation.arg(instant(t.retain_until));
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(created == 1)
    }

    async fn get(&self, id: &str, merchant_id: &str, now: Millis) -> Result<Option<SingleUseRecord>, StoreError> {
        type Fields = (Option<String>, Option<String>, Option<String>, Option<Vec<u8>>, Option<String>, Option<String>);
        let (hash, _) = self.keys(id);
        let (m, x, r, d, u, cs): Fields = self
            .run("get", |mut conn| {
                let mut command = redis::cmd("HMGET");
                command.arg(&hash).arg(&["m", "x", "r", "d", "u", "cs"]);
                async move { command.query_async(&mut conn).await }
            })
            .await?;
        let (x, r) = (x.as_deref().and_then(parse_instant), r.as_deref().and_then(parse_instant));
        Ok(match (m, x, r, d) {
            (Some(m), Some(expires_at), Some(retain_until), Some(meta)) if m == merchant_id && now < retain_until => {
                let charge_status = match cs {
                    None => None,
                    Some(cs) => Some(
                        ChargeStatus::parse(&cs)
                            .ok_or_else(|| StoreError::Corrupt("a charge status this version does not know".into()))?,
                    ),
                };
                Some(SingleUseRecord { expires_at, meta, used: u.is_some(), charge_status })
            }
            _ => None,
        })
    }

    async fn consume_claim(&self, claim: Claim<'_>, now: Millis, replay_ms: Millis) -> Result<Consumed, StoreError> {
        let (hash, card) = self.keys(claim.id);
        // Sent twice only if the first never reached Redis; a consumption that
        // did is replayed to the same consumer anyway.
        let reply: Vec<Value> = self
            .run("consume", |mut conn| {
                let mut invocation = self.consume.key(&hash);
                invocation.key(&card).arg(claim.merchant_id).arg(claim.consumer);
                invocation.arg(instant(now)).arg(instant(replay_ms.max(1)));
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        let code = match reply.first() {
            Some(Value::Int(c)) => c.to_owned(),
            _ => return Err(StoreError::Corrupt("unexpected reply from consume script".into())),
        };
        Ok(match code {
            0 => Consumed::NotFound,
            1 => Consumed::AlreadyUsed,
            2 => Consumed::Expired,
            3 => Consumed::Replay { meta: bytes(reply.get(1)), card: bytes(reply.get(2)) },
            _ => Consumed::Fresh { meta: bytes(reply.get(1)), card: bytes(reply.get(2)) },
        })
    }

    async fn record_charge(&self, claim: Claim<'_>, status: ChargeStatus) -> Result<bool, StoreError> {
        let (hash, _) = self.keys(claim.id);
        let recorded: i64 = self
            .run("report_charge", |mut conn| {
                let mut invocation = self.charge.key(&hash);
                invocation.arg(claim.merchant_id).arg(claim.consumer).arg(status.as_str());
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(recorded == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // No second try: a health probe reports what the first use finds.
        let (slot, mut conn, _) = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| self.failed(slot, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_round_trip_without_long_digit_runs() {
        for ms in [0, 999, 1_796_003_123_456, 1_796_003_123_000] {
            let text = super::instant(ms);
            assert_eq!(super::parse_instant(&text), Some(ms));
            assert!(text.split('.').all(|part| part.len() < 13), "{text}");
        }
    }
}
