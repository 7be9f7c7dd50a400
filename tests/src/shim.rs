//! The shim of this checkout on a loopback port, against the real cluster and Redis, with an
//! operator of the test's own for its namespace: what the Judge0 and Piston suites start.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use rce_api_shim::{
    app, backend::Cluster as _, kube_backend::KubeCluster, redis_store::RedisStatus, AppState, Config,
};
use serde_json::Value;

use crate::{
    exec::{remove_executions, strip_finalizers},
    operator::{OwnOperator, TURN},
    redis::shared_url,
    TestNamespace,
};

/// A running shim; dropping it stops the server (and the operator).
pub struct Shim {
    pub base: String,
    server: tokio::task::JoinHandle<()>,
    _operator: OwnOperator,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An HTTP answer: status, JSON body (null when not JSON) and the text.
pub struct Resp {
    pub status: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    pub body: Value,
    pub text: String,
}

impl Shim {
    /// The shim and an operator for `ns`, labelling its Executions for that operator; `extra`:
    /// more shim flags; `callbacks`: the `--callback-allow` list both take.
    pub async fn start(ns: &str, extra: &[&str], callbacks: &str) -> Result<Shim> {
        let turn = TURN.lock().await;
        let client = crate::client().await?;
        let redis = shared_url();
        let label = format!("rce.dev/operator={ns}");
        let mut args =
            vec!["rce-api-shim", "--namespace", ns, "--redis-url", &redis, "--execution-label", &label];
        if !callbacks.is_empty() {
            args.extend_from_slice(&["--callback-allow", callbacks]);
        }
        args.extend_from_slice(extra);
        let config = Config::try_parse_from(args)?;
        let cluster = KubeCluster::start(client);
        if !cluster.wait_ready(Duration::from_secs(30)).await {
            bail!("the shim's caches did not sync with the apiserver within 30 s");
        }
        if cluster.runtimes().unwrap_or_default().is_empty() {
            bail!("no Runtime objects in the cluster: is the operator installed (`make up`)?");
        }
        let status = Arc::new(RedisStatus::new(&config.redis_url)?);
        let state = AppState::new(config, cluster, status)?;
        if !state.status.ping().await {
            bail!("Redis at {redis} does not answer: is it up (`make up`)?");
        }
        let mut op = OwnOperator::config(&[ns.to_string()])?;
        op.callback_allow = rce_api::callback::Policy::parse(callbacks).map_err(anyhow::Error::msg)?;
        let operator = OwnOperator::start(op);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = app(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        Ok(Shim { base: format!("http://{addr}"), server, _operator: operator, _turn: turn })
    }

    /// Remove the test's Executions, stop, and delete its namespace.
    pub async fn finish(self, ns: TestNamespace) -> Result<()> {
        remove_executions(&[&ns]).await?;
        drop(self);
        strip_finalizers(&ns).await?;
        ns.cleanup().await
    }
}

/// One HTTP request (JSON body when given), within 90 s.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Resp> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<hyper::body::Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b.body(Full::new(hyper::body::Bytes::from(body.unwrap_or("").to_string())))?;
    let resp = tokio::time::timeout(Duration::from_secs(90), client.request(req))
        .await
        .context("HTTP timeout")??;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp { status, retry_after, body, text })
}

/// Several replicas of this checkout's shim on loopback ports, as separate processes would
/// be: each with its own cluster caches, Redis store (its own connections, its own pub/sub
/// hub) and in-process rate limiter; they share only the cluster and the Redis at
/// `redis_url`, with one operator of the test's own for `ns` (writing to the same Redis).
pub struct Replicas {
    /// Each replica's `http://127.0.0.1:PORT`.
    pub bases: Vec<String>,
    /// Each replica's Redis connection-name prefix (`rce-shim-<pid>-<n>`; its pub/sub
    /// connection is `<prefix>-pubsub`).
    pub client_names: Vec<String>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    pub operator: OwnOperator,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

impl Replicas {
    /// `n` replicas for `ns` with the shim flags `extra`, and the operator, all on the Redis
    /// at `redis_url`. Does not require Redis to answer (a test may stop it).
    pub async fn start(ns: &str, redis_url: &str, n: usize, extra: &[&str]) -> Result<Replicas> {
        let turn = TURN.lock().await;
        let label = format!("rce.dev/operator={ns}");
        let (mut bases, mut client_names, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let mut args = vec![
                "rce-api-shim",
                "--namespace",
                ns,
                "--redis-url",
                redis_url,
                "--execution-label",
                &label,
            ];
            args.extend_from_slice(extra);
            let config = Config::try_parse_from(args)?;
            let cluster = KubeCluster::start(crate::client().await?);
            if !cluster.wait_ready(Duration::from_secs(30)).await {
                bail!("the shim's caches did not sync with the apiserver within 30 s");
            }
            if cluster.runtimes().unwrap_or_default().is_empty() {
                bail!("no Runtime objects in the cluster: is the operator installed (`make up`)?");
            }
            let status = RedisStatus::new(&config.redis_url)?;
            client_names.push(status.client_name().to_string());
            let state = AppState::new(config, cluster, Arc::new(status))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            bases.push(format!("http://{}", listener.local_addr()?));
            let router = app(state);
            servers.push(tokio::spawn(async move {
                let _ =
                    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
            }));
        }
        let mut op = OwnOperator::config(&[ns.to_string()])?;
        op.redis_url = redis_url.to_string();
        let operator = OwnOperator::start(op);
        Ok(Replicas { bases, client_names, servers, operator, _turn: turn })
    }

    /// Remove the test's Executions, stop, and delete its namespace.
    pub async fn finish(self, ns: TestNamespace) -> Result<()> {
        remove_executions(&[&ns]).await?;
        drop(self);
        strip_finalizers(&ns).await?;
        ns.cleanup().await
    }
}

/// The names of the connections to the Redis at `url` (`CLIENT LIST`) that start with
/// `prefix`.
pub async fn redis_connections(url: &str, prefix: &str) -> Result<Vec<String>> {
    let client = redis::Client::open(url)?;
    let mut c =
        tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await??;
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut c).await?;
    Ok(list
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")).map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect())
}
