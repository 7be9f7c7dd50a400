use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One run of a program: submit source code in a language, get its output and a verdict.
/// The operator runs each Execution once, in its own sandbox Pod, and writes the result to
/// `status`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "rce.dev",
    version = "v1alpha1",
    kind = "Execution",
    plural = "executions",
    shortname = "exec",
    namespaced,
    status = "ExecutionStatus",
    printcolumn = r#"{"name":"Language","type":"string","jsonPath":".spec.language"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Time(ms)","type":"integer","jsonPath":".status.timeMs","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSpec {
    /// Name (or alias) of the Runtime to run in, e.g. "python", "javascript", "bash".
    /// `kubectl get runtimes` lists them.
    pub language: String,
    /// The program's source text. Give either `source` or `files`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Several source files; the first is the entry point. Give either `source` or `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<SourceFile>>,
    /// Text fed to the program's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Command-line arguments passed to the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Resource limits; each unset one takes the Runtime's default, and none may exceed the
    /// Runtime's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// If set, stdout is compared with it (trailing white space on each line and trailing
    /// empty lines ignored): equal gives verdict Accepted, different gives WrongAnswer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output: Option<String>,
}

/// A source file of a multi-file submission.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SourceFile {
    /// Relative path in the work directory, e.g. "main.py" or "lib/util.py".
    pub name: String,
    /// The file's content, as text or base64 (see `encoding`). May be empty.
    #[serde(default, deserialize_with = "crate::quirks::null_as_empty")]
    #[schemars(transform = crate::quirks::nullable_string)]
    pub content: String,
    /// How `content` is encoded: "utf8" (default) or "base64".
    #[serde(default)]
    pub encoding: FileEncoding,
}

/// Encoding of a file's content.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}

/// Resource limits of one run. Every field is optional.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Wall-clock time limit in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    /// CPU time limit (user + system) in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<u64>,
    /// Memory limit in MiB (peak resident memory of the program).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Maximum bytes captured from each of stdout and stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Largest file the program may write, in KiB.
    #[serde(default, rename = "fileSizeKiB", skip_serializing_if = "Option::is_none")]
    pub file_size_kib: Option<u64>,
}

/// Limits with every value decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedLimits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_mib: u64,
    pub processes: u64,
    pub output_bytes: u64,
    pub file_size_kib: u64,
}

impl ResolvedLimits {
    /// Built-in defaults: the seed executor's 128 MiB and one CPU, a 5 s wall clock.
    pub const DEFAULT: ResolvedLimits = ResolvedLimits {
        wall_time_ms: 5_000,
        cpu_time_ms: 3_000,
        memory_mib: 128,
        processes: 64,
        output_bytes: 64 * 1024,
        file_size_kib: 4 * 1024,
    };
    /// Built-in ceiling when neither the Runtime nor the operator sets a maximum.
    pub const CEILING: ResolvedLimits = ResolvedLimits {
        wall_time_ms: 30_000,
        cpu_time_ms: 20_000,
        memory_mib: 1024,
        processes: 256,
        output_bytes: 1024 * 1024,
        file_size_kib: 64 * 1024,
    };
}

/// A limit that is above what is allowed, or zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub field: &'static str,
    pub requested: u64,
    pub maximum: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requested == 0 {
            write!(f, "limits.{} must be greater than 0", self.field)
        } else {
            write!(f, "limits.{} = {} exceeds the maximum of {}", self.field, self.requested, self.maximum)
        }
    }
}

impl std::error::Error for LimitError {}

impl Limits {
    /// Resolve requested limits: each unset field takes `defaults`, then the built-in
    /// default; the maximum is the smaller of `max` (the Runtime's) and `cap` (the
    /// operator's). A requested value above the maximum or equal to zero is an error; a
    /// default above the maximum is lowered to it.
    pub fn resolve(
        requested: Option<&Limits>,
        defaults: &Limits,
        max: &Limits,
        cap: &ResolvedLimits,
    ) -> Result<ResolvedLimits, LimitError> {
        let req = requested.copied().unwrap_or_default();
        let d = ResolvedLimits::DEFAULT;
        let one = |field: &'static str,
                   r: Option<u64>,
                   def: Option<u64>,
                   builtin: u64,
                   m: Option<u64>,
                   cap: u64|
         -> Result<u64, LimitError> {
            let maximum = m.unwrap_or(cap).min(cap);
            match r {
                Some(v) if v == 0 || v > maximum => Err(LimitError { field, requested: v, maximum }),
                Some(v) => Ok(v),
                None => Ok(def.unwrap_or(builtin).min(maximum)),
            }
        };
        Ok(ResolvedLimits {
            wall_time_ms: one(
                "wallTimeMs",
                req.wall_time_ms,
                defaults.wall_time_ms,
                d.wall_time_ms,
                max.wall_time_ms,
                cap.wall_time_ms,
            )?,
            cpu_time_ms: one(
                "cpuTimeMs",
                req.cpu_time_ms,
                defaults.cpu_time_ms,
                d.cpu_time_ms,
                max.cpu_time_ms,
                cap.cpu_time_ms,
            )?,
            memory_mib: one(
                "memoryMiB",
                req.memory_mib,
                defaults.memory_mib,
                d.memory_mib,
                max.memory_mib,
                cap.memory_mib,
            )?,
            processes: one(
                "processes",
                req.processes,
                defaults.processes,
                d.processes,
                max.processes,
                cap.processes,
            )?,
            output_bytes: one(
                "outputBytes",
                req.output_bytes,
                defaults.output_bytes,
                d.output_bytes,
                max.output_bytes,
                cap.output_bytes,
            )?,
            file_size_kib: one(
                "fileSizeKiB",
                req.file_size_kib,
                defaults.file_size_kib,
                d.file_size_kib,
                max.file_size_kib,
                cap.file_size_kib,
            )?,
        })
    }
}

/// Where an Execution is in its life.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Hash)]
pub enum Phase {
    /// Accepted, waiting for sandbox capacity.
    Pending,
    /// Its sandbox exists; the program is being compiled or run.
    Processing,
    /// The program ran to a verdict.
    Completed,
    /// The system could not run it; `message` says why.
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Processing => "Processing",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
        }
    }
}

/// The outcome of a finished Execution.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Hash)]
pub enum Verdict {
    /// Ran and exited 0 (and matched `expectedOutput`, if given).
    Accepted,
    /// Ran and exited 0, but stdout differs from `expectedOutput`.
    WrongAnswer,
    /// Exceeded the CPU or wall-clock time limit.
    TimeLimitExceeded,
    /// Exceeded the memory limit.
    MemoryLimitExceeded,
    /// Wrote more than the output limit.
    OutputLimitExceeded,
    /// Exited non-zero or was killed by a signal.
    RuntimeError,
    /// The compile step failed; see `compileOutput`.
    CompilationError,
    /// The system failed to run the program (phase Failed).
    InternalError,
    /// Cancelled before it finished (phase Failed).
    Cancelled,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "Accepted",
            Verdict::WrongAnswer => "WrongAnswer",
            Verdict::TimeLimitExceeded => "TimeLimitExceeded",
            Verdict::MemoryLimitExceeded => "MemoryLimitExceeded",
            Verdict::OutputLimitExceeded => "OutputLimitExceeded",
            Verdict::RuntimeError => "RuntimeError",
            Verdict::CompilationError => "CompilationError",
            Verdict::InternalError => "InternalError",
            Verdict::Cancelled => "Cancelled",
        }
    }
}

/// A condition in the Kubernetes style.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// e.g. "Scheduled", "Ready" (terminal), "Valid".
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What happened to an Execution, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatus {
    /// Pending → Processing → Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The verdict, once Completed (or InternalError/Cancelled when Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The program's exit code, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Name of the signal that killed the program, e.g. "SIGSEGV".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Standard output, capped at the output limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    /// Standard error, capped at the output limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
    /// Output of the compile step (stdout and stderr), for compiled languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_output_truncated: bool,
    /// CPU time used by the program, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    /// Wall-clock time of the program, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    /// Peak resident memory of the program, in KiB.
    #[serde(default, rename = "memoryKiB", skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u64>,
    /// When the operator first saw the Execution (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<String>,
    /// When its sandbox Pod was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the result was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The sandbox Pod that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Human-readable explanation, chiefly for Failed and limit verdicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many sandbox Pods were created for this Execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Compare program output with the expected output the way Judge0 does: trailing white
/// space of each line and trailing empty lines do not count.
pub fn output_matches(actual: &str, expected: &str) -> bool {
    fn norm(s: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    norm(actual) == norm(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comparison_ignores_trailing_space_only() {
        assert!(output_matches("1 2 \n3\n\n", "1 2\n3"));
        assert!(output_matches("a\r\nb", "a\nb"));
        assert!(!output_matches("1  2\n", "1 2\n"));
        assert!(!output_matches(" x", "x"));
        assert!(!output_matches("x\n\ny", "x\ny"));
    }

    #[test]
    fn limits_take_defaults_and_refuse_excess() {
        let defaults = Limits { memory_mib: Some(256), ..Default::default() };
        let max = Limits { memory_mib: Some(512), wall_time_ms: Some(10_000), ..Default::default() };
        let r = Limits::resolve(None, &defaults, &max, &ResolvedLimits::CEILING).unwrap();
        assert_eq!(r.memory_mib, 256);
        assert_eq!(r.wall_time_ms, 5_000);
        let req = Limits { memory_mib: Some(600), ..Default::default() };
        let e = Limits::resolve(Some(&req), &defaults, &max, &ResolvedLimits::CEILING).unwrap_err();
        assert_eq!(e.field, "memoryMiB");
        assert_eq!(e.maximum, 512);
        assert!(e.to_string().contains("exceeds the maximum of 512"), "{e}");
        let zero = Limits { processes: Some(0), ..Default::default() };
        assert!(Limits::resolve(Some(&zero), &defaults, &max, &ResolvedLimits::CEILING).is_err());
        // The operator's cap wins over a larger Runtime maximum.
        let cap = ResolvedLimits { wall_time_ms: 2_000, ..ResolvedLimits::CEILING };
        let r = Limits::resolve(None, &defaults, &max, &cap).unwrap();
        assert_eq!(r.wall_time_ms, 2_000);
    }

    #[test]
    fn spec_fields_are_camel_case_as_in_the_design() {
        let yaml = r#"
language: python
source: print(1)
limits: {wallTimeMs: 1000, cpuTimeMs: 500, memoryMiB: 64, processes: 8, outputBytes: 100, fileSizeKiB: 10}
expectedOutput: "1"
"#;
        let s: ExecutionSpec = serde_yaml::from_str(yaml).unwrap();
        let l = s.limits.unwrap();
        assert_eq!(l.memory_mib, Some(64));
        assert_eq!(l.file_size_kib, Some(10));
        assert_eq!(s.expected_output.as_deref(), Some("1"));
        let st = ExecutionStatus { memory_kib: Some(5), ..Default::default() };
        assert!(serde_json::to_string(&st).unwrap().contains("\"memoryKiB\":5"));
    }
}
