//! `make bench`: end-to-end latency and throughput of rce on a real cluster.
//!
//! Submits N Executions (at most C in flight), measures for each the time from the create
//! call to the terminal status seen on a watch, and prints p50/p95/p99 and throughput. A
//! benchmark, not a test: it asserts nothing but reports failures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use rce_api::{Execution, ExecutionSpec, Phase};
use rce_tests::{random_suffix, TestNamespace};

struct Args {
    n: usize,
    concurrency: usize,
    language: String,
    source: String,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        n: 1,
        concurrency: 1,
        language: "python".into(),
        source: "print('hello')".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-n" | "--count" => a.n = val()?.parse()?,
            "-c" | "--concurrency" => a.concurrency = val()?.parse()?,
            "-l" | "--language" => a.language = val()?,
            "-s" | "--source" => a.source = val()?,
            "-h" | "--help" => {
                println!("rce-bench [-n COUNT] [-c CONCURRENCY] [-l LANGUAGE] [-s SOURCE]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if a.n == 0 || a.concurrency == 0 {
        bail!("count and concurrency must be at least 1");
    }
    Ok(a)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let ns = TestNamespace::new("rce-bench").await?;
    let api: Api<Execution> = ns.api();
    let run = format!("b{}", random_suffix());

    // One watch for all terminal statuses, started before the first create.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Phase, Option<String>)>();
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(watch_api, watcher::Config::default()).touched_objects().boxed();
        while let Ok(Some(ex)) = stream.try_next().await {
            if let Some(st) = ex.status.as_ref() {
                if let Some(phase) = st.phase.filter(|p| p.is_terminal()) {
                    let verdict = st.verdict.map(|v| v.as_str().to_string());
                    let _ = tx.send((ex.metadata.name.clone().unwrap_or_default(), phase, verdict));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut started: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(args.n);
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let t0 = Instant::now();
    let mut next = 0usize;
    let deadline = Duration::from_secs(600);
    while latencies.len() < args.n {
        while next < args.n && started.len() < args.concurrency {
            let name = format!("{run}-{next}");
            let ex = Execution::new(
                &name,
                ExecutionSpec {
                    language: args.language.clone(),
                    source: Some(args.source.clone()),
                    ..Default::default()
                },
            );
            let t = Instant::now();
            api.create(&PostParams::default(), &ex).await.with_context(|| format!("create {name}"))?;
            started.insert(name, t);
            next += 1;
        }
        let left = deadline.checked_sub(t0.elapsed()).unwrap_or_default();
        let Ok(Some((name, phase, verdict))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("timed out with {} of {} finished", latencies.len(), args.n);
        };
        if let Some(t) = started.remove(&name) {
            latencies.push(t.elapsed());
            *outcomes.entry(format!("{}/{}", phase.as_str(), verdict.unwrap_or_default())).or_default() += 1;
        }
    }
    let total = t0.elapsed();
    watch.abort();
    let _ = api.delete_collection(&DeleteParams::background(), &ListParams::default()).await;
    ns.cleanup().await?;

    latencies.sort();
    println!(
        "rce-bench: {} x {} (concurrency {}), create -> terminal status",
        args.n, args.language, args.concurrency
    );
    println!(
        "  p50 {:>7.0} ms   p95 {:>7.0} ms   p99 {:>7.0} ms   max {:>7.0} ms",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 95.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "  throughput {:.2} executions/s over {:.1} s",
        args.n as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    let mut o: Vec<_> = outcomes.into_iter().collect();
    o.sort();
    println!("  outcomes: {}", o.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    Ok(())
}
