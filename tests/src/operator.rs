//! The one in-process operator starter: an operator from this checkout, started inside the
//! test process, serving only the test's namespaces and only the Executions labelled
//! `rce.dev/operator=<first namespace>` (the operator `make up` starts selects
//! `!rce.dev/operator`, so it leaves them alone).

use anyhow::Result;
use rce_operator::Config;

/// The label that gives an Execution to an operator of a test's own.
pub const LABEL: &str = "rce.dev/operator";

/// One test with an operator of its own at a time, per test binary: the node has two cores.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An operator of the test's own; stopped at once when dropped, as a crash would.
pub struct OwnOperator {
    config: Config,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OwnOperator {
    /// Every default, but: only `namespaces` (the first names the label value), metrics on a
    /// free loopback port, finished Executions kept (TTL 0), the shared Redis
    /// ([`crate::redis::shared_url`]).
    pub fn config(namespaces: &[String]) -> Result<Config> {
        let mut config = Config::defaults();
        let first = namespaces.first().cloned().unwrap_or_default();
        config.namespaces = namespaces.to_vec();
        config.selector = format!("{LABEL}={first}");
        config.metrics_addr = "127.0.0.1:0".parse()?;
        config.ttl_seconds = 0;
        config.redis_url = crate::redis::shared_url();
        Ok(config)
    }

    /// Start an operator with `config` (its logs go to the test's output, `RCE_LOG` filters).
    pub fn start(config: Config) -> Self {
        init_logs();
        let mut op = OwnOperator { config, task: None };
        op.restart();
        op
    }

    /// The configuration it runs with.
    pub fn settings(&self) -> &Config {
        &self.config
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Start it again after [`OwnOperator::kill`] (a no-op while it runs).
    pub fn restart(&mut self) {
        if self.task.is_some() {
            return;
        }
        let config = self.config.clone();
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = rce_operator::run_until(config, std::future::pending()).await {
                eprintln!("operator stopped: {e:#}");
            }
        }));
    }

    /// Stop it at once, mid-flight, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for OwnOperator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RCE_LOG")
                .unwrap_or_else(|_| "warn,rce_operator=info".into()),
        )
        .with_test_writer()
        .try_init();
}
