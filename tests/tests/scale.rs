//! Scale-out on the real cluster (issue 12): all-active operator replicas as real processes
//! on a multi-node cluster. Every sandbox Pod ever created is counted through a watch
//! started before the submissions; a replica is SIGKILLed mid-run and another started.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::{
    api::{ListParams, PostParams},
    Api, ResourceExt,
};
use rce_api::{Execution, Phase, Verdict};
use rce_tests::{
    exec::{
        describe, phase, remove_executions, stdout, strip_finalizers, verdict, watch_sandbox_pods, Engine,
    },
    replicas::{wait_members, Replica},
    warm::{create_pool, wait_ready, Ledger, LogKeeper},
    TestNamespace,
};

async fn schedulable_nodes(client: &kube::Client) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items {
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let tainted = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute"));
        let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        if ready && !tainted && !cordoned {
            out.push(n.name_any());
        }
    }
    Ok(out)
}

/// A mixed program: (language, source, expected stdout).
fn program(i: usize) -> (&'static str, String, String) {
    match i % 3 {
        0 => ("python", format!("print({i} * 2)"), format!("{}\n", i * 2)),
        1 => ("bash", format!("echo $(( {i} + 1 ))"), format!("{}\n", i + 1)),
        _ => ("javascript", format!("console.log('n' + {i})"), format!("n{i}\n")),
    }
}

async fn submit(api: &Api<Execution>, ns: &str, name: &str, i: usize) -> Result<()> {
    let (language, source, _) = program(i);
    let e: Execution = serde_json::from_value(serde_json::json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name, "labels": {"rce.dev/operator": ns}},
        "spec": {"language": language, "source": source},
    }))?;
    api.create(&PostParams::default(), &e).await.with_context(|| format!("creating {name}"))?;
    Ok(())
}

async fn terminal_count(api: &Api<Execution>) -> Result<(usize, BTreeMap<String, Execution>)> {
    let all: BTreeMap<String, Execution> =
        api.list(&ListParams::default()).await?.items.into_iter().map(|e| (e.name_any(), e)).collect();
    Ok((all.values().filter(|e| phase(e).is_some_and(Phase::is_terminal)).count(), all))
}

#[tokio::test]
async fn three_replicas_on_two_nodes_run_300_executions_exactly_once_with_one_killed() -> Result<()> {
    let _turn = rce_tests::operator::TURN.lock().await;
    let ns = TestNamespace::new("scale").await?;
    let client = ns.client.clone();
    let nodes = schedulable_nodes(&client).await?;
    ensure!(
        nodes.len() >= 2,
        "this test needs a cluster of 2 schedulable nodes or more (RCE_NODES=2 make up); found {nodes:?}"
    );
    let result = async {
        let (seen, watch) = watch_sandbox_pods(ns.api::<Pod>());
        let mut replicas: Vec<Replica> = Vec::new();
        for id in ["scale-1", "scale-2", "scale-3"] {
            replicas.push(Replica::start(&ns.name, id, &[])?);
        }
        wait_members(&client, &ns.name, &["scale-1", "scale-2", "scale-3"], Duration::from_secs(60)).await?;

        let api = ns.api::<Execution>();
        let names: Vec<String> = (0..300).map(|i| format!("x{i:03}")).collect();
        let t0 = Instant::now();
        let created: Vec<Result<()>> = futures::stream::iter(names.iter().enumerate())
            .map(|(i, n)| {
                let (api, ns) = (api.clone(), ns.name.clone());
                async move { submit(&api, &ns, n, i).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for c in created {
            c?;
        }
        eprintln!("300 submitted in {:.1} s", t0.elapsed().as_secs_f64());

        // Mid-run: SIGKILL one replica, start a new one.
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let (done, _) = terminal_count(&api).await?;
            if done >= 60 {
                eprintln!("{done} finished at {:.1} s: SIGKILL scale-2", t0.elapsed().as_secs_f64());
                break;
            }
            ensure!(Instant::now() < deadline, "fewer than 60 finished in time");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        replicas[1].kill().await?;
        replicas.push(Replica::start(&ns.name, "scale-4", &[])?);
        // The killed one's Lease expires (10 s), the new one joins.
        wait_members(&client, &ns.name, &["scale-1", "scale-3", "scale-4"], Duration::from_secs(40)).await?;
        eprintln!("members scale-1, scale-3, scale-4 at {:.1} s", t0.elapsed().as_secs_f64());

        let all = loop {
            let (done, all) = terminal_count(&api).await?;
            if done == names.len() {
                break all;
            }
            if Instant::now() > deadline {
                let waiting: Vec<String> = all
                    .values()
                    .filter(|e| !phase(e).is_some_and(Phase::is_terminal))
                    .take(10)
                    .map(|e| format!("{}: {}", e.name_any(), describe(e)))
                    .collect();
                anyhow::bail!("{done} of 300 finished in time; e.g.\n  {}", waiting.join("\n  "));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let elapsed = t0.elapsed().as_secs_f64();
        eprintln!("300 finished in {elapsed:.1} s ({:.2}/s)", 300.0 / elapsed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        watch.abort();

        for (i, n) in names.iter().enumerate() {
            let e = all.get(n).with_context(|| format!("{n} is gone"))?;
            let (_, _, want) = program(i);
            ensure!(verdict(e) == Some(Verdict::Accepted) && stdout(e) == want, "{n}: {}", describe(e));
            let st = e.status.clone().unwrap_or_default();
            ensure!(st.attempts == Some(1), "{n}: ran as attempt {:?}: {}", st.attempts, describe(e));
        }
        let pods = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        let bound: Vec<String> =
            pods.values().flat_map(|p| p.values().filter_map(|s| s.node.clone())).collect();
        for n in &names {
            let p = pods.get(n).cloned().unwrap_or_default();
            ensure!(p.len() == 1, "{n}: exactly one sandbox Pod ever, saw {p:?}");
        }
        // Both nodes ran sandboxes.
        let per_node = bound.iter().fold(BTreeMap::<String, usize>::new(), |mut m, n| {
            *m.entry(n.clone()).or_default() += 1;
            m
        });
        eprintln!("sandboxes per node: {per_node:?}");
        ensure!(per_node.len() >= 2, "sandboxes ran on one node only: {per_node:?}");
        // Every replica that lived through the run created sandboxes (the work was shared).
        let mut per_replica = BTreeMap::new();
        for r in &replicas {
            per_replica.insert(r.identity.clone(), r.log_lines("sandbox created").len());
        }
        eprintln!("sandboxes created per replica: {per_replica:?}");
        for id in ["scale-1", "scale-3", "scale-4"] {
            ensure!(per_replica[id] > 0, "{id} created no sandbox: {per_replica:?}");
        }
        // One SandboxCreated Event per Execution.
        let events = ns.api::<Event>().list(&ListParams::default()).await?.items;
        let mut created: HashMap<String, usize> = HashMap::new();
        for ev in events.iter().filter(|e| e.reason.as_deref() == Some("SandboxCreated")) {
            *created.entry(ev.involved_object.name.clone().unwrap_or_default()).or_default() += 1;
        }
        for n in &names {
            ensure!(created.get(n) == Some(&1), "{n}: {:?} SandboxCreated events", created.get(n));
        }
        for r in &mut replicas {
            r.stop().await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    remove_executions(&[&ns]).await.ok();
    strip_finalizers(&ns).await.ok();
    ns.cleanup().await?;
    result
}

/// Warm and cold runs under three replicas, one SIGKILLed mid-run: every program ran exactly
/// once (each warm Pod's log: every run id started once, across all Pods; a cold sandbox per
/// Execution that did not run warm), whichever replica claimed, followed or took over.
#[tokio::test]
async fn warm_and_cold_runs_under_three_replicas_with_one_killed_each_run_once() -> Result<()> {
    let _turn = rce_tests::operator::TURN.lock().await;
    let eng = Engine::new("scalewarm").await?;
    let ns = eng.ns.name.clone();
    let client = eng.ns.client.clone();
    let result = async {
        let mut replicas: Vec<Replica> = Vec::new();
        for id in ["w-1", "w-2", "w-3"] {
            replicas.push(Replica::start(&ns, id, &[])?);
        }
        wait_members(&client, &ns, &["w-1", "w-2", "w-3"], Duration::from_secs(60)).await?;
        let keeper = LogKeeper::start(&eng).await?;
        create_pool(&eng, "py", "python", 3, serde_json::json!({}), Some(50)).await?;
        wait_ready(&eng, "py", 3).await?;
        let api = eng.executions();
        let names: Vec<String> = (0..60).map(|i| format!("w{i:02}")).collect();
        let created: Vec<Result<()>> = futures::stream::iter(names.iter().enumerate())
            .map(|(i, n)| {
                let (api, ns) = (api.clone(), ns.clone());
                async move {
                    let e: Execution = serde_json::from_value(serde_json::json!({
                        "apiVersion": "rce.dev/v1alpha1",
                        "kind": "Execution",
                        "metadata": {"name": n, "labels": {"rce.dev/operator": ns}},
                        "spec": {"language": "python", "source": format!("print({i} * 3)")},
                    }))?;
                    api.create(&PostParams::default(), &e).await?;
                    Ok(())
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for c in created {
            c?;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let (done, _) = terminal_count(&api).await?;
            if done >= 15 {
                eprintln!("{done} finished: SIGKILL w-2");
                break;
            }
            ensure!(Instant::now() < deadline, "fewer than 15 finished in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replicas[1].kill().await?;
        replicas.push(Replica::start(&ns, "w-4", &[])?);
        let all = loop {
            let (done, all) = terminal_count(&api).await?;
            if done == names.len() {
                break all;
            }
            ensure!(Instant::now() < deadline, "{done} of {} finished in time", names.len());
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let mut warm = 0;
        for (i, n) in names.iter().enumerate() {
            let e = &all[n];
            ensure!(
                verdict(e) == Some(Verdict::Accepted) && stdout(e) == format!("{}\n", i * 3),
                "{n}: {}",
                describe(e)
            );
            if e.status.as_ref().and_then(|s| s.warm_pool.as_ref()).is_some() {
                warm += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = keeper.snapshot().await;
        keeper.stop();
        let ledger = Ledger::from_open(&seen)?;
        let execs: Vec<Execution> = all.values().cloned().collect();
        ledger.each_ran_once(&execs, &[])?;
        eprintln!(
            "{warm} of {} ran warm, {} warm runs seen in the Pods' logs",
            names.len(),
            ledger.warm_runs.len()
        );
        ensure!(warm > 0, "nothing ran warm");
        for r in &mut replicas {
            r.stop().await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    remove_executions(&[&eng.ns]).await.ok();
    strip_finalizers(&eng.ns).await.ok();
    eng.cleanup().await.ok();
    result
}
