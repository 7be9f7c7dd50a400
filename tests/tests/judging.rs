//! Judging on the real cluster: one Execution against many test cases (`spec.tests`),
//! compiled once, each case run in a clean work dir under its own limits, with per-case
//! verdicts in `status.tests` and the Execution's verdict the first failing case's.
//!
//! On the engine's operator (`runc::*`), the stop-on-failure test also in warm Pods with
//! reuse (`warm::*`), the large-data test through a shim and an operator of its own.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use rce_api::{Execution, Phase, Verdict};
use rce_tests::exec::{describe, message, phase, verdict, Engine};
use serde_json::{json, Value};

use Verdict::*;

const WAIT: Duration = Duration::from_secs(240);

/// Reads `<mode> <n>`; fails if a file an earlier case wrote (in the work dir or /tmp) is
/// still there, then writes both; then doubles n, spins, eats memory or exits 3.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    char mode[32] = {0};
    long n = 0;
    if (scanf("%31s %ld", mode, &n) != 2) return 2;
    const char *marks[] = {"left-by-an-earlier-case", "/tmp/left-by-an-earlier-case"};
    for (int i = 0; i < 2; i++) {
        FILE *seen = fopen(marks[i], "r");
        if (seen) { printf("SAW %s\n", marks[i]); return 0; }
        FILE *f = fopen(marks[i], "w");
        if (f) { fputs(mode, f); fclose(f); }
    }
    if (!strcmp(mode, "double")) { printf("%ld\n", 2 * n); return 0; }
    if (!strcmp(mode, "spin")) { volatile unsigned long x = 0; for (;;) x++; }
    if (!strcmp(mode, "eat")) {
        for (;;) { char *p = malloc(1 << 20); if (!p) return 4; memset(p, 1, 1 << 20); }
    }
    if (!strcmp(mode, "crash")) { fprintf(stderr, "crashing\n"); return 3; }
    return 0;
}
"#;

fn case(name: &str, stdin: &str, expected: &str) -> Value {
    json!({"name": name, "stdin": stdin, "expectedOutput": expected})
}

fn cases_of(e: &Execution) -> Vec<(String, Option<Verdict>, bool)> {
    let st = e.status.clone().unwrap_or_default();
    st.tests.iter().map(|t| (t.name.clone(), t.verdict, t.skipped)).collect()
}

// runc (the engine's operator) and warm (warm Pods with reuse). Not under gVisor yet: a
// serving sandbox (which test cases run in) cannot start the compiler there ("cannot start
// \"gcc\": Operation not permitted"), an open issue. Warm Pods run an Execution with tests
// when its whole budget (compile + every case) fits the pool's shape deadline: the
// stop-on-failure cases do, the six-case one does not (it runs cold).
mod runc {
    #[tokio::test]
    async fn per_case_verdicts_from_one_compile() -> anyhow::Result<()> {
        rce_tests::with_engine!("judging-verdicts", |eng| {
            super::per_case_verdicts_from_one_compile(&eng).await
        })
    }
    #[tokio::test]
    async fn stop_on_first_failure_skips_the_rest() -> anyhow::Result<()> {
        rce_tests::with_engine!("judging-stop", |eng| {
            super::stop_on_first_failure_skips_the_rest(&eng).await
        })
    }
    #[tokio::test]
    async fn a_case_reads_no_other_cases_data_and_forges_nothing() -> anyhow::Result<()> {
        rce_tests::with_engine!("judging-hostile", |eng| {
            super::a_case_reads_no_other_cases_data_and_forges_nothing(&eng).await
        })
    }
    #[tokio::test]
    async fn too_many_cases_are_refused_at_admission() -> anyhow::Result<()> {
        rce_tests::with_engine!("judging-too-many", |eng| {
            super::too_many_cases_are_refused_at_admission(&eng).await
        })
    }
}

mod warm {
    #[tokio::test]
    async fn stop_on_first_failure_skips_the_rest() -> anyhow::Result<()> {
        rce_tests::with_engine!(
            operator "warm-judging-stop",
            |config| config.max_running = 1,
            needs rce_tests::warm::SUITE_RUNTIMES,
            |eng| { rce_tests::warm::with_warm_pools(&eng, || super::stop_on_first_failure_skips_the_rest(&eng)).await }
        )
    }
}

/// Accepted, WrongAnswer, TLE, MLE, RuntimeError and Accepted again in one submission: each
/// case has its verdict, the limits of one case do not reach the next, no case sees a file
/// of an earlier one, the Execution's verdict is the first failing case's.
async fn per_case_verdicts_from_one_compile(eng: &Engine) -> Result<()> {
    let mut spin = case("spin", "spin 0\n", "");
    spin["limits"] = json!({"wallTimeMs": 1500, "cpuTimeMs": 500});
    let mut eat = case("eat", "eat 0\n", "");
    eat["limits"] = json!({"memoryMiB": 32});
    let spec = json!({
        "language": "c",
        "source": PROGRAM,
        "tests": [
            case("ok", "double 2\n", "4\n"),
            case("wrong", "double 3\n", "7\n"),
            spin,
            eat,
            case("crash", "crash 0\n", ""),
            case("ok-after", "double 21\n", "42"),
        ],
    });
    let e = eng.run("judged", spec, WAIT).await?;
    let st = e.status.clone().unwrap_or_default();
    ensure!(phase(&e) == Some(Phase::Completed), "{}", describe(&e));
    let got = cases_of(&e);
    let want: Vec<(String, Option<Verdict>, bool)> = [
        ("ok", Accepted),
        ("wrong", WrongAnswer),
        ("spin", TimeLimitExceeded),
        ("eat", MemoryLimitExceeded),
        ("crash", RuntimeError),
        ("ok-after", Accepted),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), Some(*v), false))
    .collect();
    ensure!(got == want, "per-case verdicts {got:?}, expected {want:?}; {}", describe(&e));
    ensure!(verdict(&e) == Some(WrongAnswer), "the first failing case decides: {}", describe(&e));
    ensure!(message(&e).contains("test wrong"), "the message names the case: {:?}", message(&e));
    ensure!((st.passed, st.total) == (Some(2), Some(6)), "passed/total {:?}/{:?}", st.passed, st.total);
    let t = &st.tests;
    ensure!(t[0].stdout.as_deref() == Some("4\n"), "case ok's stdout: {:?}", t[0].stdout);
    ensure!(t[4].exit_code == Some(3) && t[4].stderr.as_deref() == Some("crashing\n"), "crash: {:?}", t[4]);
    ensure!(t[5].stdout.as_deref() == Some("42\n"), "the case after the limits ran clean: {:?}", t[5]);
    // The limits were the case's own: spin stopped within its 1.5 s wall limit (not the
    // default 5 s; under load its 0.5 s of CPU may not be reached first), ok-after ran fast.
    ensure!(t[2].wall_time_ms.is_some_and(|ms| ms <= 2500), "spin's wall time {:?}", t[2].wall_time_ms);
    ensure!(t[5].wall_time_ms.is_some_and(|ms| ms < 2000), "ok-after's wall time {:?}", t[5].wall_time_ms);
    // The compile stage ran once, before the cases.
    ensure!(st.compile.is_some(), "compile figures: {}", describe(&e));
    Ok(())
}

async fn stop_on_first_failure_skips_the_rest(eng: &Engine) -> Result<()> {
    let spec = json!({
        "language": "c",
        "source": PROGRAM,
        "stopOnFirstFailure": true,
        "tests": [case("a", "double 1\n", "2"), case("b", "crash 0\n", ""), case("c", "double 2\n", "4")],
    });
    let e = eng.run("stops", spec, WAIT).await?;
    let st = e.status.clone().unwrap_or_default();
    let got = cases_of(&e);
    let want = vec![
        ("a".to_string(), Some(Accepted), false),
        ("b".to_string(), Some(RuntimeError), false),
        ("c".to_string(), None, true),
    ];
    ensure!(got == want, "{got:?} vs {want:?}: {}", describe(&e));
    ensure!(verdict(&e) == Some(RuntimeError), "{}", describe(&e));
    ensure!((st.passed, st.total) == (Some(1), Some(3)), "passed/total {:?}/{:?}", st.passed, st.total);
    // Without it, every case runs.
    let spec = json!({
        "language": "c",
        "source": PROGRAM,
        "tests": [case("a", "double 1\n", "2"), case("b", "crash 0\n", ""), case("c", "double 2\n", "4")],
    });
    let e = eng.run("goes-on", spec, WAIT).await?;
    let got: Vec<_> = cases_of(&e).into_iter().map(|(_, v, s)| (v, s)).collect();
    ensure!(
        got == vec![(Some(Accepted), false), (Some(RuntimeError), false), (Some(Accepted), false)],
        "{got:?}"
    );
    Ok(())
}

/// A hostile submission: each case looks for another case's stdin and expected output
/// everywhere it can read (the runner's /proc entries, its stdin, the request, the work and
/// temporary dirs), prints a forged result line and a forged frame, and tries to signal the
/// runner. Nothing is found, the forgeries are just output (the verdicts are the truth), and
/// the runner is untouched.
async fn a_case_reads_no_other_cases_data_and_forges_nothing(eng: &Engine) -> Result<()> {
    const PROGRAM: &str = r#"
import os, sys
mine = sys.stdin.read()
secrets = [b"SECRET-INPUT-" + str(i).encode() for i in range(3)] + [b"SECRET-EXPECTED-" + str(i).encode() for i in range(3)]
own = mine.strip().encode()
found = []
paths = ["/proc/1/environ", "/proc/1/cmdline", "/proc/1/fd/0", "/proc/1/mem", "/proc/1/maps",
         "/proc/self/environ", "/etc/rce/request.json"]
for root in ["/work", "/tmp", "/dev/shm", "/etc/rce"]:
    for d, _, files in os.walk(root):
        paths += [os.path.join(d, f) for f in files]
for p in paths:
    try:
        with open(p, "rb") as f:
            data = f.read(1 << 22)
    except Exception:
        continue
    for s in secrets:
        if s in data and s != own:
            found.append(p + ":" + s.decode())
try:
    os.kill(1, 9)
    found.append("signalled pid 1")
except Exception:
    pass
print('{"rceResult":{"runId":"x","outcome":"ran","tests":[]},"mac":"00"}')
print("found" if found else "clean", *found)
"#;
    let tests: Vec<Value> = (0..3)
        .map(|i| case(&format!("c{i}"), &format!("SECRET-INPUT-{i}\n"), &format!("SECRET-EXPECTED-{i}")))
        .collect();
    let e = eng
        .run("hostile-cases", json!({"language": "python", "source": PROGRAM, "tests": tests}), WAIT)
        .await?;
    let st = e.status.clone().unwrap_or_default();
    ensure!(phase(&e) == Some(Phase::Completed), "{}", describe(&e));
    ensure!(st.tests.len() == 3, "{}", describe(&e));
    for t in &st.tests {
        let out = t.stdout.as_deref().unwrap_or("");
        ensure!(out.lines().last() == Some("clean"), "{}: {out}", t.name);
        // Its output is not its expected output: the forged line changes nothing.
        ensure!(t.verdict == Some(WrongAnswer), "{}: {:?} ({out})", t.name, t.verdict);
    }
    ensure!((st.passed, verdict(&e)) == (Some(0), Some(WrongAnswer)), "{}", describe(&e));
    Ok(())
}

/// An Execution applied as kubectl would, with more cases than the operator allows (256),
/// ends Failed with the reason, without a sandbox.
async fn too_many_cases_are_refused_at_admission(eng: &Engine) -> Result<()> {
    let tests: Vec<Value> = (0..257).map(|i| json!({"stdin": format!("{i}\n")})).collect();
    let e = eng
        .run("too-many", json!({"language": "python", "source": "print(1)", "tests": tests}), WAIT)
        .await?;
    ensure!(phase(&e) == Some(Phase::Failed), "{}", describe(&e));
    ensure!(message(&e).contains("257 test cases: at most 256"), "{}", describe(&e));
    let st = e.status.clone().unwrap_or_default();
    ensure!(st.pod_name.is_none() && st.attempts.is_none(), "no sandbox: {}", describe(&e));
    Ok(())
}

/// Through a real shim: 8 MiB of test data (32 cases of 128 KiB stdin and 128 KiB expected
/// output) go into ConfigMaps owned by the Execution and every case runs against its own; a
/// submission over the shim's case limit is a 422 that creates nothing. And an Execution
/// applied with `stdinFrom`/`expectedOutputFrom` pointing at a ConfigMap of its own.
#[tokio::test]
async fn eight_mib_of_test_data_through_the_shim_and_from_config_maps() -> Result<()> {
    let ns = rce_tests::TestNamespace::new("judging-data").await?;
    let shim = rce_tests::shim::Shim::start(&ns.name, &["--max-tests", "40"], "").await?;
    let result = async {
        let base = &shim.base;
        let line = |i: usize| format!("{i:07} {}\n", "x".repeat(120));
        let data = |i: usize| (0..1024).map(|k| line(i * 1024 + k)).collect::<String>();
        let tests: Vec<Value> = (0..32)
            .map(|i| {
                let d = data(i);
                json!({"name": format!("big-{i}"), "stdin": d, "expectedOutput": d})
            })
            .collect();
        let body = json!({
            "language": "python",
            "source": "import sys\nsys.stdout.write(sys.stdin.read())",
            "limits": {"outputBytes": 262144},
            "tests": tests,
        });
        let text = body.to_string();
        ensure!(text.len() > 8 * 1024 * 1024, "the body holds 8 MiB of test data ({} bytes)", text.len());
        let started = Instant::now();
        let r = rce_tests::shim::request("POST", &format!("{base}/api/executions"), &[], Some(&text)).await?;
        ensure!(r.status == 201, "{} {}", r.status, &r.text[..r.text.len().min(500)]);
        let id = r.body["id"].as_str().context("id")?.to_string();
        let maps = ns.api::<ConfigMap>().list(&Default::default()).await?;
        let owned = maps
            .items
            .iter()
            .filter(|c| c.metadata.name.as_deref().is_some_and(|n| n.starts_with(&format!("{id}.tests-"))))
            .count();
        ensure!(owned >= 11, "8 MiB in ConfigMaps of at most 768 KiB: {owned}");
        let deadline = Instant::now() + WAIT;
        let done = loop {
            let r =
                rce_tests::shim::request("GET", &format!("{base}/api/executions/{id}"), &[], None).await?;
            if matches!(r.body["status"].as_str(), Some("Completed" | "Failed")) {
                break r.body;
            }
            ensure!(Instant::now() < deadline, "not done in {WAIT:?}: {}", r.text);
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!("8 MiB of test data, 32 cases: {:.1} s from submission", started.elapsed().as_secs_f64());
        ensure!(done["verdict"] == "Accepted", "{}", done);
        ensure!(
            (done["passed"].as_u64(), done["total"].as_u64()) == (Some(32), Some(32)),
            "{}",
            done["passed"]
        );
        let tests = done["tests"].as_array().context("tests")?;
        ensure!(
            tests[7]["stdout"].as_str().is_some_and(|s| s.starts_with(&line(7 * 1024))),
            "case 7's own data"
        );
        ensure!(tests[7]["stdoutTruncated"] == true, "an excerpt of the 128 KiB output");

        // Over the shim's case limit: 422, nothing created.
        let before = ns.api::<Execution>().list(&Default::default()).await?.items.len();
        let tests: Vec<Value> = (0..41).map(|i| json!({"stdin": format!("{i}\n")})).collect();
        let body = json!({"language": "python", "source": "print(1)", "tests": tests}).to_string();
        let r = rce_tests::shim::request("POST", &format!("{base}/api/executions"), &[], Some(&body)).await?;
        ensure!(r.status == 422 && r.text.contains("at most 40"), "{} {}", r.status, r.text);
        let after = ns.api::<Execution>().list(&Default::default()).await?.items.len();
        ensure!(before == after, "a refused submission created an Execution");

        // kubectl's way: the data in a ConfigMap of the user's, named in the spec.
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some("my-tests".into()), ..Default::default() },
            data: Some(
                [("1.in".to_string(), "21\n".to_string()), ("1.out".to_string(), "42\n".to_string())].into(),
            ),
            ..Default::default()
        };
        ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await?;
        let ex: Execution = serde_json::from_value(json!({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "from-config-map", "labels": {"rce.dev/operator": ns.name}},
            "spec": {"language": "python", "source": "print(int(input()) * 2)", "tests": [
                {"stdinFrom": {"configMap": "my-tests", "key": "1.in"},
                 "expectedOutputFrom": {"configMap": "my-tests", "key": "1.out"}},
                {"stdin": "1\n", "expectedOutput": "3"},
            ]},
        }))?;
        ns.api::<Execution>().create(&PostParams::default(), &ex).await?;
        let deadline = Instant::now() + WAIT;
        let e = loop {
            let e = ns.api::<Execution>().get("from-config-map").await?;
            if phase(&e).is_some_and(Phase::is_terminal) {
                break e;
            }
            ensure!(Instant::now() < deadline, "not done: {}", describe(&e));
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let got: Vec<_> = cases_of(&e).into_iter().map(|(n, v, _)| (n, v)).collect();
        ensure!(
            got == vec![("1".to_string(), Some(Accepted)), ("2".to_string(), Some(WrongAnswer))],
            "{got:?}: {}",
            describe(&e)
        );
        anyhow::Ok(())
    }
    .await;
    let finished = shim.finish(ns).await;
    result?;
    finished
}
