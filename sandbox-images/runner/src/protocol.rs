//! The runner's wire protocol: what the operator hands the sandbox and what the sandbox
//! prints back. Both sides depend on these types; change them in one place only.
//!
//! The request arrives as a JSON file (the operator projects a Pod annotation into the
//! container through a downward-API volume). The result is exactly one JSON document on
//! the runner's own stdout, read by the operator from the Pod log.

use serde::{Deserialize, Serialize};

/// Pod annotation that carries the [`RunRequest`] JSON.
pub const REQUEST_ANNOTATION: &str = "rce.dev/request";
/// Where the downward-API volume places the request inside the sandbox.
pub const REQUEST_PATH: &str = "/etc/rce/request.json";
/// The writable, size-limited work directory inside the sandbox.
pub const WORK_DIR: &str = "/work";
/// First byte sequence of the result line, so the operator can find it in a log.
pub const RESULT_PREFIX: &str = "{\"rceResult\":";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Relative path inside the work dir; validated by the runner (no `..`, no absolute).
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

/// Limits for one stage (compile or run), already resolved by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageLimits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    /// Peak resident memory the program may use; above it the verdict is MLE.
    pub memory_kib: u64,
    /// Maximum processes/threads (RLIMIT_NPROC for the sandbox's unique uid).
    pub processes: u64,
    /// Cap on each of stdout and stderr; more gives OutputLimitExceeded.
    pub output_bytes: u64,
    /// RLIMIT_FSIZE: the largest file the program may write.
    pub file_size_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// The first file is the entry point.
    pub files: Vec<File>,
    #[serde(default)]
    pub stdin: String,
    /// Extra arguments appended to the run command.
    #[serde(default)]
    pub args: Vec<String>,
    /// Compile command (argv); `{file}` is replaced by the entry file's name.
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    /// Run command (argv); `{file}` is replaced by the entry file's name.
    pub run: Vec<String>,
    /// Extra environment for both stages (the environment is otherwise minimal).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub limits: StageLimits,
    /// Limits for the compile stage; defaults to `limits` when absent.
    #[serde(default)]
    pub compile_limits: Option<StageLimits>,
}

/// Why a stage stopped, when it did not stop on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LimitHit {
    CpuTime,
    WallTime,
    Memory,
    Output,
    FileSize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageResult {
    pub exit_code: Option<i32>,
    /// Signal number that ended the process, if any.
    pub signal: Option<i32>,
    /// Its name, e.g. `SIGSEGV`.
    pub signal_name: Option<String>,
    /// Captured stdout (lossy UTF-8), at most `outputBytes`.
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// CPU time (user + system) of the stage's processes, in milliseconds.
    pub time_ms: u64,
    pub wall_time_ms: u64,
    /// Peak resident set size, in KiB.
    pub memory_kib: u64,
    /// Set when a limit stopped the stage.
    pub limit: Option<LimitHit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The program ran (whatever its exit); see `run`.
    Ran,
    /// The compile stage failed; `compile` holds its output, the program did not run.
    CompileError,
    /// The runner could not do its job (bad request, I/O error); see `message`.
    InternalError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub outcome: Outcome,
    pub compile: Option<StageResult>,
    pub run: Option<StageResult>,
    pub message: Option<String>,
}

/// The line the runner prints: `{"rceResult": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultLine {
    pub rce_result: RunResult,
}

impl ResultLine {
    /// Find and parse the result line in a Pod log (the last line that starts with
    /// [`RESULT_PREFIX`]).
    pub fn find_in_log(log: &str) -> Option<RunResult> {
        log.lines()
            .rev()
            .filter(|l| l.starts_with(RESULT_PREFIX))
            .find_map(|l| serde_json::from_str::<ResultLine>(l).ok())
            .map(|l| l.rce_result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips_and_is_found_after_noise() {
        let r = RunResult {
            outcome: Outcome::Ran,
            compile: None,
            run: Some(StageResult { exit_code: Some(3), stdout: "hi\n".into(), ..Default::default() }),
            message: None,
        };
        let line = serde_json::to_string(&ResultLine { rce_result: r.clone() }).expect("serialises");
        assert!(line.starts_with(RESULT_PREFIX), "{line}");
        let log = format!("garbage\n{line}\n");
        assert_eq!(ResultLine::find_in_log(&log), Some(r));
        assert_eq!(ResultLine::find_in_log("no result here"), None);
    }
}
