//! The one cluster test harness: a test namespace whose Executions run on the engine's
//! operator (the one `make up` starts, serving every Execution without an `rce.dev/operator`
//! label), or on an operator of the test's own started in-process
//! ([`crate::operator::OwnOperator`]: a configuration of the test's choosing, or another
//! RuntimeClass such as gVisor) serving only the test's namespace; submit, wait, cleanup;
//! and the helpers that read an Execution's status.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams},
    ResourceExt,
};
use rce_api::{Execution, Phase, Runtime, Verdict};

use crate::{operator::OwnOperator, TestNamespace};

/// What a timeout most likely means, for error messages.
const NO_OPERATOR: &str = "no operator gave them a status: is the engine's operator running \
     (`make up`, `hack/engine.sh status`)? Executions here carry no `rce.dev/operator` label, \
     so only `make up`'s operator serves them";

/// An operator gives every new Execution a status (at least Pending) within this.
const NO_STATUS_WITHIN: Duration = Duration::from_secs(30);

/// How long [`Engine::wait_done`] waits.
pub const WAIT: Duration = Duration::from_secs(90);

/// How long cleanup waits for the Executions to go (their finalizer needs an operator).
const CLEANUP_WITHIN: Duration = Duration::from_secs(30);

/// A test namespace whose Executions the engine's own operator runs, or an in-process
/// operator of the test's own.
pub struct Engine {
    pub ns: TestNamespace,
    /// The RuntimeClass sandboxes run under (None: the cluster's default, runc).
    pub runtime_class: Option<String>,
    operator: Option<OwnOperator>,
}

/// A namespace prefix from a test's name: a DNS label.
fn prefix_label(prefix: &str) -> String {
    let p: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    p.chars().take(40).collect::<String>().trim_matches('-').to_string()
}

impl Engine {
    /// Executions run on the engine's operator.
    pub async fn new(prefix: &str) -> Result<Self> {
        Ok(Self { ns: TestNamespace::new(&prefix_label(prefix)).await?, runtime_class: None, operator: None })
    }

    /// Executions run on an operator of the test's own, in-process, serving only this
    /// namespace, with [`OwnOperator::config`] changed by `tweak`.
    pub async fn with_operator(prefix: &str, tweak: impl FnOnce(&mut rce_operator::Config)) -> Result<Self> {
        let ns = TestNamespace::new(&prefix_label(prefix)).await?;
        let mut config = OwnOperator::config(std::slice::from_ref(&ns.name))?;
        tweak(&mut config);
        let runtime_class = config.sandbox.runtime_class_name.clone();
        Ok(Self { ns, runtime_class, operator: Some(OwnOperator::start(config)) })
    }

    /// Sandboxes under `runtime_class`: an operator of the test's own, in-process, serving
    /// only this namespace.
    pub async fn with_runtime_class(prefix: &str, runtime_class: &str) -> Result<Self> {
        let client = crate::client().await?;
        Api::<k8s_openapi::api::node::v1::RuntimeClass>::all(client)
            .get_opt(runtime_class)
            .await?
            .with_context(|| format!("RuntimeClass {runtime_class} is not installed: run `make up`"))?;
        Self::with_operator(&format!("{runtime_class}-{prefix}"), |config| {
            config.sandbox.runtime_class_name = Some(runtime_class.to_string());
            // A sandboxing runtime starts slower and costs more CPU (gVisor: about 0.7 s and
            // a kernel of its own per Pod): fewer at once, more time to start.
            config.max_running = 3;
            config.sandbox.start_margin_seconds = 30;
        })
        .await
    }

    /// Fail unless every one of the Runtimes `names` is installed.
    pub async fn require_runtimes(&self, names: &[&str]) -> Result<()> {
        for rt in names {
            Api::<Runtime>::all(self.ns.client.clone())
                .get_opt(rt)
                .await?
                .with_context(|| format!("Runtime {rt} is not installed: run `make up`"))?;
        }
        Ok(())
    }

    /// The configuration of the test's own operator, if it has one.
    pub fn operator_config(&self) -> Option<&rce_operator::Config> {
        self.operator.as_ref().map(OwnOperator::settings)
    }

    /// Start the test's own operator again after [`Engine::kill`].
    pub fn start(&mut self) {
        if let Some(op) = &mut self.operator {
            op.restart();
        }
    }

    /// Stop the test's own operator at once, mid-flight, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(op) = &mut self.operator {
            op.kill().await;
        }
    }

    /// Sandboxes run under gVisor.
    pub fn gvisor(&self) -> bool {
        self.runtime_class.as_deref() == Some("gvisor")
    }

    pub fn executions(&self) -> Api<Execution> {
        self.ns.api()
    }

    pub fn pods(&self) -> Api<Pod> {
        self.ns.api()
    }

    /// Every Runtime installed in the cluster.
    pub async fn runtimes(&self) -> Result<Vec<Runtime>> {
        let list = Api::<Runtime>::all(self.ns.client.clone())
            .list(&ListParams::default())
            .await
            .context("listing Runtimes: are the rce CRDs installed (`make up`)?")?;
        Ok(list.items)
    }

    /// Create an (unlabelled) Execution named `name` with `spec`.
    pub async fn submit(&self, name: &str, spec: serde_json::Value) -> Result<Execution> {
        let mut metadata = serde_json::json!({"name": name});
        if self.operator.is_some() {
            metadata["labels"] = serde_json::json!({ (crate::operator::LABEL): self.ns.name });
        }
        let e: Execution = serde_json::from_value(serde_json::json!({
            "apiVersion": "rce.dev/v1alpha1",
            "kind": "Execution",
            "metadata": metadata,
            "spec": spec,
        }))
        .with_context(|| format!("building Execution {name}"))?;
        self.executions()
            .create(&PostParams::default(), &e)
            .await
            .with_context(|| format!("creating Execution {name}"))
    }

    /// Submit many at once (a few creates in flight at a time).
    pub async fn submit_all(&self, items: &[(String, serde_json::Value)]) -> Result<()> {
        use futures::StreamExt as _;
        let results: Vec<Result<Execution>> = futures::stream::iter(items.iter())
            .map(|(name, spec)| self.submit(name, spec.clone()))
            .buffer_unordered(8)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(())
    }

    /// Wait until every one of `names` has a terminal phase; on timeout, the error names the
    /// ones still waiting with their status.
    pub async fn wait_all(&self, names: &[String], timeout: Duration) -> Result<BTreeMap<String, Execution>> {
        let api = self.executions();
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let all: BTreeMap<String, Execution> = api
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|e| (e.name_any(), e))
                .collect();
            let waiting: Vec<&String> = names
                .iter()
                .filter(|n| !all.get(*n).and_then(phase).is_some_and(Phase::is_terminal))
                .collect();
            if waiting.is_empty() {
                return Ok(names.iter().filter_map(|n| all.get(n).map(|e| (n.clone(), e.clone()))).collect());
            }
            let untouched = names.iter().all(|n| all.get(n).and_then(|e| e.status.as_ref()).is_none());
            if untouched && start.elapsed() > NO_STATUS_WITHIN {
                bail!(
                    "none of {} Executions got any status within {NO_STATUS_WITHIN:?}; {NO_OPERATOR}",
                    names.len()
                );
            }
            if Instant::now() > deadline {
                let detail: Vec<String> = waiting
                    .iter()
                    .map(|n| match all.get(*n) {
                        Some(e) => format!("{n}: {}", describe(e)),
                        None => format!("{n}: gone"),
                    })
                    .collect();
                bail!(
                    "{} of {} Executions not finished within {timeout:?}{}:\n  {}",
                    waiting.len(),
                    names.len(),
                    if untouched { format!("; {NO_OPERATOR}") } else { String::new() },
                    detail.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until every one of `names` has a terminal phase or `timeout` passes; return the
    /// latest copy of each either way (the caller judges the ones still running).
    pub async fn wait_settled(
        &self,
        names: &[String],
        timeout: Duration,
    ) -> Result<BTreeMap<String, Execution>> {
        let api = self.executions();
        let deadline = Instant::now() + timeout;
        loop {
            let all: BTreeMap<String, Execution> = api
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| names.contains(&e.name_any()))
                .map(|e| (e.name_any(), e))
                .collect();
            let done = names.iter().all(|n| all.get(n).and_then(phase).is_some_and(Phase::is_terminal));
            if done || Instant::now() > deadline {
                return Ok(all);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Submit one and wait for it.
    pub async fn run(&self, name: &str, spec: serde_json::Value, timeout: Duration) -> Result<Execution> {
        self.submit(name, spec).await?;
        let mut done = self.wait_all(&[name.to_string()], timeout).await?;
        done.remove(name).context("finished Execution vanished")
    }

    /// Names of sandbox Pods still in the namespace, waiting up to `grace` for them to go:
    /// every cold sandbox, and every warm Pod that is not idle or starting (a pool's Pods
    /// stay, but none of them still claimed).
    pub async fn leftover_sandboxes(&self, grace: Duration) -> Result<Vec<String>> {
        use rce_api::warmpool::{POOL_LABEL, STATE_IDLE, STATE_LABEL, STATE_STARTING};
        let lp = ListParams::default().labels(rce_api::SANDBOX_LABEL);
        let pooled_and_free = |p: &Pod| {
            p.labels().contains_key(POOL_LABEL)
                && matches!(
                    p.labels().get(STATE_LABEL).map(String::as_str),
                    Some(STATE_IDLE | STATE_STARTING)
                )
        };
        let deadline = Instant::now() + grace;
        loop {
            let pods: Vec<String> = self
                .pods()
                .list(&lp)
                .await?
                .items
                .iter()
                .filter(|p| !pooled_and_free(p))
                .map(|p| p.name_any())
                .collect();
            if pods.is_empty() || Instant::now() > deadline {
                return Ok(pods);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until `name` satisfies `pred`; the last seen object on timeout goes in the error.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Execution) -> bool,
    ) -> Result<Execution> {
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.executions().get(name).await?;
            if pred(&e) {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("{name} not as expected within {timeout:?}; status: {}", describe(&e));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait (up to [`WAIT`]) until `name` has a terminal phase.
    pub async fn wait_done(&self, name: &str) -> Result<Execution> {
        self.wait_for(name, WAIT, |e| phase(e).is_some_and(Phase::is_terminal)).await
    }

    /// Delete every Execution while an operator still runs (its finalizer needs it; a
    /// killed own operator is started again), stop the own operator, strip the finalizers
    /// of any left, then remove the namespace.
    pub async fn cleanup(mut self) -> Result<()> {
        self.start();
        remove_executions(&[&self.ns]).await?;
        self.kill().await;
        strip_finalizers(&self.ns).await?;
        self.ns.cleanup().await
    }
}

/// Delete the Executions of `namespaces` and wait (up to 30 s) until they are gone; an
/// operator must run for that (their finalizer).
pub async fn remove_executions(namespaces: &[&TestNamespace]) -> Result<()> {
    for ns in namespaces {
        let _ = ns
            .api::<Execution>()
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
    }
    let deadline = Instant::now() + CLEANUP_WITHIN;
    while Instant::now() < deadline {
        let mut left = 0;
        for ns in namespaces {
            left += ns.api::<Execution>().list(&ListParams::default()).await?.items.len();
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Remove the finalizers of the Executions left in `ns` (once no operator serves them).
pub async fn strip_finalizers(ns: &TestNamespace) -> Result<()> {
    let api = ns.api::<Execution>();
    for e in api.list(&ListParams::default()).await?.items {
        let patch = serde_json::json!({"metadata": {"finalizers": null}});
        let _ = api.patch(&e.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
    }
    Ok(())
}

/// Run `body` with a fresh [`Engine`] namespace, cleaning up whatever the outcome:
/// - `with_engine!(prefix, |eng| { ... })`: on the engine's operator;
/// - `with_engine!(runtime_class "gvisor", prefix, |eng| { ... })`: under that RuntimeClass;
/// - `with_engine!(operator prefix, |config| { ... }, needs ["python"], |eng| { ... })`: on an
///   operator of the test's own with that configuration, once the Runtimes named exist.
///
/// With an operator of its own, a test waits for its turn ([`crate::operator::TURN`]).
#[macro_export]
macro_rules! with_engine {
    ($prefix:expr, |$e:ident| $body:block) => {{
        let $e = $crate::exec::Engine::new($prefix).await?;
        let result: anyhow::Result<()> = async { $body }.await;
        let cleaned = $e.cleanup().await;
        result?;
        cleaned
    }};
    (runtime_class $class:expr, $prefix:expr, |$e:ident| $body:block) => {{
        let _turn = $crate::operator::TURN.lock().await;
        let $e = $crate::exec::Engine::with_runtime_class($prefix, $class).await?;
        let result: anyhow::Result<()> = async { $body }.await;
        let cleaned = $e.cleanup().await;
        result?;
        cleaned
    }};
    (operator $prefix:expr, $tweak:expr, needs $runtimes:expr, |$e:ident| $body:block) => {{
        let _turn = $crate::operator::TURN.lock().await;
        #[allow(unused_mut)]
        let mut $e = $crate::exec::Engine::with_operator($prefix, $tweak).await?;
        let result: anyhow::Result<()> = async {
            $e.require_runtimes(&$runtimes).await?;
            $body
        }
        .await;
        let cleaned = $e.cleanup().await;
        result?;
        cleaned
    }};
}

/// For each `async fn name(eng: &Engine) -> Result<()>` listed, a test `runc::name` on the
/// cluster's default runtime (the engine's operator) and a test `gvisor::name` under the
/// gvisor RuntimeClass (one at a time: the node has two cores).
#[macro_export]
macro_rules! on_runc_and_gvisor {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    rce_tests::with_engine!(stringify!($name), |eng| { super::$name(&eng).await })
                }
            )*
        }
        mod gvisor {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    rce_tests::with_engine!(runtime_class "gvisor", stringify!($name), |eng| { super::$name(&eng).await })
                }
            )*
        }
    };
}

pub fn phase(e: &Execution) -> Option<Phase> {
    e.status.as_ref().and_then(|s| s.phase)
}

pub fn verdict(e: &Execution) -> Option<Verdict> {
    e.status.as_ref().and_then(|s| s.verdict)
}

pub fn stdout(e: &Execution) -> &str {
    e.status.as_ref().and_then(|s| s.stdout.as_deref()).unwrap_or("")
}

pub fn stderr(e: &Execution) -> &str {
    e.status.as_ref().and_then(|s| s.stderr.as_deref()).unwrap_or("")
}

pub fn message(e: &Execution) -> &str {
    e.status.as_ref().and_then(|s| s.message.as_deref()).unwrap_or("")
}

/// The name the operator gives the sandbox Pod of `attempt` of `e`.
pub fn sandbox_name(e: &Execution, attempt: u32) -> String {
    rce_operator::names::pod_name(&e.name_any(), &e.uid().unwrap_or_default(), attempt)
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac]Z`) to whole seconds since the epoch.
pub fn epoch_secs(t: &str) -> Option<i64> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut tt = time.split(':');
    let (hh, mm) = (tt.next()?.parse::<i64>().ok()?, tt.next()?.parse::<i64>().ok()?);
    let ss = tt.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The status as compact JSON, long strings shortened, for failure messages.
pub fn describe(e: &Execution) -> String {
    let mut v = serde_json::to_value(&e.status).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("conditions");
        for val in obj.values_mut() {
            if let Some(s) = val.as_str() {
                if s.len() > 300 {
                    let mut cut = 300;
                    while !s.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    *val = serde_json::Value::String(format!("{}…({} bytes)", &s[..cut], s.len()));
                }
            }
        }
    }
    v.to_string()
}

/// `sandbox-images/langs`, from the workspace root.
pub fn langs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("sandbox-images").join("langs")
}

/// The sample program `sandbox-images/langs/<lang>/tests/<case>.*`, if there is one.
pub fn sample(lang: &str, case: &str) -> Result<Option<String>> {
    let dir = langs_dir().join(lang).join("tests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    for entry in entries {
        let path = entry?.path();
        let stem = path.file_stem().and_then(|s| s.to_str());
        if stem == Some(case) && path.extension().is_some() {
            return Ok(Some(
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
            ));
        }
    }
    Ok(None)
}

/// The Node's Ready condition is True.
pub async fn nodes_ready(client: &kube::Client) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Node;
    let mut not_ready = Vec::new();
    for n in Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items {
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            not_ready.push(n.name_any());
        }
    }
    Ok(not_ready)
}

/// What was seen of one sandbox Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenPod {
    /// The node it was bound to, once it was.
    pub node: Option<String>,
    /// When its first container started running (seconds since the epoch), once it did.
    pub running_since: Option<i64>,
}

/// Every sandbox Pod ("name/uid") ever seen per Execution (its `rce.dev/execution` label).
pub type SandboxPods = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, std::collections::HashMap<String, SeenPod>>>,
>;

/// Collect [`SandboxPods`] from a watch of `pods` (start it before the submissions).
pub fn watch_sandbox_pods(pods: Api<Pod>) -> (SandboxPods, tokio::task::JoinHandle<()>) {
    use futures::StreamExt as _;
    use kube::runtime::{watcher, WatchStreamExt as _};
    let seen: SandboxPods = Default::default();
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let stream =
            watcher(pods, watcher::Config::default().labels("rce.dev/sandbox=true")).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(p)) = stream.next().await {
            let exec = p.labels().get("rce.dev/execution").cloned().unwrap_or_default();
            let id = format!("{}/{}", p.name_any(), p.uid().unwrap_or_default());
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let running_since = rce_operator::sandbox::container_started_at(&p).map(|t| t.0.as_second());
            if let Ok(mut m) = s.lock() {
                let e = m.entry(exec).or_default().entry(id).or_default();
                if node.is_some() {
                    e.node = node;
                }
                if e.running_since.is_none() {
                    e.running_since = running_since;
                }
            }
        }
    });
    (seen, task)
}
