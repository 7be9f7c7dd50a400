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
    backend::{wait_terminal, StatusStore},
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
    assert_eq!(got, d);
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
    assert!(store.subscribe("default", "x").await.is_err());
    assert!(!store.ping().await);
    assert!(started.elapsed() < Duration::from_secs(10));
}
