//! The vault on a real Redis Cluster (three masters, a replica each, started
//! for the test on spare ports): single-use tokens end to end — create, read,
//! one detokenization among many racing consumers, charge status — and a
//! master killed under load, which costs a few failed calls (UNAVAILABLE,
//! never a hang) and recovers within seconds once its replica is promoted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::procs::RedisCluster;
use e2e::{Store, TestVault, card, detokenize_request, reason};
use tokio::sync::Mutex;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_tokens_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let vault = TestVault::start(Store::RedisCluster(cluster.seeds())).await;
    let pkey = vault.merchant.test_public.expose();
    let merchant = vault.merchant.id.clone();

    // Many tokens, so they fall on every master; each comes back once, to its first consumer.
    for i in 0..12 {
        let token = vault.create_token(pkey, card("4242424242424242", "123")).await.unwrap();
        let read = vault.get_token(pkey, &token.id).await.unwrap();
        assert!(!read.used);
        let out = vault.vault().detokenize(detokenize_request(&merchant, &token.id, "pay_1")).await.unwrap();
        assert_eq!(out.into_inner().card.unwrap().number, "4242424242424242");
        let again = vault.vault().detokenize(detokenize_request(&merchant, &token.id, &format!("pay_x{i}"))).await;
        assert_eq!(reason(&again.unwrap_err()), "used_token");
        assert!(vault.get_token(pkey, &token.id).await.unwrap().used);
    }
    let sizes = cluster.keys_per_master().await;
    assert!(sizes.iter().all(|&n| n > 0), "tokens on every master: {sizes:?}");

    // Sixteen racing consumers: exactly one wins.
    let token = vault.create_token(pkey, card("4111111111111111", "999")).await.unwrap();
    let calls = (0..16).map(|i| {
        let mut client = vault.vault();
        let request = detokenize_request(&merchant, &token.id, &format!("pay_{i}"));
        async move { client.detokenize(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let used = results.iter().filter(|r| r.as_ref().is_err_and(|e| reason(e) == "used_token")).count();
    assert_eq!((won, used), (1, 15));
    vault.stop().await;
}

/// What one call of the load did, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Result {
    Ok,
    /// UNAVAILABLE or DEADLINE_EXCEEDED: the outage, reported as one.
    Unavailable,
    /// A token acknowledged before the failover that the promoted replica never got.
    Lost,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_costs_a_few_calls_and_recovers_within_seconds() {
    let mut cluster = RedisCluster::start().await;
    let vault = Arc::new(TestVault::start(Store::RedisCluster(cluster.seeds())).await);
    let log: Arc<Mutex<Vec<(Instant, Result)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (vault, log, stop) = (vault.clone(), log.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let pkey = vault.merchant.test_public.expose().to_owned();
            while !stop.load(Ordering::Relaxed) {
                let call = async {
                    let token = vault.create_token(&pkey, card("4242424242424242", "123")).await?;
                    let request = detokenize_request(&vault.merchant.id, &token.id, &format!("pay_{w}"));
                    vault.vault().detokenize(request).await.map(|_| ())
                };
                let result = match tokio::time::timeout(Duration::from_secs(5), call).await {
                    Ok(Ok(())) => Result::Ok,
                    Ok(Err(e)) if matches!(e.code(), Code::Unavailable | Code::DeadlineExceeded) => Result::Unavailable,
                    Ok(Err(e)) if reason(&e) == "token_not_found" => Result::Lost,
                    Ok(Err(e)) => panic!("a failover answers UNAVAILABLE, not {e:?}"),
                    Err(_) => panic!("a call hung for 5 s during the failover"),
                };
                log.lock().await.push((Instant::now(), result));
                if result != Result::Ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = cluster.masters().await[0];
    let killed = Instant::now();
    cluster.kill9(victim);
    cluster.wait_until_ok().await;
    let promoted = killed.elapsed();
    // Two seconds on the healed cluster.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let log = log.lock().await;
    let before: Vec<_> = log.iter().filter(|(at, _)| *at < killed).collect();
    let after: Vec<_> = log.iter().filter(|(at, _)| *at >= healed).collect();
    let failed: Vec<_> = log.iter().filter(|(_, r)| *r != Result::Ok).collect();
    // Per half second from the kill: ok / unavailable / lost, for the message.
    let mut timeline = std::collections::BTreeMap::<i64, [usize; 3]>::new();
    for (at, r) in log.iter() {
        let bucket =
            (at.duration_since(killed).as_millis() as i64 - killed.duration_since(*at).as_millis() as i64) / 500;
        timeline.entry(bucket).or_default()[*r as usize] += 1;
    }
    let timeline = format!("healed after {promoted:?}; per 0.5 s from the kill [ok, unavailable, lost]: {timeline:?}");
    assert!(before.iter().all(|(_, r)| *r == Result::Ok), "all calls succeed before the kill: {timeline}");
    assert!(
        !after.is_empty() && after.iter().all(|(_, r)| *r == Result::Ok),
        "all calls succeed 2 s after the cluster healed: {timeline}"
    );
    let recovered = failed.last().map_or(Duration::ZERO, |(at, _)| at.duration_since(killed));
    assert!(promoted < Duration::from_secs(10), "the replica took over in {promoted:?}");
    assert!(recovered < Duration::from_secs(12), "the last failure came {recovered:?} after the kill");
    eprintln!(
        "{} calls; {} failed during the failover ({} lost tokens), cluster healed {promoted:?} after the kill, \
         last failure {recovered:?} after it",
        log.len(),
        failed.len(),
        failed.iter().filter(|(_, r)| *r == Result::Lost).count()
    );
    drop(log);
    Arc::try_unwrap(vault).ok().expect("the workers are done").stop().await;
}
