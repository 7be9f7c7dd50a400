//! The RabbitMQ path's test kit: a RabbitMQ broker of the test's own (its own node name, ports,
//! mnesia and log directories; the shared epmd on 127.0.0.1:4369), which it may kill and start
//! again without disturbing anyone; the shim of this checkout built with `--features amqp`,
//! run as separate processes that may be SIGKILLed; raw AMQP access through lapin.

use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use lapin::{Connection, ConnectionProperties};

use crate::random_suffix;

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A rabbitmq-server of the test's own; killed (its whole process group) and its directory
/// removed on drop.
pub struct RabbitMq {
    pub node: String,
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl RabbitMq {
    /// Start it and wait until it takes AMQP connections.
    pub async fn start() -> Result<Self> {
        let suffix = random_suffix();
        let dir = std::env::temp_dir().join(format!("rce-amqp-{suffix}"));
        fs::create_dir_all(dir.join("mnesia"))?;
        fs::create_dir_all(dir.join("log"))?;
        fs::write(dir.join("enabled_plugins"), "[].\n")?;
        let port = free_port()?;
        let mut dist_port = free_port()?;
        while dist_port == port {
            dist_port = free_port()?;
        }
        let mut broker = RabbitMq {
            node: format!("rcetest-{suffix}@localhost"),
            port,
            dist_port,
            dir,
            child: None,
            starts: 0,
        };
        broker.restart().await?;
        Ok(broker)
    }

    /// `amqp://` URL of its default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Start it (again, on the same node name, ports and data) and wait until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the broker is running");
        }
        self.starts += 1;
        let log = fs::File::create(self.dir.join(format!("server-{}.log", self.starts)))?;
        let d = |p: &str| self.dir.join(p).display().to_string();
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", "4369")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting rabbitmq-server (Debian package rabbitmq-server)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let open = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_millis(200),
            )
            .is_ok();
            if !open {
                // Not listening yet (no AMQP attempt: lapin logs every one that fails).
            } else if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(2),
                Connection::connect(&self.url(), ConnectionProperties::default()),
            )
            .await
            {
                let _ = c.close(200, "ready").await;
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!("rabbitmq-server exited ({status}); see {}", self.dir.display());
                }
            }
            if Instant::now() > deadline {
                bail!("rabbitmq-server on 127.0.0.1:{} did not answer within 60 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kill it now, every process of it (SIGKILL to its process group), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", c.id())]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A connection to it.
    pub async fn connect(&self) -> Result<Connection> {
        Ok(Connection::connect(&self.url(), ConnectionProperties::default()).await?)
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The shim binary of this checkout built with `--features amqp` (`RCE_AMQP_SHIM_BIN`, or built
/// once per test run, then copied away so that another build of the shim cannot replace it under the test).
pub fn amqp_shim_binary() -> Result<PathBuf> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return Ok(p.clone());
    }
    if let Ok(p) = std::env::var("RCE_AMQP_SHIM_BIN") {
        // A shim binary built with `--features amqp` already.
        *built = Some(PathBuf::from(&p));
        return Ok(PathBuf::from(p));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace dir")?.to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "rce-api-shim", "--features", "amqp", "--bin", "rce-api-shim"])
        .current_dir(&workspace)
        .status()
        .context("running cargo build for the shim")?;
    if !status.success() {
        bail!("cargo build -p rce-api-shim --features amqp failed ({status})");
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace.join("target"));
    let src = target.join("debug").join("rce-api-shim");
    let dst = std::env::temp_dir().join(format!("rce-api-shim-amqp-{}", random_suffix()));
    fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    *built = Some(dst.clone());
    Ok(dst)
}

/// How to run one shim process.
#[derive(Clone, Debug)]
pub struct ShimSpec {
    pub namespace: String,
    pub amqp_url: String,
    pub queue: String,
    pub consume: bool,
    /// The test-only pause between create and ack (`RCE_AMQP_TEST_PAUSE_BEFORE_ACK_MS`).
    pub pause_before_ack_ms: u64,
}

/// A shim process (the `amqp` build) on a loopback port; SIGKILLed on drop (its log, in the
/// temp directory, is kept).
pub struct ShimProcess {
    pub spec: ShimSpec,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl ShimProcess {
    /// Start it and wait until `/ready` answers 200 (its caches have listed).
    pub async fn start(spec: ShimSpec) -> Result<Self> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("rce-amqp-shim-{}-{port}.log", random_suffix()));
        let mut p = ShimProcess { spec, port, log, child: None, starts: 0 };
        p.restart().await?;
        Ok(p)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start it again (same port, same log, appended) and wait until `/ready` answers 200 (its caches have listed).
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the shim is running");
        }
        self.starts += 1;
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let label = format!("rce.dev/operator={}", self.spec.namespace);
        let child = Command::new(amqp_shim_binary()?)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--namespace", &self.spec.namespace, "--execution-label", &label])
            .args(["--redis-url", &crate::redis::shared_url(), "--max-pending", "0"])
            .args(["--amqp-url", &self.spec.amqp_url, "--amqp-queue", &self.spec.queue])
            .args(["--amqp-consume", if self.spec.consume { "true" } else { "false" }])
            .env("RCE_AMQP_TEST_PAUSE_BEFORE_ACK_MS", self.spec.pause_before_ack_ms.to_string())
            .env("RCE_LOG", "info,rce_api_shim=info,tower_http=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the amqp shim")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = crate::shim::request("GET", &format!("{}/ready", self.base()), &[], None).await {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!("the shim exited ({status}): {}", self.log_text());
                }
            }
            if Instant::now() > deadline {
                bail!("the shim on port {} did not answer within 30 s: {}", self.port, self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL it, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ShimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
