//! The `TokenStore` conformance suite: every case runs against the in-process
//! store, against a real Redis (`TEST_REDIS_URL`, default database 15 of
//! 127.0.0.1:6379, so tests never meet local or benchmark data) with a
//! random key prefix per test, and against a real Redis Cluster of three
//! masters with a replica each (started for the test on spare ports), so
//! every backend is held to one semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::Arc;
use std::time::Duration;

use common::clock::Millis;
use common::ids;
use deadpool_redis::redis;
use vault_api::ChargeStatus::{Failed, Pending, Reversed, Successful};
use vault_svc::domain::store::{Consumed, NewSingleUse, StoreError, TokenStore};
use vault_svc::storage::memory::MemoryTokenStore;
use vault_svc::storage::redis::{RedisSettings, RedisTokenStore};

const T0: Millis = 1_795_392_000_000;
const USABLE: Millis = 30 * 60 * 1000;
const RETAIN: Millis = 7 * 24 * 3600 * 1000;
const REPLAY: Millis = 2 * 60 * 1000;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// A Redis store under a fresh key prefix; the keys are removed when dropped.
struct RedisUnderTest {
    store: Arc<RedisTokenStore>,
    prefix: String,
}

impl RedisUnderTest {
    fn new() -> Self {
        let prefix = format!("test:{}:", ids::hex(8));
        let settings = RedisSettings {
            url: redis_url(),
            cluster: false,
            key_prefix: prefix.clone(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(2),
        };
        Self { store: Arc::new(RedisTokenStore::new(&settings).unwrap()), prefix }
    }
}

impl Drop for RedisUnderTest {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else { return };
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut conn).unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

fn token(id: &str, merchant: &str) -> NewSingleUse {
    NewSingleUse {
        id: id.into(),
        merchant_id: merchant.into(),
        created_at: T0,
        expires_at: T0 + USABLE,
        retain_until: T0 + RETAIN,
        meta: format!("meta-{id}").into_bytes(),
        card: format!("card-{id}").into_bytes(),
    }
}

fn fresh(id: &str) -> Consumed {
    Consumed::Fresh { meta: format!("meta-{id}").into_bytes(), card: format!("card-{id}").into_bytes() }
}

async fn create_then_get<S: TokenStore>(s: Arc<S>) {
    assert!(s.create(&token("t1", "m1")).await.unwrap());
    let got = s.get("t1", "m1", T0 + 1).await.unwrap().unwrap();
    assert_eq!((got.expires_at, got.used, got.meta.as_slice()), (T0 + USABLE, false, &b"meta-t1"[..]));
    assert_eq!(s.get("t1", "m2", T0 + 1).await.unwrap(), None, "another merchant sees nothing");
    assert_eq!(s.get("nope", "m1", T0 + 1).await.unwrap(), None);
    assert!(!s.create(&token("t1", "m1")).await.unwrap(), "an existing id is never overwritten");
}

async fn consume_once<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    assert_eq!(s.consume("t1", "m2", "pay_x", T0 + 1, REPLAY).await.unwrap(), Consumed::NotFound);
    assert_eq!(s.consume("t1", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap(), fresh("t1"));
    assert_eq!(s.consume("t1", "m1", "pay_b", T0 + 2, REPLAY).await.unwrap(), Consumed::AlreadyUsed);
    assert!(s.get("t1", "m1", T0 + 3).await.unwrap().unwrap().used);
    assert_eq!(s.consume("unknown", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap(), Consumed::NotFound);
}

async fn same_consumer_replays_within_window<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    s.consume("t1", "m1", "pay_a", T0 + 10, REPLAY).await.unwrap();
    let replay = s.consume("t1", "m1", "pay_a", T0 + 10 + REPLAY - 1, REPLAY).await.unwrap();
    assert_eq!(replay, Consumed::Replay { meta: b"meta-t1".to_vec(), card: b"card-t1".to_vec() });
    assert_eq!(s.consume("t1", "m1", "pay_a", T0 + 10 + REPLAY, REPLAY).await.unwrap(), Consumed::AlreadyUsed);
}

async fn expires_after_usable_window<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    assert_eq!(s.consume("t1", "m1", "pay_a", T0 + USABLE, REPLAY).await.unwrap(), Consumed::Expired);
    let meta = s.get("t1", "m1", T0 + USABLE + 1).await.unwrap().unwrap();
    assert!(!meta.used, "metadata of an expired token is still readable");
    // Expired stays expired, even for a consumer arriving later.
    assert_eq!(s.consume("t1", "m1", "pay_b", T0 + USABLE + 5, REPLAY).await.unwrap(), Consumed::Expired);
    assert_eq!(s.get("t1", "m1", T0 + RETAIN).await.unwrap(), None, "metadata is gone after retention");
    assert_eq!(s.consume("t1", "m1", "pay_b", T0 + RETAIN, REPLAY).await.unwrap(), Consumed::NotFound);
}

async fn one_of_many_concurrent_consumers_wins<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    let racers = (0..32).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.consume("t1", "m1", &format!("pay_{i}"), T0 + 1, REPLAY).await.unwrap() })
    });
    let outcomes = futures::future::join_all(racers).await;
    let fresh = outcomes.iter().filter(|o| matches!(o, Ok(Consumed::Fresh { .. }))).count();
    let used = outcomes.iter().filter(|o| matches!(o, Ok(Consumed::AlreadyUsed))).count();
    assert_eq!((fresh, used), (1, 31));
}

async fn only_the_consumer_reports_the_charge<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    assert!(!s.set_charge_status("t1", "m1", "pay_a", Successful).await.unwrap(), "not used yet");
    assert_eq!(s.get("t1", "m1", T0 + 1).await.unwrap().unwrap().charge_status, None);
    s.consume("t1", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap();
    assert!(!s.set_charge_status("t1", "m1", "pay_b", Failed).await.unwrap(), "another consumer");
    assert!(!s.set_charge_status("t1", "m2", "pay_a", Failed).await.unwrap(), "another merchant");
    assert!(!s.set_charge_status("nope", "m1", "pay_a", Failed).await.unwrap(), "no such token");
    assert!(s.set_charge_status("t1", "m1", "pay_a", Successful).await.unwrap());
    assert_eq!(s.get("t1", "m1", T0 + 2).await.unwrap().unwrap().charge_status, Some(Successful));
}

/// A PA's life: authorized (`pending`), then captured (`successful`); a
/// report that arrives late never moves the token back.
async fn a_charge_status_moves_on_and_never_back<S: TokenStore>(s: Arc<S>) {
    s.create(&token("t1", "m1")).await.unwrap();
    s.consume("t1", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap();
    let status = |s: Arc<S>| async move { s.get("t1", "m1", T0 + 2).await.unwrap().unwrap().charge_status };
    assert!(s.set_charge_status("t1", "m1", "pay_a", Pending).await.unwrap());
    assert_eq!(status(s.clone()).await, Some(Pending));
    assert!(s.set_charge_status("t1", "m1", "pay_a", Pending).await.unwrap(), "the same report again");
    assert!(s.set_charge_status("t1", "m1", "pay_a", Successful).await.unwrap());
    assert!(!s.set_charge_status("t1", "m1", "pay_a", Pending).await.unwrap(), "a late pending");
    assert_eq!(status(s.clone()).await, Some(Successful));
    assert!(s.set_charge_status("t1", "m1", "pay_a", Successful).await.unwrap(), "a retried report");
    for other_end in [Reversed, Failed] {
        assert!(!s.set_charge_status("t1", "m1", "pay_a", other_end).await.unwrap(), "{other_end}");
    }
    assert_eq!(status(s.clone()).await, Some(Successful));
}

/// Every end a payment reaches from `pending` (or straight away) is kept,
/// whatever comes after it.
async fn every_end_is_kept<S: TokenStore>(s: Arc<S>) {
    for (i, end) in [Successful, Reversed, Failed].into_iter().enumerate() {
        let id = format!("t{i}");
        s.create(&token(&id, "m1")).await.unwrap();
        s.consume(&id, "m1", "pay_a", T0 + 1, REPLAY).await.unwrap();
        if end == Reversed {
            assert!(s.set_charge_status(&id, "m1", "pay_a", Pending).await.unwrap());
        }
        assert!(s.set_charge_status(&id, "m1", "pay_a", end).await.unwrap(), "{end}");
        for later in [Pending, Successful, Reversed, Failed].into_iter().filter(|c| *c != end) {
            assert!(!s.set_charge_status(&id, "m1", "pay_a", later).await.unwrap(), "{later} after {end}");
        }
        assert_eq!(s.get(&id, "m1", T0 + 2).await.unwrap().unwrap().charge_status, Some(end));
    }
}

/// Reports racing one another end at the later stage, whatever their order.
async fn racing_reports_end_at_the_later_stage<S: TokenStore>(s: Arc<S>) {
    for round in 0..8 {
        let id = format!("t{round}");
        s.create(&token(&id, "m1")).await.unwrap();
        s.consume(&id, "m1", "pay_a", T0 + 1, REPLAY).await.unwrap();
        let reports = (0..8).map(|i| {
            let (s, id) = (s.clone(), id.clone());
            let status = if i % 2 == 0 { Pending } else { Reversed };
            tokio::spawn(async move { s.set_charge_status(&id, "m1", "pay_a", status).await.unwrap() })
        });
        futures::future::join_all(reports).await;
        assert_eq!(s.get(&id, "m1", T0 + 2).await.unwrap().unwrap().charge_status, Some(Reversed));
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $case() { super::$case(std::sync::Arc::new(super::MemoryTokenStore::new())).await } )*
        }
        mod redis_store {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
                let r = super::RedisUnderTest::new();
                super::$case(r.store.clone()).await
            } )*
        }
        mod redis_cluster {
            /// One cluster for every case (six processes each would be a lot), each
            /// case under its own key prefix; its tokens land on all three masters.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_case() {
                let cluster = e2e::procs::RedisCluster::start().await;
                $( crate::$case(std::sync::Arc::new(crate::cluster_store(&cluster.seeds()))).await; )*
                crate::tokens_spread_over_every_master(&cluster).await;
            }
        }
    };
}

/// Each token's two keys share a slot; different tokens use all three masters.
async fn tokens_spread_over_every_master(cluster: &e2e::procs::RedisCluster) {
    let store = cluster_store(&cluster.seeds());
    for _ in 0..30 {
        let id = ids::hex(12);
        assert!(store.create(&token(&id, "m1")).await.unwrap());
        assert_eq!(store.consume(&id, "m1", "pay_a", T0 + 1, REPLAY).await.unwrap(), fresh(&id));
    }
    let sizes = cluster.keys_per_master().await;
    assert_eq!(sizes.len(), 3, "three masters: {sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0), "every master holds tokens: {sizes:?}");
}

fn cluster_store(seeds: &str) -> RedisTokenStore {
    let settings = RedisSettings {
        url: seeds.into(),
        cluster: true,
        key_prefix: format!("test:{}:", ids::hex(8)),
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
    };
    RedisTokenStore::new(&settings).unwrap()
}

conformance!(
    create_then_get,
    consume_once,
    same_consumer_replays_within_window,
    expires_after_usable_window,
    one_of_many_concurrent_consumers_wins,
    only_the_consumer_reports_the_charge,
    a_charge_status_moves_on_and_never_back,
    every_end_is_kept,
    racing_reports_end_at_the_later_stage,
);

#[tokio::test]
async fn redis_outage_is_unavailable_not_a_hang() {
    let settings = RedisSettings {
        url: "redis://127.0.0.1:1".into(),
        cluster: false,
        key_prefix: "test:".into(),
        pool_size: 2,
        connect_timeout: Duration::from_millis(500),
    };
    let store = RedisTokenStore::new(&settings).unwrap();
    let started = std::time::Instant::now();
    let result = store.create(&token("t1", "m1")).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_reply_of_the_wrong_type_is_corrupt_not_unavailable() {
    let r = RedisUnderTest::new();
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () =
        redis::cmd("SET").arg(format!("{}su:{{t1}}", r.prefix)).arg("not a hash").query_async(&mut conn).await.unwrap();
    let result = r.store.consume("t1", "m1", "pay_a", T0 + 1, REPLAY).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = r.store.get("t1", "m1", T0 + 1).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    assert!(r.store.ping().await.is_ok(), "the connection is still good");
}

/// A TCP proxy in front of Redis whose connections the test can cut.
async fn cuttable_proxy(target: String) -> (String, tokio::sync::watch::Sender<u32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/15", listener.local_addr().unwrap());
    let (cut, cuts) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut cuts = cuts.clone();
            cuts.borrow_and_update();
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    (url, cut)
}

#[tokio::test]
async fn a_dropped_connection_fails_one_call_and_the_next_reconnects() {
    let (url, cut) = cuttable_proxy("127.0.0.1:6379".into()).await;
    let settings = RedisSettings {
        url,
        cluster: false,
        key_prefix: format!("test:{}:", ids::hex(8)),
        pool_size: 1,
        connect_timeout: Duration::from_secs(2),
    };
    let store = RedisTokenStore::new(&settings).unwrap();
    assert!(store.create(&token("t1", "m1")).await.unwrap());
    cut.send_modify(|n| *n += 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The broken connection may fail the first call after the cut, never more.
    let _ = store.get("t1", "m1", T0 + 1).await;
    let got = store.get("t1", "m1", T0 + 1).await.unwrap();
    assert!(got.is_some(), "a new connection serves the next call");
    assert!(store.create(&token("t2", "m1")).await.unwrap());
}

/// The client-issued commands a private Redis receives while `calls` runs, as MONITOR lists
/// them (commands a script runs inside Redis are left out: they cost no round trip).
async fn commands_during(port: u16, calls: impl std::future::Future<Output = ()>) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut monitor = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    monitor.write_all(b"MONITOR\r\n").await.unwrap();
    let mut lines = BufReader::new(monitor).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
    calls.await;
    // A marker sent last: everything before it has been listed.
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap().get_connection().unwrap();
    let _: String = redis::cmd("ECHO").arg("end-of-calls").query(&mut conn).unwrap();
    let mut commands = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("end-of-calls") {
            break;
        }
        if !line.contains(" lua]") {
            commands.push(line.split_once("] ").map_or(line.clone(), |(_, c)| c.to_owned()));
        }
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_consume_and_report_are_one_round_trip_each() {
    let redis = e2e::procs::RedisServer::new().await;
    let settings = RedisSettings {
        url: redis.url(),
        cluster: false,
        key_prefix: "test:".into(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
    };
    let store = RedisTokenStore::new(&settings).unwrap();
    // Connections opened and scripts loaded once, as a running vault has them.
    assert!(store.create(&token("warm", "m1")).await.unwrap());
    store.consume("warm", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap();
    store.set_charge_status("warm", "m1", "pay_a", Pending).await.unwrap();
    for _ in 0..4 {
        store.get("warm", "m1", T0 + 1).await.unwrap();
    }

    let verbs = |commands: &[String]| -> Vec<String> {
        commands.iter().map(|c| c.split(' ').next().unwrap_or("").trim_matches('"').to_owned()).collect()
    };
    let created = commands_during(redis.port(), async {
        assert!(store.create(&token("t1", "m1")).await.unwrap());
    })
    .await;
    assert_eq!(verbs(&created), ["EVALSHA"], "{created:?}");
    let read = commands_during(redis.port(), async {
        assert!(store.get("t1", "m1", T0 + 1).await.unwrap().is_some());
    })
    .await;
    assert_eq!(verbs(&read), ["HMGET"], "{read:?}");
    let consumed = commands_during(redis.port(), async {
        assert_eq!(store.consume("t1", "m1", "pay_a", T0 + 1, REPLAY).await.unwrap(), fresh("t1"));
    })
    .await;
    assert_eq!(verbs(&consumed), ["EVALSHA"], "{consumed:?}");
    let reported = commands_during(redis.port(), async {
        assert!(store.set_charge_status("t1", "m1", "pay_a", Successful).await.unwrap());
    })
    .await;
    assert_eq!(verbs(&reported), ["EVALSHA"], "{reported:?}");
}
