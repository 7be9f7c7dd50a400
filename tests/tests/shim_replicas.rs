//! Interchangeable shim replicas (issue 12): two replicas of this checkout's shim on their
//! own loopback ports, sharing only the real cluster and a real Redis, with an operator of
//! the test's own. A stream on one replica sees a run submitted through the other; a rate
//! limit holds across both; each replica keeps one pub/sub connection whatever its number
//! of streaming clients; losing Redis (a redis-server of the test's own, killed mid-wait)
//! degrades to polling the Kubernetes API, without errors, and Redis is used again once it
//! is back. With no cluster (or no Redis) these tests fail; they never skip.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use futures::StreamExt;
use rce_tests::{
    redis::{shared_url, RedisServer},
    shim::{redis_connections, request, Replicas},
    TestNamespace,
};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn post(url: &str, body: &str) -> Result<rce_tests::shim::Resp> {
    request("POST", url, &[], Some(body)).await
}

/// Every message of an Execution's WebSocket until it closes: the JSON texts.
async fn ws_messages(base: &str, id: &str, headers: &[(&str, &str)]) -> Result<Vec<Value>> {
    let url = format!("{}/api/executions/{id}/ws", base.replace("http://", "ws://"));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    for (k, v) in headers {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes())?, v.parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let mut out = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(90), ws.next()).await {
        match msg? {
            Message::Text(t) => out.push(serde_json::from_str(&t)?),
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(out)
}

fn statuses(msgs: &[Value]) -> Vec<String> {
    msgs.iter().filter_map(|m| m["status"].as_str()).map(str::to_string).collect()
}

#[tokio::test]
async fn a_websocket_on_one_replica_sees_a_run_submitted_through_the_other() -> Result<()> {
    let ns = TestNamespace::new("shimrep-ws").await?;
    let shims = Replicas::start(&ns.name, &shared_url(), 2, &[]).await?;
    let (a, b) = (&shims.bases[0], &shims.bases[1]);
    let r = post(
        &format!("{b}/api/executions"),
        r#"{"language":"python","source":"import time\ntime.sleep(2)\nprint('from b')"}"#,
    )
    .await?;
    ensure!(r.status == 201, "{}", r.text);
    let id = r.body["id"].as_str().context("id")?.to_string();
    let started = Instant::now();
    let msgs = ws_messages(a, &id, &[]).await?;
    let phases = statuses(&msgs);
    let last = msgs.iter().rev().find(|m| m["status"].is_string()).context("no status message")?;
    println!("replica A's WebSocket: phases {phases:?} in {:?}", started.elapsed());
    assert_eq!(phases.last().map(String::as_str), Some("Completed"), "{msgs:?}");
    assert!(phases.iter().any(|p| p == "Processing"), "the phase change reached A: {phases:?}");
    assert_eq!(last["stdout"], "from b\n", "{last}");
    // The same status through A's and B's status reads.
    for base in [a, b] {
        let r = request("GET", &format!("{base}/api/executions/{id}"), &[], None).await?;
        assert_eq!(r.body["status"], "Completed", "{}", r.text);
    }
    shims.finish(ns).await
}

#[tokio::test]
async fn a_rate_limit_holds_across_both_replicas() -> Result<()> {
    let ns = TestNamespace::new("shimrep-rate").await?;
    let key = format!("k-{}", rce_tests::random_suffix());
    let spec = format!("--api-key={key}:{}:5:5", ns.name);
    let shims = Replicas::start(&ns.name, &shared_url(), 2, &["--auth", &spec]).await?;
    let (rate, burst, secs) = (5.0, 5.0, 4.0);
    let admitted = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let refused = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (i, base) in shims.bases.iter().enumerate() {
        for _ in 0..3 {
            let url = format!("{base}/api/status/00000000-0000-4000-8000-000000000000");
            let (admitted, refused, other, key) =
                (admitted[i].clone(), refused.clone(), other.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let r = request("GET", &url, &[("x-api-key", &key)], None).await.unwrap();
                    match r.status {
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        404 => admitted.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (on_a, on_b) = (admitted[0].load(Ordering::Relaxed), admitted[1].load(Ordering::Relaxed));
    let total = on_a + on_b;
    let bound = rate * elapsed + burst;
    println!(
        "rate 5/s burst 5 over {elapsed:.2} s: admitted {total} (A {on_a}, B {on_b}), refused {}, bound R·t+B = {bound:.1}",
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(other.load(Ordering::Relaxed), 0, "only 404 (admitted) or 429 (limited)");
    assert!(refused.load(Ordering::Relaxed) > 0, "the key was limited");
    assert!(on_a > 0 && on_b > 0, "both replicas admitted some: A {on_a}, B {on_b}");
    assert!((total as f64) <= bound + 2.0, "admitted {total} > R·t+B = {bound:.1} (+2)");
    // Per-replica buckets would have admitted about twice that; the shared one at least R·t.
    assert!((total as f64) >= rate * (elapsed - 1.0), "admitted {total}: the bucket refills at 5/s");
    shims.finish(ns).await
}

#[tokio::test]
async fn each_replica_keeps_one_pubsub_connection_for_twenty_streams() -> Result<()> {
    let ns = TestNamespace::new("shimrep-conn").await?;
    let redis = shared_url();
    let shims = Replicas::start(&ns.name, &redis, 2, &[]).await?;
    let r = post(
        &format!("{}/api/executions", shims.bases[0]),
        r#"{"language":"python","source":"import time\ntime.sleep(4)\nprint('twenty')"}"#,
    )
    .await?;
    ensure!(r.status == 201, "{}", r.text);
    let id = r.body["id"].as_str().context("id")?.to_string();
    // 20 clients: on each replica 5 WebSockets and 5 SSE streams.
    let mut clients = Vec::new();
    for base in &shims.bases {
        for k in 0..10 {
            let (base, id) = (base.clone(), id.clone());
            clients.push(tokio::spawn(async move {
                if k % 2 == 0 {
                    let msgs = ws_messages(&base, &id, &[]).await?;
                    Ok::<_, anyhow::Error>(statuses(&msgs).last().cloned().unwrap_or_default())
                } else {
                    let r = request("GET", &format!("{base}/api/executions/{id}/events"), &[], None).await?;
                    let last = r
                        .text
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                        .filter_map(|v| v["status"].as_str().map(str::to_string))
                        .next_back();
                    Ok(last.unwrap_or_default())
                }
            }));
        }
    }
    // Wait until the channel has its subscribers: one per replica, whatever the clients.
    let channel = rce_api::redis_keys::status_channel(&ns.name, &id);
    let client = redis::Client::open(redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let numsub = loop {
        let (_, n): (String, i64) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await?;
        if n >= 2 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Give every client time to be connected and following.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut pubsub = Vec::new();
    let mut live = Vec::new();
    for name in &shims.client_names {
        let all = redis_connections(&redis, name).await?;
        pubsub.push(all.iter().filter(|n| **n == format!("{name}-pubsub")).count());
        live.push(all.iter().filter(|n| **n == format!("{name}-live")).count());
    }
    let st = request("GET", &format!("{}/api/executions/{id}", shims.bases[1]), &[], None).await?;
    println!(
        "20 streaming clients: PUBSUB NUMSUB {numsub}; pub/sub connections per replica {pubsub:?}; \
         live-output readers per replica {live:?}; the run is {}",
        st.body["status"]
    );
    assert_ne!(st.body["status"], "Completed", "the clients were counted while the run went on");
    assert_eq!(pubsub, vec![1, 1], "one pub/sub connection per replica");
    assert_eq!(numsub, 2, "the channel is subscribed once per replica");
    for c in clients {
        assert_eq!(c.await??, "Completed", "every client saw the terminal status");
    }
    shims.finish(ns).await
}

#[tokio::test]
async fn losing_redis_degrades_to_polling_and_redis_is_used_again_once_back() -> Result<()> {
    let ns = TestNamespace::new("shimrep-loss").await?;
    let mut own = RedisServer::start().await?;
    let port = own.port();
    let shims = Replicas::start(&ns.name, &own.url(), 2, &["--anonymous-rate", "1000"]).await?;
    let (a, b) = (shims.bases[0].clone(), shims.bases[1].clone());
    // A run of 6 s, waited for on A (Piston's synchronous execute), streamed on B.
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            post(
                &format!("{a}/api/v2/execute"),
                r#"{"language":"python","version":"*","run_timeout":12000,"files":[{"content":"import time\ntime.sleep(6)\nprint('survived')"}]}"#,
            )
            .await
        })
    };
    // Redis dies while the wait is on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hub = format!("{}-pubsub", shims.client_names[0]);
    assert_eq!(redis_connections(&own.url(), &hub).await?, vec![hub.clone()], "A's hub was connected");
    own.stop();
    let stopped = Instant::now();
    // Meanwhile: submissions, status reads and a stream on B answer without 5xx.
    let r =
        post(&format!("{b}/api/executions"), r#"{"language":"bash","source":"echo during-outage"}"#).await?;
    assert_eq!(r.status, 201, "a submission without Redis: {}", r.text);
    let id = r.body["id"].as_str().context("id")?.to_string();
    let msgs = ws_messages(&b, &id, &[]).await?;
    let last = msgs.iter().rev().find(|m| m["status"].is_string()).context("no status message")?;
    assert_eq!(last["status"], "Completed", "{msgs:?}");
    assert_eq!(last["stdout"], "during-outage\n");
    let r = request("GET", &format!("{a}/api/executions/{id}"), &[], None).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "Completed", "from the Execution itself: {}", r.text);
    println!(
        "during the outage: a submission, a WebSocket and a status read answered within {:.1?}",
        stopped.elapsed()
    );
    let waited = waiter.await??;
    println!("the wait on A answered {} {:.1?} after Redis was killed", waited.status, stopped.elapsed());
    assert_eq!(waited.status, 200, "{}", waited.text);
    assert_eq!(waited.body["run"]["stdout"], "survived\n", "{}", waited.text);
    assert_eq!(waited.body["run"]["code"], 0, "{}", waited.text);
    let metrics = request("GET", &format!("{a}/metrics"), &[], None).await?.text;
    let fallbacks = metrics
        .lines()
        .find(|l| l.starts_with("rce_shim_rate_limit_local_fallbacks_total"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .context("no rate_limit_local_fallbacks metric")?;
    assert!(fallbacks > 0.0, "the rate limiter fell back to the replica's own bucket");
    // Redis is back (empty: a fresh server): the hubs reconnect, the operator mirrors again.
    let own = RedisServer::start_on(port).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis_connections(&own.url(), &hub).await?.is_empty() {
        ensure!(Instant::now() < deadline, "A's hub did not reconnect within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = post(&format!("{b}/api/executions"), r#"{"language":"bash","source":"echo back"}"#).await?;
    let id = r.body["id"].as_str().context("id")?.to_string();
    let msgs = ws_messages(&a, &id, &[]).await?;
    let last = msgs.iter().rev().find(|m| m["status"].is_string()).context("no status message")?;
    let doc = rce_tests::redis::wait_terminal_doc(&own.url(), &ns.name, &id, Duration::from_secs(20)).await?;
    assert_eq!(
        doc.status.stdout.as_deref(),
        Some("back\n"),
        "the operator mirrors into Redis again: {doc:?}"
    );
    assert_eq!(last["status"], "Completed", "{msgs:?}");
    assert_eq!(last["stdout"], "back\n", "{msgs:?}");
    shims.finish(ns).await
}

#[tokio::test]
async fn the_queue_position_is_offered_on_request() -> Result<()> {
    let ns = TestNamespace::new("shimrep-queue").await?;
    let mut shims = Replicas::start(&ns.name, &shared_url(), 2, &[]).await?;
    // No operator for now: what is submitted waits.
    shims.operator.kill().await;
    let mut ids = Vec::new();
    for (i, base) in shims.bases.iter().cycle().take(3).enumerate() {
        let r = post(
            &format!("{base}/api/executions"),
            &format!(r#"{{"language":"bash","source":"echo q{i}"}}"#),
        )
        .await?;
        ensure!(r.status == 201, "{}", r.text);
        ids.push(r.body["id"].as_str().context("id")?.to_string());
    }
    let (a, b) = (&shims.bases[0], &shims.bases[1]);
    // Without the option: no queue fields.
    let plain = request("GET", &format!("{a}/api/executions/{}", ids[0]), &[], None).await?;
    assert!(plain.body.get("queuePosition").is_none(), "{}", plain.text);
    // In submission order (microsecond stamps, the same second), on either replica.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut positions = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let base = if i % 2 == 0 { b } else { a };
        let r = request("GET", &format!("{base}/api/executions/{id}?position=true"), &[], None).await?;
        assert_eq!(r.status, 200, "{}", r.text);
        let p = r.body["queuePosition"].as_u64().with_context(|| format!("queuePosition: {}", r.text))?;
        let length = r.body["queueLength"].as_u64().context("queueLength")?;
        assert!(p <= length && length >= 3, "{}", r.text);
        positions.push(p);
    }
    println!("queue positions of three waiting submissions: {positions:?}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "submission order: {positions:?}");
    // Once it ran: null.
    shims.operator.restart();
    let msgs = ws_messages(a, &ids[0], &[]).await?;
    assert_eq!(statuses(&msgs).last().map(String::as_str), Some("Completed"));
    let done = request("GET", &format!("{b}/api/executions/{}?position=true", ids[0]), &[], None).await?;
    assert!(done.body["queuePosition"].is_null(), "{}", done.text);
    assert!(done.body["queueLength"].is_u64(), "{}", done.text);
    // The Execution carries the microsecond submission stamp.
    let ex: rce_api::Execution = ns.api().get(&ids[0]).await?;
    let stamp = &ex.metadata.annotations.unwrap_or_default()[rce_api::queue::SUBMITTED_ANNOTATION];
    assert_eq!(stamp.len(), "2026-01-01T00:00:00.000000Z".len(), "{stamp}");
    shims.finish(ns).await
}
