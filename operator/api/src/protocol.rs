//! The runner's wire protocol: what the operator hands the sandbox and what the sandbox
//! prints back. Both sides depend on these types; change them in one place only.
//!
//! The request arrives as a JSON file (the operator projects a Pod annotation into the
//! container through a downward-API volume). The result is exactly one JSON line on the
//! runner's own stdout, read by the operator from the Pod log, and sealed with an HMAC under
//! a per-Pod key that only the runner holds (see [`seal`] and [`ResultLine::open`]).

use serde::{Deserialize, Serialize};

use crate::mac;

/// Pod annotation that carries the [`RunRequest`] JSON.
pub const REQUEST_ANNOTATION: &str = "rce.dev/request";
/// Where the downward-API volume places the request inside the sandbox.
pub const REQUEST_PATH: &str = "/etc/rce/request.json";
/// The writable, size-limited work directory inside the sandbox.
pub const WORK_DIR: &str = "/work";
/// First byte sequence of the result line, so the operator can find it in a log.
pub const RESULT_PREFIX: &str = "{\"rceResult\":";
/// What follows the result document on its line: the MAC field, then the MAC in hex and
/// `"}`. The line is `{"rceResult":<document>,"mac":"<64 hex digits>"}`.
pub const MAC_FIELD: &str = ",\"mac\":\"";
/// Environment variable of the runner holding the per-Pod result key (hex). The runner reads
/// it, scrubs it from its own memory and never passes it to a stage.
pub const RESULT_KEY_ENV: &str = "RCE_RESULT_KEY";
/// Environment variable telling the runner how to measure a stage: `cgroup` (the container's
/// own cgroup: every byte and CPU second of the program, set by the operator) or `proc`
/// (`/proc` and rusage; the default, for the runner outside a container of its own).
pub const ACCOUNTING_ENV: &str = "RCE_ACCOUNTING";

/// A file of the request: a submission's [`SourceFile`](crate::SourceFile) as it is (its name
/// validated again by the runner: no `..`, no absolute path).
pub use crate::files::{FileEncoding as Encoding, SourceFile as File};

/// Limits for one stage (compile or run), already resolved by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageLimits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    /// Peak resident memory the program may use; above it the verdict is MLE.
    pub memory_kib: u64,
    /// Maximum processes and threads the program may have at once; more is the
    /// `processes` limit (see the crate docs).
    pub processes: u64,
    /// Cap on each of stdout and stderr; more gives OutputLimitExceeded.
    pub output_bytes: u64,
    /// RLIMIT_FSIZE: the largest file the program may write.
    pub file_size_kib: u64,
    /// RLIMIT_STACK of the program, in KiB.
    #[serde(default = "default_stack_kib")]
    pub stack_kib: u64,
}

fn default_stack_kib() -> u64 {
    crate::ResolvedLimits::DEFAULT.stack_kib
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// Echoed in the result, so that a result can only be taken for the run it belongs to.
    #[serde(default)]
    pub run_id: String,
    /// The first file is the entry point.
    pub files: Vec<File>,
    #[serde(default)]
    pub stdin: String,
    /// The stdin encrypted under the Pod's result key (see [`SealedText`]), in place of
    /// `stdin`: the request is a file the program could read, and the input of a judge's test
    /// is not the program's to see before it runs (at compile time, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_sealed: Option<SealedText>,
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
    /// The run stage's stderr goes to its stdout (one pipe, one stream), as Judge0's
    /// `redirect_stderr_to_stdout`. The compile stage always has them as one stream.
    #[serde(default)]
    pub redirect_stderr_to_stdout: bool,
    /// How many times the run stage runs (Judge0's `number_of_runs`), each in a clean work
    /// dir and /tmp; it stops after the first run that does not exit 0 within its limits.
    /// The result's `run` is the last run's, with `timeMs`, `wallTimeMs` and `memoryKiB`
    /// averaged over the runs made (see [`RunResult::runs`]).
    #[serde(default = "one")]
    pub runs: u32,
    /// The program's stdin is what arrives in [`crate::serve::Input::Stdin`] messages while it
    /// runs, until [`crate::serve::Input::Eof`] (a serving runner only; `stdin` must be empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// Test cases: the compile stage runs once, then the run stage once per case (in place of
    /// `stdin`, `args`, `limits` and `runs`), each from the work dir and the temporary dir as
    /// they were after compiling; the result's `tests` has each case's. A serving runner
    /// only gets them (the request goes over its stdin, which the program cannot read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestRun>,
    /// With `tests`: stop after the first case that does not pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_on_first_failure: bool,
    /// How stdout is compared with a case's expected output (default: trailing white space
    /// ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<crate::Checker>,
}

/// One test case of a [`RunRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    pub name: String,
    #[serde(default)]
    pub stdin: String,
    /// Compared with stdout under the request's checker; absent: exiting 0 within the
    /// limits passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// In place of the request's `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// In place of the request's `limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<StageLimits>,
}

/// One test case's result: its run (stdout and stderr cut to
/// [`crate::TEST_EXCERPT_BYTES`], `stdoutTruncated` then set), or none when it was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<StageResult>,
    /// Whether stdout matched the expected output (absent: there was none, or it did not run
    /// to an exit 0 within its limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
}

impl RunRequest {
    /// The longest the stages of this request may take in all: the compile stage's wall time,
    /// then each run's (each case's, or `runs` times the run's) plus a second for the clean-up
    /// and restore between runs when there are several.
    pub fn budget_ms(&self) -> u64 {
        let compile =
            self.compile.as_ref().map_or(0, |_| self.compile_limits.unwrap_or(self.limits).wall_time_ms);
        let walls: Vec<u64> = if self.tests.is_empty() {
            vec![self.limits.wall_time_ms; self.runs.max(1) as usize]
        } else {
            self.tests.iter().map(|t| t.limits.unwrap_or(self.limits).wall_time_ms).collect()
        };
        let between = if walls.len() > 1 { 1000 } else { 0 };
        compile + walls.iter().map(|w| w + between).sum::<u64>()
    }
}

/// Text encrypted with [`crate::mac::keystream_xor`] under the Pod's key and a random nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedText {
    /// Hex.
    pub nonce: String,
    /// Base64 of the ciphertext.
    pub data: String,
    /// Hex HMAC of nonce and ciphertext (encrypt-then-MAC).
    pub tag: String,
}

impl SealedText {
    fn tag_of(key: &[u8], nonce: &[u8], data: &[u8]) -> [u8; 32] {
        let mut input = b"rce-stdin-tag".to_vec();
        input.extend_from_slice(nonce);
        input.extend_from_slice(data);
        mac::hmac_sha256(key, &input)
    }

    pub fn seal(key: &[u8], nonce: &[u8], text: &str) -> SealedText {
        use base64::Engine;
        let mut data = text.as_bytes().to_vec();
        mac::keystream_xor(key, nonce, &mut data);
        SealedText {
            nonce: mac::hex(nonce),
            tag: mac::hex(&Self::tag_of(key, nonce, &data)),
            data: base64::engine::general_purpose::STANDARD.encode(data),
        }
    }

    pub fn open(&self, key: &[u8]) -> Result<String, String> {
        use base64::Engine;
        let nonce = mac::unhex(&self.nonce).ok_or("the sealed stdin has an invalid nonce")?;
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .map_err(|e| format!("the sealed stdin is not base64: {e}"))?;
        let tag = mac::unhex(&self.tag).unwrap_or_default();
        let mut input = b"rce-stdin-tag".to_vec();
        input.extend_from_slice(&nonce);
        input.extend_from_slice(&data);
        if !mac::verify(key, &input, &tag) {
            return Err("the sealed stdin does not open under this Pod's key".to_string());
        }
        mac::keystream_xor(key, &nonce, &mut data);
        String::from_utf8(data).map_err(|_| "the sealed stdin is not UTF-8".to_string())
    }
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
    /// The program had more than `processes` tasks at once.
    Processes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageResult {
    pub exit_code: Option<i32>,
    /// Signal number that ended the process, if any.
    pub signal: Option<i32>,
    /// Its name, e.g. `SIGSEGV`.
    pub signal_name: Option<String>,
    /// Captured stdout, the exact bytes (base64 in the document), at most `outputBytes`.
    #[serde(with = "base64_bytes", rename = "stdoutBase64")]
    pub stdout: Vec<u8>,
    #[serde(with = "base64_bytes", rename = "stderrBase64")]
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// CPU time (user + system) of the stage's processes, in milliseconds.
    pub time_ms: u64,
    pub wall_time_ms: u64,
    /// Peak memory of the program, in KiB: everything charged to it (anonymous memory,
    /// memfd, /dev/shm and its files in the tmpfs work dir and /tmp) when the runner measures
    /// through the container's cgroup, else the peak resident set size.
    pub memory_kib: u64,
    /// Most tasks (processes and threads) the program was seen to have at once.
    #[serde(default)]
    pub peak_tasks: u64,
    /// Set when a limit stopped the stage.
    pub limit: Option<LimitHit>,
    /// The order in which the output arrived: `n > 0` is the next `n` bytes of stdout,
    /// `n < 0` the next `-n` bytes of stderr. Empty when unknown. At most
    /// [`MAX_ARRIVAL`] entries: past that, the rest of stdout then the rest of stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrival: Vec<i64>,
}

/// Most entries of [`StageResult::arrival`].
pub const MAX_ARRIVAL: usize = 1024;

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
    /// The request's `runId`.
    #[serde(default)]
    pub run_id: String,
    pub outcome: Outcome,
    pub compile: Option<StageResult>,
    pub run: Option<StageResult>,
    pub message: Option<String>,
    /// How many times the run stage ran (see [`RunRequest::runs`]); 0 when it did not run.
    #[serde(default)]
    pub runs: u32,
    /// Each test case's result, in the request's order (skipped ones without a run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestResult>,
}

/// The document on the result line: `{"rceResult": {...}, "mac": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultLine {
    pub rce_result: RunResult,
}

/// The result line for `result`, sealed with `key`: the document's exact bytes are what the
/// MAC covers. Without a key (the runner outside a sandbox) the MAC is empty, which no
/// operator accepts.
pub fn seal(result: &RunResult, key: Option<&[u8]>) -> String {
    let doc = serde_json::to_string(result).unwrap_or_else(|e| {
        // Plain data cannot fail to serialise; still produce a document.
        format!("{{\"outcome\":\"internalError\",\"message\":{}}}", serde_json::Value::from(e.to_string()))
    });
    let tag = key.map(|k| mac::hex(&mac::hmac_sha256(k, doc.as_bytes()))).unwrap_or_default();
    format!("{RESULT_PREFIX}{doc}{MAC_FIELD}{tag}\"}}")
}

/// Why a log holds no result that can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultError {
    /// No line starts with [`RESULT_PREFIX`].
    Missing,
    /// More than one result line: the runner prints exactly one.
    Several(usize),
    /// The line is not `{"rceResult":<document>,"mac":"<hex>"}`.
    Garbled(String),
    /// The MAC is missing or does not match the document under the Pod's key.
    BadMac,
    /// The document is sealed but belongs to another run.
    WrongRun { expected: String, found: String },
}

impl std::fmt::Display for ResultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultError::Missing => write!(f, "no result line"),
            ResultError::Several(n) => write!(f, "{n} result lines where the runner prints one"),
            ResultError::Garbled(why) => write!(f, "a garbled result line ({why})"),
            ResultError::BadMac => write!(f, "a result line whose MAC does not verify under the Pod's key"),
            ResultError::WrongRun { expected, found } => {
                write!(f, "a result for run {found:?} where run {expected:?} was expected")
            }
        }
    }
}

impl ResultLine {
    /// Find the result line in a Pod log and verify it: exactly one line starting with
    /// [`RESULT_PREFIX`], its MAC valid under `key`, its run id `run_id`.
    pub fn open(log: &[u8], key: &[u8], run_id: &str) -> Result<RunResult, ResultError> {
        let prefix = RESULT_PREFIX.as_bytes();
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').filter(|l| l.starts_with(prefix)).collect();
        let line = match lines.as_slice() {
            [] => return Err(ResultError::Missing),
            [one] => *one,
            many => return Err(ResultError::Several(many.len())),
        };
        let line = std::str::from_utf8(line).map_err(|_| ResultError::Garbled("not UTF-8".into()))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let body =
            line.strip_suffix("\"}").ok_or_else(|| ResultError::Garbled("no closing MAC field".into()))?;
        let at = body.rfind(MAC_FIELD).ok_or_else(|| ResultError::Garbled("no MAC field".into()))?;
        let (doc, tag) = (&body[RESULT_PREFIX.len()..at], &body[at + MAC_FIELD.len()..]);
        let tag = mac::unhex(tag).ok_or(ResultError::BadMac)?;
        if !mac::verify(key, doc.as_bytes(), &tag) {
            return Err(ResultError::BadMac);
        }
        let result: RunResult =
            serde_json::from_str(doc).map_err(|e| ResultError::Garbled(format!("invalid document: {e}")))?;
        // A runner that could not read its request cannot know the run; its (sealed) failure
        // yields no verdict, so it is taken as it is.
        let unknown_run_failure = result.run_id.is_empty() && result.outcome == Outcome::InternalError;
        if result.run_id != run_id && !unknown_run_failure {
            return Err(ResultError::WrongRun { expected: run_id.to_string(), found: result.run_id });
        }
        Ok(result)
    }
}

/// Output bytes as lossy UTF-8. When they were `truncated`, a multi-byte character cut in
/// half at the end is dropped rather than turned into U+FFFD (so the text stays within the
/// cap when the output is valid UTF-8).
pub fn text_of(bytes: &[u8], truncated: bool) -> String {
    let keep = if truncated { bytes.len() - incomplete_utf8_tail(bytes) } else { bytes.len() };
    String::from_utf8_lossy(&bytes[..keep]).into_owned()
}

/// Length of an incomplete (but so far valid) UTF-8 sequence at the end of `bytes`, 0 if the
/// end is a complete character or invalid anyway.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes: look for its lead byte among the last 3.
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: the lead is further back
        }
        let needed = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        let tail = &bytes[bytes.len() - back..];
        return match std::str::from_utf8(tail) {
            Err(e) if e.error_len().is_none() && back < needed => back,
            _ => 0,
        };
    }
    0
}

/// Bytes as standard base64 in JSON.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(run_id: &str) -> RunResult {
        RunResult {
            tests: vec![],
            run_id: run_id.into(),
            outcome: Outcome::Ran,
            compile: None,
            run: Some(StageResult { exit_code: Some(3), stdout: b"hi\n\xff".to_vec(), ..Default::default() }),
            message: None,
            runs: 1,
        }
    }

    #[test]
    fn a_sealed_line_opens_with_its_key_and_run_and_keeps_exact_bytes() {
        let key = b"0123456789abcdef0123456789abcdef";
        let line = seal(&result("run-1"), Some(key));
        assert!(line.starts_with(RESULT_PREFIX) && !line.contains('\n'), "{line}");
        let log = format!("noise before\n{line}\n");
        let opened = ResultLine::open(log.as_bytes(), key, "run-1").expect("opens");
        assert_eq!(opened, result("run-1"));
        assert_eq!(opened.run.expect("run").stdout, b"hi\n\xff");
        // The document is plain JSON for people and jq: stdout is base64.
        assert!(line.contains("\"stdoutBase64\":\"aGkK/w==\""), "{line}");
    }

    #[test]
    fn sealed_stdin_opens_only_with_the_key() {
        let key = b"0123456789abcdef0123456789abcdef";
        let s = SealedText::seal(key, b"nonce-16-bytes!!", "3 4\nsecret test input ünï\n");
        assert!(!s.data.contains("secret"));
        assert_eq!(s.open(key).as_deref(), Ok("3 4\nsecret test input ünï\n"));
        assert_ne!(s.open(b"another key").as_deref(), Ok("3 4\nsecret test input ünï\n"));
        let bad = SealedText { nonce: "xyz".into(), ..s };
        assert!(bad.open(key).is_err());
    }

    #[test]
    fn anything_but_the_runners_one_sealed_line_is_refused() {
        let key = b"0123456789abcdef0123456789abcdef";
        let line = seal(&result("run-1"), Some(key));
        let open = |log: &str| ResultLine::open(log.as_bytes(), key, "run-1");
        assert_eq!(open("nothing here\n"), Err(ResultError::Missing));
        assert_eq!(open(""), Err(ResultError::Missing));
        // Another key, no key, a forged document under the right MAC, another run.
        let other = seal(&result("run-1"), Some(b"another key of thirty-two bytes!"));
        assert_eq!(open(&other), Err(ResultError::BadMac));
        assert_eq!(open(&seal(&result("run-1"), None)), Err(ResultError::BadMac));
        let forged = line.replacen("\"exitCode\":3", "\"exitCode\":0", 1);
        assert_ne!(forged, line);
        assert_eq!(open(&forged), Err(ResultError::BadMac));
        assert_eq!(
            ResultLine::open(line.as_bytes(), key, "run-2"),
            Err(ResultError::WrongRun { expected: "run-2".into(), found: "run-1".into() })
        );
        // A second line, even a valid one, or a truncated one.
        assert_eq!(open(&format!("{line}\n{line}\n")), Err(ResultError::Several(2)));
        assert!(matches!(open(&line[..line.len() - 5]), Err(ResultError::Garbled(_) | ResultError::BadMac)));
        assert!(matches!(open("{\"rceResult\":{}}"), Err(ResultError::Garbled(_))));
        assert!(matches!(
            ResultLine::open(b"{\"rceResult\":\xff", key, "run-1"),
            Err(ResultError::Garbled(_))
        ));
    }
}
