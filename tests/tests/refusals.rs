//! The shim and the operator refuse the same submissions with the same words: file names,
//! file lists and limits go through the domain core's one definition on both sides. A
//! submission the shim lets through is one the operator accepts, and what the shim refuses
//! it refuses at once with the message the operator would have written into the status.
//!
//! Pure: the shim's router over its in-memory cluster, and the operator's `validate::plan`,
//! fed the same Runtime and the same ceilings.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use clap::Parser;
use http_body_util::BodyExt;
use rce_api::{ExecutionSpec, Runtime};
use rce_api_shim::testing::{seed_runtimes, MemoryCluster, MemoryStatus};
use rce_operator::validate::plan;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Ceilings given to both sides (below the built-in ones, so that they are what refuses).
const CAPS: [&str; 4] = ["--cap-memory-mib", "256", "--cap-wall-time-ms", "12000"];

async fn shim(body: Value) -> (StatusCode, Value) {
    let mut argv = vec!["rce-api-shim"];
    argv.extend_from_slice(&CAPS);
    let config = rce_api_shim::Config::parse_from(argv);
    let cluster = MemoryCluster::with_runtimes(seed_runtimes());
    let state = rce_api_shim::AppState::new(config, cluster, Arc::new(MemoryStatus::default())).unwrap();
    let req = Request::post("/api/executions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = rce_api_shim::app(state).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn operator(body: &Value) -> Result<(), String> {
    let mut argv = vec!["rce-operator"];
    argv.extend_from_slice(&CAPS);
    let settings = rce_operator::Config::parse_from(argv).sandbox();
    let runtime: Runtime =
        seed_runtimes().into_iter().find(|r| r.metadata.name.as_deref() == Some("python")).unwrap();
    let spec: ExecutionSpec = serde_json::from_value(body.clone()).unwrap();
    plan(&spec, &runtime, &settings).map(|_| ()).map_err(|e| e.0)
}

/// Both refuse `body`, with the same message; returns it.
async fn both_refuse(body: Value) -> String {
    let (status, reply) = shim(body.clone()).await;
    let by_operator = operator(&body).expect_err(&format!("the operator accepted {body}"));
    assert!(status.is_client_error(), "the shim answered {status} to {body}: {reply}");
    let by_shim = reply["error"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(by_shim, by_operator, "different words for {body}");
    by_shim
}

/// Both accept `body`.
async fn both_accept(body: Value) {
    let (status, reply) = shim(body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "the shim refused {body}: {reply}");
    operator(&body).unwrap_or_else(|e| panic!("the operator refused {body}: {e}"));
}

fn files(names: &[&str]) -> Value {
    json!({
        "language": "python",
        "files": names.iter().map(|n| json!({"name": n, "content": "print(1)"})).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn file_names_are_refused_alike() {
    let bad = [
        "../x.py",
        "/etc/passwd",
        "a//b.py",
        "./a.py",
        "dir/",
        "",
        "a\\b.py",
        "-o",
        "@opts",
        "tab\there.py",
        "nul\0.py",
        "del\u{7f}.py",
        "c1\u{85}.py",
    ];
    for name in bad {
        let msg = both_refuse(files(&[name])).await;
        assert!(msg.contains("is not allowed"), "{name:?}: {msg}");
    }
    let long = "x".repeat(256);
    both_refuse(files(&[&long])).await;
    let dup = both_refuse(files(&["a.py", "a.py"])).await;
    assert!(dup.contains("twice"), "{dup}");
    let many: Vec<String> = (0..65).map(|i| format!("f{i}.py")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    both_refuse(files(&many)).await;
    let empty = both_refuse(json!({"language": "python", "files": []})).await;
    assert!(empty.contains("empty"), "{empty}");
    let b64 =
        json!({"language": "python", "files": [{"name": "a.py", "content": "%%%", "encoding": "base64"}]});
    let msg = both_refuse(b64).await;
    assert!(msg.contains("not valid base64"), "{msg}");

    both_accept(files(&["main.py", "lib/util.py", "a-b@c.py", &"x".repeat(255)])).await;
}

#[tokio::test]
async fn limits_are_refused_alike() {
    let cases = [
        (json!({"memoryMiB": 300}), "limits.memoryMiB = 300 exceeds the maximum of 256"),
        (json!({"wallTimeMs": 13000}), "limits.wallTimeMs = 13000 exceeds the maximum of 12000"),
        // The Runtime's maximum, below the ceiling.
        (json!({"cpuTimeMs": 10001}), "limits.cpuTimeMs = 10001 exceeds the maximum of 10000"),
        (json!({"processes": 0}), "limits.processes must be greater than 0"),
    ];
    for (limits, want) in cases {
        let msg = both_refuse(json!({"language": "python", "source": "print(1)", "limits": limits})).await;
        assert_eq!(msg, want);
    }
    both_accept(json!({"language": "python", "source": "print(1)", "limits": {"memoryMiB": 256, "wallTimeMs": 12000}}))
        .await;
}
