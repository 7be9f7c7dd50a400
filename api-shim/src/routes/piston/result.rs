//! The Piston result document of a finished Execution.

use rce_api::{Phase, Runtime, Verdict};
use serde_json::{json, Value};

use crate::{backend::ExecView, catalog};

/// The Piston result document for a finished Execution.
pub fn result(runtime: &Runtime, view: &ExecView) -> Value {
    let s = &view.status;
    let verdict = s.verdict;
    let stdout = s.stdout.clone().unwrap_or_default();
    let stderr = s.stderr.clone().unwrap_or_default();
    let status = match (view.phase(), verdict) {
        (Phase::Failed, _) => Some("XX"),
        (_, Some(Verdict::TimeLimitExceeded)) => Some("TO"),
        (_, Some(Verdict::OutputLimitExceeded)) => Some("OL"),
        (_, Some(Verdict::MemoryLimitExceeded)) => Some("SG"),
        (_, Some(Verdict::RuntimeError)) if s.signal.is_some() => Some("SG"),
        (_, Some(Verdict::RuntimeError)) => Some("RE"),
        _ => None,
    };
    let signal = s.signal.clone().or_else(|| {
        matches!(verdict, Some(Verdict::MemoryLimitExceeded | Verdict::TimeLimitExceeded))
            .then(|| "SIGKILL".to_string())
    });
    let code = if signal.is_some() { None } else { s.exit_code };
    let message = s.message.clone().or_else(|| match status {
        Some("RE") => s.exit_code.map(|c| format!("Exited with code {c}")),
        _ => None,
    });
    let mut doc = json!({
        "language": catalog::name(runtime),
        "version": runtime.spec.version,
    });
    let compiled = runtime.spec.compile.is_some() || verdict == Some(Verdict::CompilationError);
    if compiled {
        let out = s.compile_output.clone().unwrap_or_default();
        let failed = verdict == Some(Verdict::CompilationError);
        doc["compile"] = json!({
            "stdout": "",
            "stderr": out,
            "output": out,
            "code": if failed { 1 } else { 0 },
            "signal": Value::Null,
            "message": if failed { s.message.clone() } else { None },
            "status": if failed { Some("RE") } else { None },
        });
        if failed {
            return doc;
        }
    }
    doc["run"] = json!({
        "stdout": stdout,
        "stderr": stderr,
        "output": format!("{stdout}{stderr}"),
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": s.time_ms,
        "wall_time": s.wall_time_ms,
        "memory": s.memory_kib.map(|k| k * 1024),
    });
    doc
}
