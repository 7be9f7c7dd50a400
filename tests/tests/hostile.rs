//! Hostile programs against the real cluster, through the engine's running operator
//! (`make up`): each gets its expected verdict, a normal Execution submitted beside it still
//! completes Accepted, and afterwards the node is Ready, no sandbox Pod is left and a fresh
//! hello-world completes.
//!
//! Each test runs three times: `runc::*` (the engine's operator), `gvisor::*` (the gvisor
//! RuntimeClass) and `warm::*` (warm Pods with reuse, pools of the test's own: later programs
//! run in Pods the earlier hostile ones ran in; see `rce_tests::warm::with_warm_pools`).
//!
//! Network probes only ever target a listener this test starts on 127.0.0.1.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    net::TcpListener,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use rce_api::{Execution, Phase, Verdict};
use rce_tests::exec::Engine;
use rce_tests::exec::{
    describe, epoch_secs, message, nodes_ready, phase, stderr, stdout, verdict, watch_sandbox_pods,
    SandboxPods,
};
use rce_tests::on_runc_gvisor_and_warm;
use serde_json::json;

use Verdict::*;

const WAIT: Duration = Duration::from_secs(240);
/// Time a sandbox may take beyond its wall limit, end to end (Pod start, log read, status).
const POD_MARGIN: Duration = Duration::from_secs(12);
/// How far the runner's measured wall time may pass the limit.
const RUNNER_MARGIN_MS: u64 = 1_000;

type Check = fn(&Execution) -> Result<(), String>;

struct Case {
    name: &'static str,
    spec: serde_json::Value,
    /// Acceptable verdicts (phase Completed).
    verdicts: &'static [Verdict],
    /// Wall limit to hold it to (runner and end to end), if it matters.
    wall_ms: Option<u64>,
    extra: Option<Check>,
}

fn case(
    name: &'static str,
    language: &str,
    source: &str,
    limits: serde_json::Value,
    verdicts: &'static [Verdict],
) -> Case {
    let mut spec = json!({"language": language, "source": source});
    if !limits.is_null() {
        spec["limits"] = limits;
    }
    let wall_ms = spec["limits"]["wallTimeMs"].as_u64();
    Case { name, spec, verdicts, wall_ms, extra: None }
}

impl Case {
    fn with(mut self, extra: Check) -> Self {
        self.extra = Some(extra);
        self
    }
}

/// Seconds from the program's start to the recorded result: from the sandbox container's
/// start (the watch saw it) or, for a run in a warm Pod, from the run's `startedAt`. Waiting
/// for a node and for the container to be set up is the cluster's queue, not the program's
/// time: under three variants at once on two cores it alone took 10 s and more.
fn span_secs(e: &Execution, pods: &SandboxPods) -> Option<i64> {
    let st = e.status.as_ref()?;
    let started = epoch_secs(st.started_at.as_deref()?)?;
    let container = pods.lock().ok().and_then(|m| {
        let pod = st.pod_name.as_deref()?;
        m.get(&e.name_any())?
            .iter()
            .find(|(id, _)| id.split('/').next() == Some(pod))
            .and_then(|(_, p)| p.running_since)
    });
    Some(epoch_secs(st.finished_at.as_deref()?)? - container.unwrap_or(started).max(started))
}

fn judge(c: &Case, e: &Execution, pods: &SandboxPods) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what}; status: {}", describe(e)));
    if phase(e) != Some(Phase::Completed) {
        return fail("phase is not Completed".into());
    }
    match verdict(e) {
        Some(v) if c.verdicts.contains(&v) => {}
        v => return fail(format!("verdict {v:?}, expected one of {:?}", c.verdicts)),
    }
    if let Some(limit) = c.wall_ms {
        let st = e.status.as_ref().expect("Completed has a status");
        match st.wall_time_ms {
            Some(w) if w <= limit + RUNNER_MARGIN_MS => {}
            w => {
                return fail(format!(
                    "runner wall time {w:?} ms is over the {limit} ms limit + {RUNNER_MARGIN_MS} ms"
                ))
            }
        }
        match span_secs(e, pods) {
            Some(s) if (s as u64) <= (limit / 1000) + POD_MARGIN.as_secs() => {}
            s => {
                return fail(format!(
                    "program start to result took {s:?} s: over the {limit} ms limit + {POD_MARGIN:?}"
                ))
            }
        }
    }
    if let Some(extra) = c.extra {
        extra(e).map_err(|why| format!("{why}; status: {}", describe(e)))?;
    }
    Ok(())
}

fn signal_is(e: &Execution, name: &str) -> Result<(), String> {
    let sig = e.status.as_ref().and_then(|s| s.signal.as_deref());
    if sig != Some(name) {
        return Err(format!("signal {sig:?}, expected {name}"));
    }
    if !message(e).contains(name) {
        return Err(format!("message does not name {name}"));
    }
    Ok(())
}

fn stdout_is_the_cap(e: &Execution) -> Result<(), String> {
    let st = e.status.as_ref().ok_or("no status")?;
    if stdout(e).len() != 10_000 || !st.stdout_truncated {
        return Err(format!(
            "stdout is {} bytes (truncated: {}), expected exactly 10000",
            stdout(e).len(),
            st.stdout_truncated
        ));
    }
    Ok(())
}

fn says_why(e: &Execution) -> Result<(), String> {
    if message(e).trim().is_empty() && stderr(e).trim().is_empty() {
        return Err("neither a message nor stderr says what happened".into());
    }
    Ok(())
}

fn all_writes_refused(e: &Execution) -> Result<(), String> {
    writes_refused_with(e, &["Read-only file system"])
}

/// gVisor refuses a write to the read-only root with EACCES where Linux says EROFS.
fn all_writes_refused_under_gvisor(e: &Execution) -> Result<(), String> {
    writes_refused_with(e, &["Read-only file system", "Permission denied"])
}

fn writes_refused_with(e: &Execution, reasons: &[&str]) -> Result<(), String> {
    let out = stdout(e);
    if out.contains("WROTE") {
        return Err("a write outside the work dir succeeded".into());
    }
    for p in ["/etc/x", "/usr/x"] {
        if !out.lines().any(|l| l.starts_with(p) && reasons.iter().any(|r| l.contains(r))) {
            return Err(format!("{p} was not refused as read-only"));
        }
    }
    Ok(())
}

fn no_secrets(e: &Execution) -> Result<(), String> {
    let report: serde_json::Value = serde_json::from_str(stdout(e).trim())
        .map_err(|err| format!("stdout is not the JSON report: {err}"))?;
    let env = report["env"].as_object().ok_or("no env in the report")?;
    let bad: Vec<&String> = env
        .keys()
        .filter(|k| {
            k.starts_with("KUBERNETES")
                || k.ends_with("_SERVICE_HOST")
                || k.ends_with("_SERVICE_PORT")
                || k.contains("TOKEN")
                || k.contains("SECRET")
                || k.starts_with("RCE_")
        })
        .collect();
    if !bad.is_empty() {
        return Err(format!("environment leaks {bad:?}"));
    }
    for key in ["token", "secrets_dir", "sa_mount"] {
        if report[key] != json!(false) {
            return Err(format!("{key} is present: {}", report[key]));
        }
    }
    Ok(())
}

const ENV_PROBE: &str = r#"import json, os
mounts = open('/proc/mounts').read()
print(json.dumps({
    'env': dict(os.environ),
    'token': os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'),
    'secrets_dir': os.path.exists('/var/run/secrets') or os.path.exists('/run/secrets'),
    'sa_mount': 'serviceaccount' in mounts or 'secrets' in mounts,
}))
"#;

const WRITE_OUTSIDE: &str = r#"import os
for p in ['/etc/x', '/usr/x', '/x', '/var/x', '/bin/x', '/etc/rce/x', '/proc/x']:
    try:
        with open(p, 'w') as f:
            f.write('x')
        print('WROTE', p)
    except OSError as e:
        print(p, e)
"#;

fn cases(gvisor: bool) -> Vec<Case> {
    vec![
        // Fork bombs. The canonical bash one backgrounds its pipeline and its top-level shell
        // exits 0 at once; what it left runs on under the limits for a moment and reaches the
        // process limit. The C loop keeps forking in the main process.
        // (Under gVisor its forks are slow and CPU-heavy: it may reach the CPU limit first.)
        if gvisor {
            case("fork-bash", "bash", ":(){ :|:& };:", json!({"wallTimeMs": 5000}), &[RuntimeError, TimeLimitExceeded])
        } else {
            case("fork-bash", "bash", ":(){ :|:& };:", json!({"wallTimeMs": 5000}), &[RuntimeError])
                .with(|e| if message(e).contains("process limit") { Ok(()) } else { Err("no process limit message".into()) })
        },
        case(
            "fork-c",
            "c",
            "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n",
            json!({"wallTimeMs": 4000, "cpuTimeMs": 2000}),
            &[RuntimeError, TimeLimitExceeded],
        ),
        // Filling the disk.
        case("disk-fallocate", "bash", "fallocate -l 10G /work/big", json!({"wallTimeMs": 5000}), &[RuntimeError, OutputLimitExceeded, MemoryLimitExceeded])
            .with(says_why),
        case("disk-dd-tmp", "bash", "dd if=/dev/zero of=/tmp/fill bs=1M", json!({"wallTimeMs": 5000}), &[RuntimeError, OutputLimitExceeded, MemoryLimitExceeded])
            .with(says_why),
        case(
            "disk-many-files",
            "python",
            "i = 0\nwhile True:\n    with open(f'/work/f{i}', 'wb') as f:\n        f.write(b'x' * (1 << 20))\n    i += 1\n",
            json!({"wallTimeMs": 5000}),
            &[RuntimeError, OutputLimitExceeded, MemoryLimitExceeded, TimeLimitExceeded],
        )
        .with(says_why),
        case(
            "disk-endless-tmp",
            "bash",
            "i=0; while :; do cat /dev/zero > /tmp/f$i 2>/dev/null; i=$((i+1)); done",
            json!({"wallTimeMs": 4000}),
            &[RuntimeError, OutputLimitExceeded, MemoryLimitExceeded, TimeLimitExceeded],
        )
        .with(says_why),
        // Output floods.
        case(
            "flood-no-newlines",
            "python",
            "import sys\nwhile True:\n    sys.stdout.write('x' * 1000)\n",
            json!({"outputBytes": 10000, "wallTimeMs": 5000}),
            &[OutputLimitExceeded],
        )
        .with(stdout_is_the_cap),
        case("flood-lines", "bash", "yes", json!({"outputBytes": 10000, "wallTimeMs": 5000}), &[OutputLimitExceeded])
            .with(stdout_is_the_cap),
        case(
            "flood-c-printf",
            "c",
            "#include <stdio.h>\nint main(void) { for (unsigned long i = 0;; i++) printf(\"%lu\\n\", i); }\n",
            json!({"outputBytes": 10000, "wallTimeMs": 5000}),
            &[OutputLimitExceeded],
        )
        .with(stdout_is_the_cap),
        // Loops that ignore SIGTERM.
        case(
            "loop-cpu-ignores-term",
            "python",
            "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n",
            json!({"wallTimeMs": 2000, "cpuTimeMs": 1000}),
            &[TimeLimitExceeded],
        ),
        case(
            "loop-sleep-ignores-term",
            "bash",
            "trap '' TERM INT HUP\nwhile :; do sleep 0.2; done",
            json!({"wallTimeMs": 2000}),
            &[TimeLimitExceeded],
        ),
        case(
            "loop-c-ignores-term",
            "c",
            "#include <signal.h>\nint main(void) { signal(SIGTERM, SIG_IGN); for (volatile int i = 0;; i++) ; }\n",
            json!({"wallTimeMs": 2000, "cpuTimeMs": 1000}),
            &[TimeLimitExceeded],
        ),
        // Memory bombs.
        case(
            "mem-python",
            "python",
            "a = []\nwhile True:\n    a.append(' ' * 10**6)\n",
            json!({"memoryMiB": 64, "wallTimeMs": 5000}),
            &[MemoryLimitExceeded],
        ),
        case(
            "mem-c",
            "c",
            "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); } }\n",
            json!({"memoryMiB": 64, "wallTimeMs": 5000}),
            &[MemoryLimitExceeded],
        ),
        // Thread bombs.
        case(
            "threads-c",
            "c",
            "#include <pthread.h>\n#include <unistd.h>\nstatic void *f(void *a) { (void)a; sleep(100); return 0; }\nint main(void) { pthread_t t; for (;;) pthread_create(&t, 0, f, 0); }\n",
            json!({"wallTimeMs": 3000, "cpuTimeMs": 2000}),
            &[RuntimeError, TimeLimitExceeded, MemoryLimitExceeded],
        ),
        case(
            "threads-python",
            "python",
            "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()\n",
            json!({"wallTimeMs": 3000}),
            &[RuntimeError, TimeLimitExceeded, MemoryLimitExceeded],
        ),
        // Signals.
        case("sigsegv", "c", "int main(void) { *(volatile int *)0 = 1; return 0; }\n", json!(null), &[RuntimeError])
            .with(|e| signal_is(e, "SIGSEGV")),
        case(
            "sigfpe",
            "c",
            "#include <stdio.h>\nint main(void) { volatile int a = 7, z = 0; printf(\"%d\\n\", a / z); return 0; }\n",
            json!(null),
            &[RuntimeError],
        )
        .with(|e| signal_is(e, "SIGFPE")),
        case("sigabrt", "c", "#include <stdlib.h>\nint main(void) { abort(); }\n", json!(null), &[RuntimeError])
            .with(|e| signal_is(e, "SIGABRT")),
        // Reading the environment and service-account secrets; writing outside the work dir.
        case("env-and-secrets", "python", ENV_PROBE, json!(null), &[Accepted]).with(no_secrets),
        case("write-outside", "python", WRITE_OUTSIDE, json!(null), &[Accepted]).with(if gvisor {
            all_writes_refused_under_gvisor
        } else {
            all_writes_refused
        }),
    ]
}

async fn hostile_programs_get_verdicts_and_leave_the_node_healthy(eng: &Engine) -> Result<()> {
    {
        let cases = cases(eng.gvisor());
        // Each hostile program with a normal one right behind it, so that they run together.
        let mut specs = Vec::new();
        for c in &cases {
            specs.push((c.name.to_string(), c.spec.clone()));
            specs.push((
                format!("{}-beside", c.name),
                json!({"language": "python", "source": format!("print('beside {}')", c.name)}),
            ));
        }
        let (pods, watch) = watch_sandbox_pods(eng.ns.api::<Pod>());
        eng.submit_all(&specs).await?;
        let names: Vec<String> = specs.iter().map(|s| s.0.clone()).collect();
        let done = eng.wait_all(&names, WAIT).await;
        watch.abort();
        let done = done?;

        let mut problems = Vec::new();
        let mut table = BTreeMap::new();
        for c in &cases {
            let e = done.get(c.name).with_context(|| format!("{} vanished", c.name))?;
            let st = e.status.clone().unwrap_or_default();
            table.insert(
                c.name,
                format!(
                    "{:?} signal={:?} exit={:?} wall={:?}ms cpu={:?}ms mem={:?}KiB message={:?}",
                    st.verdict,
                    st.signal,
                    st.exit_code,
                    st.wall_time_ms,
                    st.time_ms,
                    st.memory_kib,
                    st.message
                ),
            );
            if let Err(why) = judge(c, e, &pods) {
                problems.push(format!("{}: {why}", c.name));
            }
            let beside = format!("{}-beside", c.name);
            let b = done.get(&beside).with_context(|| format!("{beside} vanished"))?;
            if verdict(b) != Some(Accepted) || stdout(b).trim_end() != format!("beside {}", c.name) {
                problems.push(format!(
                    "{beside} (normal, beside {}) did not complete Accepted: {}",
                    c.name,
                    describe(b)
                ));
            }
        }
        for (name, line) in &table {
            eprintln!("{name:24} {line}");
        }

        // After the storm: the node is Ready, no sandbox Pod is left, a fresh hello completes.
        let not_ready = nodes_ready(&eng.ns.client).await?;
        if !not_ready.is_empty() {
            problems.push(format!("nodes not Ready after the hostile suite: {not_ready:?}"));
        }
        let left = eng.leftover_sandboxes(Duration::from_secs(30)).await?;
        if !left.is_empty() {
            problems.push(format!("sandbox Pods left behind: {left:?}"));
        }
        let e = eng
            .run("fresh-hello", json!({"language": "python", "source": "print('hello, world')"}), WAIT)
            .await?;
        if verdict(&e) != Some(Accepted) || stdout(&e).trim_end() != "hello, world" {
            problems.push(format!("a fresh hello after the suite did not complete: {}", describe(&e)));
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        Ok(())
    }
}

async fn files_written_by_one_execution_are_gone_in_the_next(eng: &Engine) -> Result<()> {
    {
        let marker = format!("marker-{}", rce_tests::random_suffix());
        let write = format!(
            "import os\nfor d in ['/work', '/tmp', os.getcwd()]:\n    open(os.path.join(d, '{marker}'), 'w').write('x')\nprint('written', os.getcwd())\n"
        );
        let e = eng.run("writer", json!({"language": "python", "source": write}), WAIT).await?;
        ensure!(verdict(&e) == Some(Accepted), "the writer failed: {}", describe(&e));
        let check = format!(
            "import os\nfor d in ['/work', '/tmp', os.getcwd()]:\n    print(d, os.path.exists(os.path.join(d, '{marker}')))\n"
        );
        let e = eng.run("reader", json!({"language": "python", "source": check}), WAIT).await?;
        ensure!(verdict(&e) == Some(Accepted), "the reader failed: {}", describe(&e));
        ensure!(
            !stdout(&e).contains("True") && stdout(&e).contains("False"),
            "a file written by the previous Execution is visible: {}",
            describe(&e)
        );
        Ok(())
    }
}

const NET_PROBE: &str = r#"import socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(('127.0.0.1', port), timeout=3).close()
    print('CONNECTED')
except OSError as e:
    print('connect failed:', e)
routes = [l.split() for l in open('/proc/net/route').read().splitlines()[1:] if l.strip()]
print('DEFAULT ROUTE' if any(r[1] == '00000000' for r in routes) else 'no default route')
"#;

async fn network_probes_reach_nothing(eng: &Engine) -> Result<()> {
    // The only target of any probe: a listener this test owns, on the host's loopback.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (accepted, stop) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let started = Instant::now();
    let result: Result<()> = async {
        {
            let e = eng
                .run(
                    "probe",
                    json!({"language": "python", "source": NET_PROBE, "args": [port.to_string()], "limits": {"wallTimeMs": 8000}}),
                    WAIT,
                )
                .await?;
            ensure!(verdict(&e) == Some(Accepted), "the probe did not run to completion: {}", describe(&e));
            let out = stdout(&e);
            ensure!(out.contains("connect failed"), "the sandbox reached 127.0.0.1:{port}: {}", describe(&e));
            ensure!(out.contains("no default route"), "the sandbox has a default route: {}", describe(&e));
            Ok(())
        }
    }
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    let n = accepted.load(std::sync::atomic::Ordering::Relaxed);
    ensure!(
        n == 0,
        "the host listener on 127.0.0.1:{port} accepted {n} connection(s) in {:?}",
        started.elapsed()
    );
    result
}

on_runc_gvisor_and_warm!(
    hostile_programs_get_verdicts_and_leave_the_node_healthy,
    files_written_by_one_execution_are_gone_in_the_next,
    network_probes_reach_nothing,
);
