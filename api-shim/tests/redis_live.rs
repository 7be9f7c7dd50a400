//! The Redis live and stdin streams against a real redis-server of the test's own: the live
//! reader follows the operator's XADDs from id 0 on a connection of its own (a blocking read
//! does not stall the status reads), ends at `end`; stdin entries land as the operator reads
//! them; a dead Redis is an error, not a hang.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use rce_api::redis_keys::{live_key, stdin_key, LIVE_TTL_SECS};
use rce_api_shim::{
    backend::{Live, OutStream, StatusStore, StdinEntry},
    redis_store::RedisStatus,
};

async fn xadd(c: &mut redis::aio::MultiplexedConnection, key: &str, fields: &[(&str, &[u8])]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (f, v) in fields {
        cmd.arg(*f).arg(*v);
    }
    let _: String = cmd.query_async(c).await.unwrap();
}

#[tokio::test]
async fn the_live_stream_is_followed_from_its_start_to_its_end() {
    let server = rce_tests::redis::RedisServer::start().await.expect("redis-server must be installed");
    let store = RedisStatus::new(&server.url()).unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = live_key("default", "ex-live");
    // Written before the reader came: not missed.
    xadd(&mut c, &key, &[("k", b"stage"), ("d", b"run")]).await;
    xadd(&mut c, &key, &[("k", b"stdout"), ("d", &[b'a', 0xff])]).await;
    let mut live = store.live("default", "ex-live").await.unwrap();
    assert_eq!(live.next().await, Some(Live::Stage("run".into())));
    assert_eq!(live.next().await, Some(Live::Output { stream: OutStream::Stdout, data: vec![b'a', 0xff] }));
    // The reader now blocks; the multiplexed connection still answers at once.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(e) = live.next().await {
            got.push((e, Instant::now()));
        }
        got
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    assert_eq!(store.get("default", "nothing").await.unwrap(), None);
    assert!(t.elapsed() < Duration::from_millis(200), "a status read waited {:?}", t.elapsed());
    let written = Instant::now();
    xadd(&mut c, &key, &[("k", b"stderr"), ("d", b"late")]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    xadd(&mut c, &key, &[("k", b"end")]).await;
    xadd(&mut c, &key, &[("k", b"stdout"), ("d", b"after the end")]).await;
    let got = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap().unwrap();
    let entries: Vec<Live> = got.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(entries, vec![Live::Output { stream: OutStream::Stderr, data: b"late".to_vec() }, Live::End]);
    assert!(got[0].1 - written < Duration::from_millis(500), "a live entry took {:?}", got[0].1 - written);
}

#[tokio::test]
async fn stdin_entries_are_appended_with_a_ttl_and_a_dead_redis_is_an_error() {
    let server = rce_tests::redis::RedisServer::start().await.expect("redis-server must be installed");
    let store = RedisStatus::new(&server.url()).unwrap();
    for e in [StdinEntry::Data(b"line\n".to_vec()), StdinEntry::Eof, StdinEntry::Signal("SIGINT".into())] {
        store.send_stdin("team-a", "ex-in", e).await.unwrap();
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = stdin_key("team-a", "ex-in");
    let raw: Vec<(String, Vec<Vec<u8>>)> =
        redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut c).await.unwrap();
    let fields: Vec<Vec<Vec<u8>>> = raw.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        fields,
        vec![
            vec![b"k".to_vec(), b"data".to_vec(), b"d".to_vec(), b"line\n".to_vec()],
            vec![b"k".to_vec(), b"eof".to_vec()],
            vec![b"k".to_vec(), b"signal".to_vec(), b"d".to_vec(), b"SIGINT".to_vec()],
        ]
    );
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut c).await.unwrap();
    assert!(ttl > 0 && ttl <= LIVE_TTL_SECS as i64, "{ttl}");

    let port = server.port();
    drop(server);
    let dead = RedisStatus::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let t = Instant::now();
    assert!(dead.live("default", "x").await.is_err());
    assert!(dead.send_stdin("default", "x", StdinEntry::Eof).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}
