//! Warm pools in cluster tests: WarmPools of a test's own (labelled for its own operator, like
//! its Executions), waiting for them to be ready, and a [`LogKeeper`] that keeps every warm
//! Pod's log (the serving runner's frames: `started` and the sealed result line of each run)
//! and every sandbox Pod seen, so that a test can check what ran where, and how often, after
//! the Pods are gone.
//!
//! [`on_runc_gvisor_and_warm!`](crate::on_runc_gvisor_and_warm) runs a suite's test functions
//! a third time on warm Pods ([`with_warm_pools`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{Api, ListParams, LogParams, PostParams},
    runtime::{watcher, WatchStreamExt as _},
    ResourceExt,
};
use rce_api::{
    warmpool::{POOL_LABEL, STATE_IDLE, STATE_LABEL},
    Execution, Runtime, WarmPool,
};

use crate::{exec::Engine, operator::LABEL};

/// How long a pool may take to reach its size (about a second per Pod here; two cores).
pub const FILL: Duration = Duration::from_secs(120);

/// The Runtimes the hostile and integrity suites submit to: each gets a pool in warm mode.
pub const SUITE_RUNTIMES: [&str; 3] = ["python", "bash", "c"];

/// Pods per pool in warm mode.
pub const SUITE_REPLICAS: i32 = 2;

/// Runs per Pod in warm mode: enough that a Pod serves many of a suite's programs in turn.
pub const SUITE_MAX_RUNS: u32 = 50;

/// A WarmPool `name` of `runtime` in the Engine's namespace, for its own operator.
pub fn pool_object(
    eng: &Engine,
    name: &str,
    runtime: &str,
    replicas: i32,
    limits: serde_json::Value,
    max_runs: Option<u32>,
) -> Result<WarmPool> {
    let ns = &eng.ns.name;
    let mut spec = serde_json::json!({"runtime": runtime, "replicas": replicas, "limits": limits});
    if let Some(n) = max_runs {
        spec["reuse"] = serde_json::json!({"maxRuns": n});
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "WarmPool",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL: ns}},
        "spec": spec,
    }))?)
}

pub fn pools(eng: &Engine) -> Api<WarmPool> {
    eng.ns.api()
}

/// Create a pool (see [`pool_object`]).
pub async fn create_pool(
    eng: &Engine,
    name: &str,
    runtime: &str,
    replicas: i32,
    limits: serde_json::Value,
    max_runs: Option<u32>,
) -> Result<WarmPool> {
    let wp = pool_object(eng, name, runtime, replicas, limits, max_runs)?;
    pools(eng).create(&PostParams::default(), &wp).await.with_context(|| format!("creating WarmPool {name}"))
}

/// The pool's Pods that are not being deleted.
pub async fn live_pods(eng: &Engine, pool: &str) -> Result<Vec<Pod>> {
    let lp = ListParams::default().labels(&format!("{POOL_LABEL}={pool}"));
    Ok(eng
        .pods()
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

pub fn warm_state(p: &Pod) -> String {
    p.labels().get(STATE_LABEL).cloned().unwrap_or_default()
}

/// How long a pool may stay Invalid before [`wait_ready`] gives up (a Runtime re-applied
/// while the test runs is not found for a moment; a shape the operator refuses stays so).
const INVALID_FOR: Duration = Duration::from_secs(15);

/// Wait until the pool has `n` Pods, all idle (their runner proven ready).
pub async fn wait_ready(eng: &Engine, pool: &str, n: usize) -> Result<Vec<Pod>> {
    let t0 = Instant::now();
    let mut invalid_since: Option<Instant> = None;
    loop {
        let pods = live_pods(eng, pool).await?;
        if pods.len() == n && pods.iter().all(|p| warm_state(p) == STATE_IDLE) {
            return Ok(pods);
        }
        let st = pools(eng).get(pool).await?.status;
        let invalid =
            st.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason.as_deref() == Some("Invalid")));
        if !invalid {
            invalid_since = None;
        }
        let invalid_long = invalid && invalid_since.get_or_insert_with(Instant::now).elapsed() > INVALID_FOR;
        if invalid_long || t0.elapsed() > FILL {
            let states: Vec<(String, String)> = pods.iter().map(|p| (p.name_any(), warm_state(p))).collect();
            bail!("pool {pool} never had {n} idle Pods within {FILL:?}: Pods {states:?}, status {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Does the Engine's namespace have WarmPools (a suite run in warm mode)?
pub async fn is_warm(eng: &Engine) -> Result<bool> {
    Ok(!pools(eng).list(&ListParams::default()).await?.items.is_empty())
}

/// The shape of the suites' pools: everything a suite's Executions ask for fits, so that they
/// run warm: the most the Runtime and the operator's caps allow of every limit but memory
/// (256 MiB: no suite program asks for more, and every warm Pod holds its shape's memory).
pub fn suite_shape(rt: &Runtime, settings: &rce_operator::config::SandboxSettings) -> serde_json::Value {
    let mut limits = rce_api::Limits::default();
    let cap = settings.cap();
    for f in rce_api::LimitField::ALL {
        let most = rt.spec.max_limits.get(f).map_or(cap.get(f), |m| m.min(cap.get(f)));
        limits.set(f, Some(most));
    }
    limits.set(rce_api::LimitField::MemoryMiB, Some(256.min(cap.get(rce_api::LimitField::MemoryMiB))));
    serde_json::to_value(limits).unwrap_or_default()
}

/// Warm mode of a suite: a pool of [`SUITE_REPLICAS`] Pods with reuse ([`SUITE_MAX_RUNS`])
/// for each of [`SUITE_RUNTIMES`], all ready, then `body`; afterwards the share of the
/// Executions that ran warm is printed, and the run fails unless every pool served some and
/// most of the pooled runtimes' Executions ran warm (else the warm mode tested little).
pub async fn with_warm_pools<F, Fut>(eng: &Engine, body: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for rt in SUITE_RUNTIMES {
        let runtime = Api::<Runtime>::all(eng.ns.client.clone())
            .get_opt(rt)
            .await?
            .with_context(|| format!("Runtime {rt} is not installed: run `make up`"))?;
        let settings =
            &eng.operator_config().context("warm mode needs an operator of the test's own")?.sandbox;
        create_pool(eng, rt, rt, SUITE_REPLICAS, suite_shape(&runtime, settings), Some(SUITE_MAX_RUNS))
            .await?;
    }
    for rt in SUITE_RUNTIMES {
        wait_ready(eng, rt, SUITE_REPLICAS as usize).await?;
    }
    let t0 = Instant::now();
    body().await?;
    let all = eng.executions().list(&ListParams::default()).await?.items;
    let mut share: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in &all {
        if !SUITE_RUNTIMES.contains(&e.spec.language.as_str())
            || e.status.as_ref().and_then(|s| s.pod_name.as_ref()).is_none()
        {
            continue;
        }
        let entry = share.entry(e.spec.language.clone()).or_default();
        if e.status.as_ref().and_then(|s| s.warm_pool.as_ref()).is_some() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let (warm, cold) = share.values().fold((0, 0), |(w, c), (a, b)| (w + a, c + b));
    let mut st = Vec::new();
    for rt in SUITE_RUNTIMES {
        let s = pools(eng).get(rt).await?.status.unwrap_or_default();
        st.push(format!("{rt}: hits {} misses {}", s.hits, s.misses));
    }
    eprintln!(
        "warm mode: {warm} Executions ran warm, {cold} cold, in {:?} (per language warm/cold: {share:?}; pools: {st:?})",
        t0.elapsed()
    );
    for rt in SUITE_RUNTIMES {
        if let Some((w, _)) = share.get(rt) {
            ensure!(*w > 0, "no {rt} Execution ran warm: the warm mode did not test warm Pods ({share:?})");
        }
    }
    ensure!(warm > cold, "most Executions ran cold ({warm} warm, {cold} cold): the warm mode tested little");
    Ok(())
}

/// One frame of a serving runner's log that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `{"t":"started","runId":...}`
    Started(String),
    /// The sealed result line of a run.
    Result(String),
    /// `{"t":"spoiled",...}`: the runner could not prove a clean slate.
    Spoiled(String),
}

/// The frames of a warm Pod's log, in order.
pub fn frames(log: &str) -> Vec<Frame> {
    let mut out = Vec::new();
    for line in log.lines() {
        if line.starts_with(rce_api::protocol::RESULT_PREFIX) {
            let id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["rceResult"]["runId"].as_str().map(str::to_string))
                .or_else(|| {
                    let rest = line.split_once("\"runId\":\"")?.1;
                    Some(rest.split('"').next()?.to_string())
                })
                .unwrap_or_default();
            out.push(Frame::Result(id));
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match v["t"].as_str() {
            Some("started") => out.push(Frame::Started(v["runId"].as_str().unwrap_or_default().to_string())),
            Some("spoiled") => out.push(Frame::Spoiled(v["reason"].as_str().unwrap_or_default().to_string())),
            _ => {}
        }
    }
    out
}

/// The run ids a Pod started, in order, once `frames` strictly alternate `Started(x)`,
/// `Result(x)` (a run started only after the one before it has its result); a last
/// `Started` without its result yet is allowed when `open_end`.
pub fn runs_in_turn(pod: &str, frames: &[Frame], open_end: bool) -> Result<Vec<String>> {
    let mut runs = Vec::new();
    let mut open: Option<&str> = None;
    for f in frames {
        match (f, open) {
            (Frame::Started(id), None) => {
                open = Some(id);
                runs.push(id.clone());
            }
            (Frame::Started(id), Some(prev)) => {
                bail!("Pod {pod}: run {id} started while run {prev} had no result yet: {frames:?}")
            }
            (Frame::Result(id), Some(prev)) if id == prev => open = None,
            (Frame::Result(id), _) => {
                bail!("Pod {pod}: a result for {id} that is not the run in progress ({open:?}): {frames:?}")
            }
            (Frame::Spoiled(_), _) => {}
        }
    }
    if let (Some(id), false) = (open, open_end) {
        bail!("Pod {pod}: run {id} started and never gave a result: {frames:?}");
    }
    Ok(runs)
}

/// A sandbox Pod as seen by the [`LogKeeper`].
#[derive(Debug, Clone, Default)]
pub struct SeenPod {
    /// The warm pool it belongs to (None: a cold sandbox).
    pub pool: Option<String>,
    /// A cold sandbox's Execution uid and attempt (its labels).
    pub execution_uid: Option<String>,
    pub attempt: Option<String>,
    /// The longest log read of it.
    pub log: String,
}

/// Every sandbox Pod of a namespace seen while it runs (a watch), and the log of every warm
/// one, read again and again (the longest kept: a log only grows), so that it survives the
/// Pod's deletion.
pub struct LogKeeper {
    seen: Arc<Mutex<BTreeMap<String, SeenPod>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pods: Api<Pod>,
}

impl LogKeeper {
    pub async fn start(eng: &Engine) -> Result<Self> {
        let pods = eng.pods();
        let seen: Arc<Mutex<BTreeMap<String, SeenPod>>> = Arc::default();
        let record = |seen: &Mutex<BTreeMap<String, SeenPod>>, p: &Pod| {
            let l = p.labels();
            let mut seen = seen.lock().expect("LogKeeper lock");
            let entry = seen.entry(p.name_any()).or_default();
            entry.pool = l.get(POOL_LABEL).cloned();
            if entry.pool.is_none() {
                entry.execution_uid = l.get(rce_operator::sandbox::EXECUTION_UID_LABEL).cloned();
                entry.attempt = l.get(rce_operator::sandbox::ATTEMPT_LABEL).cloned();
            }
        };
        // What is there now, then a watch for everything that comes.
        for p in pods.list(&ListParams::default().labels(rce_api::SANDBOX_LABEL)).await?.items {
            record(&seen, &p);
        }
        let watch = {
            let (seen, pods) = (seen.clone(), pods.clone());
            tokio::spawn(async move {
                watcher(pods, watcher::Config::default().labels(rce_api::SANDBOX_LABEL))
                    .default_backoff()
                    .touched_objects()
                    .for_each(|p| {
                        if let Ok(p) = p {
                            record(&seen, &p);
                        }
                        async {}
                    })
                    .await
            })
        };
        let poll = {
            let (seen, pods) = (seen.clone(), pods.clone());
            tokio::spawn(async move {
                loop {
                    Self::read_logs(&seen, &pods).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Ok(Self { seen, tasks: vec![watch, poll], pods })
    }

    async fn read_logs(seen: &Mutex<BTreeMap<String, SeenPod>>, pods: &Api<Pod>) {
        // Warm Pods always (their logs grow run after run); cold ones until their result.
        let names: Vec<String> = seen
            .lock()
            .expect("LogKeeper lock")
            .iter()
            .filter(|(_, p)| p.pool.is_some() || !p.log.contains(rce_api::protocol::RESULT_PREFIX))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            if let Ok(log) = pods.logs(&name, &LogParams::default()).await {
                let mut seen = seen.lock().expect("LogKeeper lock");
                if let Some(p) = seen.get_mut(&name) {
                    if log.len() > p.log.len() {
                        p.log = log;
                    }
                }
            }
        }
    }

    /// Read every warm Pod's log once more, now, and return what was seen.
    pub async fn snapshot(&self) -> BTreeMap<String, SeenPod> {
        Self::read_logs(&self.seen, &self.pods).await;
        self.seen.lock().expect("LogKeeper lock").clone()
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// What ran where, from a [`LogKeeper`]'s snapshot: the run ids each warm Pod started (their
/// frames strictly alternating, see [`runs_in_turn`]), checked to be unique across all Pods,
/// and each cold sandbox's Execution uid and attempt.
#[derive(Debug, Default)]
pub struct Ledger {
    /// run id → the warm Pod that started it.
    pub warm_runs: BTreeMap<String, String>,
    /// Warm Pods whose runner said it could not prove a clean slate, with the reason.
    pub spoiled: BTreeMap<String, Vec<String>>,
    /// Cold sandbox Pods: (Execution uid, attempt).
    pub cold: BTreeSet<(String, String)>,
    /// Cold sandbox Pods whose log was seen with a result line: their program ran.
    pub cold_ran: BTreeSet<(String, String)>,
}

impl Ledger {
    /// Every run that started has its result.
    pub fn from(seen: &BTreeMap<String, SeenPod>) -> Result<Self> {
        Self::read(seen, false)
    }

    /// As [`Ledger::from`], but a Pod's last run may have no result (a Pod lost mid-run).
    pub fn from_open(seen: &BTreeMap<String, SeenPod>) -> Result<Self> {
        Self::read(seen, true)
    }

    fn read(seen: &BTreeMap<String, SeenPod>, open_end: bool) -> Result<Self> {
        let mut l = Ledger::default();
        for (name, p) in seen {
            if p.pool.is_none() {
                if let Some(uid) = &p.execution_uid {
                    let key = (uid.clone(), p.attempt.clone().unwrap_or_default());
                    if p.log.contains(rce_api::protocol::RESULT_PREFIX) {
                        l.cold_ran.insert(key.clone());
                    }
                    l.cold.insert(key);
                }
                continue;
            }
            let fr = frames(&p.log);
            for f in &fr {
                if let Frame::Spoiled(why) = f {
                    l.spoiled.entry(name.clone()).or_default().push(why.clone());
                }
            }
            for id in runs_in_turn(name, &fr, open_end)? {
                if let Some(other) = l.warm_runs.insert(id.clone(), name.clone()) {
                    bail!("run {id} started twice: in Pod {other} and in Pod {name}");
                }
            }
        }
        Ok(l)
    }

    /// The warm runs of the Execution `uid` (any attempt).
    pub fn warm_runs_of(&self, uid: &str) -> Vec<(&String, &String)> {
        self.warm_runs.iter().filter(|(id, _)| id.split('/').next() == Some(uid)).collect()
    }

    /// The cold sandboxes of the Execution `uid` (attempts).
    pub fn cold_of(&self, uid: &str) -> Vec<&String> {
        self.cold.iter().filter(|(u, _)| u == uid).map(|(_, a)| a).collect()
    }

    /// Every Execution ran its program exactly once: one warm run or one cold sandbox
    /// (`retried`: Executions allowed a lost warm attempt followed by a cold one).
    pub fn each_ran_once(&self, executions: &[Execution], retried: &[String]) -> Result<()> {
        let mut problems = Vec::new();
        for e in executions {
            let (name, uid) = (e.name_any(), e.uid().unwrap_or_default());
            let (warm, cold) = (self.warm_runs_of(&uid), self.cold_of(&uid));
            let n = warm.len() + cold.len();
            if n == 0 {
                problems.push(format!("{name}: ran nowhere (no warm run, no cold sandbox seen)"));
            } else if n > 1 && !retried.contains(&name) {
                let ran: Vec<&String> =
                    self.cold_ran.iter().filter(|(u, _)| *u == uid).map(|(_, a)| a).collect();
                problems.push(format!(
                    "{name}: ran {n} times: warm {warm:?}, cold sandboxes of attempts {cold:?} \
                     (of which a result line was seen in the log of attempts {ran:?})"
                ));
            }
            if warm.len() > 1 {
                problems.push(format!("{name}: started in warm Pods {} times: {warm:?}", warm.len()));
            }
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        Ok(())
    }
}

/// For each `async fn name(eng: &Engine) -> Result<()>` listed, the tests of
/// [`on_runc_and_gvisor!`](crate::on_runc_and_gvisor) (`runc::name`, `gvisor::name`) and a
/// third, `warm::name`, on warm Pods: an operator of the test's own and a pool with reuse for
/// each of [`SUITE_RUNTIMES`] ([`with_warm_pools`]), so that later programs run in Pods that
/// earlier (hostile) ones ran in. The operator runs at most one cold sandbox at once: an
/// Execution that finds no idle warm Pod waits for the slot and tries the pools again when it
/// is rechecked, so that most of a suite drains through the warm Pods. The functions listed
/// after `; cold only:` run as `runc::` and `gvisor::` only.
#[macro_export]
macro_rules! on_runc_gvisor_and_warm {
    ($($name:ident),* $(,)?) => {
        rce_tests::on_runc_gvisor_and_warm!($($name),*; cold only:);
    };
    ($($name:ident),* ; cold only: $($cold:ident),* $(,)?) => {
        rce_tests::on_runc_and_gvisor!($($name,)* $($cold),*);
        mod warm {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    rce_tests::with_engine!(
                        operator &format!("warm-{}", stringify!($name)),
                        |config| config.max_running = 1,
                        needs rce_tests::warm::SUITE_RUNTIMES,
                        |eng| { rce_tests::warm::with_warm_pools(&eng, || super::$name(&eng)).await }
                    )
                }
            )*
        }
    };
}
