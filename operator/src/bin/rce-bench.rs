//! rce-bench: submit N Executions to the running operator and report end-to-end latency
//! (create → terminal status, as a client watching the Execution sees it) and throughput.
//!
//!   rce-bench -n 1 --parallel 1      # one at a time
//!   rce-bench -n 50 --parallel 50    # all at once
//!
//! Runs in a namespace of its own (created and deleted), against KUBECONFIG's cluster.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    api::{Api, DeleteParams, ListParams, PostParams},
    runtime::{watcher, WatchStreamExt},
    Client, ResourceExt,
};
use rce_api::Execution;

#[derive(Parser, Debug)]
#[command(about = "Submit N Executions and report latency percentiles and throughput")]
struct Args {
    /// Number of Executions.
    #[arg(short = 'n', long, default_value_t = 50)]
    count: usize,
    /// Executions in flight at once (1: one after the other).
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
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG?)")?;
    let ns = format!("rce-bench-{:08x}", rand::random::<u32>());
    let nsobj: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ns, "labels": {"rce.dev/bench": "true"}}
    }))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nsobj).await?;
    let result = bench(&client, &ns, &args).await;
    cleanup(&client, &ns).await?;
    result
}

async fn bench(client: &Client, ns: &str, args: &Args) -> Result<()> {
    let api: Api<Execution> = Api::namespaced(client.clone(), ns);
    let done: Arc<Mutex<HashMap<String, (Instant, String)>>> = Arc::default();
    let d = done.clone();
    let watch =
        tokio::spawn(watcher(api.clone(), watcher::Config::default()).applied_objects().try_for_each(
            move |e: Execution| {
                let d = d.clone();
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
        ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let start = Instant::now();
    let names: Vec<String> = (0..args.count).map(|i| format!("b{i:04}")).collect();
    futures::stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
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
                api.create(&PostParams::default(), &e).await?;
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
    let mut lat: Vec<f64> = names
        .iter()
        .filter_map(|n| Some(done.get(n)?.0.duration_since(*submitted.get(n)?).as_secs_f64()))
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, v) in done.values() {
        *verdicts.entry(v.as_str()).or_default() += 1;
    }
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!("executions: {}  parallel: {}  language: {}", args.count, args.parallel, args.language);
    println!("verdicts: {verdicts:?}");
    println!(
        "latency create→terminal: p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s",
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "wall time {:.2} s, throughput {:.2} executions/s",
        total.as_secs_f64(),
        args.count as f64 / total.as_secs_f64()
    );
    Ok(())
}

async fn cleanup(client: &Client, ns: &str) -> Result<()> {
    let api: Api<Execution> = Api::namespaced(client.clone(), ns);
    api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api.list(&ListParams::default()).await?.items.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Api::<Namespace>::all(client.clone()).delete(ns, &DeleteParams::background()).await?;
    Ok(())
}
