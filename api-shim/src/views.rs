//! Response bodies shared by the seed's and rce's own routes.

use rce_api::{Phase, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backend::ExecView;

/// An Execution's status. The seed's fields (`jobId`, `status`, `output`, `submittedAt`) come
/// first and keep their meaning; the richer ones stand beside them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    /// The job id (the Execution's name).
    pub job_id: String,
    /// `Pending`, `Processing`, `Completed` or `Failed`.
    #[schema(value_type = String)]
    pub status: Phase,
    /// What the program printed (stdout, then stderr); for a compile error, the compiler's
    /// output; for a failure, the reason. `null` until finished.
    pub output: Option<String>,
    /// When it was submitted (RFC 3339).
    pub submitted_at: Option<String>,
    /// Same as `jobId`.
    pub id: String,
    pub language: String,
    /// `Accepted`, `WrongAnswer`, `TimeLimitExceeded`, `MemoryLimitExceeded`,
    /// `OutputLimitExceeded`, `RuntimeError`, `CompilationError`, `InternalError`, `Cancelled`.
    #[schema(value_type = Option<String>)]
    pub verdict: Option<Verdict>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub compile_output: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub exit_code: Option<i32>,
    /// Name of the signal that killed the program, e.g. `SIGSEGV`.
    pub signal: Option<String>,
    /// CPU time in milliseconds.
    pub time: Option<u64>,
    /// Wall-clock time in milliseconds.
    pub wall_time: Option<u64>,
    /// Peak memory in KiB.
    pub memory: Option<u64>,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<&ExecView> for ExecutionView {
    fn from(v: &ExecView) -> Self {
        let s = &v.status;
        let output = if v.is_terminal() {
            if s.compile_output.as_deref().is_some_and(|c| !c.is_empty())
                && s.verdict == Some(Verdict::CompilationError)
            {
                s.compile_output.clone()
            } else if s.stdout.is_some() || s.stderr.is_some() {
                Some(format!("{}{}", s.stdout.as_deref().unwrap_or(""), s.stderr.as_deref().unwrap_or("")))
            } else {
                s.message.clone().or_else(|| Some(String::new()))
            }
        } else {
            None
        };
        ExecutionView {
            job_id: v.name.clone(),
            status: v.phase(),
            output,
            submitted_at: v.submitted_at(),
            id: v.name.clone(),
            language: v.language.clone(),
            verdict: s.verdict,
            stdout: s.stdout.clone(),
            stderr: s.stderr.clone(),
            compile_output: s.compile_output.clone(),
            stdout_truncated: s.stdout_truncated,
            stderr_truncated: s.stderr_truncated,
            exit_code: s.exit_code,
            signal: s.signal.clone(),
            time: s.time_ms,
            wall_time: s.wall_time_ms,
            memory: s.memory_kib,
            message: s.message.clone(),
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::ExecutionStatus;

    #[test]
    fn phase_and_verdict_serialize_as_their_names() {
        let view = ExecView {
            namespace: "default".into(),
            name: "j".into(),
            language: "python".into(),
            created_at: None,
            status: ExecutionStatus {
                phase: Some(Phase::Completed),
                verdict: Some(Verdict::WrongAnswer),
                ..Default::default()
            },
            spec: None,
            annotations: Default::default(),
        };
        let json = serde_json::to_value(ExecutionView::from(&view)).unwrap();
        assert_eq!(json["status"], "Completed");
        assert_eq!(json["verdict"], "WrongAnswer");
        for p in [Phase::Pending, Phase::Processing, Phase::Completed, Phase::Failed] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
