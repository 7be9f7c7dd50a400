//! The operator against the real cluster: each test runs its own operator in-process, serving
//! only its own randomly named namespace (`--namespaces NS --selector rce.dev/operator=NS`,
//! its Executions carry that label, so an operator started by `make up` leaves them alone).
//! The Runtimes `python`, `javascript` and `bash` must be installed (`make up`). Shared Redis:
//! `RCE_REDIS_URL`; the Redis-outage test starts its own redis-server on another loopback port.
//!
//! The tests take turns (one lock): the node has two cores.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::{core::v1::Event, networking::v1::NetworkPolicy};
use kube::{
    api::{Api, DeleteParams, ListParams, PostParams},
    ResourceExt,
};
use rce_api::{Phase, Runtime, Verdict};
use rce_tests::{
    exec::{describe, phase, sandbox_name, verdict, WAIT},
    redis::{shared_url, status_doc, wait_terminal_doc, RedisServer},
    with_engine,
};

/// The Runtimes these tests submit to.
const RUNTIMES: [&str; 3] = ["python", "javascript", "bash"];

#[tokio::test]
async fn hello_in_python_javascript_and_bash_and_runtime_errors() -> Result<()> {
    with_engine!(operator "op-hello", |_| {}, needs RUNTIMES, |h| {
        h.submit(
            "py",
            serde_json::json!({"language": "python", "source": "import sys\nprint('hello from python')\nprint('to stderr', file=sys.stderr)\n"}),
        )
        .await?;
        h.submit(
            "js",
            serde_json::json!({"language": "javascript", "source": "console.log('hello from js')"}),
        )
        .await?;
        h.submit("sh", serde_json::json!({"language": "bash", "source": "echo hello from bash"})).await?;
        h.submit(
            "exit3",
            serde_json::json!({"language": "bash", "source": "echo partial; echo bad >&2; exit 3"}),
        )
        .await?;
        h.submit(
            "stdin",
            serde_json::json!({"language": "python", "source": "print(input()[::-1])", "stdin": "abc\n", "expectedOutput": "cba\n"}),
        )
        .await?;
        h.submit(
            "wrong",
            serde_json::json!({"language": "python", "source": "print(41)", "expectedOutput": "42"}),
        )
        .await?;
        for (name, out) in
            [("py", "hello from python\n"), ("js", "hello from js\n"), ("sh", "hello from bash\n")]
        {
            let e = h.wait_done(name).await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(verdict(&e) == Some(Verdict::Accepted), "{name}: {}", describe(&e));
            ensure!(st.stdout.as_deref() == Some(out), "{name}: {}", describe(&e));
            ensure!(
                st.exit_code == Some(0) && st.time_ms.is_some() && st.wall_time_ms.is_some(),
                "{name}: {}",
                describe(&e)
            );
            ensure!(st.memory_kib.is_some_and(|m| m > 0), "{name}: {}", describe(&e));
            ensure!(st.submitted_at.is_some() && st.started_at.is_some() && st.finished_at.is_some());
            ensure!(st.pod_name.as_deref() == Some(&sandbox_name(&e, 1)), "{name}: {}", describe(&e));
            ensure!(st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        }
        let py = h.wait_done("py").await?.status.unwrap_or_default();
        ensure!(py.stderr.as_deref() == Some("to stderr\n"), "stderr is separate: {py:?}");
        let e = h.wait_done("exit3").await?;
        let st = e.status.clone().unwrap_or_default();
        ensure!(verdict(&e) == Some(Verdict::RuntimeError) && st.exit_code == Some(3), "{}", describe(&e));
        ensure!(
            st.stdout.as_deref() == Some("partial\n") && st.stderr.as_deref() == Some("bad\n"),
            "{}",
            describe(&e)
        );
        let e = h.wait_done("stdin").await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "{}", describe(&e));
        let e = h.wait_done("wrong").await?;
        ensure!(verdict(&e) == Some(Verdict::WrongAnswer), "{}", describe(&e));

        // The sandbox Pods are gone once their results are in.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = h.pods().list(&ListParams::default()).await?.items;
            let live: Vec<_> = left.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            if live.is_empty() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "sandbox pods left behind: {:?}",
                live.iter().map(|p| p.name_any()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // Events and the Redis mirror.
        let events = h.ns.api::<Event>().list(&ListParams::default()).await?.items;
        let reasons: HashSet<String> = events
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("py"))
            .filter_map(|e| e.reason.clone())
            .collect();
        ensure!(reasons.contains("SandboxCreated") && reasons.contains("Completed"), "events: {reasons:?}");
        let doc =
            wait_terminal_doc(&shared_url(), &h.ns.name, "py", Duration::from_secs(10)).await?;
        ensure!(doc.status.verdict == Some(Verdict::Accepted), "{doc:?}");
        Ok(())
    })
}

#[tokio::test]
async fn invalid_executions_fail_with_a_precise_message() -> Result<()> {
    with_engine!(operator "op-invalid", |_| {}, needs RUNTIMES, |h| {
        h.submit("intercal", serde_json::json!({"language": "intercal", "source": "x"})).await?;
        h.submit(
            "greedy",
            serde_json::json!({"language": "python", "source": "x", "limits": {"memoryMiB": 999999}}),
        )
        .await?;
        h.submit(
            "escape",
            serde_json::json!({"language": "python", "files": [{"name": "../../etc/x.py", "content": "print(1)"}]}),
        )
        .await?;
        h.submit("neither", serde_json::json!({"language": "python"})).await?;
        for (name, needle) in [
            ("intercal", "unknown language \"intercal\"; known languages:"),
            ("greedy", "limits.memoryMiB = 999999 exceeds the maximum of"),
            ("escape", "is not allowed"),
            ("neither", "give either spec.source or spec.files"),
        ] {
            let e = h.wait_done(name).await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(st.phase == Some(Phase::Failed), "{name}: {}", describe(&e));
            ensure!(st.message.as_deref().is_some_and(|m| m.contains(needle)), "{name}: {}", describe(&e));
            ensure!(
                st.conditions.iter().any(|c| c.type_ == "Valid"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Invalid")),
                "{name}: {}",
                describe(&e)
            );
            ensure!(st.pod_name.is_none(), "no sandbox for an invalid Execution");
        }
        Ok(())
    })
}

#[tokio::test]
async fn hostile_programs_get_precise_verdicts_and_a_normal_one_still_completes() -> Result<()> {
    with_engine!(operator "op-hostile", |_| {}, needs RUNTIMES, |h| {
        let t0 = Instant::now();
        h.submit(
            "loop",
            serde_json::json!({"language": "python", "source": "while True:\n    pass\n", "limits": {"wallTimeMs": 2000, "cpuTimeMs": 1000}}),
        )
        .await?;
        h.submit(
            "sleeper",
            serde_json::json!({"language": "bash", "source": "sleep 60", "limits": {"wallTimeMs": 2000}}),
        )
        .await?;
        h.submit(
            "membomb",
            serde_json::json!({"language": "python", "source": "a = []\nwhile True:\n    a.append(bytearray(1 << 20))\n", "limits": {"memoryMiB": 64}}),
        )
        .await?;
        h.submit(
            "flood",
            serde_json::json!({"language": "python", "source": "while True:\n    print('x' * 99)\n", "limits": {"outputBytes": 1000}}),
        )
        .await?;
        h.submit(
            "forkbomb",
            serde_json::json!({"language": "bash", "source": ":(){ :|:& };:", "limits": {"processes": 16, "wallTimeMs": 3000}}),
        )
        .await?;
        h.submit("normal", serde_json::json!({"language": "python", "source": "print(6 * 7)"})).await?;

        let e = h.wait_done("loop").await?;
        ensure!(verdict(&e) == Some(Verdict::TimeLimitExceeded), "loop: {}", describe(&e));
        let st = e.status.clone().unwrap_or_default();
        ensure!(
            st.time_ms.is_some() || st.wall_time_ms.is_some(),
            "loop reports its times: {}",
            describe(&e)
        );
        let e = h.wait_done("sleeper").await?;
        ensure!(verdict(&e) == Some(Verdict::TimeLimitExceeded), "sleeper: {}", describe(&e));
        let wall = e.status.clone().unwrap_or_default().wall_time_ms.unwrap_or(0);
        ensure!((2000..4000).contains(&wall), "stopped near the 2 s wall limit: {}", describe(&e));
        ensure!(t0.elapsed() < Duration::from_secs(40), "TLE took {:?}", t0.elapsed());

        let e = h.wait_done("membomb").await?;
        ensure!(verdict(&e) == Some(Verdict::MemoryLimitExceeded), "membomb: {}", describe(&e));

        let e = h.wait_done("flood").await?;
        let st = e.status.clone().unwrap_or_default();
        ensure!(verdict(&e) == Some(Verdict::OutputLimitExceeded), "flood: {}", describe(&e));
        ensure!(st.stdout_truncated, "flood: {}", describe(&e));
        ensure!(
            st.stdout.as_deref().is_some_and(|s| s.len() <= 1000 && s.len() >= 900),
            "flood: {}",
            describe(&e)
        );

        let e = h.wait_done("forkbomb").await?;
        ensure!(phase(&e) == Some(Phase::Completed) && verdict(&e).is_some(), "forkbomb: {}", describe(&e));

        let e = h.wait_done("normal").await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "normal: {}", describe(&e));
        ensure!(e.status.unwrap_or_default().stdout.as_deref() == Some("42\n"));
        Ok(())
    })
}

#[tokio::test]
async fn a_running_sandbox_is_hardened() -> Result<()> {
    with_engine!(operator "op-hardened", |_| {}, needs RUNTIMES, |h| {
        let slow = h
            .submit(
                "slow",
                serde_json::json!({"language": "python", "source": "import time\ntime.sleep(4)\nprint('done')", "limits": {"wallTimeMs": 10000, "memoryMiB": 100}}),
            )
            .await?;
        let pod_name = sandbox_name(&slow, 1);
        let pods = h.pods();
        let deadline = Instant::now() + WAIT;
        let pod = loop {
            if let Some(p) = pods.get_opt(&pod_name).await? {
                let running = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| s.running.is_some());
                if running {
                    break p;
                }
            }
            ensure!(Instant::now() < deadline, "{pod_name} never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let e = h.executions().get("slow").await?;
        ensure!(phase(&e) == Some(Phase::Processing), "{}", describe(&e));
        let spec = pod.spec.clone().context("pod spec")?;
        let owner = pod.owner_references().first().cloned().context("owner")?;
        ensure!(owner.kind == "Execution" && owner.name == "slow" && owner.controller == Some(true));
        ensure!(pod.labels().get("rce.dev/sandbox").map(String::as_str) == Some("true"));
        ensure!(spec.restart_policy.as_deref() == Some("Never"));
        ensure!(spec.automount_service_account_token == Some(false));
        ensure!(spec.enable_service_links == Some(false));
        ensure!(
            spec.active_deadline_seconds.is_some_and(|d| (10..=30).contains(&d)),
            "{:?}",
            spec.active_deadline_seconds
        );
        let psc = spec.security_context.clone().context("pod securityContext")?;
        ensure!(psc.run_as_non_root == Some(true));
        ensure!(psc.run_as_user.is_some_and(|u| u >= 100_000));
        ensure!(psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) == Some("RuntimeDefault"));
        let c = &spec.containers[0];
        let sc = c.security_context.clone().context("container securityContext")?;
        ensure!(sc.allow_privilege_escalation == Some(false));
        ensure!(sc.read_only_root_filesystem == Some(true));
        ensure!(sc.capabilities.and_then(|c| c.drop) == Some(vec!["ALL".to_string()]));
        // The runner's key and accounting, and the termination-message file out of reach.
        let env: Vec<String> = c.env.iter().flatten().map(|v| v.name.clone()).collect();
        ensure!(env == ["RCE_RESULT_KEY", "RCE_ACCOUNTING"], "{env:?}");
        ensure!(c.termination_message_path.as_deref() == Some("/root/.rce-termination-log"));
        let res = c.resources.clone().context("resources")?;
        let (lim, req) = (res.limits.unwrap_or_default(), res.requests.unwrap_or_default());
        ensure!(
            lim.get("memory") == req.get("memory") && lim.contains_key("memory"),
            "memory request = limit"
        );
        ensure!(lim.contains_key("cpu") && lim.contains_key("ephemeral-storage"));
        let vols = spec.volumes.clone().unwrap_or_default();
        ensure!(vols
            .iter()
            .any(|v| v.name == "work"
                && v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()) == Some("Memory")));
        // The service account token is not mounted.
        ensure!(c.volume_mounts.iter().flatten().all(|m| !m.mount_path.contains("serviceaccount")));
        // The deny-all NetworkPolicy exists.
        let np = h.ns.api::<NetworkPolicy>().get("rce-sandbox-deny-all").await?;
        let np_spec = np.spec.context("np spec")?;
        ensure!(np_spec.policy_types == Some(vec!["Ingress".into(), "Egress".into()]));
        let e = h.wait_done("slow").await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "{}", describe(&e));
        Ok(())
    })
}

#[tokio::test]
async fn a_deleted_sandbox_is_retried_once_then_fails_with_a_message() -> Result<()> {
    with_engine!(operator "op-lost", |_| {}, needs RUNTIMES, |h| {
        let victim = h
            .submit(
                "victim",
                serde_json::json!({"language": "bash", "source": "sleep 30", "limits": {"wallTimeMs": 30000}}),
            )
            .await?;
        for attempt in [1, 2] {
            let pod = sandbox_name(&victim, attempt);
            let pod = pod.as_str();
            h.wait_for("victim", WAIT, |e| {
                e.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(Phase::Processing) && s.attempts == Some(attempt))
            })
            .await?;
            // Let it start, then pull the rug.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            h.pods().delete(pod, &DeleteParams::default()).await?;
        }
        let e = h.wait_done("victim").await?;
        let st = e.status.clone().unwrap_or_default();
        ensure!(st.phase == Some(Phase::Failed) && st.attempts == Some(2), "{}", describe(&e));
        ensure!(
            st.message
                .as_deref()
                .is_some_and(|m| m.contains(&format!("{} was deleted", sandbox_name(&victim, 2)))),
            "{}",
            describe(&e)
        );
        Ok(())
    })
}

#[tokio::test]
async fn the_queue_keeps_max_running_and_submission_order() -> Result<()> {
    with_engine!(operator "op-queue", |c| c.max_running = 2, needs RUNTIMES, |h| {
        let names: Vec<String> = (0..6).map(|i| format!("q{i}")).collect();
        for n in &names {
            h.submit(n, serde_json::json!({"language": "bash", "source": "sleep 1; echo ok"})).await?;
        }
        let mut max_seen = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let all = h.executions().list(&ListParams::default()).await?.items;
            let running = all.iter().filter(|e| phase(e) == Some(Phase::Processing)).count();
            max_seen = max_seen.max(running);
            ensure!(running <= 2, "{running} running with max-running 2");
            if all.iter().all(|e| phase(e).is_some_and(Phase::is_terminal)) {
                break;
            }
            ensure!(Instant::now() < deadline, "the queue did not drain");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(max_seen == 2, "the queue should fill both slots (saw {max_seen})");
        let mut started: Vec<(String, String)> = vec![];
        for n in &names {
            let e = h.executions().get(n).await?;
            ensure!(verdict(&e) == Some(Verdict::Accepted), "{n}: {}", describe(&e));
            started.push((e.status.clone().unwrap_or_default().started_at.unwrap_or_default(), n.clone()));
        }
        // Submission order: two Executions admitted in the same wake-up may create their Pods
        // in either order, but none starts before an Execution two places ahead of it (with
        // two slots, that one was admitted in an earlier wave).
        let times: Vec<&String> = started.iter().map(|(t, _)| t).collect();
        ensure!(times.windows(3).all(|w| w[0] <= w[2]), "start order: {started:?}");
        Ok(())
    })
}

#[tokio::test]
async fn an_operator_killed_mid_run_and_restarted_completes_all_with_one_pod_each() -> Result<()> {
    with_engine!(operator "op-restart", |_| {}, needs RUNTIMES, |h| {
        let (seen, watch) = rce_tests::exec::watch_sandbox_pods(h.pods());
        let names: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
        for n in &names {
            h.submit(n, serde_json::json!({"language": "bash", "source": "sleep 2; echo ok"})).await?;
        }
        // Kill it while some run and others wait.
        h.wait_for("r00", WAIT, |e| phase(e) == Some(Phase::Processing)).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.kill().await;
        let all = h.executions().list(&ListParams::default()).await?.items;
        let by_phase: BTreeMap<String, usize> = all.iter().fold(BTreeMap::new(), |mut m, e| {
            *m.entry(format!("{:?}", phase(e))).or_default() += 1;
            m
        });
        eprintln!("at the kill: {by_phase:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.start();
        for n in &names {
            let e = h.wait_done(n).await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(verdict(&e) == Some(Verdict::Accepted), "{n}: {}", describe(&e));
            ensure!(
                st.attempts == Some(1) && st.pod_name.as_deref() == Some(&sandbox_name(&e, 1)),
                "{n}: {}",
                describe(&e)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        watch.abort();
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        for n in &names {
            let pods = seen.get(n).cloned().unwrap_or_default();
            ensure!(pods.len() == 1, "{n}: exactly one sandbox Pod ever, saw {pods:?}");
        }
        let events = h.ns.api::<Event>().list(&ListParams::default()).await?.items;
        for n in &names {
            let created: Vec<_> = events
                .iter()
                .filter(|e| {
                    e.involved_object.name.as_deref() == Some(n)
                        && e.reason.as_deref() == Some("SandboxCreated")
                })
                .collect();
            ensure!(created.len() == 1, "{n}: {} SandboxCreated events", created.len());
        }
        Ok(())
    })
}

#[tokio::test]
async fn redis_down_mid_run_the_execution_completes_and_the_key_appears_later() -> Result<()> {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut redis = RedisServer::start_on(port).await?;
    let url = redis.url();
    let u = url.clone();
    with_engine!(operator "op-redis", move |c| c.redis_url = u, needs RUNTIMES, |h| {
        h.submit("during", serde_json::json!({"language": "bash", "source": "sleep 2; echo survived"}))
            .await?;
        h.wait_for("during", WAIT, |e| phase(e) == Some(Phase::Processing)).await?;
        let doc = status_doc(&url, &h.ns.name, "during").await?;
        ensure!(doc.is_some(), "the mirror works while Redis is up");
        redis.stop();
        let e = h.wait_done("during").await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "{}", describe(&e));
        ensure!(status_doc(&url, &h.ns.name, "during").await.is_err(), "Redis is down");
        let mut back = RedisServer::start_on(port).await?;
        let doc = wait_terminal_doc(&url, &h.ns.name, "during", Duration::from_secs(20)).await?;
        ensure!(doc.status.verdict == Some(Verdict::Accepted), "{doc:?}");
        ensure!(doc.status.stdout.as_deref() == Some("survived\n"), "{doc:?}");
        back.stop();
        Ok(())
    })
}

#[tokio::test]
async fn finished_executions_are_deleted_after_their_ttl_with_their_redis_key() -> Result<()> {
    with_engine!(operator "op-ttl", |c| c.ttl_seconds = 3, needs RUNTIMES, |h| {
        h.submit("brief", serde_json::json!({"language": "bash", "source": "echo hi"})).await?;
        h.wait_done("brief").await?;
        wait_terminal_doc(&shared_url(), &h.ns.name, "brief", Duration::from_secs(10)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while h.executions().get_opt("brief").await?.is_some() {
            ensure!(Instant::now() < deadline, "not deleted after its TTL");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_doc(&shared_url(), &h.ns.name, "brief").await?.is_some() {
            ensure!(Instant::now() < deadline, "the Redis key outlived its Execution");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    })
}

#[tokio::test]
async fn a_missing_image_fails_with_a_clear_message() -> Result<()> {
    with_engine!(operator "op-image", |c| c.image_error_grace_seconds = 2, needs RUNTIMES, |h| {
        // A registry address on this machine where nothing listens: the pull is refused at
        // once, and no traffic leaves the machine.
        let name = format!("ghost-{}", h.ns.name);
        let rt: Runtime = serde_json::from_value(serde_json::json!({
            "apiVersion": "rce.dev/v1alpha1",
            "kind": "Runtime",
            "metadata": {"name": name, "labels": {"rce.dev/test": "true"}},
            "spec": {"version": "0", "image": "127.0.0.1:1/rce-missing:1", "sourceFile": "main.sh", "run": ["bash", "{file}"]},
        }))?;
        let runtimes = Api::<Runtime>::all(h.ns.client.clone());
        runtimes.create(&PostParams::default(), &rt).await?;
        let result = async {
            h.submit("ghost", serde_json::json!({"language": name, "source": "echo hi"})).await?;
            let e = h.wait_done("ghost").await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(st.phase == Some(Phase::Failed), "{}", describe(&e));
            ensure!(
                    st.message.as_deref().is_some_and(
                        |m| m.contains("could not start") && m.contains("127.0.0.1:1/rce-missing:1")
                    ),
                    "{}",
                    describe(&e)
                );
            Ok(())
        }
        .await;
        runtimes.delete(&name, &DeleteParams::default()).await?;
        result
    })
}
