//! The RabbitMQ path against a real broker (`RCE_AMQP_URL`, default the local one on
//! 127.0.0.1:5672). Built only with `--features amqp`; fails when no broker answers.
#![cfg(feature = "amqp")]
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use clap::Parser;
use http_body_util::BodyExt;
use rce_api_shim::{
    app,
    testing::{seed_runtimes, MemoryCluster, MemoryStatus},
    AppState, Config,
};
use tower::ServiceExt;

#[tokio::test]
async fn submissions_go_through_a_durable_queue_and_become_executions() {
    let url = std::env::var("RCE_AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into());
    let queue = format!("rce.test.{}", uuid::Uuid::new_v4());
    let config = Config::parse_from(["x", "--amqp-url", &url, "--amqp-queue", &queue]);
    let cluster = MemoryCluster::with_runtimes(seed_runtimes());
    let state = AppState::new(config, cluster.clone(), Arc::new(MemoryStatus::default())).unwrap();
    let state = state.wire_amqp().await.expect("RabbitMQ must be reachable (make up)");
    let app = app(state);
    let req = Request::post("/api/execute")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"language":"python","code":"print(1)"}"#))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = body["jobId"].as_str().unwrap().to_string();
    // The consumer created it (the POST waited briefly for that).
    let mut found = false;
    for _ in 0..50 {
        if cluster.all().iter().any(|e| e.metadata.name.as_deref() == Some(id.as_str())) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the queued submission became an Execution");
    assert_eq!(cluster.all().len(), 1, "exactly once");
}
