use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Checker, Limits, SourceFile};

/// One run of a program: submit source code in a language, get its output and a verdict.
/// The operator runs each Execution once, in its own sandbox Pod, and writes the result to
/// `status`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    crates(kube_core = "::kube_core"),
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
    /// The program's stderr goes to its stdout: one stream, in the order written (Judge0's
    /// `redirect_stderr_to_stdout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_stderr_to_stdout: bool,
    /// Options for the compiler, one argument each (no shell). Each must match the
    /// Runtime's `compilerOptions` allow-list ([`crate::options`]); they take the place of
    /// `{options}` in its compile command. Refused for a Runtime without a compile step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiler_options: Vec<String>,
    /// How many times the program runs (1 to [`MAX_RUNS`], Judge0's `number_of_runs`), each
    /// in a clean work dir; it stops after the first run that is not Accepted. `timeMs`,
    /// `wallTimeMs` and `memoryKiB` are the average over the runs made, the output is the
    /// last run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    /// Where to send the result (an HTTP PUT) once the Execution ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// The program's stdin comes from the client while it runs (Piston's `/api/v2/connect`,
    /// the playground's interactive mode) through Redis (`rce_api::redis_keys::stdin_key`),
    /// not from `stdin`, which must be unset. Runs in a serving sandbox: a warm Pod, or a cold
    /// one the operator attaches to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// Test cases: the program is compiled once, then run once per case, each in a clean work
    /// dir and /tmp, with the case's stdin, args and limits; `status.tests` has each case's
    /// verdict, the Execution's verdict is the first case's that is not Accepted. Excludes
    /// `stdin`, `expectedOutput`, `runs` and `interactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<TestCase>>,
    /// With `tests`: stop at the first case that is not Accepted (the rest are `skipped`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_on_first_failure: bool,
    /// How stdout is compared with an expected output (of `expectedOutput` or of a test
    /// case); default `trimTrailingWhitespace`, as Judge0 compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<Checker>,
}

/// One case of `spec.tests`. Its data (stdin, expected output) is given inline or read from
/// a key of a ConfigMap in the Execution's namespace (large test data: an object holds at
/// most about 1.5 MiB, a ConfigMap 1 MiB).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TestCase {
    /// Shown in `status.tests`; default `"1"`, `"2"`, ... (its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The case's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The case's standard input, from a ConfigMap key (in place of `stdin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_from: Option<DataRef>,
    /// Arguments for this case, in place of `spec.args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// What stdout must be (under `spec.checker`); absent: the case is Accepted when the
    /// program exits 0 within its limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output: Option<String>,
    /// The expected output, from a ConfigMap key (in place of `expectedOutput`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output_from: Option<DataRef>,
    /// Limits of this case; each unset one is the Execution's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// A key of a ConfigMap in the Execution's namespace (`data` or `binaryData`, UTF-8).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataRef {
    pub config_map: String,
    pub key: String,
}

/// Bounds on `spec.tests`: the operator's and the shim's `--max-tests`, `--max-tests-time-ms`
/// and `--max-test-data-bytes` (the same flags, so that the shim refuses at once what the
/// operator would refuse later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TestCaps {
    /// Most test cases of one Execution.
    #[cfg_attr(feature = "clap", arg(long, env = "RCE_MAX_TESTS", default_value_t = TestCaps::DEFAULT.max_tests))]
    pub max_tests: usize,
    /// Most time the cases of one Execution may take together: the sum of their wall limits
    /// (and the compile stage's), ms.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "RCE_MAX_TESTS_TIME_MS", default_value_t = TestCaps::DEFAULT.max_tests_time_ms)
    )]
    pub max_tests_time_ms: u64,
    /// Most bytes of test data (stdin and expected output of every case) of one Execution.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "RCE_MAX_TEST_DATA_BYTES", default_value_t = TestCaps::DEFAULT.max_test_data_bytes)
    )]
    pub max_test_data_bytes: usize,
}

impl TestCaps {
    pub const DEFAULT: TestCaps =
        TestCaps { max_tests: 256, max_tests_time_ms: 300_000, max_test_data_bytes: 16 * 1024 * 1024 };
}

impl Default for TestCaps {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The limits of test case `case` as asked: each of its own, else the Execution's.
pub fn case_limits(spec_limits: Option<&Limits>, case: &TestCase) -> Option<Limits> {
    match (spec_limits, case.limits.as_ref()) {
        (None, None) => None,
        (Some(l), None) | (None, Some(l)) => Some(*l),
        (Some(top), Some(own)) => {
            let mut l = *top;
            for f in crate::LimitField::ALL {
                if own.get(f).is_some() {
                    l.set(f, own.get(f));
                }
            }
            Some(l)
        }
    }
}

/// Check `spec.tests` against what else the spec says and `caps`, each case's limits
/// resolved against the Runtime `rt` (its defaults and maximum) and the ceilings `cap`. The
/// cases' limits, in order.
pub fn check_tests(
    spec: &ExecutionSpec,
    rt: &crate::RuntimeSpec,
    cap: &crate::ResolvedLimits,
    caps: &TestCaps,
) -> Result<Vec<crate::ResolvedLimits>, String> {
    let Some(tests) = spec.tests.as_ref() else { return Ok(Vec::new()) };
    let resolve = |l: Option<&Limits>| {
        Limits::resolve(l, &rt.default_limits, &rt.max_limits, cap).map_err(|e| e.to_string())
    };
    // The compile stage's wall limit counts too (its limits follow the run's).
    let compile_ms = match &rt.compile {
        Some(_) => {
            let top = resolve(spec.limits.as_ref())?;
            crate::ResolvedLimits::for_compile(&rt.compile_limits.unwrap_or_default(), &top, cap).wall_time_ms
        }
        None => 0,
    };
    for (given, what) in [
        (spec.stdin.is_some(), "stdin"),
        (spec.expected_output.is_some(), "expectedOutput"),
        (spec.runs.is_some_and(|r| r != 1), "runs"),
        (spec.interactive, "interactive"),
    ] {
        if given {
            return Err(format!("tests cannot be combined with {what}: give each case its own"));
        }
    }
    if tests.is_empty() {
        return Err("tests is empty: give at least one case, or leave it out".into());
    }
    if tests.len() > caps.max_tests {
        return Err(format!("{} test cases: at most {} are accepted", tests.len(), caps.max_tests));
    }
    let mut data = 0usize;
    let mut names = std::collections::BTreeSet::new();
    let mut limits = Vec::with_capacity(tests.len());
    for (i, t) in tests.iter().enumerate() {
        let at = format!("tests[{i}]");
        if t.stdin.is_some() && t.stdin_from.is_some() {
            return Err(format!("{at}: give stdin or stdinFrom, not both"));
        }
        if t.expected_output.is_some() && t.expected_output_from.is_some() {
            return Err(format!("{at}: give expectedOutput or expectedOutputFrom, not both"));
        }
        let name = test_name(i, t);
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(format!("{at}: a name is 1 to 128 characters, none a control character"));
        }
        if !names.insert(name.clone()) {
            return Err(format!("{at}: the name {name:?} is given twice"));
        }
        data += t.stdin.as_ref().map_or(0, String::len) + t.expected_output.as_ref().map_or(0, String::len);
        limits
            .push(resolve(case_limits(spec.limits.as_ref(), t).as_ref()).map_err(|e| format!("{at}: {e}"))?);
    }
    if data > caps.max_test_data_bytes {
        return Err(format!(
            "the test data is {data} bytes: at most {} bytes are accepted",
            caps.max_test_data_bytes
        ));
    }
    let between = if limits.len() > 1 { 1000 } else { 0 };
    let total = compile_ms + limits.iter().map(|l| l.wall_time_ms + between).sum::<u64>();
    if total > caps.max_tests_time_ms {
        return Err(format!(
            "the test cases may take {total} ms together (their wall limits, and the compile stage's): \
             at most {} ms are accepted",
            caps.max_tests_time_ms
        ));
    }
    Ok(limits)
}

/// A test case's name: its own, else its position from 1.
pub fn test_name(i: usize, t: &TestCase) -> String {
    t.name.clone().unwrap_or_else(|| (i + 1).to_string())
}

/// Most runs of one Execution (`spec.runs`), Judge0's `MAX_NUMBER_OF_RUNS`.
pub const MAX_RUNS: u32 = 20;

/// A result callback: when the Execution reaches a terminal phase the operator PUTs its
/// result to `url` (JSON; up to 3 tries, 5 s each). Only destinations that the operator's
/// allow-list admits are called ([`crate::callback`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    /// An `http` or `https` URL.
    pub url: String,
    /// The body's shape: `rce` (the status document, as in Redis) or `judge0` (the
    /// submission as Judge0 CE sends it: base64-encoded default fields).
    #[serde(default)]
    pub format: CallbackFormat,
}

/// The body of a result callback.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum CallbackFormat {
    #[default]
    Rce,
    Judge0,
}

/// How a callback went, in the status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallbackStatus {
    /// Tries made (at most 3).
    pub attempts: u32,
    /// The destination answered (any HTTP status, as Judge0 counts it).
    pub delivered: bool,
    /// The HTTP status of the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why the last try failed, or why the destination was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set while the callback is being sent, absent once its outcome is recorded: the
    /// operator that claimed the sending and when. An operator sends only after writing its
    /// claim at the version of the Execution it read (so of two replicas only one sends); a
    /// claim older than the longest send (with a margin) is a dead sender's and may be taken
    /// over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<CallbackClaim>,
}

/// Who is sending a result callback (see [`CallbackStatus::sending`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallbackClaim {
    /// The sending operator's identity.
    pub by: String,
    /// When it claimed the sending (RFC 3339, its clock).
    pub since: String,
}

/// Where the full outputs live when the status holds only an excerpt of them: ConfigMaps
/// owned by the Execution (so they go with it), each with one `binaryData` key `part`
/// (at most [`OUTPUT_PART_BYTES`]). The parts, in order, concatenated, are stdout then
/// stderr then the compile output, of the lengths given here: the exact bytes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StoredOutput {
    /// The ConfigMaps' names, in order.
    pub config_maps: Vec<String>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub compile_output_bytes: u64,
}

/// Largest `part` of one output ConfigMap (a ConfigMap holds at most 1 MiB).
pub const OUTPUT_PART_BYTES: usize = 768 * 1024;
/// Largest excerpt of each output kept in the status itself (bytes of the output before
/// encoding). Beyond it the full output is in [`StoredOutput`].
pub const STATUS_EXCERPT_BYTES: usize = 64 * 1024;

/// Figures of the compile stage.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub time_ms: u64,
    pub wall_time_ms: u64,
    #[serde(rename = "memoryKiB")]
    pub memory_kib: u64,
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

/// The status of a [`Condition`], as Kubernetes spells it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl PartialEq<&str> for ConditionStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
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
    pub status: ConditionStatus,
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
    /// Standard output, capped at the output limit (`stdoutTruncated`: the program wrote
    /// more). At most [`STATUS_EXCERPT_BYTES`] of it are here; `output` says where the rest
    /// is. Text, or base64 when `stdoutEncoding` is `base64` (the bytes are not UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "crate::FileEncoding::is_utf8")]
    pub stdout_encoding: crate::FileEncoding,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    /// Standard error, as `stdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "crate::FileEncoding::is_utf8")]
    pub stderr_encoding: crate::FileEncoding,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
    /// Output of the compile step (stdout and stderr), for compiled languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
    #[serde(default, skip_serializing_if = "crate::FileEncoding::is_utf8")]
    pub compile_output_encoding: crate::FileEncoding,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_output_truncated: bool,
    /// Where the full outputs are, when an excerpt is all the status holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<StoredOutput>,
    /// The order in which stdout and stderr arrived (see
    /// [`crate::protocol::StageResult::arrival`]), over the full outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrival: Vec<i64>,
    /// The compile stage's figures, for compiled languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<StageFigures>,
    /// How many runs were made (`spec.runs`); the figures are their average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    /// Each test case's result (`spec.tests`), in order. With tests, the Execution's verdict,
    /// exit code, signal, stdout and stderr are those of the first case that is not Accepted
    /// (else of the last case), its `timeMs`, `wallTimeMs` and `memoryKiB` the most of any case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestCaseStatus>,
    /// With tests: how many cases were Accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<u32>,
    /// With tests: how many cases there are (run or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// How the result callback went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackStatus>,
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
    /// The WarmPool whose Pod ran it (absent: a cold sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<String>,
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

/// One test case's result.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TestCaseStatus {
    pub name: String,
    /// Absent when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Not run: an earlier case failed under `stopOnFirstFailure` (or the run ended early).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    #[serde(default, rename = "memoryKiB", skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u64>,
    /// The first [`TEST_EXCERPT_BYTES`] of stdout (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// The excerpt is less than what the program wrote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub use crate::check::output_matches;

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
