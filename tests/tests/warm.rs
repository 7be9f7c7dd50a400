//! Warm sandboxes on the real cluster, end to end: Executions claimed onto warm Pods of a
//! WarmPool and run over the attach session, by an operator of each test's own (serving only
//! its namespace, and only WarmPools and Executions labelled `rce.dev/operator=<namespace>`).
//! The Runtime `python` must be installed with the serving runner in its image (`make up`).
//!
//! What ran where is read from the warm Pods' own logs (the serving runner prints
//! `{"t":"started","runId":...}` and the sealed result line of every run; a [`LogKeeper`]
//! keeps them past the Pods' deletion) and from the cold sandbox Pods seen (a watch).
//!
//! - a claimed Pod never runs two Executions at once, under 16 concurrent submissions;
//! - with reuse, a file in /work or /tmp, a process left running, or /dev/shm content of one
//!   run is not visible to the next (one test each);
//! - an Execution whose limits exceed the pool's shape runs cold, one that fits runs warm;
//! - deleting a warm Pod mid-run retries the Execution, cold, on attempt 2;
//! - killing the operator mid-claim (several points) loses no Execution and runs none twice;
//! - a pool that is there when its operator starts is never marked Invalid.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use kube::{api::DeleteParams, ResourceExt};
use rce_api::{warmpool::STATE_CLAIMED, Execution, Phase, Verdict};
use rce_tests::{
    exec::{describe, phase, sandbox_name, stdout, verdict, Engine},
    warm::{create_pool, frames, wait_ready, warm_state, Frame, Ledger, LogKeeper},
    with_engine,
};
use serde_json::json;

/// How long a batch may take.
const WAIT: Duration = Duration::from_secs(180);

/// The shape of the tests' pools.
fn shape() -> serde_json::Value {
    json!({"memoryMiB": 256, "wallTimeMs": 10000})
}

fn st(e: &Execution) -> rce_api::ExecutionStatus {
    e.status.clone().unwrap_or_default()
}

fn accepted(e: &Execution) -> bool {
    phase(e) == Some(Phase::Completed) && verdict(e) == Some(Verdict::Accepted)
}

/// The Execution ran warm in pool `pool`: warmPool set, podName one of the pool's Pods.
fn ran_warm(e: &Execution, pool: &str) -> bool {
    let s = st(e);
    s.warm_pool.as_deref() == Some(pool)
        && s.pod_name.as_deref().is_some_and(|p| p.starts_with(&format!("{pool}-")))
}

/// The Execution ran cold: no warmPool, podName its own sandbox of `attempt`.
fn ran_cold(e: &Execution, attempt: u32) -> bool {
    let s = st(e);
    s.warm_pool.is_none() && s.pod_name.as_deref() == Some(sandbox_name(e, attempt).as_str())
}

fn py(source: &str) -> serde_json::Value {
    json!({"language": "python", "source": source, "limits": {"memoryMiB": 128, "wallTimeMs": 5000}})
}

/// Every run id in `ledger` belongs to one of `executions` (no stranger ran in the pools).
fn only_known_runs(ledger: &Ledger, executions: &[Execution]) -> Result<()> {
    let uids: BTreeSet<String> = executions.iter().filter_map(|e| e.uid()).collect();
    for (id, pod) in &ledger.warm_runs {
        let uid = id.split('/').next().unwrap_or_default();
        ensure!(uids.contains(uid), "Pod {pod} ran {id}, of no Execution of this test");
    }
    Ok(())
}

/// The warm Executions' status agrees with the logs: the Pod of their podName started their
/// run `<uid>/<attempt>`; and no warm run is missing from the statuses.
fn statuses_match_the_logs(ledger: &Ledger, executions: &[Execution], pool: &str) -> Result<()> {
    for e in executions.iter().filter(|e| ran_warm(e, pool)) {
        let s = st(e);
        let id = format!("{}/{}", e.uid().unwrap_or_default(), s.attempts.unwrap_or(1));
        ensure!(
            ledger.warm_runs.get(&id) == s.pod_name.as_ref(),
            "{}: status says Pod {:?}, the logs say run {id} ran in {:?}",
            e.name_any(),
            s.pod_name,
            ledger.warm_runs.get(&id)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. One Execution at a time per Pod.

#[tokio::test]
async fn a_claimed_pod_never_runs_two_executions_at_once() -> Result<()> {
    // Two cold slots: most of the 16 wait for a slot and try the pool again when rechecked
    // (so the two Pods are contended), some run cold beside them.
    with_engine!(operator "warm-exclusive", |c| c.max_running = 2, needs ["python"], |eng| {
        create_pool(&eng, "py", "python", 2, shape(), Some(50)).await?;
        wait_ready(&eng, "py", 2).await?;
        let keeper = LogKeeper::start(&eng).await?;
        let t0 = Instant::now();
        let names: Vec<String> = (0..16).map(|i| format!("c{i:02}")).collect();
        let specs: Vec<(String, serde_json::Value)> = names
            .iter()
            .map(|n| (n.clone(), py(&format!("import time\nprint('{n} begins', flush=True)\ntime.sleep(0.3)\nprint('{n} ends')\n"))))
            .collect();
        eng.submit_all(&specs).await?;
        let done = eng.wait_all(&names, WAIT).await?;
        eprintln!("16 Executions at once: all finished {:?} after the first create", t0.elapsed());
        let seen = keeper.snapshot().await;
        keeper.stop();
        let executions: Vec<Execution> = done.values().cloned().collect();
        let mut problems = Vec::new();
        for (n, e) in &done {
            if !accepted(e) || stdout(e) != format!("{n} begins\n{n} ends\n") {
                problems.push(format!("{n}: not Accepted with its output: {}", describe(e)));
            }
            if !ran_warm(e, "py") && !ran_cold(e, 1) {
                problems.push(format!("{n}: neither warm in py nor cold in its own sandbox: {}", describe(e)));
            }
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        // The logs: per Pod, started/result strictly alternate; each run id once in all.
        let ledger = Ledger::from(&seen)?;
        only_known_runs(&ledger, &executions)?;
        statuses_match_the_logs(&ledger, &executions, "py")?;
        ledger.each_ran_once(&executions, &[])?;
        let warm: Vec<&String> = done.iter().filter(|(_, e)| ran_warm(e, "py")).map(|(n, _)| n).collect();
        let mut per_pod: BTreeMap<&String, usize> = BTreeMap::new();
        for pod in ledger.warm_runs.values() {
            *per_pod.entry(pod).or_default() += 1;
        }
        eprintln!("{} ran warm {per_pod:?}, {} cold; spoiled: {:?}", warm.len(), 16 - warm.len(), ledger.spoiled);
        ensure!(ledger.warm_runs.len() == warm.len(), "warm runs in the logs {} != warm statuses {}", ledger.warm_runs.len(), warm.len());
        // Both Pods were idle when the 16 came: each was claimed at least once, and at least
        // one Pod served more than one (reuse under contention).
        ensure!(per_pod.len() >= 2, "fewer than 2 warm Pods served: {per_pod:?}");
        ensure!(per_pod.values().any(|n| *n >= 2), "no Pod was reused under contention: {per_pod:?}");
        // The status intervals of each Pod's runs do not overlap either (whole seconds: an
        // Execution may start in the second the one before it finished).
        for (pod, _) in per_pod {
            let mut spans: Vec<(i64, i64, &String)> = done
                .iter()
                .filter(|(_, e)| st(e).pod_name.as_ref() == Some(pod))
                .filter_map(|(n, e)| {
                    let s = st(e);
                    Some((rce_tests::exec::epoch_secs(s.started_at.as_deref()?)?, rce_tests::exec::epoch_secs(s.finished_at.as_deref()?)?, n))
                })
                .collect();
            spans.sort();
            for w in spans.windows(2) {
                ensure!(w[1].0 >= w[0].1, "Pod {pod}: {} [{}, {}] overlaps {} [{}, {}]", w[1].2, w[1].0, w[1].1, w[0].2, w[0].0, w[0].1);
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 2. A clean slate between runs of one Pod.

/// Run `first`, then (once the pool's only Pod is idle again) `second`, both warm in a pool of
/// one Pod with reuse; return both and what happened to the Pod: "reused" (the same Pod ran
/// both) or "discarded: <the runner's reasons>" (it could not prove a clean slate; the second
/// ran in the Pod that replaced it).
async fn two_runs_in_turn(
    eng: &Engine,
    first: serde_json::Value,
    second: serde_json::Value,
) -> Result<(Execution, Execution, String)> {
    create_pool(eng, "py", "python", 1, shape(), Some(50)).await?;
    wait_ready(eng, "py", 1).await?;
    let keeper = LogKeeper::start(eng).await?;
    let one = eng.run("first", first, WAIT).await?;
    ensure!(accepted(&one) && ran_warm(&one, "py"), "the first run: {}", describe(&one));
    wait_ready(eng, "py", 1).await?;
    let two = eng.run("second", second, WAIT).await?;
    ensure!(accepted(&two) && ran_warm(&two, "py"), "the second run: {}", describe(&two));
    let seen = keeper.snapshot().await;
    keeper.stop();
    let ledger = Ledger::from(&seen)?;
    ledger.each_ran_once(&[one.clone(), two.clone()], &[])?;
    statuses_match_the_logs(&ledger, &[one.clone(), two.clone()], "py")?;
    let (p1, p2) = (st(&one).pod_name.unwrap_or_default(), st(&two).pod_name.unwrap_or_default());
    let what = if p1 == p2 {
        "reused".to_string()
    } else {
        let why = ledger.spoiled.get(&p1).cloned().unwrap_or_default();
        ensure!(
            !why.is_empty(),
            "the second run went to {p2}, not {p1}, but {p1}'s runner never said it was spoiled"
        );
        format!("discarded: {why:?}")
    };
    eprintln!("first in {p1}, second in {p2}: the Pod was {what}");
    Ok((one, two, what))
}

#[tokio::test]
async fn reuse_a_file_in_work_or_tmp_is_not_visible_to_the_next_run() -> Result<()> {
    with_engine!(operator "warm-clean-files", |_| {}, needs ["python"], |eng| {
        let marker = format!("marker-{}", rce_tests::random_suffix());
        let write = format!(
            "import os\nfor d in sorted({{'/work', '/tmp', os.getcwd()}}):\n    os.makedirs(os.path.join(d, 'sub-{marker}'), exist_ok=True)\n    open(os.path.join(d, '{marker}'), 'w').write('x')\n    open(os.path.join(d, 'sub-{marker}', 'f'), 'w').write('x')\n    os.chmod(os.path.join(d, '{marker}'), 0o444)\n    os.chmod(os.path.join(d, 'sub-{marker}'), 0o555)\nprint(sorted(os.listdir('/work')), sorted(os.listdir('/tmp')))\n"
        );
        let check = format!(
            "import os\nfor d in ['/work', '/tmp', os.getcwd()]:\n    print(d, os.path.exists(os.path.join(d, '{marker}')), os.path.exists(os.path.join(d, 'sub-{marker}')))\nprint('work', sorted(os.listdir('/work')))\nprint('tmp', sorted(os.listdir('/tmp')))\n"
        );
        let (one, two, what) = two_runs_in_turn(&eng, py(&write), py(&check)).await?;
        ensure!(stdout(&one).contains(&marker), "the first run did not write its files: {}", describe(&one));
        let out = stdout(&two);
        ensure!(out.matches("False False").count() == 3 && !out.contains("True"), "the second run ({what}) saw the first's files: {out}");
        ensure!(!out.contains(&marker), "the second run ({what}) saw the first's files: {out}");
        ensure!(out.contains("tmp []"), "/tmp is not empty in the second run ({what}): {out}");
        Ok(())
    })
}

#[tokio::test]
async fn reuse_a_process_left_running_is_not_visible_to_the_next_run() -> Result<()> {
    with_engine!(operator "warm-clean-procs", |_| {}, needs ["python"], |eng| {
        // A process in a session of its own, a double-forked daemon, and a process ignoring
        // SIGTERM and SIGHUP; each alive when the first run ends.
        let leave = r#"import os, signal, subprocess, time
a = subprocess.Popen(['sleep', '100'], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '101'])
    os._exit(0)
os.wait()
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.execvp('sleep', ['sleep', '102'])
time.sleep(0.3)
alive = [p for p in os.listdir('/proc') if p.isdigit() and b'sleep' in open(f'/proc/{p}/cmdline', 'rb').read()]
print('sleepers', len(alive))
"#;
        let look = r#"import os
me = os.getpid()
procs = {}
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            procs[int(p)] = open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\0', b' ').decode().strip()
        except OSError:
            pass
others = {p: c for p, c in procs.items() if p not in (1, me)}
print('me', me, 'pid1', procs.get(1))
print('others', others)
"#;
        let (one, two, what) = two_runs_in_turn(&eng, py(leave), py(look)).await?;
        ensure!(stdout(&one).contains("sleepers 3"), "the first run did not leave its 3 processes running: {}", describe(&one));
        let out = stdout(&two);
        eprintln!("second run ({what}): {out}");
        ensure!(out.contains("pid1 /usr/local/bin/rce-runner --serve"), "PID 1 is not the serving runner: {out}");
        ensure!(out.contains("others {}"), "the second run ({what}) sees processes besides itself and the runner: {out}");
        ensure!(!out.contains("sleep"), "the second run ({what}) sees a process the first left: {out}");
        Ok(())
    })
}

#[tokio::test]
async fn reuse_dev_shm_content_is_not_visible_to_the_next_run() -> Result<()> {
    with_engine!(operator "warm-clean-shm", |_| {}, needs ["python"], |eng| {
        let write = r#"import os
from multiprocessing import shared_memory
open('/dev/shm/marker', 'w').write('x' * 4096)
os.makedirs('/dev/shm/dir/sub')
open('/dev/shm/dir/sub/f', 'w').write('x')
s = shared_memory.SharedMemory(name='rce_leak', create=True, size=65536)
s.buf[:5] = b'leak!'
s.close()
print(sorted(os.listdir('/dev/shm')))
"#;
        let check = r#"import os
from multiprocessing import shared_memory
print('shm', sorted(os.listdir('/dev/shm')))
try:
    s = shared_memory.SharedMemory(name='rce_leak')
    print('segment', bytes(s.buf[:5]))
except FileNotFoundError:
    print('no segment')
"#;
        let (one, two, what) = two_runs_in_turn(&eng, py(write), py(check)).await?;
        ensure!(stdout(&one).contains("rce_leak") && stdout(&one).contains("marker"), "the first run did not write /dev/shm: {}", describe(&one));
        let out = stdout(&two);
        ensure!(out.contains("shm []") && out.contains("no segment"), "the second run ({what}) sees the first's /dev/shm: {out}");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 3. The pool's shape.

#[tokio::test]
async fn an_execution_above_the_pool_shape_runs_cold_and_one_that_fits_runs_warm() -> Result<()> {
    with_engine!(operator "warm-shape", |_| {}, needs ["python"], |eng| {
        create_pool(&eng, "py", "python", 1, json!({"memoryMiB": 256, "wallTimeMs": 5000}), Some(50)).await?;
        wait_ready(&eng, "py", 1).await?;
        // Above the shape, one limit each; the pool's Pod is idle all along.
        let above = [
            ("mem", json!({"memoryMiB": 300})),
            ("wall", json!({"wallTimeMs": 6000})),
            ("cpu", json!({"cpuTimeMs": 4000})),
        ];
        for (n, limits) in &above {
            let e = eng.run(n, json!({"language": "python", "source": "print('cold')", "limits": limits}), WAIT).await?;
            ensure!(accepted(&e) && stdout(&e) == "cold\n", "{n}: {}", describe(&e));
            ensure!(ran_cold(&e, 1), "{n}: limits {limits} above the shape, yet not cold in its own sandbox: {}", describe(&e));
        }
        // At the shape's very limits and under them: warm.
        for (n, limits) in [("at", json!({"memoryMiB": 256, "wallTimeMs": 5000})), ("under", json!({"memoryMiB": 64})), ("defaults", json!(null))] {
            let mut spec = json!({"language": "python", "source": "print('warm')"});
            if !limits.is_null() {
                spec["limits"] = limits;
            }
            wait_ready(&eng, "py", 1).await?;
            let e = eng.run(n, spec, WAIT).await?;
            ensure!(accepted(&e) && stdout(&e) == "warm\n", "{n}: {}", describe(&e));
            ensure!(ran_warm(&e, "py"), "{n}: fits the shape and the Pod was idle, yet not warm: {}", describe(&e));
        }
        // The pool's counts are written at most once a second: the last hit shows soon after.
        let deadline = Instant::now() + Duration::from_secs(5);
        let wp = loop {
            let wp = rce_tests::warm::pools(&eng).get("py").await?.status.unwrap_or_default();
            if wp.hits >= 3 || Instant::now() > deadline {
                break wp;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(wp.hits == 3 && wp.misses == 0, "3 hits and no misses expected (above the shape is no miss): {wp:?}");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 4. A warm Pod lost mid-run.

#[tokio::test]
async fn deleting_a_warm_pod_mid_run_retries_the_execution_cold() -> Result<()> {
    with_engine!(operator "warm-lost", |_| {}, needs ["python"], |eng| {
        create_pool(&eng, "py", "python", 1, shape(), Some(50)).await?;
        wait_ready(&eng, "py", 1).await?;
        let keeper = LogKeeper::start(&eng).await?;
        let src = "import time\nprint('one', flush=True)\ntime.sleep(5)\nprint('two')\n";
        eng.submit("lost", json!({"language": "python", "source": src, "limits": {"wallTimeMs": 8000}})).await?;
        let e = eng.wait_for("lost", Duration::from_secs(30), |e| ran_warm(e, "py")).await?;
        let pod = st(&e).pod_name.context("podName")?;
        let run = format!("{}/1", e.uid().unwrap_or_default());
        // Until its runner said it started the run.
        let t0 = Instant::now();
        loop {
            let log = rce_tests::pod_log(&eng.pods(), &pod).await.unwrap_or_default();
            if frames(&log).contains(&Frame::Started(run.clone())) {
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(10), "{pod} never started {run}: {log}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        eng.pods().delete(&pod, &DeleteParams::default()).await?;
        let t1 = Instant::now();
        let e = eng.wait_done("lost").await?;
        eprintln!("warm Pod {pod} deleted mid-run; the Execution finished {:?} later: {}", t1.elapsed(), describe(&e));
        ensure!(accepted(&e) && stdout(&e) == "one\ntwo\n", "not Completed/Accepted with its whole output: {}", describe(&e));
        ensure!(st(&e).attempts == Some(2), "expected attempt 2: {}", describe(&e));
        ensure!(ran_cold(&e, 2), "attempt 2 expected cold in its own sandbox: {}", describe(&e));
        let seen = keeper.snapshot().await;
        keeper.stop();
        let ledger = Ledger::from_open(&seen)?;
        ensure!(ledger.warm_runs.get(&run) == Some(&pod), "the logs do not show {run} in {pod}: {ledger:?}");
        ensure!(ledger.cold_of(&e.uid().unwrap_or_default()) == [&"2".to_string()], "cold sandboxes: {ledger:?}");
        // The pool refills.
        wait_ready(&eng, "py", 1).await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 5. The operator killed mid-claim.

#[tokio::test]
async fn killing_the_operator_mid_claim_loses_no_execution_and_runs_none_twice() -> Result<()> {
    with_engine!(operator "warm-crash", |c| c.max_running = 2, needs ["python"], |eng| {
        create_pool(&eng, "py", "python", 2, shape(), Some(50)).await?;
        wait_ready(&eng, "py", 2).await?;
        let keeper = LogKeeper::start(&eng).await?;
        let src = |n: &str| py(&format!("import time\nprint('{n} begins', flush=True)\ntime.sleep(0.5)\nprint('{n} ends')\n"));
        let mut names = Vec::new();
        let batch = |round: &str| -> Vec<(String, serde_json::Value)> {
            (0..6).map(|i| format!("{round}{i}")).map(|n| (n.clone(), src(&n))).collect()
        };
        // a: killed right after the submissions.
        let a = batch("a");
        eng.submit_all(&a).await?;
        eng.kill().await;
        names.extend(a.iter().map(|(n, _)| n.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        eng.start();
        eng.wait_all(&names, WAIT).await?;
        wait_ready(&eng, "py", 2).await?;
        // b: killed a moment after the first claim (a Pod labelled claimed).
        let b = batch("b");
        eng.submit_all(&b).await?;
        let t0 = Instant::now();
        loop {
            let pods = rce_tests::warm::live_pods(&eng, "py").await?;
            if pods.iter().any(|p| warm_state(p) == STATE_CLAIMED) {
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(20), "no claim within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        eng.kill().await;
        eprintln!("b: killed {:?} after the submissions", t0.elapsed());
        names.extend(b.iter().map(|(n, _)| n.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        eng.start();
        eng.wait_all(&names, WAIT).await?;
        wait_ready(&eng, "py", 2).await?;
        // c: killed while a run of the batch is in progress (its runner said started).
        let started = |seen: &BTreeMap<String, rce_tests::warm::SeenPod>| {
            seen.values().flat_map(|p| frames(&p.log)).filter(|f| matches!(f, Frame::Started(_))).count()
        };
        let before = started(&keeper.snapshot().await);
        let c = batch("c");
        eng.submit_all(&c).await?;
        let t0 = Instant::now();
        loop {
            let seen = keeper.snapshot().await;
            let in_progress = seen.values().any(|p| matches!(frames(&p.log).last(), Some(Frame::Started(_))));
            if started(&seen) > before && in_progress {
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(20), "no warm run started within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eng.kill().await;
        eprintln!("c: killed {:?} after the submissions, a run in progress", t0.elapsed());
        names.extend(c.iter().map(|(n, _)| n.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        eng.start();
        let done = eng.wait_all(&names, WAIT).await?;
        let seen = keeper.snapshot().await;
        keeper.stop();
        let executions: Vec<Execution> = done.values().cloned().collect();
        let mut problems = Vec::new();
        for (n, e) in &done {
            if !accepted(e) || stdout(e) != format!("{n} begins\n{n} ends\n") {
                problems.push(format!("{n}: not Accepted with its output: {}", describe(e)));
            }
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        let ledger = Ledger::from(&seen)?;
        only_known_runs(&ledger, &executions)?;
        statuses_match_the_logs(&ledger, &executions, "py")?;
        ledger.each_ran_once(&executions, &[])?;
        let warm = executions.iter().filter(|e| ran_warm(e, "py")).count();
        eprintln!("{} Executions over 3 crashes: {warm} warm, {} cold; spoiled {:?}", executions.len(), executions.len() - warm, ledger.spoiled);
        ensure!(warm > 0, "none ran warm");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// A pool seen by an operator that is just starting.

#[tokio::test]
async fn a_pool_an_operator_finds_as_it_starts_is_never_invalid() -> Result<()> {
    with_engine!(operator "warm-start", |_| {}, needs ["python"], |eng| {
        // The pool is there before the operator: its first reconcile races the Runtime cache.
        eng.kill().await;
        create_pool(&eng, "py", "python", 1, shape(), Some(50)).await?;
        eng.start();
        let t0 = Instant::now();
        let mut invalid = None;
        loop {
            let st = rce_tests::warm::pools(&eng).get("py").await?.status.unwrap_or_default();
            if let Some(c) = st.conditions.iter().find(|c| c.reason.as_deref() == Some("Invalid")) {
                invalid.get_or_insert_with(|| c.clone());
            }
            if st.ready_replicas == 1 {
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(60), "the pool never became ready: {st:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("a pool found at start ready after {:?}", t0.elapsed());
        let events = eng.ns.api::<k8s_openapi::api::core::v1::Event>().list(&Default::default()).await?.items;
        let warnings: Vec<_> = events
            .iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("WarmPool") && e.type_.as_deref() == Some("Warning"))
            .map(|e| (e.reason.clone(), e.message.clone()))
            .collect();
        ensure!(invalid.is_none() && warnings.is_empty(), "a valid pool was marked Invalid at start: {invalid:?}, Warning Events {warnings:?}");
        Ok(())
    })
}
