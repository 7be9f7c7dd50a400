//! rce-bench: submit Executions (or raw Pods) and report end-to-end latency (create →
//! terminal, as a client watching the object sees it) and throughput.
//!
//!   rce-bench -n 1 --parallel 1      # one at a time
//!   rce-bench -n 50 --parallel 50    # all at once
//!   rce-bench -n 100 --variant pod --variant cold --variant warm --variant warm-reuse
//!                                    # variants side by side, interleaved one by one
//!   rce-bench -n 200 --parallel 8 --throughput warm-reuse
//!                                    # one variant under 8 concurrent clients
//!   rce-bench -n 100 --judge0        # Judge0 POST /submissions?wait=true through a shim
//!   rce-bench -n 50 --attach-exec    # opening an attach vs an exec session on a warm Pod
//!
//! A variant is `NAME=SPEC` (or just a known name):
//! - `pod` (= `pod:`), `pod-gvisor` (= `pod:gvisor`): the raw floor, a hardened Pod of the
//!   language's image running `print('hello')` directly (no operator, no runner), under a
//!   RuntimeClass if given;
//! - `rce` (= `exec:python`): an Execution served by the running operator (the engine's);
//! - `gvisor` (= `exec:python:@gvisor`): an Execution served by an operator this bench
//!   starts in-process with `--runtime-class-name gvisor`, for its namespace only;
//! - `exec:LANGUAGE[:LABEL]`: an Execution labelled `rce.dev/operator=LABEL`, for an operator
//!   started elsewhere with that selector (e.g. another revision's, to compare);
//! - `cold` (= `own:python`), `warm` (= `warm:python`), `warm-reuse` (= `reuse:python`):
//!   an Execution served by an operator process of the bench's own (the `rce-operator`
//!   binary next to this one, default flags but for `--namespaces`, `--selector` and
//!   `--metrics-addr`), in a namespace of its own: without a WarmPool (cold), with a WarmPool
//!   of `--pool-replicas` Pods and no reuse (one run per Pod), or with `reuse.maxRuns`
//!   `--reuse-max-runs`. `warm:LANG:REPLICAS` and `reuse:LANG:REPLICAS:MAXRUNS` set them per
//!   variant. The bench waits until the pool is ready before timing, and prints the pool's
//!   hits and misses, how many Executions ran warm (`status.warmPool`), and the operator's own
//!   `warm run` timings (its debug log, kept in `--log-dir`).
//!
//! Runs in namespaces of its own (created and deleted), against KUBECONFIG's cluster.
//! `BENCH_OPERATOR_LOG` overrides the own operators' log filter (default
//! `info,rce_operator=debug`; e.g. `info,rce_operator=trace` for each reconcile).
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    api::{Api, AttachParams, DeleteParams, ListParams, PostParams},
    runtime::{watcher, WatchStreamExt},
    Client, ResourceExt,
};
use rce_api::{
    warmpool::{POOL_LABEL, STATE_IDLE, STATE_LABEL},
    Execution, Runtime, WarmPool, WarmPoolStatus,
};

#[derive(Parser, Debug)]
#[command(about = "Submit Executions and report latency percentiles and throughput")]
struct Args {
    /// Number of Executions (per variant with --variant).
    #[arg(short = 'n', long, default_value_t = 50)]
    count: usize,
    /// Executions in flight at once (1: one after the other). With --variant: one at a time,
    /// the variants taking turns.
    #[arg(long, default_value_t = 50)]
    parallel: usize,
    /// Language (Runtime name).
    #[arg(long, default_value = "python")]
    language: String,
    /// Source of every Execution.
    #[arg(long, default_value = "print('hello')")]
    source: String,
    /// Label the Executions `rce.dev/operator=<this>`, for an operator started with
    /// `--selector rce.dev/operator=<this>` (compare settings beside the main operator).
    #[arg(long)]
    operator: Option<String>,
    /// Submit raw Pods (the floor: no operator, no runner) instead of Executions.
    #[arg(long)]
    raw_pods: bool,
    /// Variants to measure side by side (see the module docs); repeatable.
    #[arg(long = "variant")]
    variants: Vec<String>,
    /// Run `-n` Executions of this variant (cold, warm, warm-reuse, or a SPEC), `--parallel`
    /// clients at once, each submitting its next when its last is done: runs/s.
    #[arg(long)]
    throughput: Option<String>,
    /// Judge0 `POST /submissions?wait=true` one at a time (`-n`), through a shim process of
    /// the bench's own (the `rce-api-shim` binary next to this one) in front of a warm pool.
    #[arg(long)]
    judge0: bool,
    /// With --judge0: an existing shim instead (e.g. http://127.0.0.1:8080); no pool is set up.
    #[arg(long)]
    judge0_url: Option<String>,
    /// With --judge0: the pool's `reuse.maxRuns` (1: one run per Pod, no reuse).
    #[arg(long, default_value_t = 1)]
    judge0_max_runs: u32,
    /// With --judge0: a pause between two submissions, in ms (a pool without reuse refills
    /// at the node's Pod start rate, about 3 Pods/s here).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Opening an attach session (and a ping → ready on it) vs an exec session (and its
    /// command's exit) on one idle warm Pod, `-n` of each, taking turns.
    #[arg(long)]
    attach_exec: bool,
    /// The command of the exec sessions of --attach-exec.
    #[arg(long, default_value = "/bin/true")]
    exec_command: String,
    /// Operator processes of each own-operator variant (all-active replicas sharing its
    /// Executions through their membership Leases).
    #[arg(long, default_value_t = 1)]
    operator_replicas: usize,
    /// Pods of each warm pool (own-operator variants).
    #[arg(long, default_value_t = 4)]
    pool_replicas: i32,
    /// `spec.limits` (JSON) of every pool the bench creates; default none (the Runtime's
    /// defaults), and for --judge0 the limits the shim gives a Judge0 submission that sets
    /// none (Judge0's defaults, as `/config_info` tells), so that they fit.
    #[arg(long)]
    pool_limits: Option<String>,
    /// `reuse.maxRuns` of the `warm-reuse` variant's pool.
    #[arg(long, default_value_t = 1000)]
    reuse_max_runs: u32,
    /// The operator binary of own-operator variants (default: `rce-operator` beside this one).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// The shim binary of --judge0 (default: `rce-api-shim` beside this one).
    #[arg(long)]
    shim_bin: Option<PathBuf>,
    /// Where the own operators' and shim's logs go.
    #[arg(long, default_value = "/tmp")]
    log_dir: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG?)")?;
    if args.attach_exec {
        return attach_vs_exec(&client, &args).await;
    }
    if args.judge0 {
        return judge0(&client, &args).await;
    }
    if let Some(v) = &args.throughput {
        return throughput(&client, &args, v).await;
    }
    if !args.variants.is_empty() {
        return compare(&client, &args).await;
    }
    let ns = new_namespace(&client, "rce-bench").await?;
    let labels = match &args.operator {
        Some(o) => serde_json::json!({"rce.dev/operator": o}),
        None => serde_json::json!({}),
    };
    let result = burst(&client, &ns, &args, &labels, args.raw_pods).await.map(|r| r.print(&args, None));
    cleanup(&client, &ns).await?;
    result
}

async fn new_namespace(client: &Client, prefix: &str) -> Result<String> {
    let ns = format!("{prefix}-{:08x}", rand::random::<u32>());
    let nsobj: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ns, "labels": {"rce.dev/bench": "true"}}
    }))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nsobj).await?;
    // Pods wait for the namespace's default ServiceAccount.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    for _ in 0..100 {
        if sa.get_opt("default").await?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(ns)
}

/// Records when each object of a namespace was first seen in a terminal state, and how
/// (the verdict, `+warm` when it ran in a warm Pod; a Pod's phase).
type Seen = Arc<Mutex<HashMap<String, (Instant, String)>>>;

fn watch_executions(api: Api<Execution>, done: Seen) -> tokio::task::JoinHandle<Result<(), watcher::Error>> {
    tokio::spawn(watcher(api, watcher::Config::default()).applied_objects().try_for_each(
        move |e: Execution| {
            let d = done.clone();
            async move {
                let st = e.status.clone().unwrap_or_default();
                if st.phase.is_some_and(|p| p.is_terminal()) {
                    let mut verdict = st.verdict.map(|v| v.as_str()).unwrap_or("?").to_string();
                    if st.warm_pool.is_some() {
                        verdict.push_str("+warm");
                    }
                    if let Ok(mut m) = d.lock() {
                        m.entry(e.name_any()).or_insert((Instant::now(), verdict));
                    }
                }
                Ok(())
            }
        },
    ))
}

fn watch_pods(api: Api<Pod>, done: Seen) -> tokio::task::JoinHandle<Result<(), watcher::Error>> {
    tokio::spawn(watcher(api, watcher::Config::default()).applied_objects().try_for_each(move |p: Pod| {
        let d = done.clone();
        async move {
            let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                if let Ok(mut m) = d.lock() {
                    m.entry(p.name_any()).or_insert((Instant::now(), phase));
                }
            }
            Ok(())
        }
    }))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn percentiles(mut lat: Vec<f64>) -> String {
    if lat.is_empty() {
        return "no samples".into();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    )
}

fn percentiles_ms(mut lat: Vec<f64>) -> String {
    if lat.is_empty() {
        return "no samples".into();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    )
}

/// What a burst measured.
struct BurstReport {
    count: usize,
    parallel: usize,
    raw_pods: bool,
    verdicts: BTreeMap<String, usize>,
    lat: Vec<f64>,
    total: Duration,
}

impl BurstReport {
    fn print(&self, args: &Args, what: Option<&str>) {
        let what = what.unwrap_or(if self.raw_pods { "raw Pods (the floor)" } else { "executions" });
        println!("{what}: {}  parallel: {}  language: {}", self.count, self.parallel, args.language);
        println!("verdicts: {:?}", self.verdicts);
        println!("latency create→terminal: {}", percentiles(self.lat.clone()));
        println!(
            "wall time {:.2} s, throughput {:.2} executions/s",
            self.total.as_secs_f64(),
            self.count as f64 / self.total.as_secs_f64()
        );
    }
}

/// `args.count` Executions (or raw Pods) in `ns`, `args.parallel` in flight at once (each slot
/// submits its next when its last is done).
async fn burst(
    client: &Client,
    ns: &str,
    args: &Args,
    labels: &serde_json::Value,
    raw_pods: bool,
) -> Result<BurstReport> {
    let api: Api<Execution> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let done: Seen = Arc::default();
    let watch = if raw_pods {
        watch_pods(pods.clone(), done.clone())
    } else {
        watch_executions(api.clone(), done.clone())
    };
    let pod_image = if raw_pods {
        Api::<Runtime>::all(client.clone()).get(&args.language).await?.spec.image
    } else {
        String::new()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let start = Instant::now();
    let names: Vec<String> = (0..args.count).map(|i| format!("b{i:04}")).collect();
    futures::stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
            let pods = pods.clone();
            let pod_image = pod_image.clone();
            let submitted = submitted.clone();
            let done = done.clone();
            async move {
                let e: Execution = serde_json::from_value(serde_json::json!({
                    "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"language": args.language, "source": args.source},
                }))?;
                let t = Instant::now();
                if raw_pods {
                    pods.create(&PostParams::default(), &raw_pod(&name, &pod_image, &args.source, None)?)
                        .await?;
                } else {
                    api.create(&PostParams::default(), &e).await?;
                }
                if let Ok(mut s) = submitted.lock() {
                    s.insert(name.clone(), t);
                }
                // Hold the slot until it is done: `parallel` in flight at once.
                while !done.lock().map(|m| m.contains_key(&name)).unwrap_or(false) {
                    if Instant::now() > deadline {
                        bail!("{name} did not finish in time");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let total = start.elapsed();
    watch.abort();

    let done = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let submitted = submitted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let lat: Vec<f64> = names
        .iter()
        .filter_map(|n| Some(done.get(n)?.0.duration_since(*submitted.get(n)?).as_secs_f64()))
        .collect();
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, v) in done.values() {
        *verdicts.entry(v.clone()).or_default() += 1;
    }
    Ok(BurstReport { count: args.count, parallel: args.parallel, raw_pods, verdicts, lat, total })
}

/// The raw floor: a hardened Pod of `image` running `source` with python3 directly.
fn raw_pod(name: &str, image: &str, source: &str, runtime_class: Option<&str>) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "runtimeClassName": runtime_class,
            "restartPolicy": "Never", "automountServiceAccountToken": false,
            "enableServiceLinks": false, "terminationGracePeriodSeconds": 1,
            "dnsPolicy": "None", "dnsConfig": {"nameservers": ["127.0.0.1"]},
            "securityContext": {"runAsNonRoot": true, "runAsUser": 123460, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", source],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}}]
        }
    }))?)
}

/// A WarmPool the bench creates for an own-operator variant.
#[derive(Debug, Clone, Copy)]
struct PoolSpec {
    replicas: i32,
    /// `reuse.maxRuns`; `None`: one run per Pod.
    max_runs: Option<u32>,
}

/// What one variant submits.
#[derive(Debug, Clone)]
enum Kind {
    /// A raw hardened Pod of the language's image, under an optional RuntimeClass.
    Pod { runtime_class: Option<String> },
    /// An Execution; `label` for an operator elsewhere, `in_process` a RuntimeClass for an
    /// operator this bench starts.
    Exec { language: String, label: Option<String>, in_process: Option<String> },
    /// An Execution served by an operator process of the bench's own, in a namespace of its
    /// own, with a WarmPool there or none.
    Own { language: String, pool: Option<PoolSpec> },
}

fn parse_variant(v: &str, args: &Args) -> Result<(String, Kind)> {
    let default_language = &args.language;
    let (name, spec) = match v.split_once('=') {
        Some((n, s)) => (n.to_string(), s.to_string()),
        None => (
            v.to_string(),
            match v {
                "pod" => "pod:".to_string(),
                "pod-gvisor" => "pod:gvisor".to_string(),
                "rce" => format!("exec:{default_language}"),
                "gvisor" => format!("exec:{default_language}:@gvisor"),
                "cold" => format!("own:{default_language}"),
                "warm" => format!("warm:{default_language}"),
                "warm-reuse" => format!("reuse:{default_language}"),
                other => bail!("unknown variant {other:?}: give NAME=SPEC"),
            },
        ),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |s: &str| s.parse::<u32>().with_context(|| format!("bad number {s:?} in {spec:?}"));
    let kind = match parts.as_slice() {
        ["pod"] | ["pod", ""] => Kind::Pod { runtime_class: None },
        ["pod", class] => Kind::Pod { runtime_class: Some(class.to_string()) },
        ["exec", lang] => Kind::Exec { language: lang.to_string(), label: None, in_process: None },
        ["exec", lang, label] => match label.strip_prefix('@') {
            Some(class) => {
                Kind::Exec { language: lang.to_string(), label: None, in_process: Some(class.to_string()) }
            }
            None => {
                Kind::Exec { language: lang.to_string(), label: Some(label.to_string()), in_process: None }
            }
        },
        ["own", lang] => Kind::Own { language: lang.to_string(), pool: None },
        ["warm", lang, rest @ ..] if rest.len() <= 1 => {
            let replicas = rest.first().map(|r| num(r)).transpose()?.map_or(args.pool_replicas, |r| r as i32);
            Kind::Own { language: lang.to_string(), pool: Some(PoolSpec { replicas, max_runs: None }) }
        }
        ["reuse", lang, rest @ ..] if rest.len() <= 2 => {
            let replicas = rest.first().map(|r| num(r)).transpose()?.map_or(args.pool_replicas, |r| r as i32);
            let max_runs = rest.get(1).map(|r| num(r)).transpose()?.unwrap_or(args.reuse_max_runs);
            Kind::Own {
                language: lang.to_string(),
                pool: Some(PoolSpec { replicas, max_runs: Some(max_runs) }),
            }
        }
        _ => bail!("bad variant spec {spec:?}"),
    };
    Ok((name, kind))
}

/// A binary beside this one (the release build's `rce-operator`, `rce-api-shim`).
fn sibling(given: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let p = std::env::current_exe()?.with_file_name(name);
    ensure!(
        p.exists(),
        "{} not found: build it (cargo build --release --bins) or pass its path",
        p.display()
    );
    Ok(p)
}

/// One `warm run` line of an operator's debug log: the Execution and its timings.
#[derive(Debug, Clone)]
struct WarmRun {
    execution: String,
    claimed_ms: f64,
    ran_ms: f64,
    done_ms: f64,
}

/// An operator process of the bench's own, serving one namespace of its own (and only
/// objects labelled `rce.dev/operator=<label>`), with an optional WarmPool named `pool`.
struct Own {
    ns: String,
    label: String,
    pool: Option<PoolSpec>,
    /// The pool's `spec.limits`.
    limits: Option<serde_json::Value>,
    children: Vec<tokio::process::Child>,
    log: PathBuf,
}

const POOL_NAME: &str = "bench";

impl Own {
    async fn start(
        client: &Client,
        args: &Args,
        tag: &str,
        language: &str,
        pool: Option<PoolSpec>,
    ) -> Result<Own> {
        let tag = tag.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let ns = new_namespace(client, &format!("rce-bench-{tag}")).await?;
        let label = format!("bench-{}", &ns[ns.len() - 8..]);
        let log = args.log_dir.join(format!("{ns}-operator.log"));
        let limits =
            args.pool_limits.as_deref().map(serde_json::from_str).transpose().context("--pool-limits")?;
        let mut own = Own { ns, label, pool, limits, children: Vec::new(), log };
        match own.set_up(client, args, language).await {
            Ok(()) => Ok(own),
            Err(e) => {
                let _ = own.finish(client).await;
                Err(e)
            }
        }
    }

    async fn set_up(&mut self, client: &Client, args: &Args, language: &str) -> Result<()> {
        let bin = sibling(&args.operator_bin, "rce-operator")?;
        for i in 1..=args.operator_replicas.max(1) {
            self.spawn_replica(&bin, i)?;
        }
        self.set_up_pool(client, language).await
    }

    /// Operator process `i` (its log: the variant's, `-<i>` for i > 1).
    fn spawn_replica(&mut self, bin: &std::path::Path, i: usize) -> Result<()> {
        let log = if i == 1 { self.log.clone() } else { self.log.with_extension(format!("{i}.log")) };
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // The binary's defaults but for what keeps it to this namespace; the debug log of
        // the operator crate holds the `warm run` timings. RCE_* variables of the caller's
        // environment that are flags are left out, but the Redis URL.
        let mut cmd = tokio::process::Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("RCE_") && k != "RCE_REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.args(["--namespaces", &self.ns])
            .args(["--selector", &format!("rce.dev/operator={}", self.label)])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env(
                "RCE_LOG",
                std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "info,rce_operator=debug".into()),
            )
            .env("RCE_LOG_FORMAT", "json")
            .env("RCE_IDENTITY", format!("bench-{i}"))
            .env("RCE_LEASE_NAMESPACE", &self.ns)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        self.children.push(cmd.spawn().with_context(|| format!("starting {}", bin.display()))?);
        Ok(())
    }

    async fn set_up_pool(&mut self, client: &Client, language: &str) -> Result<()> {
        if let Some(p) = self.pool {
            let mut spec = serde_json::json!({"runtime": language, "replicas": p.replicas});
            if let Some(m) = p.max_runs {
                spec["reuse"] = serde_json::json!({"maxRuns": m});
            }
            if let Some(l) = &self.limits {
                spec["limits"] = l.clone();
            }
            let wp: WarmPool = serde_json::from_value(serde_json::json!({
                "apiVersion": "rce.dev/v1alpha1", "kind": "WarmPool",
                "metadata": {"name": POOL_NAME, "labels": self.labels()},
                "spec": spec,
            }))?;
            self.pools(client).create(&PostParams::default(), &wp).await?;
            self.wait_pool_ready(client, Duration::from_secs(300)).await?;
        }
        // One Execution before timing: the operator's caches are filled and the path warm.
        self.warm_up(client, language).await?;
        if self.pool.is_some() {
            self.wait_pool_ready(client, Duration::from_secs(300)).await?;
        }
        Ok(())
    }

    fn labels(&self) -> serde_json::Value {
        serde_json::json!({"rce.dev/operator": self.label})
    }

    fn pools(&self, client: &Client) -> Api<WarmPool> {
        Api::namespaced(client.clone(), &self.ns)
    }

    async fn warm_up(&self, client: &Client, language: &str) -> Result<()> {
        let api: Api<Execution> = Api::namespaced(client.clone(), &self.ns);
        let e: Execution = serde_json::from_value(serde_json::json!({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "warmup", "labels": self.labels()},
            "spec": {"language": language, "source": "print('warm-up')"},
        }))?;
        api.create(&PostParams::default(), &e).await?;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let e = api.get("warmup").await?;
            if e.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_terminal()) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the warm-up Execution in {} did not finish (log: {})",
                self.ns,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        api.delete("warmup", &DeleteParams::background()).await?;
        while api.get_opt("warmup").await?.is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Every Pod of the pool idle and ready, and the status says so.
    async fn wait_pool_ready(&self, client: &Client, within: Duration) -> Result<WarmPoolStatus> {
        let Some(p) = self.pool else { return Ok(WarmPoolStatus::default()) };
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("{POOL_LABEL}={POOL_NAME}"));
        let t0 = Instant::now();
        loop {
            let st = self.pools(client).get(POOL_NAME).await?.status.unwrap_or_default();
            let idle = pods
                .list(&lp)
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| p.labels().get(STATE_LABEL).map(String::as_str) == Some(STATE_IDLE))
                .count();
            if st.ready_replicas >= p.replicas && st.busy == 0 && idle >= p.replicas as usize {
                return Ok(st);
            }
            ensure!(
                t0.elapsed() < within,
                "the pool in {} never had {} ready Pods: {st:?} (log: {})",
                self.ns,
                p.replicas,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn pool_status(&self, client: &Client) -> Result<WarmPoolStatus> {
        Ok(self.pools(client).get(POOL_NAME).await?.status.unwrap_or_default())
    }

    /// The pool's hits and misses since `before`, once they account for `expected`
    /// Executions (the status takes them a moment after the runs), or after 15 s.
    async fn pool_delta(
        &self,
        client: &Client,
        before: &WarmPoolStatus,
        expected: i64,
    ) -> Result<(i64, i64)> {
        let t0 = Instant::now();
        loop {
            let st = self.pool_status(client).await?;
            let (h, m) = (st.hits - before.hits, st.misses - before.misses);
            if h + m >= expected || t0.elapsed() > Duration::from_secs(15) {
                return Ok((h, m));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The operator's `warm run` timings so far (its JSON log).
    fn warm_runs(&self) -> Vec<WarmRun> {
        let Ok(text) = std::fs::read_to_string(&self.log) else { return Vec::new() };
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "warm run")
            .filter_map(|v| {
                let f = &v["fields"];
                let n = |k: &str| f[k].as_f64().or_else(|| f[k].as_str().and_then(|s| s.parse().ok()));
                Some(WarmRun {
                    execution: f["execution"].as_str()?.to_string(),
                    claimed_ms: n("claimed_ms")?,
                    ran_ms: n("ran_ms")?,
                    done_ms: n("done_ms")?,
                })
            })
            .collect()
    }

    /// The operator's timings of the Executions named `prefix…`, as a line.
    fn warm_breakdown(&self, prefix: &str) -> String {
        let runs: Vec<WarmRun> =
            self.warm_runs().into_iter().filter(|r| r.execution.starts_with(prefix)).collect();
        if runs.is_empty() {
            return format!("no `warm run` lines in {}", self.log.display());
        }
        let p50 = |f: fn(&WarmRun) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            (pct(&v, 0.5), pct(&v, 0.99))
        };
        let (c50, c99) = p50(|r| r.claimed_ms);
        let (r50, r99) = p50(|r| r.ran_ms);
        let (d50, d99) = p50(|r| r.done_ms);
        format!(
            "operator's warm runs (n={}, from try_warm's start): claimed p50 {c50:.0} ms (p99 {c99:.0}), \
             request run + Processing written p50 {r50:.0} ms (p99 {r99:.0}), result recorded p50 {d50:.0} ms (p99 {d99:.0})",
            runs.len()
        )
    }

    /// Stop the operator (its held attach sessions close with it).
    async fn stop_operator(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// Delete the Executions (the operator drops their finalizers), stop the operator,
    /// delete the namespace.
    async fn finish(mut self, client: &Client) -> Result<()> {
        let api: Api<Execution> = Api::namespaced(client.clone(), &self.ns);
        if !self.children.is_empty() {
            let _ = api.delete_collection(&DeleteParams::background(), &ListParams::default()).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && !api.list(&ListParams::default()).await?.items.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let _ =
            self.pools(client).delete_collection(&DeleteParams::background(), &ListParams::default()).await;
        self.stop_operator().await;
        cleanup(client, &self.ns).await
    }
}

/// The variants take turns, one object at a time, so that each sees the same machine.
async fn compare(client: &Client, args: &Args) -> Result<()> {
    let variants: Vec<(String, Kind)> =
        args.variants.iter().map(|v| parse_variant(v, args)).collect::<Result<_>>()?;
    let ns = new_namespace(client, "rce-bench-cmp").await?;
    let mut owns: BTreeMap<String, Own> = BTreeMap::new();
    let result = async {
        for (name, kind) in &variants {
            if let Kind::Own { language, pool } = kind {
                eprintln!(
                    "setting up {name}: an operator of the bench's own{}",
                    match pool {
                        Some(p) => format!(
                            ", a WarmPool of {} Pods, maxRuns {}",
                            p.replicas,
                            p.max_runs.unwrap_or(1)
                        ),
                        None => String::new(),
                    }
                );
                owns.insert(name.clone(), Own::start(client, args, name, language, *pool).await?);
            }
        }
        compare_in(client, &ns, args, &variants, &owns).await
    }
    .await;
    for (_, own) in owns {
        if let Err(e) = own.finish(client).await {
            eprintln!("cleaning up: {e:#}");
        }
    }
    cleanup(client, &ns).await?;
    result
}

async fn compare_in(
    client: &Client,
    ns: &str,
    args: &Args,
    variants: &[(String, Kind)],
    owns: &BTreeMap<String, Own>,
) -> Result<()> {
    let runtimes = Api::<Runtime>::all(client.clone());
    let execs: Api<Execution> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let done: Seen = Arc::default();
    let mut watches =
        vec![watch_executions(execs.clone(), done.clone()), watch_pods(pods.clone(), done.clone())];
    for own in owns.values() {
        watches.push(watch_executions(Api::namespaced(client.clone(), &own.ns), done.clone()));
    }
    // Operators of the bench's own, one per RuntimeClass asked for.
    let mut operators = Vec::new();
    for (name, kind) in variants {
        if let Kind::Exec { in_process: Some(class), .. } = kind {
            let mut config = rce_operator::Config::defaults();
            config.namespaces = vec![ns.to_string()];
            config.selector = format!("rce.dev/operator=bench-{name}");
            config.metrics_addr = "127.0.0.1:0".parse()?;
            config.ttl_seconds = 0;
            config.sandbox.runtime_class_name = Some(class.clone());
            config.sandbox.image_pull_policy = rce_operator::config::PullPolicy::IfNotPresent;
            operators.push(tokio::spawn(async move {
                if let Err(e) = rce_operator::run_until(config, std::future::pending()).await {
                    eprintln!("operator stopped: {e:#}");
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pod_image = runtimes
        .get(&args.language)
        .await
        .map(|r| r.spec.image)
        .with_context(|| format!("the Runtime {:?}", args.language))?;
    let mut before: BTreeMap<String, WarmPoolStatus> = BTreeMap::new();
    for (name, own) in owns {
        if own.pool.is_some() {
            before.insert(name.clone(), own.wait_pool_ready(client, Duration::from_secs(300)).await?);
        }
    }
    let mut lat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let started = Instant::now();
    let prefix = |vname: &str| vname.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    for i in 0..args.count {
        for (vname, kind) in variants {
            let name = format!("{}-{i:04}", prefix(vname));
            let t = Instant::now();
            let own = owns.get(vname);
            let own_execs: Option<Api<Execution>> = own.map(|o| Api::namespaced(client.clone(), &o.ns));
            match kind {
                Kind::Pod { runtime_class } => {
                    let pod = raw_pod(&name, &pod_image, &args.source, runtime_class.as_deref())?;
                    pods.create(&PostParams::default(), &pod).await?;
                }
                Kind::Exec { language, label, in_process } => {
                    let labels = match (label, in_process) {
                        (Some(l), _) => serde_json::json!({"rce.dev/operator": l}),
                        (None, Some(_)) => serde_json::json!({"rce.dev/operator": format!("bench-{vname}")}),
                        (None, None) => serde_json::json!({}),
                    };
                    let e: Execution = serde_json::from_value(serde_json::json!({
                        "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
                        "metadata": {"name": name, "labels": labels},
                        "spec": {"language": language, "source": args.source},
                    }))?;
                    execs.create(&PostParams::default(), &e).await?;
                }
                Kind::Own { language, .. } => {
                    let (Some(own), Some(api)) = (own, &own_execs) else { bail!("no operator for {vname}") };
                    let e: Execution = serde_json::from_value(serde_json::json!({
                        "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
                        "metadata": {"name": name, "labels": own.labels()},
                        "spec": {"language": language, "source": args.source},
                    }))?;
                    api.create(&PostParams::default(), &e).await?;
                }
            }
            let deadline = t + Duration::from_secs(120);
            let outcome = loop {
                if let Some((at, how)) = done.lock().ok().and_then(|m| m.get(&name).cloned()) {
                    lat.entry(vname.clone()).or_default().push(at.duration_since(t).as_secs_f64());
                    break how;
                }
                if Instant::now() > deadline {
                    break "timeout".to_string();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            *outcomes.entry(vname.clone()).or_default().entry(outcome).or_default() += 1;
            // Out of the way of the next one (the Execution's TTL would do it later).
            let dp = DeleteParams::background();
            let _ = match (kind, &own_execs) {
                (Kind::Pod { .. }, _) => pods.delete(&name, &dp).await.map(|_| ()),
                (_, Some(api)) => api.delete(&name, &dp).await.map(|_| ()),
                (Kind::Exec { .. } | Kind::Own { .. }, None) => execs.delete(&name, &dp).await.map(|_| ()),
            };
        }
    }
    for w in watches {
        w.abort();
    }
    println!(
        "{} rounds, the variants taking turns one at a time, {} in {:.0} s; create → terminal (Pod phase or Execution status):",
        args.count,
        args.language,
        started.elapsed().as_secs_f64()
    );
    let p50 = |v: &str| {
        let mut l = lat.get(v).cloned().unwrap_or_default();
        l.sort_by(|a, b| a.total_cmp(b));
        l.get(l.len() / 2).copied()
    };
    let base = variants.first().and_then(|(n, _)| p50(n));
    for (vname, kind) in variants {
        let l = lat.get(vname).cloned().unwrap_or_default();
        let vs = match (p50(vname), base) {
            (Some(p), Some(b)) if b > 0.0 => {
                format!("  ({:+.0} % p50 vs {})", (p / b - 1.0) * 100.0, variants[0].0)
            }
            _ => String::new(),
        };
        println!(
            "  {vname:<12} n={:<4} {}{vs}  outcomes {:?}  [{kind:?}]",
            l.len(),
            percentiles(l.clone()),
            outcomes.get(vname).cloned().unwrap_or_default()
        );
    }
    for (vname, own) in owns {
        if let Some(b) = before.get(vname) {
            let (h, m) = own.pool_delta(client, b, args.count as i64).await?;
            println!(
                "  {vname:<12} pool: hits {h}, misses {m} (the WarmPool's status, over the timed rounds)"
            );
            println!("  {vname:<12} {}", own.warm_breakdown(&format!("{}-", prefix(vname))));
        }
        println!("  {vname:<12} operator log: {}", own.log.display());
    }
    // Let our in-process operators see their Executions deleted (their finalizer), then stop them.
    let _ = execs.delete_collection(&DeleteParams::background(), &ListParams::default()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !execs.list(&ListParams::default()).await?.items.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for op in operators {
        op.abort();
    }
    Ok(())
}

/// `-n` Executions of one own-operator variant, `--parallel` clients at once.
async fn throughput(client: &Client, args: &Args, variant: &str) -> Result<()> {
    let (name, kind) = parse_variant(variant, args)?;
    let Kind::Own { language, pool } = kind else {
        bail!("--throughput takes a variant with an operator of the bench's own (cold, warm, warm-reuse, own:, warm:, reuse:)")
    };
    let own = Own::start(client, args, &name, &language, pool).await?;
    let result = async {
        let before = own.wait_pool_ready(client, Duration::from_secs(300)).await?;
        let mut a = Args::parse_from(["rce-bench"]);
        a.count = args.count;
        a.parallel = args.parallel;
        a.language = language.clone();
        a.source = args.source.clone();
        let r = burst(client, &own.ns, &a, &own.labels(), false).await?;
        let title = format!(
            "{name} ({}; {} operator replica(s))",
            match pool {
                Some(p) => format!("a WarmPool of {} Pods, maxRuns {}", p.replicas, p.max_runs.unwrap_or(1)),
                None => "cold, no WarmPool".into(),
            },
            args.operator_replicas.max(1)
        );
        r.print(&a, Some(&title));
        if pool.is_some() {
            let (h, m) = own.pool_delta(client, &before, args.count as i64).await?;
            println!("pool: hits {h}, misses {m}");
            println!("{}", own.warm_breakdown("b"));
        }
        println!("operator log: {}", own.log.display());
        Ok::<_, anyhow::Error>(())
    }
    .await;
    own.finish(client).await?;
    result
}

type Http =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn http_call(
    client: &Http,
    method: &str,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value)> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

/// The limits the shim gives a Judge0 submission that sets none (Judge0's defaults, as its
/// `/config_info` tells; measured on a shim-created Execution): the shape of the Judge0
/// bench's pool, so that its submissions fit.
const JUDGE0_DEFAULT_LIMITS: &str = r#"{"cpuTimeMs": 3000, "fileSizeKiB": 1024, "memoryMiB": 128,
    "outputBytes": 1048576, "processes": 64, "stackKiB": 64000, "wallTimeMs": 5000}"#;

/// Judge0 `POST /submissions?wait=true` one at a time, through a shim of the bench's own
/// (or `--judge0-url`'s), in front of a warm pool (one run per Pod).
async fn judge0(client: &Client, args: &Args) -> Result<()> {
    let language_id = *Api::<Runtime>::all(client.clone())
        .get(&args.language)
        .await?
        .spec
        .judge0_ids
        .first()
        .with_context(|| format!("the Runtime {} has no Judge0 id", args.language))?;
    let http_client: Http =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    if let Some(url) = &args.judge0_url {
        return judge0_in(&http_client, url, language_id, args, None, client).await;
    }
    let max_runs = (args.judge0_max_runs > 1).then_some(args.judge0_max_runs);
    let pool = PoolSpec { replicas: args.pool_replicas, max_runs };
    let mut a = Args::parse_from(["rce-bench"]);
    a.operator_bin = args.operator_bin.clone();
    a.log_dir = args.log_dir.clone();
    a.pool_limits = Some(args.pool_limits.clone().unwrap_or_else(|| JUDGE0_DEFAULT_LIMITS.to_string()));
    let own = Own::start(client, &a, "judge0", &args.language, Some(pool)).await?;
    let result = async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = args.log_dir.join(format!("{}-shim.log", own.ns));
        let file = std::fs::File::create(&log)?;
        let bin = sibling(&args.shim_bin, "rce-api-shim")?;
        let mut cmd = tokio::process::Command::new(&bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("RCE_") && k != "RCE_REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        let _shim = cmd
            .args(["--listen", &format!("127.0.0.1:{port}"), "--namespace", &own.ns])
            .args(["--execution-label", &format!("rce.dev/operator={}", own.label)])
            .env("RCE_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        loop {
            if let Ok((200, _)) = http_call(&http_client, "GET", &format!("{base}/health"), None).await {
                break;
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "the shim never answered /health (log: {})",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        judge0_in(&http_client, &base, language_id, args, Some(&own), client).await
    }
    .await;
    own.finish(client).await?;
    result
}

async fn judge0_in(
    http_client: &Http,
    base: &str,
    language_id: u32,
    args: &Args,
    own: Option<&Own>,
    client: &Client,
) -> Result<()> {
    let url = format!("{base}/submissions?base64_encoded=false&wait=true");
    let body = serde_json::json!({"source_code": args.source, "language_id": language_id});
    // One before timing (the shim's connection, its caches).
    let (code, answer) = http_call(http_client, "POST", &url, Some(&body)).await?;
    ensure!(code == 201 || code == 200, "the warm-up submission: HTTP {code} {answer}");
    let before = match own {
        Some(o) => Some(o.wait_pool_ready(client, Duration::from_secs(300)).await?),
        None => None,
    };
    let mut lat = Vec::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..args.count {
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        let t = Instant::now();
        let (code, answer) = http_call(http_client, "POST", &url, Some(&body)).await?;
        lat.push(t.elapsed().as_secs_f64());
        let what = format!("HTTP {code} {}", answer["status"]["description"].as_str().unwrap_or("?"));
        *statuses.entry(what).or_default() += 1;
    }
    println!("Judge0 POST /submissions?wait=true → answer, one at a time, {} at {base}:", args.language);
    println!("  n={} {}  answers {statuses:?}", lat.len(), percentiles(lat));
    if let (Some(o), Some(b)) = (own, before) {
        let (h, m) = o.pool_delta(client, &b, args.count as i64).await?;
        let (replicas, max_runs) = o.pool.map_or((0, 1), |p| (p.replicas, p.max_runs.unwrap_or(1)));
        println!(
            "  pool ({replicas} Pods, maxRuns {max_runs}), {} ms between submissions: hits {h}, misses {m}",
            args.pause_ms
        );
        println!("  {}", o.warm_breakdown(""));
        println!("  operator log: {}", o.log.display());
    }
    Ok(())
}

/// The cost of opening an attach session (and one ping → ready on it, what a claim would
/// need) vs an exec session (and its command's exit), on one idle warm Pod whose operator
/// has been stopped (so that nothing else talks to its runner).
async fn attach_vs_exec(client: &Client, args: &Args) -> Result<()> {
    let pool = PoolSpec { replicas: 1, max_runs: None };
    let mut own = Own::start(client, args, "attach", &args.language, Some(pool)).await?;
    let result = attach_vs_exec_in(client, args, &mut own).await;
    own.finish(client).await?;
    result
}

async fn attach_vs_exec_in(client: &Client, args: &Args, own: &mut Own) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &own.ns);
    let lp = ListParams::default().labels(&format!("{POOL_LABEL}={POOL_NAME},{STATE_LABEL}={STATE_IDLE}"));
    let pod = pods.list(&lp).await?.items.into_iter().next().context("no idle warm Pod")?.name_any();
    own.stop_operator().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let command: Vec<String> = args.exec_command.split_whitespace().map(String::from).collect();
    let (mut a_open, mut a_ready, mut e_open, mut e_done) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.count {
        let t = Instant::now();
        let mut s = rce_operator::attach::Session::open(client.clone(), &own.ns, &pod).await?;
        a_open.push(t.elapsed().as_secs_f64() * 1000.0);
        let ready = s.ping(&format!("bench-{i}"), Duration::from_secs(5)).await?;
        a_ready.push(t.elapsed().as_secs_f64() * 1000.0);
        s.close();
        ensure!(ready.is_some(), "the runner of {pod} did not answer the ping");

        let t = Instant::now();
        let ap = AttachParams::default().container(rce_operator::sandbox::CONTAINER).stderr(true);
        let mut p = pods.exec(&pod, command.clone(), &ap).await?;
        e_open.push(t.elapsed().as_secs_f64() * 1000.0);
        let status = p.take_status().context("no status channel")?.await;
        e_done.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = p.join().await;
        let ok = status.as_ref().and_then(|s| s.status.as_deref()) == Some("Success");
        ensure!(ok, "exec {command:?} in {pod}: {status:?}");
    }
    println!("attach vs exec on one idle warm Pod ({pod}), {} of each, taking turns:", args.count);
    println!("  attach: session open            {}", percentiles_ms(a_open));
    println!("  attach: open + ping → ready     {}", percentiles_ms(a_ready));
    println!("  exec:   session open            {}", percentiles_ms(e_open));
    println!("  exec:   open + {:?} exited  {}", args.exec_command, percentiles_ms(e_done));
    Ok(())
}

async fn cleanup(client: &Client, ns: &str) -> Result<()> {
    let api: Api<Execution> = Api::namespaced(client.clone(), ns);
    api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api.list(&ListParams::default()).await?.items.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Executions an operator no longer serves keep their finalizer: drop it.
    for e in api.list(&ListParams::default()).await?.items {
        let patch = serde_json::json!({"metadata": {"finalizers": null}});
        let _ = api
            .patch(&e.name_any(), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let _ = pods.delete_collection(&DeleteParams::background(), &ListParams::default()).await;
    Api::<Namespace>::all(client.clone()).delete(ns, &DeleteParams::background()).await?;
    Ok(())
}
