//! The Piston result document of a finished Execution, as upstream's `api/src/job.js` builds
//! it: `{language, version, run, compile?}`, each stage `{stdout, stderr, output, code,
//! signal, message, status, cpu_time, wall_time, memory}`. On a compile error `run` is the
//! compile stage (upstream's backward compatibility: clients read `result.run.output`).
//!
//! A stage's `status` is isolate's: `RE` non-zero exit, `SG` killed by a signal (memory
//! overruns included: the kernel's SIGKILL), `TO` time limit, `OL`/`EL` stdout/stderr limit,
//! `XX` internal error, `null` when it ran fine. `signal` is `SIGKILL` for `TO`, `OL` and
//! `EL`; `code` is `null` after a signal. `message` is isolate's words. `memory` is in
//! upstream's bytes (isolate's KB × 1000), `cpu_time` and `wall_time` in ms. `output` is
//! stdout and stderr in the order they arrived.

use rce_api::{signal::Signal, ExecutionStatus, Phase, Runtime, StageFigures, Verdict};
use serde_json::{json, Value};

use super::names;
use crate::{
    backend::ExecView,
    outputs::{lossy, Outputs},
};

fn signal_number(name: &str) -> Option<i32> {
    Signal::parse(name).map(Signal::number)
}

/// Upstream's `memory`: isolate's `cg-mem` (KB) × 1000.
fn memory(kib: Option<u64>) -> Option<u64> {
    kib.map(|k| k * 1000)
}

/// The run stage.
fn run_stage(view: &ExecView, out: &Outputs) -> Value {
    let s = &view.status;
    let verdict = s.verdict;
    let stdout_over = s.stdout_truncated || !s.stderr_truncated;
    let status = match (view.phase(), verdict) {
        (Phase::Failed, _) => Some("XX"),
        (_, Some(Verdict::TimeLimitExceeded)) => Some("TO"),
        (_, Some(Verdict::OutputLimitExceeded)) if stdout_over => Some("OL"),
        (_, Some(Verdict::OutputLimitExceeded)) => Some("EL"),
        (_, Some(Verdict::MemoryLimitExceeded)) => Some("SG"),
        (_, Some(Verdict::RuntimeError)) if s.signal.is_some() => Some("SG"),
        (_, Some(Verdict::RuntimeError)) => Some("RE"),
        _ => None,
    };
    let signal = match status {
        Some("TO" | "OL" | "EL") => Some("SIGKILL".to_string()),
        Some("SG") => s.signal.clone().or_else(|| Some("SIGKILL".to_string())),
        _ => s.signal.clone(),
    };
    let code = if signal.is_some() { None } else { s.exit_code };
    let message = match status {
        Some("RE") => s.exit_code.map(|c| format!("Exited with error status {c}")),
        Some("SG") => signal.as_deref().and_then(signal_number).map(|n| format!("Caught fatal signal {n}")),
        Some("TO") if s.message.as_deref().is_some_and(|m| m.contains("wall")) => {
            Some("Time limit exceeded (wall clock)".into())
        }
        Some("TO") => Some("Time limit exceeded".into()),
        Some("OL") => Some("stdout length exceeded".into()),
        Some("EL") => Some("stderr length exceeded".into()),
        Some(_) => s.message.clone(),
        None => None,
    };
    json!({
        "stdout": lossy(out.stdout()),
        "stderr": lossy(out.stderr()),
        "output": lossy(&out.combined()),
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": s.time_ms,
        "wall_time": s.wall_time_ms,
        "memory": memory(s.memory_kib),
    })
}

/// The compile stage: its figures from `status.compile`, its one stream (the compiler's
/// stdout and stderr together, as the runner records it) as `stderr` and `output`.
fn compile_stage(s: &ExecutionStatus, phase: Phase, out: &Outputs) -> Value {
    let failed = s.verdict == Some(Verdict::CompilationError);
    let text = lossy(out.compile_output());
    let figures = s.compile.clone().unwrap_or(StageFigures {
        // No compile figures: what the verdict says (nothing, when the system failed).
        exit_code: match (phase, failed) {
            (Phase::Failed, _) => None,
            (_, true) => Some(1),
            (_, false) => Some(0),
        },
        ..Default::default()
    });
    let signal = figures.signal.clone();
    let code = if signal.is_some() { None } else { figures.exit_code };
    let status = match (failed, &signal) {
        (false, _) => None,
        (true, Some(sig)) if sig == "SIGKILL" && s.message.as_deref().is_some_and(|m| m.contains("time")) => {
            Some("TO")
        }
        (true, Some(_)) => Some("SG"),
        (true, None) => Some("RE"),
    };
    let message = match status {
        Some("RE") => code.map(|c| format!("Exited with error status {c}")),
        Some("SG") => signal.as_deref().and_then(signal_number).map(|n| format!("Caught fatal signal {n}")),
        Some(_) => Some("Time limit exceeded".into()),
        None => None,
    };
    let have = s.compile.is_some();
    json!({
        "stdout": "",
        "stderr": text,
        "output": text,
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": have.then_some(figures.time_ms),
        "wall_time": have.then_some(figures.wall_time_ms),
        "memory": have.then_some(figures.memory_kib * 1000),
    })
}

/// The Piston result document for a finished Execution, given its outputs' bytes
/// ([`crate::outputs::read`]).
pub fn result(runtime: &Runtime, view: &ExecView, out: &Outputs) -> Value {
    let s = &view.status;
    let name = names::entry(runtime);
    let mut doc = json!({ "language": name.language, "version": name.version });
    let compiled =
        runtime.spec.compile.is_some() || s.compile.is_some() || s.verdict == Some(Verdict::CompilationError);
    if compiled {
        let compile = compile_stage(s, view.phase(), out);
        doc["compile"] = compile.clone();
        if s.verdict == Some(Verdict::CompilationError) {
            doc["run"] = compile;
            return doc;
        }
    }
    doc["run"] = run_stage(view, out);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{outputs::from_status, testing::runtime};

    fn view(status: ExecutionStatus) -> ExecView {
        ExecView {
            namespace: "ns".into(),
            name: "x".into(),
            language: "c".into(),
            created_at: None,
            status,
            spec: None,
            annotations: Default::default(),
        }
    }

    fn done(verdict: Verdict) -> ExecutionStatus {
        ExecutionStatus {
            phase: Some(Phase::Completed),
            verdict: Some(verdict),
            time_ms: Some(8),
            wall_time_ms: Some(154),
            memory_kib: Some(1160),
            ..Default::default()
        }
    }

    #[test]
    fn a_compile_error_is_also_the_run_stage() {
        let mut rt = runtime("c", "12.2.0", &[], &[50]);
        rt.spec.compile = Some(vec!["gcc".into(), "{file}".into()]);
        let st = ExecutionStatus {
            compile_output: Some("main.c:1: error\n".into()),
            compile: Some(StageFigures {
                exit_code: Some(1),
                signal: None,
                time_ms: 40,
                wall_time_ms: 60,
                memory_kib: 9000,
            }),
            ..done(Verdict::CompilationError)
        };
        let v = view(st);
        let r = result(&rt, &v, &from_status(&v.status));
        assert_eq!(r["run"], r["compile"]);
        assert_eq!(
            r["compile"],
            json!({"stdout": "", "stderr": "main.c:1: error\n", "output": "main.c:1: error\n", "code": 1,
                   "signal": null, "message": "Exited with error status 1", "status": "RE",
                   "cpu_time": 40, "wall_time": 60, "memory": 9000000})
        );
    }

    #[test]
    fn stages_follow_isolates_statuses_and_the_arrival_order() {
        let rt = runtime("python", "3.11.2", &[], &[71]);
        let st = ExecutionStatus {
            stdout: Some("a\nb\n".into()),
            stderr: Some("E\n".into()),
            arrival: vec![2, -2, 2],
            exit_code: Some(3),
            ..done(Verdict::RuntimeError)
        };
        let v = view(st);
        let r = result(&rt, &v, &from_status(&v.status));
        assert!(r.get("compile").is_none());
        assert_eq!(
            r["run"],
            json!({"stdout": "a\nb\n", "stderr": "E\n", "output": "a\nE\nb\n", "code": 3, "signal": null,
                   "message": "Exited with error status 3", "status": "RE", "cpu_time": 8, "wall_time": 154,
                   "memory": 1160000})
        );
        let cases = [
            (
                ExecutionStatus { signal: Some("SIGSEGV".into()), ..done(Verdict::RuntimeError) },
                "SG",
                "SIGSEGV",
                "Caught fatal signal 11",
            ),
            (done(Verdict::MemoryLimitExceeded), "SG", "SIGKILL", "Caught fatal signal 9"),
            (done(Verdict::TimeLimitExceeded), "TO", "SIGKILL", "Time limit exceeded"),
            (
                ExecutionStatus { stdout_truncated: true, ..done(Verdict::OutputLimitExceeded) },
                "OL",
                "SIGKILL",
                "stdout length exceeded",
            ),
            (
                ExecutionStatus { stderr_truncated: true, ..done(Verdict::OutputLimitExceeded) },
                "EL",
                "SIGKILL",
                "stderr length exceeded",
            ),
        ];
        for (st, status, signal, message) in cases {
            let v = view(st);
            let r = result(&rt, &v, &from_status(&v.status));
            assert_eq!(
                (&r["run"]["status"], &r["run"]["signal"], &r["run"]["message"], &r["run"]["code"]),
                (&json!(status), &json!(signal), &json!(message), &Value::Null),
                "{r}"
            );
        }
        let v = view(done(Verdict::Accepted));
        let r = result(&rt, &v, &from_status(&v.status));
        assert_eq!((&r["run"]["status"], &r["run"]["message"]), (&Value::Null, &Value::Null));
    }
}
