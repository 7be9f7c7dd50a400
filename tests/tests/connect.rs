//! Live output and interactive execution against the real cluster: Piston's
//! `/api/v2/connect` (upstream's protocol, engineer-man/piston `readme.md` "Interactive
//! execution", `api/src/api/v2.js`), the native SSE stream's live `output` events, the native
//! WebSocket's stdin and EOF, and a client that goes away stopping its program.
//!
//! The client is a WebSocket client of this file's own (tokio-tungstenite) that speaks
//! upstream's messages: no published Piston client speaks `/connect` (npm's `piston-client`
//! 1.0.2 depends on `node-fetch` alone, no WebSocket; there is no `node-piston` on npm);
//! upstream's own `cli/` (`piston -i`) does, but it pipes the terminal's stdin and cannot
//! wait for an answer before the next line.
//!
//! Each test starts the shim from this checkout on a loopback port with an operator of its
//! own (`rce_tests::shim::Shim`). With no cluster (or no Redis) these tests fail; they never
//! skip.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use kube::{api::ListParams, Api};
use rce_api::{Execution, Phase};
use rce_tests::{
    shim::{request, Shim},
    TestNamespace,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(shim: &Shim, path: &str) -> Result<Ws> {
    let url = format!("{}{path}", shim.base.replacen("http://", "ws://", 1));
    Ok(tokio_tungstenite::connect_async(url).await.context("WebSocket connect")?.0)
}

/// The next message within `secs`: its JSON, or `Err(close code)`.
async fn next(ws: &mut Ws, secs: u64) -> Result<std::result::Result<Value, u16>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(secs), ws.next())
            .await
            .with_context(|| format!("no message within {secs} s"))?;
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(Ok(serde_json::from_str(&t)?)),
            Some(Ok(Message::Close(f))) => return Ok(Err(f.map_or(1005, |f| u16::from(f.code)))),
            Some(Ok(_)) => continue,
            other => bail!("the socket ended without a close frame: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: Value) -> Result<()> {
    Ok(ws.send(Message::Text(v.to_string().into())).await?)
}

/// Read Piston messages until stdout holds `want`; returns every message read.
async fn until_stdout(ws: &mut Ws, stdout: &mut String, want: &str, secs: u64) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while !stdout.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
        match next(ws, left).await? {
            Ok(m) => {
                if m["type"] == "data" && m["stream"] == "stdout" {
                    stdout.push_str(m["data"].as_str().unwrap_or_default());
                }
                seen.push(m);
            }
            Err(code) => bail!("closed with {code} before stdout had {want:?}: {seen:?}"),
        }
    }
    Ok(seen)
}

const ECHO_TWO_LINES: &str = concat!(
    "import sys\n",
    "for i in range(2):\n",
    "    line = sys.stdin.readline()\n",
    "    print('got ' + line.strip().upper(), flush=True)\n",
);

#[tokio::test]
async fn connect_a_piston_client_talks_with_an_interactive_python_program() -> Result<()> {
    let ns = TestNamespace::new("connect-py").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let mut ws = ws(&shim, "/api/v2/connect").await?;
    let t0 = Instant::now();
    send(
        &mut ws,
        json!({"type": "init", "language": "python", "version": "*", "files": [{"content": ECHO_TWO_LINES}],
               "run_timeout": 30000}),
    )
    .await?;
    let runtime = next(&mut ws, 30).await?.map_err(|c| anyhow::anyhow!("closed with {c}"))?;
    assert_eq!(runtime["type"], "runtime", "{runtime}");
    assert_eq!(runtime["language"], "python", "{runtime}");
    // The program runs: its stage comes first.
    let stage = next(&mut ws, 120).await?.map_err(|c| anyhow::anyhow!("closed with {c}"))?;
    assert_eq!(stage, json!({"type": "stage", "stage": "run"}));
    let started = t0.elapsed();
    let mut stdout = String::new();
    // Typed after the start; the answer to line 1 comes before line 2 is sent.
    let t1 = Instant::now();
    send(&mut ws, json!({"type": "data", "stream": "stdin", "data": "alpha\n"})).await?;
    until_stdout(&mut ws, &mut stdout, "got ALPHA\n", 60).await?;
    let answer1 = t1.elapsed();
    assert!(!stdout.contains("BETA"), "{stdout}");
    let t2 = Instant::now();
    send(&mut ws, json!({"type": "data", "stream": "stdin", "data": "beta\n"})).await?;
    until_stdout(&mut ws, &mut stdout, "got BETA\n", 60).await?;
    let answer2 = t2.elapsed();
    assert_eq!(stdout, "got ALPHA\ngot BETA\n");
    let mut rest = Vec::new();
    let close = loop {
        match next(&mut ws, 60).await? {
            Ok(m) => rest.push(m),
            Err(code) => break code,
        }
    };
    assert_eq!(rest, vec![json!({"type": "exit", "stage": "run", "code": 0, "signal": null})], "{rest:?}");
    assert_eq!(close, 4999, "{rest:?}");
    eprintln!("connect: stage run after {started:?}; answer 1 after {answer1:?}, answer 2 after {answer2:?}");
    // The Execution was interactive, without stdin in its spec.
    let list = Api::<Execution>::namespaced(ns.client.clone(), &ns.name).list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    assert!(list.items[0].spec.interactive);
    assert_eq!(list.items[0].spec.stdin, None);
    shim.finish(ns).await
}

#[tokio::test]
async fn connect_a_client_that_goes_away_stops_its_program() -> Result<()> {
    let ns = TestNamespace::new("connect-gone").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let mut ws = ws(&shim, "/api/v2/connect").await?;
    let program = "import time\nprint('up', flush=True)\ntime.sleep(25)\nprint('never')\n";
    send(
        &mut ws,
        json!({"type": "init", "language": "python", "version": "*", "files": [{"content": program}],
               "run_timeout": 30000}),
    )
    .await?;
    let mut stdout = String::new();
    until_stdout(&mut ws, &mut stdout, "up\n", 120).await?;
    let gone = Instant::now();
    ws.close(None).await?;
    drop(ws);
    let api = Api::<Execution>::namespaced(ns.client.clone(), &ns.name);
    let ex = loop {
        let list = api.list(&ListParams::default()).await?;
        let ex = list.items.into_iter().next().context("no Execution")?;
        if ex.status.as_ref().and_then(|s| s.phase).is_some_and(Phase::is_terminal) {
            break ex;
        }
        if gone.elapsed() > Duration::from_secs(20) {
            bail!("the program still runs 20 s after its client went away: {:?}", ex.status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let s = ex.status.unwrap();
    assert_eq!(s.signal.as_deref(), Some("SIGKILL"), "{s:?}");
    assert!(!s.stdout.unwrap_or_default().contains("never"));
    eprintln!("connect: stopped {:?} after the client left", gone.elapsed());
    shim.finish(ns).await
}

/// An SSE stream read as it comes: (seconds since the request, event, data).
async fn sse_timed(url: &str, secs: u64) -> Result<Vec<(f64, String, Value)>> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<hyper::body::Bytes>>();
    let t0 = Instant::now();
    let resp = client.get(url.parse()?).await?;
    if resp.status() != 200 {
        bail!("SSE answered {}", resp.status());
    }
    let mut body = resp.into_body();
    let (mut buf, mut events, mut name) = (String::new(), Vec::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let frame = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), body.frame())
            .await
            .context("the SSE stream did not end in time")?;
        let Some(frame) = frame else { break };
        let Ok(data) = frame?.into_data() else { continue };
        buf.push_str(&String::from_utf8_lossy(&data));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            let line = line.trim_end();
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                events.push((t0.elapsed().as_secs_f64(), name.clone(), serde_json::from_str(d)?));
            }
        }
    }
    Ok(events)
}

const PRINT_SLEEP_PRINT: &str =
    "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second', flush=True)\n";

/// The SSE stream of a program that prints, sleeps 2 s and prints: the first output event
/// comes well before the end, the terminal status last.
async fn sse_shows_output_before_the_end(shim: &Shim, body: Value) -> Result<()> {
    let r = request("POST", &format!("{}/api/executions", shim.base), &[], Some(&body.to_string())).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let events = sse_timed(&format!("{}/api/executions/{id}/events", shim.base), 180).await?;
    let brief: Vec<String> = events.iter().map(|(t, n, v)| format!("{t:.2}s {n} {v}")).collect();
    let first = events
        .iter()
        .find(|(_, n, v)| n == "output" && v["text"].as_str().is_some_and(|t| t.contains("first")));
    let second = events
        .iter()
        .find(|(_, n, v)| n == "output" && v["text"].as_str().is_some_and(|t| t.contains("second")));
    let (Some(first), Some(second)) = (first, second) else { bail!("no live output: {brief:#?}") };
    let terminal = events.iter().rev().find(|(_, n, _)| n == "status").context("no status")?;
    assert_eq!(terminal.2["status"], "Completed", "{brief:#?}");
    assert_eq!(terminal.2["stdout"], "first\nsecond\n", "{brief:#?}");
    assert_eq!(events.last().unwrap().1, "end", "{brief:#?}");
    let last_status = events.iter().rposition(|(_, n, _)| n == "status").unwrap();
    assert!(events[..last_status].iter().any(|(_, n, _)| n == "output"), "output before the terminal status");
    assert!(!events[last_status..].iter().any(|(_, n, _)| n == "output"), "{brief:#?}");
    assert!(second.0 - first.0 >= 1.5, "the 2 s sleep lies between the outputs: {brief:#?}");
    assert!(terminal.0 - first.0 >= 1.5, "the first output came well before the end: {brief:#?}");
    eprintln!(
        "sse: first output at {:.2}s, second at {:.2}s, terminal status at {:.2}s",
        first.0, second.0, terminal.0
    );
    Ok(())
}

#[tokio::test]
async fn connect_sse_shows_the_output_of_an_interactive_run_as_it_comes() -> Result<()> {
    let ns = TestNamespace::new("connect-sse").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    sse_shows_output_before_the_end(
        &shim,
        json!({"language": "python", "source": PRINT_SLEEP_PRINT, "interactive": true}),
    )
    .await?;
    shim.finish(ns).await
}

#[tokio::test]
async fn connect_the_native_websocket_sends_stdin_and_eof() -> Result<()> {
    let ns = TestNamespace::new("connect-eof").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let program = "import sys\ndata = sys.stdin.read()\nprint(len(data), repr(data))\n";
    let body = json!({"language": "python", "source": program, "interactive": true});
    let r = request("POST", &format!("{}/api/executions", shim.base), &[], Some(&body.to_string())).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let mut ws = ws(&shim, &format!("/api/executions/{id}/ws")).await?;
    send(&mut ws, json!({"type": "stdin", "text": "héllo\n"})).await?;
    send(&mut ws, json!({"type": "stdin", "base64": "AAE="})).await?;
    send(&mut ws, json!({"type": "eof"})).await?;
    let mut msgs = Vec::new();
    let close = loop {
        match next(&mut ws, 180).await? {
            Ok(m) => msgs.push(m),
            Err(code) => break code,
        }
    };
    assert_eq!(close, 1000, "{msgs:?}");
    let live: String = msgs
        .iter()
        .filter(|m| m["type"] == "output" && m["stream"] == "stdout")
        .filter_map(|m| m["text"].as_str())
        .collect();
    let want = "8 'héllo\\n\\x00\\x01'\n";
    assert_eq!(live, want, "{msgs:?}");
    let last = msgs.last().unwrap();
    assert_eq!((&last["status"], &last["stdout"]), (&json!("Completed"), &json!(want)), "{msgs:?}");
    shim.finish(ns).await
}

#[tokio::test]
async fn connect_sse_shows_the_output_of_a_warm_run_as_it_comes() -> Result<()> {
    use rce_api::WarmPool;
    let ns = TestNamespace::new("connect-warm").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let pools = Api::<WarmPool>::namespaced(ns.client.clone(), &ns.name);
    let pool: WarmPool = serde_json::from_value(json!({
        "apiVersion": "rce.dev/v1alpha1", "kind": "WarmPool",
        "metadata": {"name": "python", "labels": {rce_tests::operator::LABEL: ns.name}},
        "spec": {"runtime": "python", "replicas": 1}
    }))?;
    pools.create(&Default::default(), &pool).await?;
    let t = Instant::now();
    loop {
        let p = pools.get("python").await?;
        if p.status.as_ref().is_some_and(|s| s.ready_replicas >= 1) {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the pool has no ready Pod after 120 s: {:?}", p.status);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("warm: the pool was ready after {:?}", t.elapsed());
    // Not interactive: live output comes from any run in a serving (here warm) sandbox.
    sse_shows_output_before_the_end(&shim, json!({"language": "python", "source": PRINT_SLEEP_PRINT}))
        .await?;
    let list = Api::<Execution>::namespaced(ns.client.clone(), &ns.name).list(&ListParams::default()).await?;
    let warm: Vec<Option<String>> =
        list.items.iter().map(|e| e.status.as_ref().and_then(|s| s.warm_pool.clone())).collect();
    assert_eq!(warm, vec![Some("python".to_string())], "it ran in the pool's Pod");
    pools.delete("python", &Default::default()).await?;
    shim.finish(ns).await
}

#[tokio::test]
async fn connect_a_compiled_program_has_its_compile_stage_then_its_run_stage() -> Result<()> {
    let ns = TestNamespace::new("connect-c").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let mut ws = ws(&shim, "/api/v2/connect").await?;
    let program = "#include <stdio.h>\nint main(void) { char b[64]; if (fgets(b, sizeof b, stdin)) printf(\"C got %s\", b); return 2; }\n";
    send(&mut ws, json!({"type": "init", "language": "c", "version": "*", "files": [{"content": program}]}))
        .await?;
    assert_eq!(next(&mut ws, 30).await?.map_err(|c| anyhow::anyhow!("closed with {c}"))?["type"], "runtime");
    let mut msgs = Vec::new();
    // Up to the run stage (the compiler's own messages, if any, are compile-stage data).
    loop {
        let m = next(&mut ws, 120).await?.map_err(|c| anyhow::anyhow!("closed with {c}: {msgs:?}"))?;
        let run = m == json!({"type": "stage", "stage": "run"});
        msgs.push(m);
        if run {
            break;
        }
    }
    assert_eq!(msgs.first(), Some(&json!({"type": "stage", "stage": "compile"})), "{msgs:?}");
    assert_eq!(
        msgs[msgs.len() - 2],
        json!({"type": "exit", "stage": "compile", "code": 0, "signal": null}),
        "{msgs:?}"
    );
    send(&mut ws, json!({"type": "data", "stream": "stdin", "data": "x\n"})).await?;
    let mut rest = Vec::new();
    let close = loop {
        match next(&mut ws, 60).await? {
            Ok(m) => rest.push(m),
            Err(code) => break code,
        }
    };
    let stdout: String = rest
        .iter()
        .filter(|m| m["type"] == "data" && m["stream"] == "stdout")
        .filter_map(|m| m["data"].as_str())
        .collect();
    assert_eq!(stdout, "C got x\n", "{rest:?}");
    assert_eq!(
        rest.last(),
        Some(&json!({"type": "exit", "stage": "run", "code": 2, "signal": null})),
        "{rest:?}"
    );
    assert_eq!(close, 4999);
    shim.finish(ns).await
}
