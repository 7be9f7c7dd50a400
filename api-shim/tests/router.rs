//! Router tests: `app(state).oneshot(request)` against in-memory stand-ins for the cluster
//! and Redis; one test serves on a real port; one talks to a real redis-server.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    Router,
};
use clap::Parser;
use http_body_util::BodyExt;
use rce_api::{redis_keys::StatusDocument, Execution, ExecutionStatus, Phase, Verdict};
use rce_api_shim::{
    app,
    testing::{seed_runtimes, MemoryCluster, MemoryStatus},
    AppState, Config,
};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Env {
    cluster: Arc<MemoryCluster>,
    status: Arc<MemoryStatus>,
    app: Router,
    state: AppState,
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
    Env { cluster, status, app: app(state.clone()), state }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, body)
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn with(mut req: Request<Body>, name: &str, value: &str) -> Request<Body> {
    req.headers_mut()
        .insert(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    req
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
        time_ms: Some(12),
        wall_time_ms: Some(40),
        memory_kib: Some(9000),
        submitted_at: Some("2026-01-01T00:00:00Z".into()),
        finished_at: Some("2026-01-01T00:00:01Z".into()),
        ..Default::default()
    }
}

/// Play the operator: for every new Execution, publish Pending → Processing → `last`.
fn fake_operator(cluster: Arc<MemoryCluster>, status: Arc<MemoryStatus>, last: ExecutionStatus) {
    tokio::spawn(async move {
        let mut done = std::collections::HashSet::new();
        for _ in 0..400 {
            for ex in cluster.all() {
                let name = ex.metadata.name.clone().unwrap();
                if !done.insert(name.clone()) {
                    continue;
                }
                let (cluster, status, last) = (cluster.clone(), status.clone(), last.clone());
                tokio::spawn(async move {
                    // Let the waiter subscribe first, as a real run takes about a second.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    for st in [
                        ExecutionStatus { phase: Some(Phase::Pending), ..Default::default() },
                        ExecutionStatus { phase: Some(Phase::Processing), ..Default::default() },
                        last,
                    ] {
                        cluster.set_status(ex.metadata.namespace.as_deref().unwrap(), &name, st.clone());
                        status.publish(doc(&ex, st));
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

// ---------------------------------------------------------------- the seed's API

#[tokio::test]
async fn seed_execute_answers_exactly_like_the_seed_and_creates_an_execution() {
    let e = env(&[]);
    let (code, _, body) =
        call(&e.app, post("/api/execute", r#"{"language":"python","code":"print(1)"}"#)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 3, "exactly the seed's keys: {body}");
    assert_eq!(body["status"], "Pending");
    assert_eq!(body["message"], "Job submitted successfully");
    let id = body["jobId"].as_str().unwrap();
    let all = e.cluster.all();
    assert_eq!(all.len(), 1);
    let ex = &all[0];
    assert_eq!(ex.metadata.name.as_deref(), Some(id));
    assert_eq!(ex.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(ex.spec.language, "python");
    assert_eq!(ex.spec.source.as_deref(), Some("print(1)"));
}

#[tokio::test]
async fn seed_status_reads_the_cluster_then_the_redis_mirror() {
    let e = env(&[]);
    let (_, _, body) = call(&e.app, post("/api/execute", r#"{"language":"py","code":"print(42)"}"#)).await;
    let id = body["jobId"].as_str().unwrap().to_string();
    // No Redis document yet: the Execution itself answers (Pending).
    let (code, _, st) = call(&e.app, get(&format!("/api/status/{id}"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(st["status"], "Pending");
    assert_eq!(st["output"], Value::Null);
    assert!(st["submittedAt"].is_string(), "{st}");
    let at = st["submittedAt"].as_str().unwrap();
    assert!(at.len() == 24 && at.ends_with('Z') && at.as_bytes()[19] == b'.', "toISOString() format: {at}");
    // The mirror says Completed.
    let ex = e.cluster.all().remove(0);
    e.status.publish(doc(&ex, completed("42\n")));
    let (_, _, st) = call(&e.app, get(&format!("/api/status/{id}"))).await;
    assert_eq!(st["status"], "Completed");
    assert_eq!(st["output"], "42\n");
    assert_eq!(st["stdout"], "42\n");
    assert_eq!(st["verdict"], "Accepted");
    assert_eq!(st["exitCode"], 0);
    assert_eq!(st["time"], 12);
    assert_eq!(st["memory"], 9000);
    // JavaScript's toISOString(), as the seed wrote it.
    assert_eq!(st["submittedAt"], "2026-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn unknown_job_is_a_404_in_json() {
    let e = env(&[]);
    for id in ["0b7e4a4e-0000-4000-8000-000000000000", "NOT..valid!"] {
        let (code, headers, body) = call(&e.app, get(&format!("/api/status/{id}"))).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
        assert_eq!(body["error"], "Job not found");
        assert_eq!(body["code"], "not_found");
    }
    let (code, _, body) = call(&e.app, get("/no/such/route")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn health_is_ok() {
    let e = env(&[]);
    let (code, _, body) = call(&e.app, get("/health")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_gets_the_documented_status_and_shape() {
    let e = env(&["--body-limit", "1024"]);
    // Malformed JSON → 400, on every surface, in each surface's shape.
    let (code, _, body) = call(&e.app, post("/api/execute", r#"{"language": "python", "code": "#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("malformed JSON"), "{body}");
    let (code, _, body) = call(&e.app, post("/api/executions", "{not json")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "malformed_json");
    let (code, _, body) = call(&e.app, post("/submissions", "[1,")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "{body}");
    let (code, _, body) = call(&e.app, post("/api/v2/execute", "nope")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["message"].is_string(), "{body}");
    // Missing fields (seed) → 400 with the seed's message.
    let (code, _, body) = call(&e.app, post("/api/execute", r#"{"language":"python"}"#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "language and code are required");
    // Unknown language → 422 listing the known ones.
    let (code, _, body) = call(&e.app, post("/api/execute", r#"{"language":"cobol","code":"x"}"#)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "unknown_language");
    assert_eq!(body["known"], json!(["bash", "javascript", "python"]));
    let (code, _, body) = call(&e.app, post("/api/executions", r#"{"language":"cobol","source":"x"}"#)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["known"], json!(["bash", "javascript", "python"]));
    // Over the body limit → 413, before parsing (the body is not even JSON).
    let big = "x".repeat(2048);
    let (code, _, body) = call(&e.app, post("/api/execute", &big)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");
    let code_too_big = format!(r#"{{"language":"python","source":"{}"}}"#, "a".repeat(2000));
    let (code, _, _) = call(&e.app, post("/api/executions", &code_too_big)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    // Limits over the Runtime's maximum → 422 naming the field and the maximum.
    let (code, _, body) = call(
        &e.app,
        post("/api/executions", r#"{"language":"python","source":"1","limits":{"memoryMiB":4096}}"#),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "limit_exceeded");
    assert_eq!(body["error"]["field"], "memoryMiB");
    assert_eq!(body["error"]["maximum"], 512);
    // Path traversal in file names → 422.
    let (code, _, _) = call(
        &e.app,
        post("/api/executions", r#"{"language":"python","files":[{"name":"../x.py","content":"1"}]}"#),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.cluster.all().is_empty(), "nothing was created by bad requests");
}

#[tokio::test]
async fn internal_errors_are_not_echoed() {
    let e = env(&[]);
    e.cluster.set_down(true);
    let (code, headers, body) =
        call(&e.app, post("/api/execute", r#"{"language":"python","code":"1"}"#)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let text = body.to_string();
    assert!(!text.contains("10.0.0.1") && !text.contains("refused"), "{text}");
}

/// Seen in CI: a submission reaching a shim whose Runtime cache had not listed yet got
/// 422 "unknown language \"python\"; known languages: " (an empty catalog is not the truth).
#[tokio::test]
async fn before_the_catalog_is_read_submissions_get_503_not_unknown_language() {
    let e = env(&[]);
    *e.cluster.unsynced.lock().unwrap() = true;
    for req in [
        post("/api/execute", r#"{"language":"python","code":"1"}"#),
        post("/api/executions", r#"{"language":"python","source":"1"}"#),
        post("/submissions?wait=false", r#"{"language_id":71,"source_code":"1"}"#),
        post("/api/v2/execute", r#"{"language":"python","version":"*","files":[{"content":"1"}]}"#),
        get("/api/languages"),
        get("/languages"),
        get("/api/v2/runtimes"),
    ] {
        let uri = req.uri().to_string();
        let (code, headers, body) = call(&e.app, req).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert!(headers.contains_key(header::RETRY_AFTER), "{uri}");
    }
    assert!(e.cluster.all().is_empty(), "nothing was created");
    *e.cluster.unsynced.lock().unwrap() = false;
    let (code, _, body) = call(&e.app, post("/api/execute", r#"{"language":"python","code":"1"}"#)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let e = env(&["--max-pending", "5", "--retry-after-secs", "7"]);
    e.cluster.set_pending(Some(5));
    let (code, headers, body) =
        call(&e.app, post("/api/execute", r#"{"language":"python","code":"1"}"#)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "7");
    assert_eq!(body["code"], "queue_full");
    let (code, _, body) = call(&e.app, post("/submissions", r#"{"language_id":71,"source_code":"1"}"#)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string());
    e.cluster.set_pending(Some(4));
    let (code, _, _) = call(&e.app, post("/api/execute", r#"{"language":"python","code":"1"}"#)).await;
    assert_eq!(code, StatusCode::OK);
}

// ---------------------------------------------------------------- CORS

#[tokio::test]
async fn cors_preflight_allows_configured_origins_only() {
    let e = env(&[]);
    let pre = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/execute")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (code, headers, _) = call(&e.app, pre("http://localhost:5173")).await;
    assert!(code.is_success(), "{code}");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:5173");
    assert!(headers[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().contains("POST"));
    let (_, headers, _) = call(&e.app, pre("http://evil.example")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let e = env(&["--cors-origin", "http://ui.test:9000"]);
    let (_, headers, _) = call(&e.app, pre("http://ui.test:9000")).await;
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://ui.test:9000");
}

// ---------------------------------------------------------------- Judge0

#[tokio::test]
async fn judge0_submit_and_read_with_fields_and_base64() {
    let e = env(&[]);
    let (code, _, body) = call(
        &e.app,
        post(
            "/submissions?base64_encoded=true",
            &json!({"language_id": 71, "source_code": "cHJpbnQoaW5wdXQoKSk=", "stdin": "aGk=", "cpu_time_limit": "2",
                    "memory_limit": 65536, "command_line_arguments": "a 'b c'"})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body.as_object().unwrap().len(), 1);
    let ex = e.cluster.all().remove(0);
    assert_eq!(ex.spec.source.as_deref(), Some("print(input())"));
    assert_eq!(ex.spec.stdin.as_deref(), Some("hi"));
    assert_eq!(ex.spec.args, vec!["a", "b c"]);
    let l = ex.spec.limits.unwrap();
    assert_eq!(l.cpu_time_ms, Some(2000));
    assert_eq!(l.memory_mib, Some(64));
    // In queue.
    let (code, _, s) = call(&e.app, get(&format!("/submissions/{token}"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(s["status"], json!({"id": 1, "description": "In Queue"}));
    assert_eq!(s["token"], token.as_str());
    // Finished, with a signal.
    let st = ExecutionStatus {
        phase: Some(Phase::Completed),
        verdict: Some(Verdict::RuntimeError),
        signal: Some("SIGSEGV".into()),
        stdout: Some("hi\n".into()),
        time_ms: Some(31),
        memory_kib: Some(2048),
        ..Default::default()
    };
    e.cluster.set_status("default", &token, st.clone());
    e.status.publish(doc(&ex, st));
    let (_, _, s) = call(&e.app, get(&format!("/submissions/{token}?base64_encoded=true"))).await;
    assert_eq!(s["status"]["id"], 7);
    assert_eq!(s["status"]["description"], "Runtime Error (SIGSEGV)");
    // Ruby's Base64.encode64, as upstream answers it: lines of 60, each ending in "\n".
    assert_eq!(s["stdout"], "aGkK\n");
    assert_eq!(s["time"], "0.031");
    assert_eq!(s["memory"], 2048);
    let (_, _, s) = call(
        &e.app,
        get(&format!("/submissions/{token}?fields=stdout,status_id,exit_signal,language_id,source_code")),
    )
    .await;
    assert_eq!(
        s,
        json!({"stdout": "hi\n", "status_id": 7, "exit_signal": 11, "language_id": 71, "source_code": "print(input())"})
    );
    let (code, _, s) = call(&e.app, get(&format!("/submissions/{token}?fields=stdout,bogus"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(s, json!({"error": "invalid fields: [bogus]"}));
    let (code, _, s) = call(&e.app, get("/submissions/0b7e4a4e-0000-4000-8000-000000000000")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(s["error"].is_string());
}

#[tokio::test]
async fn judge0_validation_errors_are_field_errors() {
    let e = env(&[]);
    let (code, _, body) = call(&e.app, post("/submissions", r#"{"language_id": 9999}"#)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["source_code"], json!(["can't be blank"]));
    assert_eq!(body["language_id"], json!(["language with id 9999 doesn't exist"]));
    let (code, _, body) = call(
        &e.app,
        post(
            "/submissions",
            r#"{"language_id": 71, "source_code": "1", "wall_time_limit": 100, "cpu_time_limit": 0}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // 0 is isolate's "no limit": the largest rce allows; the wall-clock limit is still refused.
    assert_eq!(body, json!({"wall_time_limit": ["must be less than or equal to 15.0"]}));
    let (code, _, body) = call(
        &e.app,
        post("/submissions", r#"{"language_id": 71, "source_code": "1", "wall_time_limit": 100}"#),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["wall_time_limit"], json!(["must be less than or equal to 15.0"]));
    let (code, _, body) = call(
        &e.app,
        post("/submissions", r#"{"language_id": 71, "source_code": "1", "enable_network": true}"#),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["enable_network"], json!(["enabling network is not allowed"]));
    assert!(e.cluster.all().is_empty());
}

#[tokio::test]
async fn judge0_wait_true_returns_the_finished_submission() {
    let e = env(&[]);
    fake_operator(e.cluster.clone(), e.status.clone(), completed("hello\n"));
    let (code, _, s) = call(
        &e.app,
        post(
            "/submissions?wait=true&fields=stdout,status,token,time,memory",
            r#"{"language_id":71,"source_code":"print('hello')"}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"]["id"], 3);
    assert_eq!(s["stdout"], "hello\n");
    assert_eq!(s["time"], "0.012");
    assert!(s["token"].is_string());
}

#[tokio::test]
async fn judge0_batch_and_catalog() {
    let e = env(&[]);
    let (code, _, body) = call(
        &e.app,
        post(
            "/submissions/batch",
            r#"{"submissions":[{"language_id":71,"source_code":"1"},{"language_id":1}]}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let t0 = body[0]["token"].as_str().unwrap().to_string();
    assert_eq!(body[1]["source_code"], json!(["can't be blank"]));
    let (code, _, body) = call(
        &e.app,
        get(&format!(
            "/submissions/batch?tokens={t0},0b7e4a4e-0000-4000-8000-000000000000&fields=token,status_id"
        )),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, json!({"submissions": [{"token": t0, "status_id": 1}, null]}));
    let (code, _, body) = call(&e.app, post("/submissions/batch", r#"{"submissions":[]}"#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "there should be at least one submission in a batch");

    let (_, _, langs) = call(&e.app, get("/languages")).await;
    assert_eq!(
        langs,
        json!([{"id": 46, "name": "Bash (5.2.15)"}, {"id": 63, "name": "JavaScript (Node.js 18.19.0)"}, {"id": 71, "name": "Python (3.11.2)"}])
    );
    let (_, _, lang) = call(&e.app, get("/languages/71")).await;
    assert_eq!(lang["source_file"], "main.py");
    assert_eq!(lang["is_archived"], false);
    let (code, _, _) = call(&e.app, get("/languages/9999")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, _, st) = call(&e.app, get("/statuses")).await;
    assert_eq!(st.as_array().unwrap().len(), 14);
    assert_eq!(st[12], json!({"id": 13, "description": "Internal Error"}));
    let (_, _, about) = call(&e.app, get("/about")).await;
    assert_eq!(about["version"], "1.13.1");
    let (_, _, ci) = call(&e.app, get("/config_info")).await;
    assert_eq!(ci["enable_wait_result"], true);
    assert_eq!(ci["max_submission_batch_size"], 20);
}

// ---------------------------------------------------------------- Piston

#[tokio::test]
async fn piston_execute_answers_synchronously() {
    let e = env(&[]);
    let (_, _, rts) = call(&e.app, get("/api/v2/runtimes")).await;
    assert_eq!(rts[2], json!({"language": "python", "version": "3.11.2", "aliases": ["py", "python3"]}));
    fake_operator(e.cluster.clone(), e.status.clone(), completed("hi\n"));
    let (code, _, r) = call(
        &e.app,
        post(
            "/api/v2/execute",
            r#"{"language":"python","version":"3.x","files":[{"content":"print('hi')"}],"stdin":"","args":["1"],"run_timeout":3000,"run_memory_limit":134217728}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["language"], "python");
    assert_eq!(r["version"], "3.11.2");
    assert_eq!(r["run"]["stdout"], "hi\n");
    assert_eq!(r["run"]["output"], "hi\n");
    assert_eq!(r["run"]["code"], 0);
    assert_eq!(r["run"]["signal"], Value::Null);
    assert!(r.get("compile").is_none());
    let ex = e.cluster.all().remove(0);
    assert_eq!(ex.spec.limits.unwrap().memory_mib, Some(128));
    assert_eq!(ex.spec.limits.unwrap().wall_time_ms, Some(3000));
    assert_eq!(ex.spec.args, vec!["1"]);
}

#[tokio::test]
async fn piston_errors_use_its_message_shape() {
    let e = env(&[]);
    let (code, _, r) = call(&e.app, post("/api/v2/execute", r#"{"version":"*","files":[]}"#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r, json!({"message": "language is required as a string"}));
    let (code, _, r) = call(&e.app, post("/api/v2/execute", r#"{"language":"python","version":"*"}"#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r, json!({"message": "files is required as an array"}));
    let (code, _, r) =
        call(&e.app, post("/api/v2/execute", r#"{"language":"python","version":"*","files":[{}]}"#)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r, json!({"message": "files[0].content is required as a string"}));
    let (code, _, r) = call(
        &e.app,
        post("/api/v2/execute", r#"{"language":"python","version":"2.7","files":[{"content":"1"}]}"#),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r, json!({"message": "python-2.7 runtime is unknown"}));
    let (code, _, r) = call(
        &e.app,
        post(
            "/api/v2/execute",
            r#"{"language":"python","version":"*","files":[{"content":"1"}],"run_timeout":999999}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r, json!({"message": "run_timeout cannot exceed the configured limit of 15000"}));
}

// ---------------------------------------------------------------- auth and rate limits

fn jwt_hs256(secret: &str, sub: &str, ns: Option<&str>) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    let mut claims = json!({"sub": sub, "exp": exp});
    if let Some(ns) = ns {
        claims["ns"] = json!(ns);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn auth_accepts_keys_and_jwts_in_every_header_and_separates_tenants() {
    let e = env(&[
        "--auth",
        "--api-key",
        "key-aaaaaaaa:team-a,key-bbbbbbbb:team-b",
        "--jwt-hs256-secret",
        "s3cret",
    ]);
    let body = r#"{"language":"python","code":"1"}"#;
    let (code, headers, b) = call(&e.app, post("/api/execute", body)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(b["error"].is_string());
    let (code, _, _) = call(&e.app, with(post("/api/execute", body), "x-api-key", "wrong-key-123")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // X-API-Key → team-a.
    let (code, _, b) = call(&e.app, with(post("/api/execute", body), "x-api-key", "key-aaaaaaaa")).await;
    assert_eq!(code, StatusCode::OK);
    let a_job = b["jobId"].as_str().unwrap().to_string();
    assert_eq!(e.cluster.all()[0].metadata.namespace.as_deref(), Some("team-a"));
    // Judge0's X-Auth-Token → team-b; team-b cannot see team-a's job.
    let (code, _, _) =
        call(&e.app, with(get(&format!("/submissions/{a_job}")), "x-auth-token", "key-bbbbbbbb")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) =
        call(&e.app, with(get(&format!("/api/status/{a_job}")), "authorization", "Bearer key-aaaaaaaa"))
            .await;
    assert_eq!(code, StatusCode::OK);
    // JWT with an ns claim.
    let token = jwt_hs256("s3cret", "alice", Some("team-c"));
    let (code, _, b) =
        call(&e.app, with(post("/api/execute", body), "authorization", &format!("Bearer {token}"))).await;
    assert_eq!(code, StatusCode::OK, "{b}");
    let ex = e.cluster.all().into_iter().find(|x| x.metadata.name.as_deref() == b["jobId"].as_str()).unwrap();
    assert_eq!(ex.metadata.namespace.as_deref(), Some("team-c"));
    assert_eq!(ex.metadata.annotations.unwrap()["rce.dev/submitted-by"], "jwt:alice");
    // A token signed with another secret is refused.
    let bad = jwt_hs256("other", "mallory", None);
    let (code, _, _) =
        call(&e.app, with(post("/api/execute", body), "authorization", &format!("Bearer {bad}"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // Public routes stay public.
    let (code, _, _) = call(&e.app, get("/api/v2/runtimes")).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn rs256_jwts_are_verified_with_the_configured_public_key() {
    let dir = std::env::temp_dir().join(format!("rce-shim-rs256-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let pubkey = dir.join("pub.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&pubkey)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl could not make a key pair");
    let e = env(&["--auth", "--jwt-rs256-public-key", pubkey.to_str().unwrap()]);
    let claims = json!({"sub": "bob", "ns": "team-r", "exp": chrono::Utc::now().timestamp() + 600});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap(),
    )
    .unwrap();
    let (code, _, b) = call(
        &e.app,
        with(
            post("/api/execute", r#"{"language":"bash","code":"echo"}"#),
            "authorization",
            &format!("Bearer {token}"),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{b}");
    assert_eq!(e.cluster.all()[0].metadata.namespace.as_deref(), Some("team-r"));
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"sub": "bob", "exp": 1000}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap(),
    )
    .unwrap();
    let (code, _, _) =
        call(&e.app, with(get("/api/status/x"), "authorization", &format!("Bearer {expired}"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let e = env(&["--auth", "--api-key", "slow-key-1::0.5:3,fast-key-1"]);
    let req = |k: &str| with(get("/api/status/0b7e4a4e-0000-4000-8000-000000000000"), "x-api-key", k);
    for _ in 0..3 {
        let (code, _, _) = call(&e.app, req("slow-key-1")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
    let (code, headers, body) = call(&e.app, req("slow-key-1")).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(body["code"], "rate_limited");
    // Another key is not affected.
    let (code, _, _) = call(&e.app, req("fast-key-1")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- live results

#[tokio::test]
async fn sse_pushes_every_status_change_and_ends_after_the_terminal_one() {
    let e = env(&[]);
    let (_, _, b) = call(&e.app, post("/api/execute", r#"{"language":"python","code":"print(1)"}"#)).await;
    let id = b["jobId"].as_str().unwrap().to_string();
    fake_operator(e.cluster.clone(), e.status.clone(), completed("1\n"));
    let resp = e.app.clone().oneshot(get(&format!("/api/executions/{id}/events"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let body =
        tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await.unwrap().unwrap();
    let text = String::from_utf8(body.to_bytes().to_vec()).unwrap();
    let phases: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["status"].as_str().map(str::to_string))
        .collect();
    assert_eq!(phases, vec!["Pending", "Processing", "Completed"], "{text}");
    assert!(text.contains("event: end"), "{text}");
    assert_eq!(e.status.subscribers("default", &id), 0, "the subscription is dropped at the end");
    let (code, _, _) = call(&e.app, get("/api/executions/0b7e4a4e-0000-4000-8000-000000000000/events")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn streams_fall_back_to_polling_when_redis_is_down() {
    let e = env(&[]);
    let (_, _, b) = call(&e.app, post("/api/execute", r#"{"language":"python","code":"print(1)"}"#)).await;
    let id = b["jobId"].as_str().unwrap().to_string();
    *e.status.down.lock().unwrap() = true;
    let cluster = e.cluster.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.set_status("default", &id2, completed("1\n"));
    });
    let s = &e.state;
    let view = rce_api_shim::backend::wait_terminal(
        &*s.cluster,
        &*s.status,
        s.poll_interval,
        "default",
        &id,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(view.phase(), Phase::Completed);
}

#[tokio::test]
async fn a_real_server_streams_over_websocket() {
    use futures::StreamExt;
    let e = env(&[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = e.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    let (_, _, b) = call(&e.app, post("/api/execute", r#"{"language":"python","code":"print(1)"}"#)).await;
    let id = b["jobId"].as_str().unwrap().to_string();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/executions/{id}/ws")).await.unwrap();
    fake_operator(e.cluster.clone(), e.status.clone(), completed("1\n"));
    let mut phases = vec![];
    let mut closed = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg.unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                phases.push(v["status"].as_str().unwrap().to_string());
            }
            tokio_tungstenite::tungstenite::Message::Close(f) => {
                assert_eq!(u16::from(f.unwrap().code), 1000);
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(phases, vec!["Pending", "Processing", "Completed"]);
    assert!(closed);
    // Plain HTTP over the same port.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::get("/health").header("host", "x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server.abort();
}

// ---------------------------------------------------------------- docs and metrics

#[tokio::test]
async fn openapi_and_metrics_are_served() {
    let e = env(&[]);
    let (code, _, doc) = call(&e.app, get("/openapi.json")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/execute",
        "/api/status/{job_id}",
        "/submissions",
        "/api/v2/execute",
        "/api/executions/{id}/events",
    ] {
        assert!(doc["paths"].get(p).is_some(), "missing {p}");
    }
    assert!(doc["components"]["schemas"].get("ExecutionView").is_some());
    call(&e.app, get("/health")).await;
    call(&e.app, get("/api/status/0b7e4a4e-0000-4000-8000-000000000000")).await;
    let resp = e.app.clone().oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains(r#"rce_shim_http_requests_total{route="/health",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="/api/status/{job_id}",method="GET",status="404""#), "{text}");
    assert!(text.contains("rce_shim_http_request_duration_seconds_bucket"), "{text}");
    let (code, _, page) = call(&e.app, get("/")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("rce playground"));
}

/// The routes the application serves, as `method path`. The paths come from the router itself
/// (its `Debug` lists the path of every route); the methods from asking each path for a method
/// no route has: axum answers 405 with an `Allow` header naming the methods it serves there.
async fn served_routes(app: &Router) -> BTreeSet<String> {
    let debug = format!("{app:?}");
    // The main path router only: the fallback router that follows has paths of its own.
    let main = debug.split("fallback_router").next().unwrap();
    let mut paths = BTreeSet::new();
    for part in main.split("RouteId(").skip(1) {
        if let Some((_, rest)) = part.split_once("): \"") {
            paths.insert(rest.split('"').next().unwrap().to_string());
        }
    }
    let mut served = BTreeSet::new();
    for path in paths {
        let uri: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "0b7e4a4e-0000-4000-8000-000000000000" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let probe = Request::builder().method("PROBE").uri(uri).body(Body::empty()).unwrap();
        let (code, headers, _) = call(app, probe).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "probing {path}");
        let allow = headers[header::ALLOW].to_str().unwrap().to_ascii_lowercase();
        let methods: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
        for m in &methods {
            // axum answers HEAD wherever it answers GET.
            if *m == "head" && methods.contains("get") {
                continue;
            }
            served.insert(format!("{m} {path}"));
        }
    }
    served
}

#[tokio::test]
async fn every_served_route_is_in_the_openapi_document() {
    let e = env(&[]);
    let (_, _, doc) = call(&e.app, get("/openapi.json")).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(m).is_some() {
                documented.insert(format!("{m} {path}"));
            }
        }
    }
    // The routes inside the path normalization (the application wraps them as a service,
    // whose `Debug` does not list them).
    let served = served_routes(&rce_api_shim::routes::router(e.state.clone())).await;
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in the OpenAPI document: {undocumented:?}");
    assert!(unserved.is_empty(), "in the OpenAPI document but not served: {unserved:?}");
    // The routes the document had lost are there.
    for r in [
        "get /languages/all",
        "get /version",
        "delete /submissions/{token}",
        "post /api/v2/piston/execute",
        "get /api/v2/piston/runtimes",
    ] {
        assert!(served.contains(r), "{r} is not served: {served:?}");
    }
}

#[tokio::test]
async fn configured_labels_go_on_every_execution() {
    let e = env(&["--execution-label", "rce.dev/operator=shard-1,team=x"]);
    call(&e.app, post("/api/execute", r#"{"language":"bash","code":"true"}"#)).await;
    call(&e.app, post("/submissions/batch", r#"{"submissions":[{"language_id":46,"source_code":"true"}]}"#))
        .await;
    let all = e.cluster.all();
    assert_eq!(all.len(), 2);
    for ex in all {
        let labels = ex.metadata.labels.unwrap();
        assert_eq!(labels["rce.dev/operator"], "shard-1");
        assert_eq!(labels["team"], "x");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "rce-api-shim");
    }
    assert!(Config::try_parse_from(["x", "--execution-label", "novalue"]).unwrap().labels().is_err());
}

#[tokio::test]
async fn a_trailing_slash_is_accepted_on_every_surface() {
    let e = env(&[]);
    fake_operator(e.cluster.clone(), e.status.clone(), completed("hi\n"));
    // Judge0: create and wait, read back.
    let (code, _, sub) =
        call(&e.app, post("/submissions/?wait=true", r#"{"source_code":"print('hi')","language_id":71}"#))
            .await;
    assert_eq!(code, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["stdout"], "hi\n", "{sub}");
    let token = sub["token"].as_str().unwrap();
    let (code, _, again) = call(&e.app, get(&format!("/submissions/{token}/?fields=stdout"))).await;
    assert_eq!((code, &again["stdout"]), (StatusCode::OK, &json!("hi\n")), "{again}");
    for path in ["/languages/", "/statuses/", "/about/", "/config_info/"] {
        assert_eq!(call(&e.app, get(path)).await.0, StatusCode::OK, "{path}");
    }
    // Piston, under both prefixes.
    for prefix in ["/api/v2", "/api/v2/piston"] {
        let (code, _, rts) = call(&e.app, get(&format!("{prefix}/runtimes/"))).await;
        assert_eq!(code, StatusCode::OK, "{prefix}");
        assert!(rts.as_array().is_some_and(|a| !a.is_empty()), "{rts}");
        let (code, _, run) = call(
            &e.app,
            post(
                &format!("{prefix}/execute/"),
                r#"{"language":"python","version":"*","files":[{"content":"print('hi')"}]}"#,
            ),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{run}");
        assert_eq!(run["run"]["stdout"], "hi\n", "{run}");
    }
    // The seed's API.
    let (code, _, job) =
        call(&e.app, post("/api/execute/", r#"{"language":"python","code":"print(1)"}"#)).await;
    assert_eq!(code, StatusCode::OK, "{job}");
    let id = job["jobId"].as_str().unwrap();
    let (code, _, st) = call(&e.app, get(&format!("/api/status/{id}/"))).await;
    assert_eq!((code, &st["jobId"]), (StatusCode::OK, &json!(id)), "{st}");
    // rce's own.
    let (code, _, ex) =
        call(&e.app, post("/api/executions/", r#"{"language":"python","source":"print(1)"}"#)).await;
    assert_eq!(code, StatusCode::CREATED, "{ex}");
    let id = ex["id"].as_str().unwrap();
    assert_eq!(call(&e.app, get(&format!("/api/executions/{id}/"))).await.0, StatusCode::OK);
    assert_eq!(call(&e.app, get("/api/languages/")).await.0, StatusCode::OK);
    // The meta routes, the root itself, and a route that does not exist.
    assert_eq!(call(&e.app, get("/health/")).await.0, StatusCode::OK);
    assert_eq!(call(&e.app, get("/openapi.json/")).await.0, StatusCode::OK);
    assert_eq!(call(&e.app, get("/")).await.0, StatusCode::OK);
    assert_eq!(call(&e.app, get("/no-such-route/")).await.0, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- Judge0 (attribute by attribute)

/// The seed's Runtimes plus a compiled one with an options allow-list (`c`, Judge0 ids 50,
/// 48, 49) and the multi-file one (`multi`, id 89), as the chart installs them.
fn j0_env(args: &[&str]) -> Env {
    let mut argv = vec!["rce-api-shim"];
    argv.extend_from_slice(args);
    let config = Config::parse_from(argv);
    let mut rts = seed_runtimes();
    let mut c = rce_api_shim::testing::runtime("c", "12.2.0", &["gcc"], &[50, 48, 49]);
    c.spec.display_name = "C (GCC)".into();
    c.spec.source_file = "main.c".into();
    c.spec.compile = Some(["gcc", "{options}", "-o", "main", "{file}"].map(String::from).to_vec());
    c.spec.run = vec!["./main".into()];
    c.spec.compiler_options = ["-O*", "-D*", "-std=*", "-Wall", "-lm"].map(String::from).to_vec();
    rts.push(c);
    let mut multi = rce_api_shim::testing::runtime("multi", "5.2.15", &[], &[89]);
    multi.spec.display_name = "Multi-file program".into();
    multi.spec.source_file = "run".into();
    multi.spec.compile =
        Some(["bash", "-c", "if [ -f compile ]; then exec /bin/bash compile; fi"].map(String::from).to_vec());
    multi.spec.run = vec!["/bin/bash".into(), "run".into()];
    rts.push(multi);
    let cluster = MemoryCluster::with_runtimes(rts);
    let status = Arc::new(MemoryStatus::default());
    let state = AppState::new(config, cluster.clone(), status.clone())
        .unwrap()
        .with_poll_interval(Duration::from_millis(50));
    Env { cluster, status, app: app(state.clone()), state }
}

/// A zip of `(name, bytes)` entries, deflated.
fn j0_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn j0_submit(e: &Env, body: Value) -> (StatusCode, Value, Option<Execution>) {
    let before = e.cluster.all().len();
    let (code, _, body) = call(&e.app, post("/submissions", &body.to_string())).await;
    let all = e.cluster.all();
    let ex = (all.len() > before).then(|| {
        let token = body["token"].as_str().unwrap_or_default();
        all.into_iter().find(|x| x.metadata.name.as_deref() == Some(token)).unwrap()
    });
    (code, body, ex)
}

#[tokio::test]
async fn judge0_attributes_reach_the_execution_spec() {
    let e = j0_env(&["--callback-allow", "127.0.0.1/32"]);
    let (code, body, ex) = j0_submit(
        &e,
        json!({"language_id": 50, "source_code": "int main(){return X;}", "compiler_options": "-O2  -DX=5",
               "redirect_stderr_to_stdout": true, "number_of_runs": 3, "stack_limit": 32000, "max_file_size": 2048,
               "callback_url": "http://127.0.0.1:9999/hook", "command_line_arguments": "a 'b c' $(id);x"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let s = ex.unwrap().spec;
    assert_eq!(s.language, "c");
    assert_eq!(s.compiler_options, vec!["-O2", "-DX=5"]);
    assert!(s.redirect_stderr_to_stdout);
    assert_eq!(s.runs, Some(3));
    let l = s.limits.unwrap();
    assert_eq!((l.stack_kib, l.file_size_kib, l.output_bytes), (Some(32000), Some(2048), Some(2048 * 1024)));
    let cb = s.callback.unwrap();
    assert_eq!((cb.url.as_str(), cb.format), ("http://127.0.0.1:9999/hook", rce_api::CallbackFormat::Judge0));
    // Upstream removes `$&;<>|` and backquotes before the shell splits the arguments.
    assert_eq!(s.args, vec!["a", "b c", "(id)x"]);

    // Nothing given: upstream's defaults (max_file_size 1024 KB is also the output cap).
    let (_, _, ex) = j0_submit(&e, json!({"language_id": 71, "source_code": "print(1)"})).await;
    let s = ex.unwrap().spec;
    let l = s.limits.unwrap();
    // The defaults /config_info tells, set on the Execution (upstream's are global).
    assert_eq!((l.file_size_kib, l.output_bytes, l.stack_kib), (Some(1024), Some(1024 * 1024), Some(64_000)));
    assert_eq!(l.memory_mib, Some(rce_api::ResolvedLimits::DEFAULT.memory_mib));
    assert!(
        !s.redirect_stderr_to_stdout
            && s.runs.is_none()
            && s.callback.is_none()
            && s.compiler_options.is_empty()
    );
}

#[tokio::test]
async fn judge0_refusals_are_upstreams_field_errors() {
    let e = j0_env(&[]);
    let cases = [
        (json!({"language_id": 50, "source_code": "x", "compiler_options": "-fplugin=/tmp/x.so"}), "compiler_options",
         "compiler option \"-fplugin=/tmp/x.so\" is not allowed; this language accepts: -O* -D* -std=* -Wall -lm"),
        (json!({"language_id": 71, "source_code": "x", "compiler_options": "-O2"}), "compiler_options",
         "setting compiler options is only allowed for compiled languages"),
        (json!({"language_id": 71, "source_code": "x", "callback_url": "http://127.0.0.1:1/x"}), "callback_url",
         "setting callback is not allowed"),
        (json!({"language_id": 71, "source_code": "x", "enable_network": true}), "enable_network",
         "enabling network is not allowed"),
        (json!({"language_id": 71, "source_code": "x", "number_of_runs": 0}), "number_of_runs", "must be greater than 0"),
        (json!({"language_id": 71, "source_code": "x", "number_of_runs": 21}), "number_of_runs",
         "must be less than or equal to 20"),
        (json!({"language_id": 71, "source_code": "x", "cpu_extra_time": 1}), "cpu_extra_time",
         "must be less than or equal to 0.0"),
        (json!({"language_id": 71, "source_code": "x", "enable_per_process_and_thread_time_limit": true}),
         "enable_per_process_and_thread_time_limit", "this option cannot be enabled"),
        (json!({"language_id": 71, "source_code": "x", "enable_per_process_and_thread_memory_limit": true}),
         "enable_per_process_and_thread_memory_limit", "this option cannot be enabled"),
        (json!({"language_id": 71, "source_code": "x", "max_file_size": 999999}), "max_file_size",
         "must be less than or equal to 4096"),
        (json!({"language_id": 71, "source_code": "x", "stack_limit": 99999999}), "stack_limit",
         "must be less than or equal to 262144"),
        (json!({"language_id": 71, "source_code": "x", "memory_limit": 100}), "memory_limit",
         "must be greater than or equal to 2048"),
        (json!({"language_id": 89, "source_code": "x"}), "source_code", "must be blank"),
        (json!({"language_id": 89}), "additional_files", "can't be blank"),
    ];
    for (body, field, message) in cases {
        let (code, got, ex) = j0_submit(&e, body.clone()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {got}");
        assert_eq!(got[field], json!([message]), "{body}: {got}");
        assert!(ex.is_none());
    }
    // Zero and false are upstream's "not set".
    let (code, got, _) = j0_submit(
        &e,
        json!({"language_id": 71, "source_code": "x", "cpu_extra_time": 0, "enable_network": false,
               "enable_per_process_and_thread_time_limit": false, "enable_per_process_and_thread_memory_limit": "false",
               "redirect_stderr_to_stdout": false, "compiler_options": "", "callback_url": "", "additional_files": ""}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{got}");
}

#[tokio::test]
async fn judge0_additional_files_are_extracted_safely() {
    let e = j0_env(&[]);
    let zip = j0_zip(&[("mymod.py", b"X = 5\n"), ("data/in.bin", &[0xfe, 0xff]), ("main.py", b"ignored")]);
    let (code, body, ex) = j0_submit(
        &e,
        json!({"language_id": 71, "source_code": "import mymod", "additional_files": b64(&zip)}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let ex = ex.unwrap();
    let files = ex.spec.files.clone().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["main.py", "mymod.py", "data/in.bin"]);
    assert_eq!(files[0].content, "import mymod");
    assert_eq!(files[1].content, "X = 5\n");
    assert_eq!((files[2].encoding, files[2].content.as_str()), (rce_api::FileEncoding::Base64, "/v8="));
    // Answered back as given (Ruby's encode64 of the zip's bytes).
    let token = ex.metadata.name.clone().unwrap();
    let (_, _, s) =
        call(&e.app, get(&format!("/submissions/{token}?fields=additional_files,source_code"))).await;
    assert_eq!(s["source_code"], "import mymod");
    assert_eq!(s["additional_files"].as_str().unwrap().replace('\n', ""), b64(&zip));

    // Language 89: the zip's `run` is the entry point, no source code.
    let project = j0_zip(&[("compile", b"gcc -o a a.c\n"), ("run", b"./a\n"), ("a.c", b"int main(){}")]);
    let (code, body, ex) = j0_submit(&e, json!({"language_id": 89, "additional_files": b64(&project)})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let ex = ex.unwrap();
    assert_eq!(ex.spec.language, "multi");
    let names: Vec<String> = ex.spec.files.unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["run", "compile", "a.c"]);

    // Bombs, links, escapes: refused, nothing created.
    // Under the size bound, over the ratio: stopped while reading, whatever the headers say.
    let bomb = j0_zip(&[("zeros", &vec![0u8; 700 * 1024])]);
    assert!(bomb.len() < 4 * 1024, "{}", bomb.len());
    let huge = j0_zip(&[("zeros", &vec![b'a'; 8 * 1024 * 1024])]);
    let mut link = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    link.add_symlink("passwd", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
    let link = link.finish().unwrap().into_inner();
    for (zip, words) in [
        (bomb, "a zip bomb"),
        (huge, "extracts to more than 768 KB"),
        (link, "is a link or a special file"),
        (j0_zip(&[("../escape.py", b"x")]), "must not contain \".\" or \"..\" components"),
        (j0_zip(&[("/abs.py", b"x")]), "it must be a relative path"),
        (b"not a zip".to_vec(), "is not a valid zip archive"),
    ] {
        let (code, body, ex) =
            j0_submit(&e, json!({"language_id": 71, "source_code": "1", "additional_files": b64(&zip)}))
                .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{words}: {body}");
        let msg = body["additional_files"][0].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(words), "{words}: {msg}");
        assert!(ex.is_none());
    }
}

fn finished(verdict: Verdict) -> ExecutionStatus {
    ExecutionStatus { verdict: Some(verdict), ..completed("out\n") }
}

#[tokio::test]
async fn judge0_results_render_as_upstream_renders_them() {
    let e = j0_env(&[]);
    let (_, body, ex) = j0_submit(&e, json!({"language_id": 71, "source_code": "print(1)"})).await;
    let token = body["token"].as_str().unwrap().to_string();
    let ex = ex.unwrap();
    let show = |st: ExecutionStatus, query: &'static str| {
        e.cluster.set_status("default", &token, st.clone());
        e.status.publish(doc(&ex, st));
        let uri = format!("/submissions/{token}?{query}");
        let app = e.app.clone();
        async move { call(&app, get(&uri)).await }
    };
    let all = "fields=*";
    // Accepted: exit 0, empty stderr is null, times with milliseconds.
    let (_, _, s) = show(completed("hi\n"), all).await;
    assert_eq!(
        (s["status"]["id"].clone(), s["exit_code"].clone(), s["exit_signal"].clone()),
        (json!(3), json!(0), Value::Null)
    );
    assert_eq!(
        (s["stdout"].clone(), s["stderr"].clone(), s["message"].clone()),
        (json!("hi\n"), Value::Null, Value::Null)
    );
    assert_eq!(
        (s["time"].clone(), s["wall_time"].clone(), s["memory"].clone()),
        (json!("0.012"), json!("0.04"), json!(9000))
    );
    assert_eq!(s["finished_at"], "2026-01-01T00:00:01.000Z");
    let created = s["created_at"].as_str().unwrap();
    assert!(created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.', "{created}");
    assert_eq!(
        (s["number_of_runs"].clone(), s["stack_limit"].clone(), s["max_file_size"].clone()),
        (json!(1), json!(64000), json!(1024))
    );
    assert_eq!(s["redirect_stderr_to_stdout"], false);
    // A signal: exit_code 0, the number, isolate's words.
    let (_, _, s) = show(
        ExecutionStatus {
            signal: Some("SIGSEGV".into()),
            exit_code: None,
            ..finished(Verdict::RuntimeError)
        },
        all,
    )
    .await;
    assert_eq!(
        (s["status"]["id"].clone(), s["exit_code"].clone(), s["exit_signal"].clone()),
        (json!(7), json!(0), json!(11))
    );
    assert_eq!(s["message"], "Caught fatal signal 11");
    // An error exit.
    let (_, _, s) =
        show(ExecutionStatus { exit_code: Some(3), ..finished(Verdict::RuntimeError) }, all).await;
    assert_eq!(
        (s["status"]["id"].clone(), s["message"].clone()),
        (json!(11), json!("Exited with error status 3"))
    );
    // Output over max_file_size: SIGXFSZ.
    let (_, _, s) = show(finished(Verdict::OutputLimitExceeded), all).await;
    assert_eq!(s["status"], json!({"id": 8, "description": "Runtime Error (SIGXFSZ)"}));
    assert_eq!(s["exit_signal"], 25);
    // Memory: killed by the OOM killer as isolate would report it.
    let (_, _, s) = show(
        ExecutionStatus { signal: Some("SIGKILL".into()), ..finished(Verdict::MemoryLimitExceeded) },
        all,
    )
    .await;
    assert_eq!((s["status"]["id"].clone(), s["exit_signal"].clone()), (json!(12), json!(9)));
    // Time.
    let (_, _, s) = show(finished(Verdict::TimeLimitExceeded), all).await;
    assert_eq!(
        (s["status"]["id"].clone(), s["message"].clone(), s["exit_code"].clone()),
        (json!(5), json!("Time limit exceeded"), json!(0))
    );
    // A compile error: the run's fields are null.
    let ce = ExecutionStatus {
        compile_output: Some("main.c:1: error\n".into()),
        exit_code: Some(1),
        message: Some("compilation failed (exit code 1)".into()),
        ..finished(Verdict::CompilationError)
    };
    let (_, _, s) = show(ce, all).await;
    assert_eq!(s["status"]["id"], 6);
    assert_eq!(s["compile_output"], "main.c:1: error\n");
    for f in ["time", "wall_time", "memory", "stdout", "stderr", "exit_code", "exit_signal", "message"] {
        assert_eq!(s[f], Value::Null, "{f}");
    }
    // Bytes that are not UTF-8: exact in base64, upstream's 400 in text.
    let bytes = ExecutionStatus {
        stdout: Some("/v8AQQo=".into()),
        stdout_encoding: rce_api::FileEncoding::Base64,
        ..completed("")
    };
    let (code, _, s) = show(bytes.clone(), "base64_encoded=true").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(s["stdout"], "/v8AQQo=\n");
    let (code, _, s) = show(bytes, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s,
        json!({"error": "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"})
    );
    let (code, _, s) = call(&e.app, get(&format!("/submissions/batch?tokens={token}"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(s["error"].as_str().unwrap().starts_with("some attributes for one or more submissions"));
}

#[tokio::test]
async fn judge0_large_outputs_are_read_whole_from_their_config_maps() {
    let e = j0_env(&[]);
    let (_, body, ex) = j0_submit(&e, json!({"language_id": 71, "source_code": "print(1)"})).await;
    let token = body["token"].as_str().unwrap().to_string();
    let ex = ex.unwrap();
    let big = vec![b'a'; 200 * 1024];
    e.cluster.put_config_map("default", "out-0", "part", [big.as_slice(), b"err"].concat());
    let st = ExecutionStatus {
        stdout: Some("a".repeat(1024)),
        stdout_truncated: false,
        stderr: Some("err".into()),
        output: Some(rce_api::StoredOutput {
            config_maps: vec!["out-0".into()],
            stdout_bytes: big.len() as u64,
            stderr_bytes: 3,
            compile_output_bytes: 0,
        }),
        ..completed("")
    };
    e.cluster.set_status("default", &token, st.clone());
    e.status.publish(doc(&ex, st));
    let (code, _, s) = call(&e.app, get(&format!("/submissions/{token}"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(s["stdout"].as_str().unwrap().len(), big.len());
    assert_eq!(s["stderr"], "err");
}

#[tokio::test]
async fn judge0_wait_with_bytes_that_are_not_text_answers_201_with_the_token() {
    let e = j0_env(&[]);
    let st = ExecutionStatus {
        stdout: Some("/w==".into()),
        stdout_encoding: rce_api::FileEncoding::Base64,
        ..completed("")
    };
    fake_operator(e.cluster.clone(), e.status.clone(), st);
    let (code, _, s) =
        call(&e.app, post("/submissions?wait=true", r#"{"language_id":71,"source_code":"x"}"#)).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(s["error"], "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter");
    assert!(s["token"].is_string());
}

#[tokio::test]
async fn judge0_catalog_and_configuration_tell_the_truth() {
    let e = j0_env(&["--callback-allow", "127.0.0.1/32"]);
    let (_, _, langs) = call(&e.app, get("/languages")).await;
    // Each Runtime once, under its first id, by name; the version inside the parenthesis.
    assert_eq!(
        langs,
        json!([{"id": 46, "name": "Bash (5.2.15)"}, {"id": 50, "name": "C (GCC 12.2.0)"},
               {"id": 63, "name": "JavaScript (Node.js 18.19.0)"}, {"id": 89, "name": "Multi-file program"},
               {"id": 71, "name": "Python (3.11.2)"}])
    );
    let (_, _, all) = call(&e.app, get("/languages/all")).await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    let (_, _, c) = call(&e.app, get("/languages/49")).await;
    assert_eq!((c["id"].clone(), c["compile_cmd"].clone()), (json!(49), json!("gcc %s -o main main.c")));
    let (_, _, ci) = call(&e.app, get("/config_info")).await;
    assert_eq!(ci["memory_limit"], 131072);
    assert_eq!(ci["stack_limit"], 64000);
    assert_eq!(ci["max_file_size"], 1024);
    assert_eq!(ci["max_max_file_size"], 4096);
    assert_eq!(ci["max_number_of_runs"], 20);
    assert_eq!((ci["enable_callbacks"].clone(), ci["callbacks_max_tries"].clone()), (json!(true), json!(3)));
    assert_eq!(ci["enable_additional_files"], true);
    assert_eq!(ci["allowed_languages_for_compile_options"], json!(["C (GCC)"]));
    assert_eq!((ci["cpu_extra_time"].clone(), ci["max_cpu_extra_time"].clone()), (json!(0.0), json!(0.0)));
    // Each submission gets what /config_info says.
    let (_, _, ex) = j0_submit(&e, json!({"language_id": 71, "source_code": "1"})).await;
    let token = ex.unwrap().metadata.name.unwrap();
    let (_, _, s) =
        call(&e.app, get(&format!("/submissions/{token}?fields=max_file_size,stack_limit,cpu_extra_time")))
            .await;
    assert_eq!(s, json!({"max_file_size": 1024, "stack_limit": 64000, "cpu_extra_time": "0.0"}));
}

#[tokio::test]
async fn judge0_information_routes_answer() {
    let e = j0_env(&[]);
    for (path, kind) in [
        ("/system_info", "object"),
        ("/workers", "array"),
        ("/isolate", "text"),
        ("/license", "text"),
        ("/version", "text"),
    ] {
        let (code, _, body) = call(&e.app, get(path)).await;
        assert_eq!(code, StatusCode::OK, "{path}: {body}");
        match kind {
            "object" => assert!(body.is_object(), "{path}"),
            "array" => assert!(body.is_array(), "{path}"),
            _ => assert!(body.is_string() || body.is_number(), "{path}: {body}"),
        }
    }
    e.cluster.set_pending(Some(4));
    let (_, _, w) = call(&e.app, get("/workers")).await;
    assert_eq!(w[0]["size"], 4);
    let (_, _, si) = call(&e.app, get("/system_info")).await;
    assert!(si["CPU(s)"].is_string() && si["Architecture"].is_string(), "{si}");
}

#[tokio::test]
async fn judge0_authentication_and_authorization_as_upstream() {
    // Auth off: nothing to authenticate against (200); no authorization token (403).
    let e = j0_env(&[]);
    let (code, _, body) = call(&e.app, Request::post("/authenticate").body(Body::empty()).unwrap()).await;
    assert_eq!((code, body), (StatusCode::OK, Value::Null));
    let (code, _, body) = call(&e.app, Request::post("/authorize").body(Body::empty()).unwrap()).await;
    assert_eq!((code, body), (StatusCode::FORBIDDEN, Value::Null));
    let (code, _, _) = call(&e.app, get("/submissions")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let e = j0_env(&["--auth", "--api-key", "key-one-aaaa:ns1,key-two-bbbb:ns2"]);
    let req = |path: &str, headers: &[(&str, &str)]| {
        let mut r = Request::post(path).body(Body::empty()).unwrap();
        for (k, v) in headers {
            r = with(r, k, v);
        }
        r
    };
    let (code, _, _) = call(&e.app, req("/authenticate", &[])).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, _) = call(&e.app, req("/authenticate", &[("X-Auth-Token", "key-one-aaaa")])).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) = call(&e.app, req("/authorize", &[("X-Auth-Token", "key-one-aaaa")])).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, _) =
        call(&e.app, req("/authorize", &[("X-Auth-Token", "key-one-aaaa"), ("X-Auth-User", "key-one-aaaa")]))
            .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) =
        call(&e.app, req("/authorize", &[("X-Auth-Token", "key-one-aaaa"), ("X-Auth-User", "key-two-bbbb")]))
            .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, _) = call(&e.app, req("/authorize", &[("X-Auth-User", "key-one-aaaa")])).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // The list: only the caller's tenant, newest first, paged as upstream.
    for (key, n) in [("key-one-aaaa", 3), ("key-two-bbbb", 1)] {
        for i in 0..n {
            let r = with(
                post("/submissions", &format!(r#"{{"language_id":71,"source_code":"print({i})"}}"#)),
                "X-Auth-Token",
                key,
            );
            let (code, _, _) = call(&e.app, r).await;
            assert_eq!(code, StatusCode::CREATED);
        }
    }
    let list = |q: &str, user: &str| {
        let r = with(
            with(get(&format!("/submissions?{q}")), "X-Auth-Token", "key-one-aaaa"),
            "X-Auth-User",
            user,
        );
        let app = e.app.clone();
        async move { call(&app, r).await }
    };
    let (code, _, body) = list("per_page=2&fields=token,status_id", "key-one-aaaa").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["submissions"].as_array().unwrap().len(), 2);
    assert_eq!(body["submissions"][0]["status_id"], 1);
    assert_eq!(
        body["meta"],
        json!({"current_page": 1, "next_page": 2, "prev_page": null, "total_pages": 2, "total_count": 3})
    );
    let (_, _, body) = list("page=2&per_page=2", "key-one-aaaa").await;
    assert_eq!(body["submissions"].as_array().unwrap().len(), 1);
    let (code, _, body) = list("page=0", "key-one-aaaa").await;
    assert_eq!((code, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid page: 0"})));
    let (code, _, body) = list("per_page=-1", "key-one-aaaa").await;
    assert_eq!((code, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid per_page: -1"})));
    let (code, _, _) = list("", "key-two-bbbb").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Delete: authorized, then refused as upstream's default configuration refuses it.
    let r = with(
        with(
            Request::delete("/submissions/0b7e4a4e-0000-4000-8000-000000000000").body(Body::empty()).unwrap(),
            "X-Auth-Token",
            "key-one-aaaa",
        ),
        "X-Auth-User",
        "key-one-aaaa",
    );
    let (code, _, body) = call(&e.app, r).await;
    assert_eq!((code, body), (StatusCode::BAD_REQUEST, json!({"error": "delete not allowed"})));
}

#[tokio::test]
async fn piston_names_stages_stdin_and_stored_outputs_as_upstream() {
    let e = env(&[]);
    // A compiled Runtime that upstream calls `c++`, and stored outputs in ConfigMaps.
    let mut cpp = rce_api_shim::testing::runtime("cpp", "12.2.0", &[], &[54]);
    cpp.spec.compile = Some(vec!["g++".into(), "{file}".into()]);
    cpp.spec.piston = Some(rce_api::PistonName {
        language: "c++".into(),
        version: "12.2.0".into(),
        aliases: vec!["cpp".into(), "g++".into()],
        runtime: None,
    });
    e.cluster.runtimes.lock().unwrap().push(Arc::new(cpp));
    let (_, _, rts) = call(&e.app, get("/api/v2/runtimes")).await;
    assert!(
        rts.as_array()
            .unwrap()
            .contains(&json!({"language": "c++", "version": "12.2.0", "aliases": ["cpp", "g++"]})),
        "{rts}"
    );

    // A compile error: `run` is the compile stage, with its figures.
    let failed = ExecutionStatus {
        phase: Some(Phase::Completed),
        verdict: Some(Verdict::CompilationError),
        compile_output: Some("main.cpp:1:1: error: x\n".into()),
        compile: Some(rce_api::StageFigures {
            exit_code: Some(1),
            signal: None,
            time_ms: 300,
            wall_time_ms: 350,
            memory_kib: 40000,
        }),
        ..Default::default()
    };
    fake_operator(e.cluster.clone(), e.status.clone(), failed);
    let (code, _, r) = call(
        &e.app,
        post("/api/v2/execute/", r#"{"language":"c++","version":"12","files":[{"content":"x"}]}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!((&r["language"], &r["version"]), (&json!("c++"), &json!("12.2.0")));
    assert_eq!(r["run"], r["compile"], "{r}");
    assert_eq!(r["run"]["output"], "main.cpp:1:1: error: x\n");
    assert_eq!((&r["compile"]["code"], &r["compile"]["status"]), (&json!(1), &json!("RE")));
    assert_eq!(
        (&r["compile"]["cpu_time"], &r["compile"]["wall_time"], &r["compile"]["memory"]),
        (&json!(300), &json!(350), &json!(40_000_000))
    );
    let ex = e.cluster.all().remove(0);
    assert_eq!(ex.spec.language, "cpp");
    // Upstream's final newline on stdin (none given: "\n").
    assert_eq!(ex.spec.stdin.as_deref(), Some("\n"));
}

#[tokio::test]
async fn piston_output_is_the_full_bytes_in_arrival_order() {
    let e = env(&[]);
    let big = "o".repeat(100_000);
    let stored = ExecutionStatus {
        stdout: Some("o".repeat(10)),
        stderr: Some("E".into()),
        arrival: vec![60_000, -1, 40_000],
        output: Some(rce_api::StoredOutput {
            config_maps: vec!["x-output-0".into()],
            stdout_bytes: 100_000,
            stderr_bytes: 1,
            compile_output_bytes: 0,
        }),
        ..completed("")
    };
    // The ConfigMaps the operator would have written, in the namespace of the Execution.
    let mut part = big.clone().into_bytes();
    part.push(b'E');
    e.cluster.put_config_map("default", "x-output-0", "part", part);
    fake_operator(e.cluster.clone(), e.status.clone(), stored);
    let (code, _, r) = call(
        &e.app,
        post("/api/v2/execute", r#"{"language":"bash","files":[{"content":"x"}],"stdin":"a\nb"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["run"]["stdout"].as_str().unwrap().len(), 100_000);
    let output = r["run"]["output"].as_str().unwrap();
    assert_eq!(output, format!("{}E{}", &big[..60_000], &big[60_000..]));
    assert_eq!(e.cluster.all()[0].spec.stdin.as_deref(), Some("a\nb\n"));
}

#[tokio::test]
async fn native_executions_take_the_new_spec_fields_and_refuse_unknown_ones() {
    let e = env(&["--callback-allow", "127.0.0.1/32"]);
    let body = json!({"language": "python", "source": "print(1)", "redirectStderrToStdout": true, "runs": 3,
                      "limits": {"stackKiB": 65536}, "callback": {"url": "http://127.0.0.1:9/hook"}});
    let (code, _, r) = call(&e.app, post("/api/executions", &body.to_string())).await;
    assert_eq!(code, StatusCode::CREATED, "{r}");
    let ex = e.cluster.all().remove(0);
    assert!(ex.spec.redirect_stderr_to_stdout);
    assert_eq!(ex.spec.runs, Some(3));
    assert_eq!(ex.spec.limits.unwrap().stack_kib, Some(65536));
    let cb = ex.spec.callback.unwrap();
    assert_eq!((cb.url.as_str(), cb.format), ("http://127.0.0.1:9/hook", rce_api::CallbackFormat::Rce));
    for (bad, words) in [
        (json!({"language": "python", "source": "1", "bogus": 1}), "bogus"),
        (json!({"language": "python", "source": "1", "runs": 0}), "runs must be between 1 and 20"),
        (json!({"language": "python", "source": "1", "compilerOptions": ["-O2"]}), "no compile step"),
        (
            json!({"language": "python", "source": "1", "callback": {"url": "http://10.1.2.3/x"}}),
            "not allowed",
        ),
    ] {
        let (code, _, r) = call(&e.app, post("/api/executions", &bad.to_string())).await;
        assert!(code.is_client_error(), "{bad}: {code} {r}");
        assert!(r.to_string().contains(words), "{bad}: {r}");
    }
    assert_eq!(e.cluster.all().len(), 1);
    // Callbacks are off by default.
    let off = env(&[]);
    let body = json!({"language": "python", "source": "1", "callback": {"url": "http://127.0.0.1:9/hook"}});
    let (code, _, r) = call(&off.app, post("/api/executions", &body.to_string())).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r.to_string().contains("callbacks are not enabled"), "{r}");
}

#[tokio::test]
async fn native_and_seed_status_carry_the_exact_bytes() {
    let e = env(&[]);
    let (_, _, r) = call(&e.app, post("/api/executions", r#"{"language":"bash","source":"x"}"#)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let ex = e.cluster.all().remove(0);
    let st = ExecutionStatus {
        stdout: Some("/v8AQQo=".into()),
        stdout_encoding: rce_api::FileEncoding::Base64,
        stderr: Some("e".repeat(10)),
        output: Some(rce_api::StoredOutput {
            config_maps: vec![format!("{id}-output-0")],
            stdout_bytes: 5,
            stderr_bytes: 70_000,
            compile_output_bytes: 0,
        }),
        ..completed("")
    };
    let mut part = vec![0xfe, 0xff, 0x00, 0x41, 0x0a];
    part.extend(std::iter::repeat_n(b'e', 70_000));
    e.cluster.put_config_map("default", &format!("{id}-output-0"), "part", part);
    e.cluster.set_status("default", &id, st.clone());
    e.status.publish(doc(&ex, st));
    let (code, _, v) = call(&e.app, get(&format!("/api/executions/{id}"))).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!((&v["stdout"], &v["stdoutEncoding"]), (&json!("/v8AQQo="), &json!("base64")));
    assert_eq!(v["stderr"].as_str().unwrap().len(), 70_000);
    let (_, _, s) = call(&e.app, get(&format!("/api/status/{id}"))).await;
    assert_eq!(s["output"].as_str().unwrap().len(), "\u{fffd}\u{fffd}\0A\n".len() + 70_000, "{s}");
}

#[tokio::test]
async fn judge0_numericality_words_are_upstreams() {
    let e = j0_env(&[]);
    for (field, value, message) in [
        ("cpu_time_limit", json!(-1), "must be greater than or equal to 0"),
        ("cpu_extra_time", json!(-1), "must be greater than or equal to 0"),
        ("stack_limit", json!(-1), "must be greater than or equal to 0"),
        ("max_file_size", json!(-1), "must be greater than or equal to 0"),
        ("wall_time_limit", json!(0.5), "must be greater than or equal to 1"),
        ("max_processes_and_or_threads", json!(0), "must be greater than 0"),
        ("cpu_time_limit", json!("abc"), "is not a number"),
        // The Runtime's maxima (python's here: 15 s, 512 MiB), in Judge0's units.
        ("wall_time_limit", json!(15.5), "must be less than or equal to 15.0"),
        ("memory_limit", json!(524289), "must be less than or equal to 524288"),
    ] {
        let (code, got, _) =
            j0_submit(&e, json!({"language_id": 71, "source_code": "x", field: value})).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{field}={value}: {got}");
        assert_eq!(got, json!({field: [message]}), "{field}={value}");
    }
    // A project's run script gets no arguments (upstream writes no run script for it).
    let project = j0_zip(&[("run", b"echo \"$@\"\n")]);
    let (code, body, ex) = j0_submit(
        &e,
        json!({"language_id": 89, "additional_files": b64(&project), "command_line_arguments": "x y"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert!(ex.unwrap().spec.args.is_empty());
}

#[tokio::test]
async fn judge0_full_queue_and_statistics_as_upstream() {
    let e = j0_env(&["--max-pending", "2"]);
    for i in 0..2 {
        let (code, body, _) =
            j0_submit(&e, json!({"language_id": 71, "source_code": format!("print({i})")})).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let (code, body, _) = j0_submit(&e, json!({"language_id": 50, "source_code": "x"})).await;
    e.cluster.set_pending(Some(2));
    let (full, full_body, _) = j0_submit(&e, json!({"language_id": 50, "source_code": "x"})).await;
    assert_eq!((full, full_body), (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "queue is full"})));
    let _ = (code, body);
    let (code, _, st) = call(&e.app, get("/statistics")).await;
    assert_eq!(code, StatusCode::OK, "{st}");
    let total = st["submissions"]["total"].as_u64().unwrap();
    assert!(total >= 2, "{st}");
    assert_eq!(st["submissions"]["last_30_days"].as_object().unwrap().len(), 30, "{st}");
    let by_language: u64 =
        st["languages"].as_array().unwrap().iter().map(|l| l["count"].as_u64().unwrap()).sum();
    assert_eq!(by_language, total, "{st}");
    assert_eq!(st["statuses"][0]["status"], json!({"id": 1, "name": "In Queue"}), "{st}");
    assert!(st["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn judge0_created_at_keeps_the_milliseconds_of_arrival() {
    let e = j0_env(&[]);
    let (_, body, ex) = j0_submit(&e, json!({"language_id": 71, "source_code": "1"})).await;
    let ex = ex.unwrap();
    let given = ex.metadata.annotations.as_ref().unwrap()["rce.dev/judge0-created-at"].clone();
    assert!(given.len() == 24 && given.as_bytes()[19] == b'.' && given.ends_with('Z'), "{given}");
    let token = body["token"].as_str().unwrap();
    let (_, _, s) = call(&e.app, get(&format!("/submissions/{token}?fields=created_at"))).await;
    assert_eq!(s, json!({"created_at": given}));
}

#[tokio::test]
async fn judge0_zero_limits_are_isolates_no_limit_so_rces_largest() {
    let e = j0_env(&[]);
    let (code, body, ex) = j0_submit(
        &e,
        json!({"language_id": 71, "source_code": "1", "cpu_time_limit": 0, "stack_limit": 0, "max_file_size": 0}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let l = ex.unwrap().spec.limits.unwrap();
    // python's maxima in the test catalog, under the built-in ceilings.
    assert_eq!((l.cpu_time_ms, l.stack_kib), (Some(10_000), Some(256 * 1024)));
    assert_eq!((l.file_size_kib, l.output_bytes), (Some(4096), Some(4096 * 1024)));
    let token = body["token"].as_str().unwrap();
    let (_, _, s) =
        call(&e.app, get(&format!("/submissions/{token}?fields=cpu_time_limit,stack_limit,max_file_size")))
            .await;
    assert_eq!(s, json!({"cpu_time_limit": "10.0", "stack_limit": 262144, "max_file_size": 4096}));
}

#[tokio::test]
async fn judge0_options_for_a_compiler_that_takes_none_are_refused_in_upstreams_words() {
    let mut c = rce_api_shim::testing::runtime("c", "12.2.0", &[], &[50]);
    c.spec.compile = Some(["gcc", "-o", "main", "{file}"].map(String::from).to_vec());
    let mut cpp = rce_api_shim::testing::runtime("cpp", "12.2.0", &[], &[54]);
    cpp.spec.display_name = "C++ (GCC)".into();
    cpp.spec.compile = Some(["g++", "{options}", "-o", "main", "{file}"].map(String::from).to_vec());
    cpp.spec.compiler_options = vec!["-O*".into()];
    let cluster = MemoryCluster::with_runtimes(vec![c, cpp]);
    let state =
        AppState::new(Config::parse_from(["rce-api-shim"]), cluster, Arc::new(MemoryStatus::default()))
            .unwrap();
    let app = app(state);
    let (code, _, body) =
        call(&app, post("/submissions", r#"{"language_id":50,"source_code":"x","compiler_options":"-O2"}"#))
            .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"compiler_options": ["setting compiler options is only allowed for C++ (GCC)"]}));
    let (code, _, body) =
        call(&app, post("/submissions", r#"{"language_id":54,"source_code":"x","compiler_options":"-O2"}"#))
            .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------- test cases

#[tokio::test]
async fn test_cases_are_checked_at_submission_and_stored_in_the_execution() {
    let e = env(&["--max-tests", "3", "--max-tests-time-ms", "20000"]);
    let case = |i: u32| json!({"name": format!("c{i}"), "stdin": format!("{i}\n"), "expectedOutput": format!("{}\n", i * 2)});
    // Refused: with top-level stdin, empty, too many, a repeated name, over the time bound,
    // an unknown field in a case, a bad epsilon.
    for (body, says) in [
        (json!({"language": "python", "source": "1", "stdin": "x", "tests": [case(1)]}), "stdin"),
        (json!({"language": "python", "source": "1", "tests": []}), "empty"),
        (
            json!({"language": "python", "source": "1", "tests": [case(1), case(2), case(3), case(4)]}),
            "at most 3",
        ),
        (json!({"language": "python", "source": "1", "tests": [case(1), case(1)]}), "twice"),
        (
            json!({"language": "python", "source": "1", "limits": {"wallTimeMs": 9000}, "tests": [case(1), case(2), case(3)]}),
            "at most 20000 ms",
        ),
        (json!({"language": "python", "source": "1", "tests": [{"stdin": "1", "bogus": 1}]}), "bogus"),
        (
            json!({"language": "python", "source": "1", "tests": [case(1)], "checker": {"mode": "float", "epsilon": "x"}}),
            "epsilon",
        ),
    ] {
        let (code, _, reply) = call(&e.app, post("/api/executions", &body.to_string())).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
        assert!(reply.to_string().contains(says), "{body}: {reply} should say {says:?}");
    }
    assert!(e.cluster.all().is_empty(), "nothing was created by refused submissions");
    let body = json!({"language": "python", "source": "print(int(input())*2)", "tests": [case(1), {"stdin": "2\n"}],
                      "stopOnFirstFailure": true, "checker": {"mode": "exact"}});
    let (code, _, reply) = call(&e.app, post("/api/executions", &body.to_string())).await;
    assert_eq!(code, StatusCode::CREATED, "{reply}");
    let ex = e.cluster.all().pop().expect("created");
    let tests = ex.spec.tests.as_ref().expect("tests");
    assert_eq!(tests.len(), 2);
    assert_eq!((tests[0].name.as_deref(), tests[0].expected_output.as_deref()), (Some("c1"), Some("2\n")));
    assert!(ex.spec.stop_on_first_failure);
    assert_eq!(ex.spec.checker.as_ref().map(|c| c.mode), Some(rce_api::CheckerMode::Exact));
}

/// Test data over 256 KiB goes into ConfigMaps the Execution owns; the spec refers to them.
#[tokio::test]
async fn large_test_data_goes_into_config_maps_owned_by_the_execution() {
    let e = env(&["--max-test-data-bytes", "4000000"]);
    let big = "7 ".repeat(100_000); // 200 kB per case, 6 cases (1.2 MB) of stdin and 6 of expected
    let tests: Vec<Value> =
        (0..6).map(|i| json!({"name": format!("t{i}"), "stdin": big, "expectedOutput": big})).collect();
    let body = json!({"language": "python", "source": "print(input())", "tests": tests});
    let (code, _, reply) = call(&e.app, post("/api/executions", &body.to_string())).await;
    assert_eq!(code, StatusCode::CREATED, "{reply}");
    let ex = e.cluster.all().pop().expect("created");
    let name = ex.metadata.name.clone().unwrap();
    let ns = ex.metadata.namespace.clone().unwrap();
    let mut read = 0;
    for (i, t) in ex.spec.tests.as_ref().unwrap().iter().enumerate() {
        assert!(t.stdin.is_none() && t.expected_output.is_none(), "case {i} keeps no inline data");
        for r in [t.stdin_from.as_ref().unwrap(), t.expected_output_from.as_ref().unwrap()] {
            assert!(r.config_map.starts_with(&format!("{name}.tests-")), "{r:?}");
            let maps = e.cluster.config_maps.lock().unwrap();
            let data = maps.get(&(ns.clone(), r.config_map.clone())).expect("the ConfigMap exists");
            assert_eq!(data.get(&r.key).map(Vec::len), Some(big.len()), "{r:?}");
            read += 1;
        }
    }
    assert_eq!(read, 12);
    // Too much in all: refused.
    let tests: Vec<Value> =
        (0..12).map(|i| json!({"name": format!("t{i}"), "stdin": big, "expectedOutput": big})).collect();
    let body = json!({"language": "python", "source": "1", "tests": tests});
    let (code, _, reply) = call(&e.app, post("/api/executions", &body.to_string())).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(reply.to_string().contains("test data"), "{reply}");
}
