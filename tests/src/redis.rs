//! Redis for the tests: the shared one (`make up`'s, from `RCE_REDIS_URL`), the one launcher
//! of a redis-server of a test's own, and reading the operator's status mirror.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use rce_api::{
    redis_keys::{status_key, StatusDocument},
    Phase,
};

/// The Redis `make up` starts: `RCE_REDIS_URL`, else its default address.
pub fn shared_url() -> String {
    std::env::var("RCE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379".into())
}

/// A redis-server of the test's own on a loopback port (no persistence), stopped on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// On a free loopback port.
    pub async fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Self::start_on(port).await
    }

    /// On `port` (e.g. again on the port of one stopped before); returns once it answers.
    pub async fn start_on(port: u16) -> Result<Self> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (Debian package redis-server)")?;
        let server = RedisServer { port, child: Some(child) };
        let client = redis::Client::open(server.url())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await
            {
                if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                bail!("redis-server on 127.0.0.1:{port} did not answer within 5 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stop it now (killed, as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The operator's status document for `ns`/`name` in the Redis at `url`, if there is one.
pub async fn status_doc(url: &str, ns: &str, name: &str) -> Result<Option<StatusDocument>> {
    let client = redis::Client::open(url)?;
    let mut conn =
        tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await??;
    let v: Option<String> = redis::cmd("GET").arg(status_key(ns, name)).query_async(&mut conn).await?;
    Ok(match v {
        Some(s) => Some(serde_json::from_str(&s)?),
        None => None,
    })
}

/// Wait until the document for `ns`/`name` has a terminal phase.
pub async fn wait_terminal_doc(url: &str, ns: &str, name: &str, timeout: Duration) -> Result<StatusDocument> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(doc)) = status_doc(url, ns, name).await {
            if doc.status.phase.is_some_and(Phase::is_terminal) {
                return Ok(doc);
            }
        }
        ensure!(Instant::now() < deadline, "no terminal status for {name} in Redis within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
