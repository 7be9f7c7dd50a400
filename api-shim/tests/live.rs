//! Live output and interactive execution through the router, against the in-memory cluster
//! and status store (`testing`): the native SSE and WebSocket streams with live output, the
//! native WebSocket's stdin messages, and Piston's `/api/v2/connect`.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use rce_api::{redis_keys::StatusDocument, Execution, ExecutionStatus, Phase, Verdict};
use rce_api_shim::{
    app,
    backend::{Live, OutStream, StdinEntry},
    testing::{seed_runtimes, MemoryCluster, MemoryStatus},
    AppState, Config,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tower::ServiceExt;

struct Env {
    cluster: Arc<MemoryCluster>,
    status: Arc<MemoryStatus>,
    app: Router,
}

fn env(args: &[&str]) -> Env {
    let mut argv = vec!["rce-api-shim"];
    argv.extend_from_slice(args);
    let config = Config::parse_from(argv);
    let cluster = MemoryCluster::with_runtimes(seed_runtimes());
    let status = Arc::new(MemoryStatus::default());
    let state = AppState::new(config, cluster.clone(), status.clone())
        .unwrap()
        .with_poll_interval(Duration::from_millis(50));
    Env { cluster, status, app: app(state) }
}

fn doc(ex: &Execution, status: ExecutionStatus) -> StatusDocument {
    StatusDocument {
        namespace: ex.metadata.namespace.clone().unwrap(),
        name: ex.metadata.name.clone().unwrap(),
        uid: ex.metadata.uid.clone().unwrap_or_default(),
        language: ex.spec.language.clone(),
        status,
    }
}

fn completed(stdout: &str) -> ExecutionStatus {
    ExecutionStatus {
        phase: Some(Phase::Completed),
        verdict: Some(Verdict::Accepted),
        exit_code: Some(0),
        stdout: Some(stdout.into()),
        stderr: Some(String::new()),
        ..Default::default()
    }
}

fn out(stream: OutStream, data: &[u8]) -> Live {
    Live::Output { stream, data: data.to_vec() }
}

/// One step of a scripted operator.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // a test script of a few steps
enum Step {
    Status(ExecutionStatus),
    Live(Live),
}

/// Play the operator for the one Execution the test creates: wait for it, then the steps.
fn operator(e: &Env, steps: Vec<Step>) -> tokio::task::JoinHandle<Execution> {
    let (cluster, status) = (e.cluster.clone(), e.status.clone());
    tokio::spawn(async move {
        let ex = loop {
            if let Some(ex) = cluster.all().into_iter().next() {
                break ex;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Let the follower subscribe first.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (ns, name) = (ex.metadata.namespace.clone().unwrap(), ex.metadata.name.clone().unwrap());
        for step in steps {
            match step {
                Step::Status(st) => {
                    cluster.set_status(&ns, &name, st.clone());
                    status.publish(doc(&ex, st));
                }
                Step::Live(l) => status.append_live(&ns, &name, l),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ex
    })
}

fn pending() -> Step {
    Step::Status(ExecutionStatus { phase: Some(Phase::Pending), ..Default::default() })
}

fn processing() -> Step {
    Step::Status(ExecutionStatus { phase: Some(Phase::Processing), ..Default::default() })
}

async fn create(e: &Env, body: Value) -> (StatusCode, Value) {
    let req = Request::post("/api/executions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = e.app.clone().oneshot(req).await.unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The SSE stream of an Execution, read to its end: (event, data) pairs.
async fn sse(e: &Env, id: &str) -> Vec<(String, Value)> {
    let req = Request::get(format!("/api/executions/{id}/events")).body(Body::empty()).unwrap();
    let resp = e.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body =
        tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await.unwrap().unwrap();
    let text = String::from_utf8(body.to_bytes().to_vec()).unwrap();
    let mut events = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            events.push((name.clone(), serde_json::from_str(d).unwrap()));
        }
    }
    events
}

/// What a test reads of a stream: the event name and the part that matters.
fn brief(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(n, v)| match n.as_str() {
            "status" => format!("status {}", v["status"].as_str().unwrap()),
            "output" => format!(
                "output {} {}",
                v["stream"].as_str().unwrap(),
                v.get("text").or(v.get("base64")).unwrap()
            ),
            "stage" => format!("stage {}", v["stage"].as_str().unwrap()),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn sse_interleaves_live_output_with_the_status_and_ends_with_the_terminal_one() {
    let e = env(&[]);
    let (code, b) = create(&e, json!({"language": "python", "source": "print(1)"})).await;
    assert_eq!(code, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let euro = "€".as_bytes();
    operator(
        &e,
        vec![
            pending(),
            processing(),
            Step::Live(Live::Stage("run".into())),
            Step::Live(out(OutStream::Stdout, b"hel")),
            Step::Live(out(OutStream::Stdout, &[b'l', b'o', b' ', euro[0]])),
            Step::Live(out(OutStream::Stdout, &euro[1..])),
            Step::Live(out(OutStream::Stderr, &[0xff])),
            // The terminal status may come before the last live entries: it still ends the stream.
            Step::Status(completed("hello €")),
            Step::Live(out(OutStream::Stdout, b"!")),
            Step::Live(Live::End),
        ],
    );
    let events = sse(&e, &id).await;
    assert_eq!(
        brief(&events),
        vec![
            "status Pending",
            "status Processing",
            "stage run",
            r#"output stdout "hel""#,
            r#"output stdout "lo ""#,
            r#"output stdout "€""#,
            r#"output stderr "/w==""#,
            r#"output stdout "!""#,
            "status Completed",
            "end",
        ],
        "{events:?}"
    );
}

#[tokio::test]
async fn live_output_stops_at_the_output_limit() {
    let e = env(&["--cap-output-bytes", "5"]);
    let (_, b) = create(&e, json!({"language": "python", "source": "print(1)"})).await;
    let id = b["id"].as_str().unwrap().to_string();
    operator(
        &e,
        vec![
            processing(),
            Step::Live(out(OutStream::Stdout, b"abc")),
            Step::Live(out(OutStream::Stdout, b"defgh")),
            Step::Live(out(OutStream::Stdout, b"ijk")),
            Step::Live(out(OutStream::Stderr, b"12345678")),
            Step::Live(Live::End),
            Step::Status(completed("abcde")),
        ],
    );
    let got = brief(&sse(&e, &id).await);
    assert_eq!(
        got.iter().filter(|l| l.starts_with("output")).collect::<Vec<_>>(),
        vec![r#"output stdout "abc""#, r#"output stdout "de""#, r#"output stderr "12345""#],
        "{got:?}"
    );
    assert_eq!(got.last().unwrap(), "end");
}

#[tokio::test]
async fn without_redis_the_streams_are_the_status_alone_and_end() {
    let e = env(&[]);
    let (_, b) = create(&e, json!({"language": "python", "source": "print(1)"})).await;
    let id = b["id"].as_str().unwrap().to_string();
    *e.status.down.lock().unwrap() = true;
    let cluster = e.cluster.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.set_status("default", &id2, completed("1\n"));
    });
    let got = brief(&sse(&e, &id).await);
    assert_eq!(got.first().unwrap(), "status Pending", "{got:?}");
    assert_eq!(&got[got.len() - 2..], ["status Completed", "end"], "{got:?}");
    assert!(!got.iter().any(|l| l.starts_with("output")), "{got:?}");
}

async fn serve(e: &Env) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = e.app.clone();
    (addr, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message: its JSON, or `Err(close code)`.
async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s") {
            Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(WsMessage::Close(f))) => return Err(f.map_or(1005, |f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(WsMessage::Text(v.to_string().into())).await.unwrap();
}

/// Wait until the Execution's stdin stream holds `n` entries.
async fn stdin_entries(e: &Env, name: &str, n: usize) -> Vec<StdinEntry> {
    for _ in 0..200 {
        let got = e.status.stdin_of("default", name);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    e.status.stdin_of("default", name)
}

#[tokio::test]
async fn the_native_websocket_carries_output_and_an_interactive_executions_stdin() {
    let e = env(&[]);
    let (code, b) =
        create(&e, json!({"language": "python", "source": "input()", "interactive": true, "stdin": "x"}))
            .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (code, b) = create(&e, json!({"language": "python", "source": "input()", "interactive": true})).await;
    assert_eq!(code, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    assert!(e.cluster.all()[0].spec.interactive);
    let (addr, server) = serve(&e).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/executions/{id}/ws")).await.unwrap();
    send(&mut ws, json!({"type": "stdin", "text": "line 1\n"})).await;
    send(&mut ws, json!({"type": "stdin", "base64": "AAE="})).await;
    send(&mut ws, json!({"type": "signal", "signal": "SIGNOPE"})).await;
    send(&mut ws, json!({"type": "signal", "signal": "SIGINT"})).await;
    send(&mut ws, json!({"type": "eof"})).await;
    assert_eq!(
        stdin_entries(&e, &id, 4).await,
        vec![
            StdinEntry::Data(b"line 1\n".to_vec()),
            StdinEntry::Data(vec![0, 1]),
            StdinEntry::Signal("SIGINT".into()),
            StdinEntry::Eof
        ]
    );
    operator(
        &e,
        vec![
            processing(),
            Step::Live(Live::Stage("run".into())),
            Step::Live(out(OutStream::Stdout, b"got line 1\n")),
            Step::Live(Live::End),
            Step::Status(completed("got line 1\n")),
        ],
    );
    let mut got = Vec::new();
    let close = loop {
        match next(&mut ws).await {
            Ok(v) => got.push(v),
            Err(code) => break code,
        }
    };
    assert_eq!(close, 1000, "{got:?}");
    assert_eq!(got[0]["status"], "Pending", "{got:?}");
    assert_eq!(got[1], json!({"type": "error", "message": "unknown signal \"SIGNOPE\""}), "{got:?}");
    let live: Vec<&Value> = got.iter().filter(|v| v.get("type").is_some_and(|t| t != "error")).collect();
    assert_eq!(
        live,
        vec![
            &json!({"type": "stage", "stage": "run"}),
            &json!({"type": "output", "stream": "stdout", "text": "got line 1\n"})
        ]
    );
    assert_eq!(got.last().unwrap()["status"], "Completed");

    // A program that is not interactive takes no stdin.
    let e2 = env(&[]);
    let (_, b) = create(&e2, json!({"language": "python", "source": "print(1)"})).await;
    let id = b["id"].as_str().unwrap().to_string();
    let (addr2, server2) = serve(&e2).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr2}/api/executions/{id}/ws")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["status"], "Pending");
    send(&mut ws, json!({"type": "stdin", "text": "x"})).await;
    assert_eq!(
        next(&mut ws).await.unwrap()["message"],
        "this execution is not interactive: it takes no stdin"
    );
    assert!(e2.status.stdin_of("default", &id).is_empty());
    server.abort();
    server2.abort();
}

async fn connect(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/api/v2/connect")).await.unwrap().0
}

fn init() -> Value {
    json!({"type": "init", "language": "python", "version": "3.11.2", "files": [{"content": "print(input())"}], "stdin": "ignored"})
}

#[tokio::test]
async fn piston_connect_refuses_as_upstream_does() {
    let e = env(&[]);
    let (addr, server) = serve(&e).await;
    // No init within a second.
    let mut ws = connect(addr).await;
    let t = std::time::Instant::now();
    assert_eq!(next(&mut ws).await, Err(4001));
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    // Data and signals before init.
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "data", "stream": "stdin", "data": "x"})).await;
    assert_eq!(next(&mut ws).await, Err(4003));
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "signal", "signal": "SIGKILL"})).await;
    assert_eq!(next(&mut ws).await, Err(4003));
    // Unreadable JSON; an invalid init (the messages of /execute).
    let mut ws = connect(addr).await;
    ws.send(WsMessage::Text("{nope".into())).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "error");
    assert_eq!(next(&mut ws).await, Err(4002));
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "init", "language": "cobol", "version": "*", "files": [{"content": "x"}]}))
        .await;
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"type": "error", "message": "cobol-* runtime is unknown"})
    );
    assert_eq!(next(&mut ws).await, Err(4002));
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "init", "language": "python", "version": "*"})).await;
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"type": "error", "message": "files is required as an array"})
    );
    assert_eq!(next(&mut ws).await, Err(4002));
    assert!(e.cluster.all().is_empty(), "no Execution for a refused init");
    // An unknown type is ignored; then the checks after init, each on a socket of its own.
    for (msg, code) in [
        (json!({"type": "data", "stream": "stdout", "data": "x"}), 4004),
        (json!({"type": "signal", "signal": "SIGNOPE"}), 4005),
        (json!({"type": "signal", "signal": 9}), 4005),
        (init(), 4000),
    ] {
        let mut ws = connect(addr).await;
        send(&mut ws, json!({"type": "hello"})).await;
        send(&mut ws, init()).await;
        assert_eq!(
            next(&mut ws).await.unwrap(),
            json!({"type": "runtime", "language": "python", "version": "3.11.2"})
        );
        send(&mut ws, msg.clone()).await;
        assert_eq!(next(&mut ws).await, Err(code), "{msg}");
    }
    // Each of those jobs was stopped: nobody could talk to it any more.
    let all = e.cluster.all();
    assert_eq!(all.len(), 4);
    for ex in all {
        let name = ex.metadata.name.unwrap();
        assert_eq!(stdin_entries(&e, &name, 1).await, vec![StdinEntry::Signal("SIGKILL".into())], "{name}");
    }
    server.abort();
}

#[tokio::test]
async fn piston_connect_runs_an_interactive_program() {
    let e = env(&[]);
    let (addr, server) = serve(&e).await;
    let mut ws = connect(addr).await;
    send(&mut ws, init()).await;
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"type": "runtime", "language": "python", "version": "3.11.2"})
    );
    let ex = e.cluster.all().pop().unwrap();
    assert!(ex.spec.interactive);
    assert_eq!(ex.spec.stdin, None, "init's stdin is discarded");
    let name = ex.metadata.name.clone().unwrap();
    send(&mut ws, json!({"type": "data", "stream": "stdin", "data": "hi\n"})).await;
    send(&mut ws, json!({"type": "signal", "signal": "SIGRTMIN+3"})).await;
    assert_eq!(
        stdin_entries(&e, &name, 2).await,
        vec![StdinEntry::Data(b"hi\n".to_vec()), StdinEntry::Signal("SIGRTMIN+3".into())]
    );
    operator(
        &e,
        vec![
            pending(),
            processing(),
            Step::Live(Live::Stage("run".into())),
            Step::Live(out(OutStream::Stdout, b"hi\n")),
            Step::Live(out(OutStream::Stderr, &[0xff, b'!'])),
            Step::Live(Live::End),
            Step::Status(ExecutionStatus {
                verdict: Some(Verdict::RuntimeError),
                exit_code: Some(3),
                ..completed("hi\n")
            }),
        ],
    );
    let mut got = Vec::new();
    let close = loop {
        match next(&mut ws).await {
            Ok(v) => got.push(v),
            Err(c) => break c,
        }
    };
    assert_eq!(
        got,
        vec![
            json!({"type": "stage", "stage": "run"}),
            json!({"type": "data", "stream": "stdout", "data": "hi\n"}),
            json!({"type": "data", "stream": "stderr", "data": "\u{fffd}!"}),
            json!({"type": "exit", "stage": "run", "code": 3, "signal": null}),
        ]
    );
    assert_eq!(close, 4999);
    // Finished: no SIGKILL after the end.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.status.stdin_of("default", &name).len(), 2);
    server.abort();
}

#[tokio::test]
async fn piston_connect_without_a_live_stream_sends_the_result_and_a_client_gone_stops_the_program() {
    let e = env(&[]);
    let (addr, server) = serve(&e).await;
    let mut ws = connect(addr).await;
    send(&mut ws, init()).await;
    assert_eq!(next(&mut ws).await.unwrap()["type"], "runtime");
    operator(&e, vec![processing(), Step::Status(completed("out\n"))]);
    let mut got = Vec::new();
    while let Ok(v) = next(&mut ws).await {
        got.push(v);
    }
    assert_eq!(
        got,
        vec![
            json!({"type": "stage", "stage": "run"}),
            json!({"type": "data", "stream": "stdout", "data": "out\n"}),
            json!({"type": "exit", "stage": "run", "code": 0, "signal": null}),
        ]
    );

    // A client that goes away while its program runs: the program gets SIGKILL.
    let e = env(&[]);
    let (addr2, server2) = serve(&e).await;
    let mut ws = connect(addr2).await;
    send(&mut ws, init()).await;
    assert_eq!(next(&mut ws).await.unwrap()["type"], "runtime");
    let name = e.cluster.all()[0].metadata.name.clone().unwrap();
    ws.close(None).await.unwrap();
    drop(ws);
    assert_eq!(stdin_entries(&e, &name, 1).await, vec![StdinEntry::Signal("SIGKILL".into())]);
    server.abort();
    server2.abort();
}
