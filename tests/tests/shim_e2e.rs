//! The REST shim against the real cluster: a real apiserver, the running operator, real
//! sandbox Pods and the real Redis mirror. Each test starts the shim from this checkout on a
//! free loopback port, with its own namespace, and talks to it over real HTTP. With no
//! cluster (or no Redis) these tests fail; they never skip.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use rce_api::Execution;
use rce_api_shim::{app, kube_backend::KubeCluster, redis_store::RedisStatus, AppState, Config};
use rce_tests::{
    exec::{remove_executions, strip_finalizers},
    operator::{OwnOperator, TURN},
    redis::shared_url as redis_url,
    TestNamespace,
};
use serde_json::{json, Value};

/// The tests take turns (they run operators of their own): the node has two cores.
struct Shim {
    base: String,
    server: tokio::task::JoinHandle<()>,
    _operator: OwnOperator,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Start the shim (this checkout's code) against the real cluster and Redis, with an
/// operator of its own serving only these namespaces: the shim labels its Executions
/// `rce.dev/operator=<first namespace>` and the operator selects that label, so an operator
/// started by `make up` leaves them alone.
async fn start_shim(namespaces: &[&str], extra: &[&str]) -> Result<Shim> {
    let turn = TURN.lock().await;
    let client = rce_tests::client().await?;
    let redis_url = redis_url();
    let label = format!("rce.dev/operator={}", namespaces[0]);
    let mut args = vec![
        "rce-api-shim",
        "--namespace",
        namespaces[0],
        "--redis-url",
        &redis_url,
        "--execution-label",
        &label,
    ];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args)?;
    let cluster = KubeCluster::start(client);
    if !cluster.wait_ready(Duration::from_secs(30)).await {
        bail!("the shim's Runtime/Execution caches did not sync with the apiserver within 30 s");
    }
    if cluster_runtimes(&cluster).is_empty() {
        bail!("no Runtime objects in the cluster: is the operator installed (`make up`)?");
    }
    let status = Arc::new(RedisStatus::new(&config.redis_url)?);
    let state = AppState::new(config, cluster, status)?;
    if !state.status.ping().await {
        bail!("Redis at {redis_url} does not answer: is it up (`make up`)?");
    }
    let namespaces: Vec<String> = namespaces.iter().map(|s| s.to_string()).collect();
    let operator = OwnOperator::start(OwnOperator::config(&namespaces)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = app(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(Shim { base: format!("http://{addr}"), server, _operator: operator, _turn: turn })
}

impl Shim {
    /// Delete the test's Executions while its operator still runs (its finalizer is on
    /// them), then stop the shim and the operator, then remove the namespaces.
    async fn finish(self, namespaces: Vec<TestNamespace>) -> Result<()> {
        remove_executions(&namespaces.iter().collect::<Vec<_>>()).await?;
        drop(self);
        for ns in namespaces {
            strip_finalizers(&ns).await?;
            ns.cleanup().await?;
        }
        Ok(())
    }
}

fn cluster_runtimes(c: &KubeCluster) -> Vec<Arc<rce_api::Runtime>> {
    use rce_api_shim::backend::Cluster as _;
    c.runtimes().unwrap_or_default()
}

struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
    text: String,
}

async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Resp> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<hyper::body::Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b.body(Full::new(hyper::body::Bytes::from(body.unwrap_or("").to_string())))?;
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .context("HTTP timeout")??;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp { status, headers, body, text })
}

async fn post(url: &str, body: &str) -> Result<Resp> {
    request("POST", url, &[], Some(body)).await
}

async fn get(url: &str) -> Result<Resp> {
    request("GET", url, &[], None).await
}

/// Poll the seed's status endpoint until a terminal status.
async fn poll_seed(base: &str, id: &str, headers: &[(&str, &str)]) -> Result<Value> {
    for _ in 0..240 {
        let r = request("GET", &format!("{base}/api/status/{id}"), headers, None).await?;
        if r.status != 200 {
            bail!("status {}: {}", r.status, r.text);
        }
        if matches!(r.body["status"].as_str(), Some("Completed" | "Failed")) {
            return Ok(r.body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("job {id} did not finish within 60 s")
}

#[tokio::test]
async fn shim_seed_api_runs_a_python_program_end_to_end() -> Result<()> {
    let ns = TestNamespace::new("shim-seed").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let r =
        post(&format!("{}/api/execute", shim.base), r#"{"language":"python","code":"print(6*7)"}"#).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_object().unwrap().len(), 3, "{}", r.text);
    assert_eq!(r.body["status"], "Pending");
    assert_eq!(r.body["message"], "Job submitted successfully");
    let id = r.body["jobId"].as_str().unwrap().to_string();
    // It is a real Execution in the namespace.
    let ex: Execution = ns.api::<Execution>().get(&id).await?;
    assert_eq!(ex.spec.language, "python");
    assert_eq!(ex.spec.source.as_deref(), Some("print(6*7)"));
    let done = poll_seed(&shim.base, &id, &[]).await?;
    assert_eq!(done["status"], "Completed", "{done}");
    assert_eq!(done["output"], "42\n");
    assert_eq!(done["stdout"], "42\n");
    assert_eq!(done["verdict"], "Accepted");
    assert_eq!(done["exitCode"], 0);
    assert!(done["time"].is_u64() && done["memory"].as_u64().unwrap() > 0, "{done}");
    assert!(done["submittedAt"].is_string());
    // Unknown ids are a 404 in JSON.
    let r = get(&format!("{}/api/status/0b7e4a4e-0000-4000-8000-000000000000", shim.base)).await?;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"], "Job not found");
    let r = get(&format!("{}/health", shim.base)).await?;
    assert_eq!(r.body, json!({"status": "ok"}));
    shim.finish(vec![ns]).await
}

#[tokio::test]
async fn shim_judge0_clients_work_unchanged() -> Result<()> {
    let ns = TestNamespace::new("shim-judge0").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let b = &shim.base;
    // Languages come from the Runtime objects.
    let langs = get(&format!("{b}/languages")).await?.body;
    let ids: Vec<u64> = langs.as_array().unwrap().iter().filter_map(|l| l["id"].as_u64()).collect();
    for id in [46, 63, 71] {
        assert!(ids.contains(&id), "language {id} missing from {langs}");
    }
    assert_eq!(get(&format!("{b}/statuses")).await?.body.as_array().unwrap().len(), 14);
    // wait=true, base64 in and out.
    let r = post(
        &format!("{b}/submissions?base64_encoded=true&wait=true"),
        r#"{"language_id":71,"source_code":"cHJpbnQoaW5wdXQoKSoyKQ==","stdin":"MjE="}"#,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"]["id"], 3, "{}", r.text);
    // "2121\n", in Ruby's Base64.encode64 (a line break after every 60 characters and at the end).
    assert_eq!(r.body["stdout"], "MjEyMQo=\n");
    assert!(r.body["time"].as_str().unwrap().parse::<f64>().is_ok());
    // Non-zero exit → NZEC (11); expected output mismatch → Wrong Answer (4).
    let r =
        post(&format!("{b}/submissions?wait=true"), r#"{"language_id":46,"source_code":"echo out; exit 3"}"#)
            .await?;
    assert_eq!(r.body["status"]["id"], 11, "{}", r.text);
    assert_eq!(r.body["stdout"], "out\n");
    let r = post(
        &format!("{b}/submissions?wait=true&fields=status_id,stdout,expected_output"),
        r#"{"language_id":63,"source_code":"console.log(1+1)","expected_output":"3"}"#,
    )
    .await?;
    assert_eq!(r.body, json!({"status_id": 4, "stdout": "2\n", "expected_output": "3"}), "{}", r.text);
    // A program that forges a result line into the runner's output gets its own verdict
    // (NZEC, exit 7), and a fork bomb is a Runtime Error (NZEC), not Accepted.
    let forge = json!({
        "language_id": 46, "expected_output": "42",
        "source_code": "printf '{\"rceResult\":{\"outcome\":\"ran\",\"run\":{\"exitCode\":0,\"stdout\":\"42\"}}}\\n' > /proc/1/fd/1; echo wrong; exit 7",
    });
    let r = post(&format!("{b}/submissions?wait=true&fields=status,exit_code,stdout"), &forge.to_string())
        .await?;
    assert_eq!(
        (r.body["status"]["id"].clone(), r.body["exit_code"].clone()),
        (json!(11), json!(7)),
        "{}",
        r.text
    );
    assert_eq!(r.body["stdout"], "wrong\n", "{}", r.text);
    let r =
        post(&format!("{b}/submissions?wait=true"), r#"{"language_id":46,"source_code":":(){ :|:& };:"}"#)
            .await?;
    assert_eq!(r.body["status"]["id"], 11, "{}", r.text);
    // Asynchronous: token, then poll.
    let r =
        post(&format!("{b}/submissions"), r#"{"language_id":71,"source_code":"import sys; sys.exit(0)"}"#)
            .await?;
    assert_eq!(r.status, 201);
    let token = r.body["token"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..240 {
        last = get(&format!("{b}/submissions/{token}?fields=status,token")).await?.body;
        if last["status"]["id"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(last["status"]["id"], 3, "{last}");
    // Batch.
    let r = post(
        &format!("{b}/submissions/batch"),
        r#"{"submissions":[{"language_id":71,"source_code":"print(1)"},{"language_id":4242,"source_code":"x"}]}"#,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body[0]["token"].is_string());
    assert_eq!(r.body[1]["language_id"], json!(["language with id 4242 doesn't exist"]));
    let t0 = r.body[0]["token"].as_str().unwrap();
    let r = get(&format!("{b}/submissions/batch?tokens={t0},{token}&fields=token")).await?;
    assert_eq!(r.body["submissions"][1]["token"], token.as_str());
    // Field errors and bad fields as Judge0 reports them.
    let r =
        post(&format!("{b}/submissions"), r#"{"language_id":71,"source_code":"1","memory_limit":99999999}"#)
            .await?;
    assert_eq!(r.status, 422);
    assert!(r.body["memory_limit"][0].as_str().unwrap().starts_with("must be less than or equal to"));
    shim.finish(vec![ns]).await
}

#[tokio::test]
async fn shim_piston_clients_work_unchanged() -> Result<()> {
    let ns = TestNamespace::new("shim-piston").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let b = &shim.base;
    let rts = get(&format!("{b}/api/v2/runtimes")).await?.body;
    let names: Vec<&str> = rts.as_array().unwrap().iter().filter_map(|r| r["language"].as_str()).collect();
    for l in ["bash", "javascript", "python"] {
        assert!(names.contains(&l), "{rts}");
    }
    let r = post(
        &format!("{b}/api/v2/execute"),
        &json!({
            "language": "javascript", "version": "*",
            "files": [{"name": "main.js", "content": "const s=require('fs').readFileSync(0,'utf8'); console.log(process.argv.slice(2).join('+'), s.trim().toUpperCase()); console.error('warn')"}],
            "stdin": "abc\n", "args": ["x", "y"], "run_timeout": 5000
        })
        .to_string(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["language"], "javascript");
    assert_eq!(r.body["run"]["stdout"], "x+y ABC\n", "{}", r.text);
    assert_eq!(r.body["run"]["stderr"], "warn\n");
    assert_eq!(r.body["run"]["code"], 0);
    assert_eq!(r.body["run"]["signal"], Value::Null);
    let r = post(
        &format!("{b}/api/v2/execute"),
        r#"{"language":"python","version":"3","files":[{"content":"raise SystemExit(5)"}]}"#,
    )
    .await?;
    assert_eq!(r.body["run"]["code"], 5, "{}", r.text);
    assert_eq!(r.body["run"]["status"], "RE");
    // A forged result line in the runner's output changes nothing.
    let forge = json!({"language": "bash", "version": "*", "files": [{"content":
        "printf '{\"rceResult\":{\"outcome\":\"ran\",\"run\":{\"exitCode\":0,\"stdout\":\"42\"}}}\\n' > /proc/1/fd/1; echo wrong; exit 7"}]});
    let r = post(&format!("{b}/api/v2/execute"), &forge.to_string()).await?;
    assert_eq!(
        (r.body["run"]["code"].clone(), r.body["run"]["stdout"].clone()),
        (json!(7), json!("wrong\n")),
        "{}",
        r.text
    );
    let r = post(
        &format!("{b}/api/v2/execute"),
        r#"{"language":"brainfudge","version":"*","files":[{"content":"+"}]}"#,
    )
    .await?;
    // Upstream's v2.js: 400 {"message": "<language>-<version> runtime is unknown"}.
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["message"], "brainfudge-* runtime is unknown", "{}", r.text);
    shim.finish(vec![ns]).await
}

#[tokio::test]
async fn shim_websocket_receives_pending_processing_completed() -> Result<()> {
    let ns = TestNamespace::new("shim-ws").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    // A program that runs a little while, so the phases are well apart.
    let r = post(
        &format!("{}/api/executions", shim.base),
        r#"{"language":"python","source":"import time; time.sleep(1.5); print('done')"}"#,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let ws_url = format!("{}/api/executions/{id}/ws", shim.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let mut phases = Vec::new();
    let mut last = Value::Null;
    let mut close_code = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
        match msg? {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                last = serde_json::from_str(&t)?;
                phases.push(last["status"].as_str().unwrap_or("").to_string());
            }
            tokio_tungstenite::tungstenite::Message::Close(f) => {
                close_code = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(phases, vec!["Pending", "Processing", "Completed"], "{last}");
    assert_eq!(last["stdout"], "done\n");
    assert_eq!(close_code, Some(1000));
    shim.finish(vec![ns]).await
}

#[tokio::test]
async fn shim_sse_streams_until_the_terminal_status_and_redis_loss_falls_back_to_the_cr() -> Result<()> {
    let ns = TestNamespace::new("shim-sse").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let r = post(
        &format!("{}/api/executions", shim.base),
        r#"{"language":"bash","source":"echo sse; echo err >&2"}"#,
    )
    .await?;
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = get(&format!("{}/api/executions/{id}/events", shim.base)).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let events: Vec<Value> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let last_status = events.iter().rev().find(|e| e["status"].is_string()).context("no status event")?;
    assert_eq!(last_status["status"], "Completed", "{}", r.text);
    assert_eq!(last_status["stdout"], "sse\n");
    assert_eq!(last_status["stderr"], "err\n");
    assert!(r.text.contains("event: end"));
    // Drop the mirror's key: the status then comes from the Execution itself.
    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = rce_api::redis_keys::status_key(&ns.name, &id);
    let deleted: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    assert_eq!(deleted, 1, "the operator mirrored the status to {key}");
    let r = get(&format!("{}/api/executions/{id}", shim.base)).await?;
    assert_eq!(r.body["status"], "Completed", "{}", r.text);
    assert_eq!(r.body["stdout"], "sse\n");
    shim.finish(vec![ns]).await
}

#[tokio::test]
async fn shim_auth_rate_limits_tenants_and_a_burst_of_bad_requests() -> Result<()> {
    let a = TestNamespace::new("shim-tenant-a").await?;
    let b = TestNamespace::new("shim-tenant-b").await?;
    let keys =
        format!("key-aaaaaaaa:{},key-bbbbbbbb:{}:1000:1000,slow-key-1:{}:0.2:2", a.name, b.name, a.name);
    let shim = start_shim(&[&a.name, &b.name], &["--auth", "--api-key", &keys]).await?;
    let base = &shim.base;
    let body = r#"{"language":"python","code":"print('tenant')"}"#;
    // No credentials → 401; a wrong key → 401.
    let r = post(&format!("{base}/api/execute"), body).await?;
    assert_eq!(r.status, 401);
    let r = request("POST", &format!("{base}/api/execute"), &[("x-api-key", "nope-nope-nope")], Some(body))
        .await?;
    assert_eq!(r.status, 401);
    // Tenant A submits; its Execution lands in A's namespace; B cannot see it.
    let ka = [("x-api-key", "key-aaaaaaaa")];
    let r = request("POST", &format!("{base}/api/execute"), &ka, Some(body)).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["jobId"].as_str().unwrap().to_string();
    assert!(a.api::<Execution>().get_opt(&id).await?.is_some());
    assert!(b.api::<Execution>().get_opt(&id).await?.is_none());
    let r = request("GET", &format!("{base}/submissions/{id}"), &[("x-auth-token", "key-bbbbbbbb")], None)
        .await?;
    assert_eq!(r.status, 404);
    let done = poll_seed(base, &id, &ka).await?;
    assert_eq!(done["output"], "tenant\n");
    // The slow key: a burst of 2, then 429 with Retry-After.
    let ks = [("authorization", "Bearer slow-key-1")];
    for _ in 0..2 {
        let r = request("GET", &format!("{base}/api/status/{id}"), &ks, None).await?;
        assert_eq!(r.status, 200);
    }
    let r = request("GET", &format!("{base}/api/status/{id}"), &ks, None).await?;
    assert_eq!(r.status, 429);
    assert!(r.headers.get("retry-after").is_some());
    // 1,000 bad requests (malformed JSON, unknown language, oversized, over-limit), 50 at a
    // time; each gets its documented status, and the shim then still serves a good one.
    let kb = ("x-api-key", "key-bbbbbbbb");
    let big = format!(r#"{{"language":"python","code":"{}"}}"#, "x".repeat(300 * 1024));
    let cases: Vec<(String, u16)> = vec![
        ("{\"language\":".to_string(), 400),
        (r#"{"language":"intercal","code":"x"}"#.to_string(), 422),
        (big, 413),
    ];
    let started = std::time::Instant::now();
    let results = futures::stream::iter(0..1000)
        .map(|i| {
            let (body, want) = cases[i % cases.len()].clone();
            let url = format!("{base}/api/execute");
            async move {
                let r = request("POST", &url, &[kb], Some(&body)).await;
                (r.map(|r| r.status).unwrap_or(0), want)
            }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    let wrong: Vec<&(u16, u16)> = results.iter().filter(|(got, want)| got != want).collect();
    assert!(
        wrong.is_empty(),
        "{} of 1000 bad requests got an unexpected status, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    let r = request(
        "POST",
        &format!("{base}/api/executions"),
        &[kb],
        Some(r#"{"language":"python","source":"print(1)","limits":{"wallTimeMs":999999}}"#),
    )
    .await?;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["code"], "limit_exceeded");
    eprintln!("1000 bad requests answered in {:?}", started.elapsed());
    let r = request("POST", &format!("{base}/api/execute"), &[kb], Some(body)).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let good = r.body["jobId"].as_str().unwrap().to_string();
    let done = poll_seed(base, &good, &[kb]).await?;
    assert_eq!(done["verdict"], "Accepted");
    assert!(
        b.api::<Execution>().list(&Default::default()).await?.items.len() == 1,
        "bad requests created nothing"
    );
    shim.finish(vec![a, b]).await
}

// ---------------------------------------------------------------- the playground in a browser

/// A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`).
struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    /// Chromium's profile directory (removed at the end).
    profile: std::path::PathBuf,
}

impl Browser {
    async fn start() -> Result<Browser> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("chromedriver not found: apt-get install chromium chromium-driver")?;
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if get(&format!("{base}/status")).await.is_ok_and(|r| r.body["value"]["ready"] == true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("rce-chromium-{}", rce_tests::random_suffix()));
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let r = post(&format!("{base}/session"), &caps.to_string()).await?;
        let session = r.body["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {}", r.text))?
            .to_string();
        Ok(Browser { driver, base, session, profile })
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = body.to_string();
        let r = request(method, &url, &[], if method == "GET" { None } else { Some(&body) }).await?;
        if r.status != 200 {
            bail!("webdriver {method} {path}: {} {}", r.status, r.text);
        }
        Ok(r.body["value"].clone())
    }

    async fn js(&self, script: &str) -> Result<Value> {
        self.cmd("POST", "/execute/sync", json!({"script": script, "args": []})).await
    }

    /// Wait until `script` returns something truthy; return it.
    async fn until(&self, script: &str, secs: u64) -> Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.js(script).await?;
            if !(v.is_null() || v == false || v == "") {
                return Ok(v);
            }
            if std::time::Instant::now() > deadline {
                bail!("timed out waiting for: {script}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The WebDriver id of the first element matching `css`.
    async fn find(&self, css: &str) -> Result<String> {
        let el = self.cmd("POST", "/element", json!({"using": "css selector", "value": css})).await?;
        Ok(el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .with_context(|| format!("no element {css}"))?
            .to_string())
    }

    async fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.cmd("POST", &format!("/element/{id}/click"), json!({})).await?;
        Ok(())
    }

    /// Real keystrokes into the element (WebDriver key codes: `Browser::CTRL`, `ENTER`, ...;
    /// a modifier stays down until `RELEASE`).
    async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.cmd("POST", &format!("/element/{id}/value"), json!({ "text": text })).await?;
        Ok(())
    }

    const RELEASE: &'static str = "\u{E000}";
    const ENTER: &'static str = "\u{E007}";
    const ESCAPE: &'static str = "\u{E00C}";
    const CTRL: &'static str = "\u{E009}";
    const DELETE: &'static str = "\u{E017}";

    /// The text of the element with this id.
    async fn text(&self, id: &str) -> Result<Value> {
        self.js(&format!("return document.getElementById('{id}').textContent")).await
    }

    /// Choose a language in the playground's list.
    async fn pick(&self, lang: &str) -> Result<Value> {
        self.js(&format!(
            "const s = document.getElementById('language'); s.value = '{lang}'; s.dispatchEvent(new Event('change'));"
        ))
        .await
    }

    /// What the playground's editor holds.
    async fn code(&self) -> Result<Value> {
        self.js("return window.rceEditor.state.doc.toString()").await
    }

    /// Save a screenshot as tests/artifacts/NAME.
    async fn screenshot(&self, name: &str) -> Result<()> {
        use base64::Engine as _;
        let png = self.cmd("GET", "/screenshot", Value::Null).await?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().context("no screenshot")?)?;
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), &bytes)?;
        Ok(())
    }

    async fn close(mut self) {
        if let Err(e) = self.cmd("DELETE", "", json!({})).await {
            eprintln!("closing the WebDriver session: {e:#}");
        }
        let _ = self.driver.kill().await;
    }
}

/// Whatever happened (a failed assertion too): no Chromium left running, no profile left.
/// Chromium's profile lock names its process (`host-pid`) while it runs.
impl Drop for Browser {
    fn drop(&mut self) {
        let pid = std::fs::read_link(self.profile.join("SingletonLock"))
            .ok()
            .and_then(|t| t.to_str().and_then(|t| t.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok()));
        if let Some(pid) = pid {
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*self.profile.to_string_lossy()));
            if ours {
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn shim_playground_runs_code_in_a_real_browser() -> Result<()> {
    let ns = TestNamespace::new("shim-ui").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let browser = Browser::start().await?;
    const VERDICT: &str =
        "const v = document.getElementById('verdict').textContent; return /Accepted|Error|Exceeded|Failed|Answer/.test(v) && v";
    let result = async {
        browser.cmd("POST", "/url", json!({"url": format!("{}/", shim.base)})).await?;
        browser.until("return [...document.querySelectorAll('#language option')].some(o => o.value === 'python')", 30).await?;
        // The page loaded its editor from the shim (nothing else: it has no other origin).
        browser.until("return document.querySelector('#code .cm-editor .cm-content') && !!window.rceEditor", 10).await?;
        let scripts = browser.js("return [...document.scripts].map(s => s.src)").await?;
        assert_eq!(scripts, json!([format!("{}/playground.js", shim.base)]));
        let elsewhere = browser
            .js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin + '/'))")
            .await?;
        assert_eq!(elsewhere, json!([]), "the page loads nothing but from the shim");

        // Python: highlighted (the Runtime's editorMode), with its sample program.
        browser.pick("python").await?;
        assert_eq!(browser.js("return document.getElementById('code').dataset.mode").await?, "python");
        assert!(browser.code().await?.as_str().unwrap_or("").contains("import sys"), "the python sample");
        browser.until("return document.querySelectorAll('.cm-content span.tok-keyword').length", 10).await?;
        let keyword = browser.js("return document.querySelector('.cm-content span.tok-keyword').textContent").await?;
        assert_eq!(keyword, "import");
        // Typed into the editor with real keystrokes (select all, delete, the program line by
        // line; Escape closes any completion list before Enter), run with Ctrl-Enter, over SSE,
        // with stdin.
        browser
            .js("document.getElementById('stdin').value = 'rce playground'; document.getElementById('transport').value = 'sse';")
            .await?;
        let lines = ["import sys", "print(sys.stdin.read().strip()[::-1])", "print(\"to stderr\", file=sys.stderr)"];
        let keys = format!(
            "{}a{}{}{}",
            Browser::CTRL,
            Browser::RELEASE,
            Browser::DELETE,
            lines.join(&format!("{}{}", Browser::ESCAPE, Browser::ENTER))
        );
        browser.type_into(".cm-content", &keys).await?;
        assert_eq!(browser.code().await?, lines.join("\n"), "the editor holds what was typed");
        browser.type_into(".cm-content", &format!("{}{}{}", Browser::CTRL, Browser::ENTER, Browser::RELEASE)).await?;
        let verdict = browser.until(VERDICT, 90).await?;
        assert_eq!(verdict, "Accepted");
        assert_eq!(browser.code().await?, lines.join("\n"), "Ctrl-Enter ran and inserted nothing");
        assert_eq!(browser.text("stdout").await?, "dnuorgyalp ecr\n");
        assert_eq!(browser.text("stderr").await?, "to stderr\n");
        let time = browser.text("time").await?;
        assert!(time.as_str().unwrap_or("").ends_with(" ms"), "{time}");
        let mem = browser.text("memory").await?;
        assert!(mem.as_str().unwrap_or("").ends_with(" MiB"), "{mem}");
        let log = browser.text("log").await?;
        assert!(log.as_str().unwrap_or("").contains("sse: Completed"), "{log}");
        assert!(
            browser.js("return document.querySelectorAll('.cm-content span.tok-string').length").await?.as_u64() > Some(0),
            "the typed program is highlighted too"
        );
        browser.screenshot("playground-editor.png").await?;

        // Plain text: a Runtime without an editorMode gets no highlighting.
        browser.pick("plaintext").await?;
        assert_eq!(browser.js("return document.getElementById('code').dataset.mode").await?, "plaintext");
        browser.until("return window.rceEditor.state.doc.length > 0", 5).await?;
        assert_eq!(browser.js("return document.querySelectorAll('.cm-content [class*=\"tok-\"]').length").await?, 0);

        // Bash over the WebSocket, run with the button: a failing program shows its verdict
        // and exit code.
        browser.pick("bash").await?;
        assert_eq!(browser.js("return document.getElementById('code').dataset.mode").await?, "shell");
        browser
            .js("window.rce.setCode('echo bye; exit 3'); document.getElementById('transport').value = 'ws';")
            .await?;
        browser.click("#run").await?;
        let verdict = browser.until(VERDICT, 90).await?;
        assert!(verdict.as_str().unwrap_or("").starts_with("RuntimeError"), "{verdict}");
        assert_eq!(browser.text("exit").await?, "3");
        let log = browser.text("log").await?;
        assert!(log.as_str().unwrap_or("").contains("ws: Completed"), "{log}");
        browser.screenshot("playground-ws.png").await?;

        // Interactive mode: the output shows while the program runs, each typed line (Enter)
        // is its stdin, the EOF button ends it.
        browser.pick("python").await?;
        browser
            .js("window.rce.setCode('import sys\\nprint(\"ready\", flush=True)\\nfor line in sys.stdin:\\n    print(\"echo \" + line.strip(), flush=True)\\nprint(\"bye\")');
                 const i = document.getElementById('interactive'); i.checked = true; i.dispatchEvent(new Event('change'));")
            .await?;
        browser.click("#run").await?;
        browser.until("return document.getElementById('stdout').textContent.includes('ready')", 120).await?;
        assert_eq!(browser.js("return document.getElementById('console').hidden").await?, false);
        browser.type_into("#typed", &format!("one{}", Browser::ENTER)).await?;
        browser.until("return document.getElementById('stdout').textContent.includes('echo one')", 60).await?;
        let verdict = browser.text("verdict").await?;
        assert!(!verdict.as_str().unwrap_or("").contains("Accepted"), "still running before EOF: {verdict}");
        browser.screenshot("playground-interactive.png").await?;
        browser.click("#eof").await?;
        let verdict = browser.until(VERDICT, 60).await?;
        assert_eq!(verdict, "Accepted");
        assert_eq!(browser.text("stdout").await?, "ready\necho one\nbye\n");
        let log = browser.text("log").await?;
        assert!(log.as_str().unwrap_or("").contains("stdin: one"), "{log}");

        // Test cases: three, added in the panel; one passes, one gives a wrong answer, one's
        // program fails. The table has a row per case with its verdict.
        browser
            .js("const i = document.getElementById('interactive'); i.checked = false; i.dispatchEvent(new Event('change'));
                 window.rce.setCode('import sys\\nn = int(sys.stdin.read())\\nprint(n * 2)\\n');
                 document.getElementById('transport').value = 'sse';")
            .await?;
        for _ in 0..3 {
            browser.click("#add-case").await?;
        }
        let cases = [("double", "2\n", "4\n"), ("wrong", "3\n", "7\n"), ("crash", "x\n", "")];
        for (i, (name, stdin, expected)) in cases.iter().enumerate() {
            let row = format!("#cases .case-input:nth-child({})", i + 1);
            browser.js(&format!("document.querySelector('{row} .case-name').value = ''")).await?;
            browser.type_into(&format!("{row} .case-name"), name).await?;
            browser
                .js(&format!(
                    "document.querySelector('{row} .case-stdin').value = {}; document.querySelector('{row} .case-expected').value = {};",
                    json!(stdin),
                    json!(expected)
                ))
                .await?;
        }
        browser.click("#run").await?;
        // Done: the run button is back (it is off from the click to the last status).
        let verdict = browser
            .until("return !document.getElementById('run').disabled && document.getElementById('verdict').textContent", 120)
            .await?;
        browser.js("window.scrollTo(0, 0)").await?;
        browser.screenshot("playground-tests.png").await?;
        let rows = browser
            .js("return [...document.querySelectorAll('#tests tr.case')].map(r => [r.querySelector('td.name').textContent, r.querySelector('td.verdict').textContent, r.querySelector('td.time').textContent, r.querySelector('td.memory').textContent, r.querySelector('td.stdout').textContent, r.querySelector('td.stderr').textContent])")
            .await?;
        eprintln!("test cases: verdict {verdict}, rows {rows}");
        assert!(
            verdict.as_str().unwrap_or("").starts_with("WrongAnswer"),
            "the first case that did not pass gives the verdict: {verdict}; rows: {rows}"
        );
        let rows: Vec<Vec<String>> = serde_json::from_value(rows)?;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0][..2], ["double", "Accepted"], "{rows:?}");
        assert_eq!(rows[0][4], "4\n", "{rows:?}");
        assert_eq!(rows[1][..2], ["wrong", "WrongAnswer"], "{rows:?}");
        assert_eq!(rows[1][4], "6\n", "{rows:?}");
        assert_eq!(rows[2][..2], ["crash", "RuntimeError"], "{rows:?}");
        assert!(rows[2][5].contains("ValueError"), "the failing case's stderr: {rows:?}");
        for r in &rows {
            assert!(r[2].ends_with(" ms") && r[3].ends_with(" MiB"), "time and memory per case: {rows:?}");
        }
        assert_eq!(browser.text("passed").await?, "1/3");
        // Stop on the first failure: the cases after it are skipped.
        browser.click("#stop-first").await?;
        browser.click("#run").await?;
        browser.until("return document.getElementById('passed').textContent.includes('/') && document.querySelectorAll('#tests tr.case').length === 3 && !document.getElementById('run').disabled", 120).await?;
        let verdicts = browser.js("return [...document.querySelectorAll('#tests tr.case td.verdict')].map(t => t.textContent)").await?;
        assert_eq!(verdicts, json!(["Accepted", "WrongAnswer", "Skipped"]));
        browser.js("window.scrollTo(0, 0)").await?;
        browser.screenshot("playground-tests-stop.png").await?;
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = browser.screenshot("playground-failure.png").await;
        let page = browser.js("return ['verdict', 'stdout', 'stderr', 'log'].map(id => id + ': ' + document.getElementById(id).textContent).join('\\n')").await;
        eprintln!(
            "the page when the test failed (tests/artifacts/playground-failure.png):\n{}",
            page.ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        );
    }
    browser.close().await;
    result?;
    shim.finish(vec![ns]).await
}

/// A program killed by a signal reaches Judge0 clients as Judge0 reports it: SIGSEGV, SIGXFSZ,
/// SIGFPE and SIGABRT have their own statuses; every other signal (SIGSTKFLT, a real-time
/// signal) is 12 "Runtime Error (Other)", with the signal's number in `exit_signal` and the
/// message "Exited with signal N" — never NZEC (11), which is for an exit code.
#[tokio::test]
async fn shim_judge0_signal_kills_have_their_status_and_number() -> Result<()> {
    let ns = TestNamespace::new("shim-judge0-signals").await?;
    let shim = start_shim(&[&ns.name], &[]).await?;
    let b = &shim.base;
    let fields = "status,exit_signal,exit_code,message";
    // (signal to send itself, Judge0 status id, signal number), all four at once.
    let cases = [("STKFLT", 12, 16), ("RTMIN+2", 12, 36), ("SEGV", 7, 11), ("USR1", 12, 10)];
    let replies = futures::future::try_join_all(cases.iter().map(|(sig, _, _)| {
        let body = json!({"language_id": 46, "source_code": format!("kill -{sig} $$; echo not killed")});
        let url = format!("{b}/submissions?wait=true&fields={fields}");
        async move { post(&url, &body.to_string()).await }
    }))
    .await?;
    for ((sig, status, number), r) in cases.iter().zip(replies) {
        assert_eq!(r.status, 201, "{sig}: {}", r.text);
        assert_eq!(r.body["status"]["id"], *status, "{sig}: {}", r.text);
        assert_eq!(r.body["exit_signal"], *number, "{sig}: {}", r.text);
    }
    shim.finish(vec![ns]).await
}
