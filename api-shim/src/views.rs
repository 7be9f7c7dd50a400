//! Response bodies shared by the seed's and rce's own routes.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{CallbackStatus, FileEncoding, Phase, StageFigures, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{backend::ExecView, outputs::Outputs};

fn encoding_name(e: FileEncoding) -> String {
    match e {
        FileEncoding::Utf8 => "utf8".into(),
        FileEncoding::Base64 => "base64".into(),
    }
}

/// Bytes as text when they are UTF-8, else as base64.
fn text_or_base64(bytes: Option<&[u8]>) -> (Option<String>, String) {
    match bytes {
        None => (None, "utf8".into()),
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => (Some(t.to_string()), "utf8".into()),
            Err(_) => (Some(B64.encode(b)), "base64".into()),
        },
    }
}

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
    /// The compile stage's figures (`exitCode`, `signal`, `timeMs`, `wallTimeMs`,
    /// `memoryKiB`), for a compiled language.
    #[schema(value_type = Option<Object>)]
    pub compile: Option<StageFigures>,
    /// How many runs were made; the figures are their average.
    pub runs: Option<u32>,
    /// How the result callback went (`attempts`, `delivered`, `httpStatus`, `error`).
    #[schema(value_type = Option<Object>)]
    pub callback: Option<CallbackStatus>,
    /// When it was submitted, as JavaScript's `Date.prototype.toISOString()` writes it (the
    /// seed's own format: UTC, milliseconds, `Z`), e.g. `2026-12-01T22:04:49.123Z`.
    pub submitted_at: Option<String>,
    /// Same as `jobId`.
    pub id: String,
    pub language: String,
    /// `Accepted`, `WrongAnswer`, `TimeLimitExceeded`, `MemoryLimitExceeded`,
    /// `OutputLimitExceeded`, `RuntimeError`, `CompilationError`, `InternalError`, `Cancelled`.
    #[schema(value_type = Option<String>)]
    pub verdict: Option<Verdict>,
    /// Text, or base64 when `stdoutEncoding` is `base64` (the bytes are not UTF-8).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub compile_output: Option<String>,
    /// `utf8` or `base64`: how `stdout` holds the bytes.
    pub stdout_encoding: String,
    pub stderr_encoding: String,
    pub compile_output_encoding: String,
    /// The program wrote more than its output limit.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub compile_output_truncated: bool,
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
    /// When its sandbox started, in the format of `submittedAt`.
    pub started_at: Option<String>,
    /// When the result was recorded, in the format of `submittedAt`.
    pub finished_at: Option<String>,
    /// Each test case's result (`tests` given), in order: `name`, `verdict` (absent when
    /// `skipped`), `exitCode`, `signal`, `time`, `wallTime` (ms), `memory` (KiB), `stdout` and
    /// `stderr` (their first 2 KiB; `stdoutTruncated`/`stderrTruncated`: there was more),
    /// `message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tests: Vec<TestCaseView>,
    /// With tests: how many cases were Accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<u32>,
    /// With tests: how many cases there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
}

/// One test case's result, in the units of [`ExecutionView`] (`time` and `wallTime` in ms,
/// `memory` in KiB).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TestCaseView {
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub verdict: Option<Verdict>,
    pub skipped: bool,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub time: Option<u64>,
    pub wall_time: Option<u64>,
    pub memory: Option<u64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub message: Option<String>,
}

impl From<&rce_api::TestCaseStatus> for TestCaseView {
    fn from(t: &rce_api::TestCaseStatus) -> Self {
        TestCaseView {
            name: t.name.clone(),
            verdict: t.verdict,
            skipped: t.skipped,
            exit_code: t.exit_code,
            signal: t.signal.clone(),
            time: t.time_ms,
            wall_time: t.wall_time_ms,
            memory: t.memory_kib,
            stdout: t.stdout.clone(),
            stderr: t.stderr.clone(),
            stdout_truncated: t.stdout_truncated,
            stderr_truncated: t.stderr_truncated,
            message: t.message.clone(),
        }
    }
}

impl ExecutionView {
    /// The outputs' exact bytes ([`crate::outputs::read`]) in place of the status's
    /// excerpts: text where they are UTF-8, else base64 (said by the `…Encoding` fields);
    /// `output` from them (invalid UTF-8 replaced).
    pub fn with_outputs(mut self, out: &Outputs) -> Self {
        (self.stdout, self.stdout_encoding) = text_or_base64(out.stdout.as_deref());
        (self.stderr, self.stderr_encoding) = text_or_base64(out.stderr.as_deref());
        (self.compile_output, self.compile_output_encoding) = text_or_base64(out.compile_output.as_deref());
        if self.output.is_some() {
            let lossy = crate::outputs::lossy;
            self.output = Some(
                if self.verdict == Some(Verdict::CompilationError) && !out.compile_output().is_empty() {
                    lossy(out.compile_output())
                } else if out.stdout.is_some() || out.stderr.is_some() {
                    format!("{}{}", lossy(out.stdout()), lossy(out.stderr()))
                } else {
                    self.output.unwrap_or_default()
                },
            );
        }
        self
    }
}

/// An RFC 3339 time as JavaScript's `toISOString()` writes it: UTC, milliseconds, `Z`
/// (`2026-12-01T22:04:49.123Z`). Anything that does not parse is left as it is.
pub fn iso_millis(time: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(time) {
        Ok(t) => t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Err(_) => time.to_string(),
    }
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
            submitted_at: v.submitted_at().as_deref().map(iso_millis),
            id: v.name.clone(),
            language: v.language.clone(),
            verdict: s.verdict,
            stdout: s.stdout.clone(),
            stderr: s.stderr.clone(),
            compile_output: s.compile_output.clone(),
            stdout_encoding: encoding_name(s.stdout_encoding),
            stderr_encoding: encoding_name(s.stderr_encoding),
            compile_output_encoding: encoding_name(s.compile_output_encoding),
            stdout_truncated: s.stdout_truncated,
            stderr_truncated: s.stderr_truncated,
            compile_output_truncated: s.compile_output_truncated,
            compile: s.compile.clone(),
            runs: s.runs,
            callback: s.callback.clone(),
            exit_code: s.exit_code,
            signal: s.signal.clone(),
            time: s.time_ms,
            wall_time: s.wall_time_ms,
            memory: s.memory_kib,
            message: s.message.clone(),
            started_at: s.started_at.as_deref().map(iso_millis),
            finished_at: s.finished_at.as_deref().map(iso_millis),
            tests: s.tests.iter().map(TestCaseView::from).collect(),
            passed: s.passed,
            total: s.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::ExecutionStatus;

    #[test]
    fn times_are_written_as_javascripts_to_iso_string() {
        assert_eq!(iso_millis("2026-12-01T22:04:49Z"), "2026-12-01T22:04:49.000Z");
        assert_eq!(iso_millis("2026-12-01T22:04:49.123456789Z"), "2026-12-01T22:04:49.123Z");
        assert_eq!(iso_millis("2026-12-01T23:04:49.5+01:00"), "2026-12-01T22:04:49.500Z");
        assert_eq!(iso_millis("yesterday"), "yesterday");
    }

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
