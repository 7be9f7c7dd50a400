//! Operator replicas as real processes (the operator binary of this checkout), so that a
//! test can SIGKILL one as a crash would and start another: each serves the test's
//! namespace (and only Executions labelled `rce.dev/operator=<namespace>`), holds its
//! membership Lease in that namespace, and logs to a file of its own.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{api::ListParams, Api, Client};

/// The operator binary, built first if needed (`cargo build -p rce-operator`).
pub fn operator_binary() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // <target>/<profile>/deps/<test binary>
            let profile_dir = exe.parent().and_then(|d| d.parent()).ok_or("no target dir")?.to_path_buf();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "-q", "-p", "rce-operator", "--bin", "rce-operator"]);
            if release {
                cmd.arg("--release");
            }
            let st = cmd.status().map_err(|e| format!("running cargo build: {e}"))?;
            if !st.success() {
                return Err(format!("cargo build -p rce-operator failed: {st}"));
            }
            let bin = profile_dir.join("rce-operator");
            if !bin.exists() {
                return Err(format!("{} not found after the build", bin.display()));
            }
            Ok(bin)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// One operator process.
pub struct Replica {
    pub identity: String,
    pub log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Replica {
    /// Start replica `identity` for `namespace`, with `env` on top of the defaults.
    pub fn start(namespace: &str, identity: &str, env: &[(&str, &str)]) -> Result<Replica> {
        let bin = operator_binary()?;
        let log = std::env::temp_dir().join(format!("rce-test-{namespace}-{identity}.log"));
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env("RCE_NAMESPACES", namespace)
            .env("RCE_SELECTOR", format!("{}={namespace}", crate::operator::LABEL))
            .env("RCE_IDENTITY", identity)
            .env("RCE_LEASE_NAMESPACE", namespace)
            .env("RCE_METRICS_ADDR", "127.0.0.1:0")
            .env("RCE_REDIS_URL", crate::redis::shared_url())
            .env("RCE_IMAGE_PULL_POLICY", "Never")
            .env("RCE_TTL_SECONDS", "0")
            .env("RCE_LOG", std::env::var("RCE_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting an operator replica")?;
        Ok(Replica { identity: identity.into(), log, child: Some(child) })
    }

    /// SIGKILL it (no lease released, nothing finished: a crash).
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            let _ = c.wait().await;
        }
        Ok(())
    }

    /// SIGTERM it and wait for it to leave (bounded).
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                // SAFETY: a signal to our own child.
                unsafe { libc_kill(pid as i32, 15) };
            }
            if tokio::time::timeout(Duration::from_secs(20), c.wait()).await.is_err() {
                c.start_kill()?;
                let _ = c.wait().await;
            }
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Lines of its log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The identities holding a live membership Lease in `namespace` now.
pub async fn live_members(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let now = chrono_now();
    let mut live = Vec::new();
    for l in Api::<Lease>::namespaced(client.clone(), namespace).list(&ListParams::default()).await?.items {
        let Some(spec) = l.spec else { continue };
        let (Some(holder), Some(renew), Some(secs)) =
            (spec.holder_identity, spec.renew_time, spec.lease_duration_seconds)
        else {
            continue;
        };
        let renewed = crate::exec::epoch_secs(&renew.0.to_string()).unwrap_or(0);
        if !holder.is_empty() && renewed + i64::from(secs) > now {
            live.push(holder);
        }
    }
    live.sort();
    Ok(live)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Wait until exactly `want` are the live members.
pub async fn wait_members(client: &Client, namespace: &str, want: &[&str], timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    loop {
        let live = live_members(client, namespace).await?;
        if live == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("live members {live:?}, expected {want:?} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
