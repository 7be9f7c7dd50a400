//! The Redis status store against a real redis-server that this test starts on a free
//! loopback port (and stops): documents are read, channel messages arrive, and a waiter that
//! subscribed first sees every change the "operator" publishes.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rce_api::{
    redis_keys::{status_channel, status_key, StatusDocument},
    ExecutionStatus, Phase, Verdict,
};
use rce_api_shim::{
    auth::Rate,
    backend::{wait_terminal, Published, StatusStore},
    redis_store::RedisStatus,
    testing::{seed_runtimes, MemoryCluster},
    AppState, Config,
};

async fn redis() -> rce_tests::redis::RedisServer {
    rce_tests::redis::RedisServer::start()
        .await
        .expect("redis-server (Debian package redis-server) must be installed")
}

fn doc(name: &str, phase: Phase) -> StatusDocument {
    StatusDocument {
        namespace: "default".into(),
        name: name.into(),
        uid: "u".into(),
        language: "python".into(),
        status: ExecutionStatus {
            phase: Some(phase),
            verdict: (phase == Phase::Completed).then_some(Verdict::Accepted),
            stdout: (phase == Phase::Completed).then(|| "ok\n".to_string()),
            ..Default::default()
        },
    }
}

/// Do what the operator does: SET the document (with a TTL), then PUBLISH it.
async fn write(url: &str, d: &StatusDocument) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let json = serde_json::to_string(d).unwrap();
    let _: () = redis::cmd("SET")
        .arg(status_key(&d.namespace, &d.name))
        .arg(&json)
        .arg("EX")
        .arg(60)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(status_channel(&d.namespace, &d.name))
        .arg(&json)
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn documents_and_channel_messages_round_trip() {
    let r = redis().await;
    let store = RedisStatus::new(&r.url()).unwrap();
    assert!(store.ping().await);
    assert_eq!(store.get("default", "a").await.unwrap(), None);
    let mut sub = store.subscribe("default", "a").await.unwrap();
    let d = doc("a", Phase::Processing);
    write(&r.url(), &d).await;
    assert_eq!(store.get("default", "a").await.unwrap(), Some(d.clone()));
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(got, Published::Doc(Box::new(d)));
    // A document of another Execution does not reach this subscriber.
    write(&r.url(), &doc("b", Phase::Completed)).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), sub.next()).await.is_err());
}

#[tokio::test]
async fn a_waiter_sees_the_terminal_status_published_after_it_subscribed() {
    let r = redis().await;
    let cluster = MemoryCluster::with_runtimes(seed_runtimes());
    let state = AppState::new(Config::defaults(), cluster, Arc::new(RedisStatus::new(&r.url()).unwrap()))
        .unwrap()
        // A long poll: the result must come through the channel, not the safety-net poll.
        .with_poll_interval(Duration::from_secs(30));
    write(&r.url(), &doc("w", Phase::Pending)).await;
    let url = r.url();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        write(&url, &doc("w", Phase::Processing)).await;
        write(&url, &doc("w", Phase::Completed)).await;
    });
    let started = std::time::Instant::now();
    let v = wait_terminal(
        &*state.cluster,
        &*state.status,
        state.poll_interval,
        "default",
        "w",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(v.phase(), Phase::Completed);
    assert_eq!(v.status.stdout.as_deref(), Some("ok\n"));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = RedisStatus::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    assert!(store.get("default", "x").await.is_err());
    // A subscription says at once that it is not subscribed (its follower polls).
    let mut sub = store.subscribe("default", "x").await.unwrap();
    assert_eq!(sub.next().await, Some(Published::Lost));
    assert!(store.take_token("b", Rate { per_sec: 1.0, burst: 1.0 }).await.is_err());
    assert!(!store.ping().await);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The `CLIENT LIST` names of the connections to the Redis at `url` that start with `prefix`.
async fn connections(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")).map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn many_followers_share_one_pubsub_connection_and_channels_are_reference_counted() {
    let r = redis().await;
    let store = RedisStatus::new(&r.url()).unwrap();
    let mut subs = Vec::new();
    for i in 0..20 {
        subs.push(store.subscribe("default", &format!("e{}", i % 4)).await.unwrap());
    }
    let names = connections(&r.url(), store.client_name()).await;
    assert_eq!(names, vec![format!("{}-pubsub", store.client_name())], "one pub/sub connection");
    let client = redis::Client::open(r.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let numsub = |ch: String| redis::cmd("PUBSUB").arg("NUMSUB").arg(ch).clone();
    let (_, n): (String, i64) = numsub(status_channel("default", "e1")).query_async(&mut c).await.unwrap();
    assert_eq!(n, 1, "a channel is subscribed once, whatever its followers");
    // Every follower of e1 gets the message.
    let d = doc("e1", Phase::Processing);
    write(&r.url(), &d).await;
    for (i, s) in subs.iter_mut().enumerate().filter(|(i, _)| i % 4 == 1) {
        let got = tokio::time::timeout(Duration::from_secs(5), s.next()).await.unwrap();
        assert_eq!(got, Some(Published::Doc(Box::new(d.clone()))), "follower {i}");
    }
    // The last follower of e1 gone: the channel is unsubscribed.
    let e1: Vec<_> = subs.drain(..).enumerate().filter(|(i, _)| i % 4 == 1).collect();
    drop(e1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, n): (String, i64) =
            numsub(status_channel("default", "e1")).query_async(&mut c).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "e1 still subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_hub_reconnects_resubscribes_and_says_so() {
    let mut r = redis().await;
    let port = r.port();
    let store = RedisStatus::new(&r.url()).unwrap();
    let mut sub = store.subscribe("default", "re").await.unwrap();
    r.stop();
    let got = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap();
    assert_eq!(got, Some(Published::Lost));
    let r = rce_tests::redis::RedisServer::start_on(port).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(15), sub.next()).await.unwrap();
    assert_eq!(got, Some(Published::Resumed), "subscribed again: re-read");
    let d = doc("re", Phase::Completed);
    write(&r.url(), &d).await;
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap();
    assert_eq!(got, Some(Published::Doc(Box::new(d))));
}

#[tokio::test]
async fn the_shared_bucket_admits_the_burst_then_the_rate_with_retry_after() {
    let r = redis().await;
    let a = RedisStatus::new(&r.url()).unwrap();
    let b = RedisStatus::new(&r.url()).unwrap();
    let rate = Rate { per_sec: 2.0, burst: 3.0 };
    // Two stores (two replicas) draw from one bucket.
    let mut admitted = 0;
    let mut waits = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { &a } else { &b };
        match store.take_token("key:k", rate).await.unwrap() {
            Ok(()) => admitted += 1,
            Err(w) => waits.push(w),
        }
    }
    assert_eq!(admitted, 3, "the burst, across both");
    assert!(waits.iter().all(|w| *w == 1), "deficit 1 token at 2/s: 1 s, rounded up: {waits:?}");
    // Another bucket is untouched; the first refills at the rate.
    assert_eq!(a.take_token("key:other", rate).await.unwrap(), Ok(()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.take_token("key:k", rate).await.unwrap(), Ok(()));
    assert!(a.take_token("key:k", rate).await.unwrap().is_err());
    // The bucket expires once it would be full again.
    let client = redis::Client::open(r.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = rce_api_shim::redis_store::rate_limit_key("key:k");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut c).await.unwrap();
    assert!((1..=3000).contains(&ttl), "PTTL {ttl}");
    // A flushed script cache (a restarted Redis): EVALSHA fails, EVAL answers.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await.unwrap();
    assert!(a.take_token("key:third", rate).await.unwrap().is_ok());
}
