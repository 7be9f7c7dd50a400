//! rce-bench: submit Executions (or raw Pods) and report end-to-end latency (create →
//! terminal, as a client watching the object sees it) and throughput.
//!
//!   rce-bench -n 1 --parallel 1      # one at a time
//!   rce-bench -n 50 --parallel 50    # all at once
//!   rce-bench -n 100 --variant pod --variant rce --variant gvisor=exec:python:@gvisor
//!                                    # variants side by side, interleaved one by one
//!
//! A variant is `NAME=SPEC` (or just a known name):
//! - `pod` (= `pod:`), `pod-gvisor` (= `pod:gvisor`): the raw floor, a hardened Pod of the
//!   language's image running `print('hello')` directly (no operator, no runner), under a
//!   RuntimeClass if given;
//! - `rce` (= `exec:python`): an Execution served by the running operator;
//! - `gvisor` (= `exec:python:@gvisor`): an Execution served by an operator this bench
//!   starts in-process with `--runtime-class-name gvisor`, for its namespace only;
//! - `exec:LANGUAGE[:LABEL]`: an Execution labelled `rce.dev/operator=LABEL`, for an operator
//!   started elsewhere with that selector (e.g. another revision's, to compare).
//!
//! Runs in namespaces of its own (created and deleted), against KUBECONFIG's cluster.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    api::{Api, DeleteParams, ListParams, PostParams},
    runtime::{watcher, WatchStreamExt},
    Client, ResourceExt,
};
use rce_api::{Execution, Runtime};

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
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG?)")?;
    if !args.variants.is_empty() {
        return compare(&client, &args).await;
    }
    let ns = new_namespace(&client, "rce-bench").await?;
    let result = bench(&client, &ns, &args).await;
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

/// Records when each object of a namespace was first seen in a terminal state, and how.
type Seen = Arc<Mutex<HashMap<String, (Instant, String)>>>;

fn watch_executions(api: Api<Execution>, done: Seen) -> tokio::task::JoinHandle<Result<(), watcher::Error>> {
    tokio::spawn(watcher(api, watcher::Config::default()).applied_objects().try_for_each(
        move |e: Execution| {
            let d = done.clone();
            async move {
                let st = e.status.clone().unwrap_or_default();
                if st.phase.is_some_and(|p| p.is_terminal()) {
                    let verdict = st.verdict.map(|v| v.as_str()).unwrap_or("?").to_string();
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

fn percentiles(mut lat: Vec<f64>) -> String {
    if lat.is_empty() {
        return "no samples".into();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    format!("p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s", pct(0.5), pct(0.95), pct(0.99), pct(1.0))
}

async fn bench(client: &Client, ns: &str, args: &Args) -> Result<()> {
    let api: Api<Execution> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let done: Seen = Arc::default();
    let watch = if args.raw_pods {
        watch_pods(pods.clone(), done.clone())
    } else {
        watch_executions(api.clone(), done.clone())
    };
    let pod_image = if args.raw_pods {
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
            let labels = match &args.operator {
                Some(o) => serde_json::json!({"rce.dev/operator": o}),
                None => serde_json::json!({}),
            };
            async move {
                let e: Execution = serde_json::from_value(serde_json::json!({
                    "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"language": args.language, "source": args.source},
                }))?;
                let t = Instant::now();
                if args.raw_pods {
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
                    tokio::time::sleep(Duration::from_millis(20)).await;
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
    let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, v) in done.values() {
        *verdicts.entry(v.as_str()).or_default() += 1;
    }
    let what = if args.raw_pods { "raw Pods (the floor)" } else { "executions" };
    println!("{what}: {}  parallel: {}  language: {}", args.count, args.parallel, args.language);
    println!("verdicts: {verdicts:?}");
    println!("latency create→terminal: {}", percentiles(lat));
    println!(
        "wall time {:.2} s, throughput {:.2} executions/s",
        total.as_secs_f64(),
        args.count as f64 / total.as_secs_f64()
    );
    Ok(())
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

/// What one variant submits.
#[derive(Debug, Clone)]
enum Kind {
    /// A raw hardened Pod of the language's image, under an optional RuntimeClass.
    Pod { runtime_class: Option<String> },
    /// An Execution; `label` for an operator elsewhere, `in_process` a RuntimeClass for an
    /// operator this bench starts.
    Exec { language: String, label: Option<String>, in_process: Option<String> },
}

fn parse_variant(v: &str, default_language: &str) -> Result<(String, Kind)> {
    let (name, spec) = match v.split_once('=') {
        Some((n, s)) => (n.to_string(), s.to_string()),
        None => (
            v.to_string(),
            match v {
                "pod" => "pod:".to_string(),
                "pod-gvisor" => "pod:gvisor".to_string(),
                "rce" => format!("exec:{default_language}"),
                "gvisor" => format!("exec:{default_language}:@gvisor"),
                other => bail!("unknown variant {other:?}: give NAME=SPEC"),
            },
        ),
    };
    let parts: Vec<&str> = spec.split(':').collect();
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
        _ => bail!("bad variant spec {spec:?}"),
    };
    Ok((name, kind))
}

/// The variants take turns, one object at a time, so that each sees the same machine.
async fn compare(client: &Client, args: &Args) -> Result<()> {
    let variants: Vec<(String, Kind)> =
        args.variants.iter().map(|v| parse_variant(v, &args.language)).collect::<Result<_>>()?;
    let ns = new_namespace(client, "rce-bench-cmp").await?;
    let result = compare_in(client, &ns, args, &variants).await;
    cleanup(client, &ns).await?;
    result
}

async fn compare_in(client: &Client, ns: &str, args: &Args, variants: &[(String, Kind)]) -> Result<()> {
    let runtimes = Api::<Runtime>::all(client.clone());
    let execs: Api<Execution> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let done: Seen = Arc::default();
    let w1 = watch_executions(execs.clone(), done.clone());
    let w2 = watch_pods(pods.clone(), done.clone());
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
    let image = |lang: String| {
        let runtimes = runtimes.clone();
        async move {
            runtimes.get(&lang).await.map(|r| r.spec.image).with_context(|| format!("the Runtime {lang:?}"))
        }
    };
    let pod_image = image(args.language.clone()).await?;
    let mut lat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..args.count {
        for (vname, kind) in variants {
            let name =
                format!("{}-{i:04}", vname.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
            let t = Instant::now();
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
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            *outcomes.entry(vname.clone()).or_default().entry(outcome).or_default() += 1;
            // Out of the way of the next one (the Execution's TTL would do it later).
            let dp = DeleteParams::background();
            let _ = match kind {
                Kind::Pod { .. } => pods.delete(&name, &dp).await.map(|_| ()),
                Kind::Exec { .. } => execs.delete(&name, &dp).await.map(|_| ()),
            };
        }
    }
    w1.abort();
    w2.abort();
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
    // Let our operators see their Executions deleted (their finalizer), then stop them.
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
