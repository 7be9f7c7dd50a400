//! What a sandbox Pod says, and the status it leads to (pure: plain values in and out).

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use rce_api::protocol::{LimitHit, Outcome, ResultError, RunRequest, RunResult, StageLimits, StageResult};
use rce_api::{
    ExecutionStatus, FileEncoding, Phase, StageFigures, StoredOutput, TestCaseStatus, Verdict,
    STATUS_EXCERPT_BYTES,
};

use crate::sandbox::CONTAINER;

/// Container waiting reasons that mean the image cannot be used.
pub const IMAGE_PROBLEMS: &[&str] = &[
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ImageInspectError",
    "ErrImageInspect",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Where a sandbox Pod is, as far as the operator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodView {
    /// Being deleted by someone else while its Execution still needs it.
    Deleting,
    /// Evicted by the kubelet (node pressure).
    Evicted {
        message: String,
    },
    /// Not started yet; `problem` is set when the image or container config cannot be used,
    /// `waiting` describes why it waits (scheduling, container creation).
    Starting {
        problem: Option<(String, String)>,
        waiting: Option<String>,
    },
    Running,
    /// The container has terminated (or the Pod ended before it ran): read the log.
    Terminated(Termination),
}

/// How the sandbox container (or Pod) ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Termination {
    pub exit_code: Option<i32>,
    /// The container's reason, e.g. "OOMKilled", "Error", "Completed".
    pub reason: Option<String>,
    /// The Pod's reason, e.g. "DeadlineExceeded".
    pub pod_reason: Option<String>,
    pub message: Option<String>,
}

impl Termination {
    pub fn oom_killed(&self) -> bool {
        self.reason.as_deref() == Some("OOMKilled")
    }
    pub fn deadline_exceeded(&self) -> bool {
        self.pod_reason.as_deref() == Some("DeadlineExceeded")
    }
    fn describe(&self) -> String {
        let mut parts = vec![];
        if let Some(c) = self.exit_code {
            parts.push(format!("exit code {c}"));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("reason {r}"));
        }
        if let Some(r) = &self.pod_reason {
            parts.push(format!("pod reason {r}"));
        }
        // (The container's termination message is not repeated: the program can write it.)
        parts.join(", ")
    }
}

/// Read a Pod's state.
pub fn view(pod: &Pod) -> PodView {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodView::Deleting;
    }
    let Some(status) = &pod.status else {
        return PodView::Starting { problem: None, waiting: None };
    };
    if status.reason.as_deref() == Some("Evicted") {
        return PodView::Evicted { message: status.message.clone().unwrap_or_default() };
    }
    let container = status.container_statuses.iter().flatten().find(|c| c.name == CONTAINER);
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return PodView::Terminated(Termination {
            exit_code: Some(t.exit_code),
            reason: t.reason.clone(),
            pod_reason: status.reason.clone(),
            message: t.message.clone(),
        });
    }
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if matches!(phase, "Failed" | "Succeeded") {
        return PodView::Terminated(Termination {
            exit_code: None,
            reason: None,
            pod_reason: status.reason.clone(),
            message: status.message.clone(),
        });
    }
    if state.and_then(|s| s.running.as_ref()).is_some() {
        return PodView::Running;
    }
    let waiting = state.and_then(|s| s.waiting.as_ref());
    if let Some(w) = waiting {
        let reason = w.reason.clone().unwrap_or_default();
        if IMAGE_PROBLEMS.contains(&reason.as_str()) {
            return PodView::Starting {
                problem: Some((reason, w.message.clone().unwrap_or_default())),
                waiting: None,
            };
        }
    }
    let unscheduled =
        status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False").map(
            |c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Unschedulable"),
                    c.message.as_deref().unwrap_or("")
                )
            },
        );
    let waiting = unscheduled.or_else(|| {
        waiting
            .and_then(|w| w.reason.clone())
            .map(|r| format!("{r}: {}", waiting.and_then(|w| w.message.as_deref()).unwrap_or("")))
    });
    PodView::Starting { problem: None, waiting }
}

/// The request a sandbox Pod was given (from its annotation), to word limit messages.
pub fn pod_request(pod: &Pod) -> Option<RunRequest> {
    let json = pod.metadata.annotations.as_ref()?.get(rce_api::protocol::REQUEST_ANNOTATION)?;
    serde_json::from_str(json).ok()
}

/// Cut `s` to at most `cap` bytes at a character boundary; says whether it cut.
pub fn cap_text(s: &str, cap: usize) -> (String, bool) {
    if s.len() <= cap {
        return (s.to_string(), false);
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// Bytes a character takes in the JSON the API server stores (Go's encoding/json): `<`, `>`,
/// `&`, U+2028, U+2029 and control characters other than `\n`, `\r`, `\t` become `\u00XX`;
/// `"` and `\` take a backslash.
pub fn stored_len(c: char) -> usize {
    match c {
        '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => 6,
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 || c == '\u{7f}' => 6,
        c => c.len_utf8(),
    }
}

/// Cut `s` so that it takes at most `cap` bytes once stored (see [`stored_len`]), at a
/// character boundary; says whether it cut. This, not the raw length, is what keeps a
/// status under the API server's request limit whatever the program printed.
pub fn cap_stored(s: &str, cap: usize) -> (String, bool) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += stored_len(c);
        if used > cap {
            return (s[..i].to_string(), true);
        }
    }
    (s.to_string(), false)
}

/// Everything needed to turn a finished sandbox into a status.
pub struct Finished<'a> {
    /// The runner's result, opened and verified, or why there is none to trust.
    pub result: Result<&'a RunResult, &'a ResultError>,
    pub termination: &'a Termination,
    /// The limits the sandbox ran with (from the Pod's request annotation).
    pub limits: Option<&'a StageLimits>,
    pub compile_limits: Option<&'a StageLimits>,
    pub expected_output: Option<&'a str>,
    /// How stdout is compared with `expectedOutput` (`spec.checker`; `None`: the default).
    pub checker: Option<&'a rce_api::Checker>,
    /// The request's test cases (their limits, for the messages).
    pub cases: &'a [rce_api::protocol::TestRun],
    /// The Execution asked for stderr in stdout (`spec.redirectStderrToStdout`): no stderr.
    pub redirect: bool,
    /// Cap on each text field stored in the status, in stored (JSON-escaped) bytes.
    pub cap: usize,
    /// The last lines of the log, for the message when there is no result.
    pub log_tail: &'a str,
}

/// One output in full, as it is served: its exact bytes, text when they are UTF-8 (a
/// character cut in half by the output cap dropped), else bytes served as base64.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    pub bytes: Vec<u8>,
    pub encoding: FileEncoding,
}

impl Stream {
    /// The stream of captured `bytes` (`truncated`: the output cap cut them).
    pub fn of(bytes: &[u8], truncated: bool) -> Stream {
        match std::str::from_utf8(bytes) {
            Ok(_) => Stream { bytes: bytes.to_vec(), encoding: FileEncoding::Utf8 },
            // A character cut in half at the cap is not part of the output.
            Err(e) if truncated && e.error_len().is_none() => {
                Stream { bytes: bytes[..e.valid_up_to()].to_vec(), encoding: FileEncoding::Utf8 }
            }
            Err(_) => Stream { bytes: bytes.to_vec(), encoding: FileEncoding::Base64 },
        }
    }

    /// The text, when the stream is text.
    pub fn text(&self) -> Option<&str> {
        match self.encoding {
            FileEncoding::Utf8 => std::str::from_utf8(&self.bytes).ok(),
            FileEncoding::Base64 => None,
        }
    }

    /// What the status holds: at most [`STATUS_EXCERPT_BYTES`] of the bytes and at most
    /// `cap` bytes once stored (JSON-escaped text, or base64); says whether it is less than
    /// the whole stream.
    pub fn excerpt(&self, cap: usize) -> (String, bool) {
        match self.text() {
            Some(text) => {
                let (head, _) = cap_text(text, STATUS_EXCERPT_BYTES);
                let (head, _) = cap_stored(&head, cap);
                let cut = head.len() < self.bytes.len();
                (head, cut)
            }
            None => {
                let keep = self.bytes.len().min(STATUS_EXCERPT_BYTES).min(cap / 4 * 3);
                (
                    base64::engine::general_purpose::STANDARD.encode(&self.bytes[..keep]),
                    keep < self.bytes.len(),
                )
            }
        }
    }
}

/// Every output of a result in full: stdout, stderr (none when redirected into stdout) and
/// the compile output (the compiler's stdout, which holds its stderr in order; an older
/// runner's separate stderr appended).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outputs {
    pub stdout: Option<Stream>,
    pub stderr: Option<Stream>,
    pub compile_output: Option<Stream>,
}

impl Outputs {
    pub fn of(result: &RunResult, redirect: bool) -> Outputs {
        let compile_output = result.compile.as_ref().map(|c| {
            let out = Stream::of(&c.stdout, c.stdout_truncated);
            let err = Stream::of(&c.stderr, c.stderr_truncated);
            if err.bytes.is_empty() {
                return out;
            }
            let mut bytes = out.bytes;
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(&err.bytes);
            Stream::of(&bytes, false)
        });
        let run = result.run.as_ref().filter(|_| result.outcome == Outcome::Ran);
        Outputs {
            stdout: run.map(|r| Stream::of(&r.stdout, r.stdout_truncated)),
            stderr: run.filter(|_| !redirect).map(|r| Stream::of(&r.stderr, r.stderr_truncated)),
            compile_output,
        }
    }

    /// The outputs as stored beside the status: stdout ++ stderr ++ compile output, and
    /// their lengths (the ConfigMap names are the caller's).
    pub fn stored(&self) -> (Vec<u8>, StoredOutput) {
        let len = |s: &Option<Stream>| s.as_ref().map_or(0, |s| s.bytes.len());
        let mut all = Vec::with_capacity(len(&self.stdout) + len(&self.stderr) + len(&self.compile_output));
        for s in [&self.stdout, &self.stderr, &self.compile_output].into_iter().flatten() {
            all.extend_from_slice(&s.bytes);
        }
        let stored = StoredOutput {
            config_maps: Vec::new(),
            stdout_bytes: len(&self.stdout) as u64,
            stderr_bytes: len(&self.stderr) as u64,
            compile_output_bytes: len(&self.compile_output) as u64,
        };
        (all, stored)
    }
}

/// A finished sandbox's status and, when the status holds only an excerpt of some output,
/// every output in full (to be stored beside it before the status is written).
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub status: ExecutionStatus,
    pub full: Option<Outputs>,
}

/// Set an output field, its encoding and whether the excerpt is less than all of it.
fn put(stream: &Stream, cap: usize, text: &mut Option<String>, encoding: &mut FileEncoding) -> bool {
    let (excerpt, cut) = stream.excerpt(cap);
    *text = Some(excerpt);
    *encoding = stream.encoding;
    cut
}

fn figures(s: &StageResult) -> StageFigures {
    StageFigures {
        exit_code: s.exit_code,
        signal: signal_of(s),
        time_ms: s.time_ms,
        wall_time_ms: s.wall_time_ms,
        memory_kib: s.memory_kib,
    }
}

/// The signal's name, from its number (the one table).
fn signal_of(s: &StageResult) -> Option<String> {
    s.signal.map(|n| rce_api::Signal(n).name().into_owned())
}

/// The result part of the status (phase, verdict, outputs, measurements, message).
pub fn finish(f: &Finished<'_>) -> ExecutionStatus {
    finish_all(f).status
}

/// [`finish`], with the full outputs when the status cannot hold all of them.
pub fn finish_all(f: &Finished<'_>) -> Finish {
    let mut status = decide_status(f);
    let result = match f.result {
        // The runner failed: nothing it captured is an output.
        Ok(r) if r.outcome != Outcome::InternalError => r,
        _ => return Finish { status, full: None },
    };
    let outputs = Outputs::of(result, f.redirect);
    let mut cut = false;
    if let Some(s) = &outputs.stdout {
        cut |= put(s, f.cap, &mut status.stdout, &mut status.stdout_encoding);
    }
    if let Some(s) = &outputs.stderr {
        cut |= put(s, f.cap, &mut status.stderr, &mut status.stderr_encoding);
    }
    if let Some(s) = &outputs.compile_output {
        // After a run, an empty compile output is left out.
        if !s.bytes.is_empty() || result.outcome == Outcome::CompileError {
            cut |= put(s, f.cap, &mut status.compile_output, &mut status.compile_output_encoding);
        }
    }
    if let Some(c) = &result.compile {
        status.compile = Some(figures(c));
    }
    if let Some(r) = result.run.as_ref().filter(|_| result.outcome == Outcome::Ran) {
        status.arrival = r.arrival.clone();
    }
    status.runs = (result.runs > 0).then_some(result.runs);
    Finish { status, full: cut.then_some(outputs) }
}

/// Phase, verdict, measurements, message and the truncation flags (the outputs are
/// [`finish_all`]'s).
fn decide_status(f: &Finished<'_>) -> ExecutionStatus {
    let t = f.termination;
    let mut st = ExecutionStatus::default();
    let result = match f.result {
        Ok(r) => r,
        Err(why) => return without_result(f, why),
    };
    match result.outcome {
        Outcome::InternalError => {
            st.phase = Some(Phase::Failed);
            st.verdict = Some(Verdict::InternalError);
            st.message =
                Some(format!("the runner failed: {}", result.message.as_deref().unwrap_or("no message")));
            if let Some(stage) = result.run.as_ref().or(result.compile.as_ref()) {
                measurements(&mut st, stage);
            }
        }
        Outcome::CompileError => {
            st.phase = Some(Phase::Completed);
            st.verdict = Some(Verdict::CompilationError);
            let c = result.compile.clone().unwrap_or_default();
            st.compile_output_truncated = c.stdout_truncated || c.stderr_truncated;
            measurements(&mut st, &c);
            st.exit_code = c.exit_code;
            st.signal = signal_of(&c);
            let limit = f.compile_limits.or(f.limits);
            st.message = Some(match c.limit {
                Some(hit) => format!("compilation stopped: {}", limit_msg(hit, limit)),
                None => match (c.exit_code, &st.signal) {
                    (_, Some(sig)) => format!("compilation failed (killed by {sig})"),
                    (Some(code), None) => format!("compilation failed (exit code {code})"),
                    (None, None) => "compilation failed".into(),
                },
            });
        }
        Outcome::Ran => {
            let r = result.run.clone().unwrap_or_default();
            st.phase = Some(Phase::Completed);
            measurements(&mut st, &r);
            // expectedOutput is compared with the whole stdout (lossy when it is not text).
            let stdout =
                String::from_utf8_lossy(&Stream::of(&r.stdout, r.stdout_truncated).bytes).into_owned();
            st.stdout_truncated = r.stdout_truncated;
            st.stderr_truncated = r.stderr_truncated && !f.redirect;
            if let Some(c) = &result.compile {
                st.compile_output_truncated = c.stdout_truncated || c.stderr_truncated;
            }
            let checker = f.checker.cloned().unwrap_or_default();
            let wrong =
                f.expected_output.is_some_and(|exp| !checker.matches(&stdout, exp) || r.stdout_truncated);
            let v = run_verdict(&r, f.limits, t.oom_killed(), wrong);
            (st.exit_code, st.signal, st.verdict, st.message) =
                (v.exit_code, v.signal, Some(v.verdict), v.message);
            if !result.tests.is_empty() {
                judge_tests(&mut st, result, f);
            }
        }
    }
    st
}

/// What a run stage's result says: the verdict, its message, and the program's exit code and
/// signal as reported.
struct RunVerdict {
    verdict: Verdict,
    message: Option<String>,
    exit_code: Option<i32>,
    signal: Option<String>,
}

/// The verdict of a run stage `r` under `limits`; `oom`: the kubelet saw the sandbox
/// OOM-killed; `wrong`: its stdout is not the expected output.
fn run_verdict(r: &StageResult, limits: Option<&StageLimits>, oom: bool, wrong: bool) -> RunVerdict {
    let mut st = RunVerdict {
        verdict: Verdict::Accepted,
        message: None,
        exit_code: r.exit_code,
        signal: signal_of(r),
    };
    let (verdict, message) = match r.limit {
        Some(LimitHit::CpuTime | LimitHit::WallTime) => {
            (Verdict::TimeLimitExceeded, Some(limit_msg(r.limit.unwrap_or(LimitHit::WallTime), limits)))
        }
        Some(LimitHit::Memory) => (Verdict::MemoryLimitExceeded, Some(mem_msg(limits))),
        Some(LimitHit::Output) => (Verdict::OutputLimitExceeded, Some(limit_msg(LimitHit::Output, limits))),
        Some(LimitHit::FileSize) => {
            st.signal = Some("SIGXFSZ".into());
            (Verdict::RuntimeError, Some(limit_msg(LimitHit::FileSize, limits)))
        }
        Some(LimitHit::Processes) => {
            // The runner stopped it; no signal or exit code of the program's own.
            st.signal = None;
            st.exit_code = None;
            (Verdict::RuntimeError, Some(limit_msg(LimitHit::Processes, limits)))
        }
        None if oom && !matches!(r.exit_code, Some(0)) => (
            Verdict::MemoryLimitExceeded,
            Some(format!("{}; the sandbox was killed by the out-of-memory killer", mem_msg(limits))),
        ),
        None => match (&st.signal, r.exit_code) {
            (Some(sig), _) => (Verdict::RuntimeError, Some(format!("the program was killed by {sig}"))),
            (None, Some(0)) | (None, None) => {
                if wrong {
                    (Verdict::WrongAnswer, Some("the output differs from the expected output".into()))
                } else {
                    (Verdict::Accepted, None)
                }
            }
            (None, Some(code)) => {
                (Verdict::RuntimeError, Some(format!("the program exited with code {code}")))
            }
        },
    };
    st.verdict = verdict;
    st.message = message;
    st
}

/// The test cases' statuses, and the Execution's verdict from them: that of the first case
/// that is not Accepted (its message names the case), else Accepted; the most time and
/// memory of any case; `passed` and `total`. (Exit code, signal and outputs are the deciding
/// case's: the runner's `run`.)
fn judge_tests(st: &mut ExecutionStatus, result: &RunResult, f: &Finished<'_>) {
    let mut deciding: Option<(String, Verdict, Option<String>)> = None;
    let (mut time, mut wall, mut mem, mut passed) = (0u64, 0u64, 0u64, 0u32);
    st.tests = result
        .tests
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let Some(r) = &t.run else {
                return TestCaseStatus { name: t.name.clone(), skipped: true, ..Default::default() };
            };
            let limits = f.cases.get(i).and_then(|c| c.limits.as_ref()).or(f.limits);
            let v = run_verdict(r, limits, false, t.matched == Some(false));
            if v.verdict == Verdict::Accepted {
                passed += 1;
            } else if deciding.is_none() {
                deciding = Some((t.name.clone(), v.verdict, v.message.clone()));
            }
            (time, wall, mem) = (time.max(r.time_ms), wall.max(r.wall_time_ms), mem.max(r.memory_kib));
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            TestCaseStatus {
                name: t.name.clone(),
                verdict: Some(v.verdict),
                skipped: false,
                exit_code: v.exit_code,
                signal: v.signal,
                time_ms: Some(r.time_ms),
                wall_time_ms: Some(r.wall_time_ms),
                memory_kib: Some(r.memory_kib),
                stdout: Some(text(&r.stdout)),
                stderr: (!f.redirect).then(|| text(&r.stderr)),
                stdout_truncated: r.stdout_truncated,
                stderr_truncated: r.stderr_truncated && !f.redirect,
                message: v.message,
            }
        })
        .collect();
    (st.time_ms, st.wall_time_ms, st.memory_kib) = (Some(time), Some(wall), Some(mem));
    st.passed = Some(passed);
    st.total = Some(st.tests.len() as u32);
    match deciding {
        Some((name, verdict, message)) => {
            st.verdict = Some(verdict);
            st.message = Some(match message {
                Some(m) => format!("test {name}: {m}"),
                None => format!("test {name}: {}", verdict.as_str()),
            });
        }
        None => {
            st.verdict = Some(Verdict::Accepted);
            st.message = None;
        }
    }
}

/// No result to trust: the kubelet's own signals still say what happened (they come from the
/// node, not from anything the program can write); otherwise the system failed.
fn without_result(f: &Finished<'_>, why: &ResultError) -> ExecutionStatus {
    let t = f.termination;
    let mut st = ExecutionStatus::default();
    if t.oom_killed() || t.deadline_exceeded() {
        st.phase = Some(Phase::Completed);
        if t.oom_killed() {
            st.verdict = Some(Verdict::MemoryLimitExceeded);
            st.message =
                Some(format!("{}; the sandbox was killed by the out-of-memory killer", mem_msg(f.limits)));
        } else {
            st.verdict = Some(Verdict::TimeLimitExceeded);
            st.message = Some("the sandbox exceeded its deadline and was stopped".to_string());
        }
        return st;
    }
    st.phase = Some(Phase::Failed);
    st.verdict = Some(Verdict::InternalError);
    let mut m = match why {
        ResultError::Missing => format!("the sandbox ended without a result ({})", t.describe()),
        other => format!(
            "the sandbox's result was refused: {other} ({}); nothing from it was taken as a verdict",
            t.describe()
        ),
    };
    let tail = f.log_tail.trim();
    if !tail.is_empty() {
        m.push_str(": ");
        m.push_str(&cap_stored(tail, 512).0);
    }
    st.message = Some(m);
    st
}

fn measurements(st: &mut ExecutionStatus, s: &StageResult) {
    st.time_ms = Some(s.time_ms);
    st.wall_time_ms = Some(s.wall_time_ms);
    st.memory_kib = Some(s.memory_kib);
}

fn mem_msg(l: Option<&StageLimits>) -> String {
    match l {
        Some(l) => format!("memory limit of {} MiB exceeded", l.memory_kib / 1024),
        None => "memory limit exceeded".into(),
    }
}

fn limit_msg(hit: LimitHit, l: Option<&StageLimits>) -> String {
    match (hit, l) {
        (LimitHit::CpuTime, Some(l)) => format!("CPU time limit of {} ms exceeded", l.cpu_time_ms),
        (LimitHit::WallTime, Some(l)) => format!("wall-clock time limit of {} ms exceeded", l.wall_time_ms),
        (LimitHit::Memory, l) => mem_msg(l),
        (LimitHit::Output, Some(l)) => {
            format!("output limit of {} bytes exceeded; the output is truncated", l.output_bytes)
        }
        (LimitHit::FileSize, Some(l)) => {
            format!("file size limit of {} KiB exceeded (SIGXFSZ)", l.file_size_kib)
        }
        (LimitHit::Processes, Some(l)) => format!(
            "process limit of {} reached: the program had more processes and threads at once than that, and was stopped",
            l.processes
        ),
        (LimitHit::Processes, None) => "process limit reached: the program was stopped".into(),
        (LimitHit::CpuTime, None) => "CPU time limit exceeded".into(),
        (LimitHit::WallTime, None) => "wall-clock time limit exceeded".into(),
        (LimitHit::Output, None) => "output limit exceeded; the output is truncated".into(),
        (LimitHit::FileSize, None) => "file size limit exceeded (SIGXFSZ)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn limits() -> StageLimits {
        StageLimits {
            wall_time_ms: 5000,
            cpu_time_ms: 3000,
            memory_kib: 128 * 1024,
            processes: 64,
            output_bytes: 100,
            file_size_kib: 1024,
            stack_kib: 8 * 1024,
        }
    }

    fn ran(run: StageResult) -> RunResult {
        RunResult {
            tests: vec![],
            run_id: String::new(),
            outcome: Outcome::Ran,
            compile: None,
            run: Some(run),
            message: None,
            runs: 1,
        }
    }

    fn done(result: Option<&RunResult>, t: &Termination, expected: Option<&str>) -> ExecutionStatus {
        let l = limits();
        finish(&Finished {
            checker: None,
            cases: &[],
            result: result.ok_or(&ResultError::Missing),
            termination: t,
            limits: Some(&l),
            compile_limits: None,
            expected_output: expected,
            redirect: false,
            cap: 10,
            log_tail: "",
        })
    }

    fn exited(code: i32) -> Termination {
        Termination {
            exit_code: Some(0),
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            ..Default::default()
        }
    }

    fn stage(exit: Option<i32>, signal: Option<i32>, limit: Option<LimitHit>) -> StageResult {
        StageResult {
            exit_code: exit,
            signal,
            signal_name: None,
            stdout: b"hello\n".to_vec(),
            stderr: b"warn\n".to_vec(),
            time_ms: 12,
            wall_time_ms: 30,
            memory_kib: 9000,
            limit,
            ..Default::default()
        }
    }

    #[test]
    fn exit_zero_is_accepted_with_outputs_and_measurements() {
        let r = ran(stage(Some(0), None, None));
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.phase, s.verdict), (Some(Phase::Completed), Some(Verdict::Accepted)));
        assert_eq!(s.stdout.as_deref(), Some("hello\n"));
        assert_eq!(s.stderr.as_deref(), Some("warn\n"));
        assert_eq!((s.time_ms, s.wall_time_ms, s.memory_kib), (Some(12), Some(30), Some(9000)));
        assert_eq!(s.exit_code, Some(0));
        assert_eq!(s.message, None);
    }

    #[test]
    fn expected_output_gives_accepted_or_wrong_answer() {
        let r = ran(stage(Some(0), None, None));
        assert_eq!(done(Some(&r), &exited(0), Some("hello  \n\n")).verdict, Some(Verdict::Accepted));
        let s = done(Some(&r), &exited(0), Some("bye"));
        assert_eq!(s.verdict, Some(Verdict::WrongAnswer));
        assert!(s.message.unwrap().contains("differs"));
    }

    #[test]
    fn non_zero_exit_and_signals_are_runtime_errors() {
        let r = ran(stage(Some(3), None, None));
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.verdict, s.exit_code), (Some(Verdict::RuntimeError), Some(3)));
        assert_eq!(s.message.as_deref(), Some("the program exited with code 3"));
        let r = ran(stage(None, Some(11), None));
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.verdict, s.signal.as_deref()), (Some(Verdict::RuntimeError), Some("SIGSEGV")));
        let mut st = stage(None, Some(8), None);
        st.signal_name = Some("SIGFPE".into());
        assert_eq!(done(Some(&ran(st)), &exited(0), None).signal.as_deref(), Some("SIGFPE"));
    }

    #[test]
    fn limits_give_their_verdicts() {
        let cases = [
            (LimitHit::CpuTime, Verdict::TimeLimitExceeded, "CPU time limit of 3000 ms exceeded"),
            (LimitHit::WallTime, Verdict::TimeLimitExceeded, "wall-clock time limit of 5000 ms exceeded"),
            (LimitHit::Memory, Verdict::MemoryLimitExceeded, "memory limit of 128 MiB exceeded"),
            (
                LimitHit::Output,
                Verdict::OutputLimitExceeded,
                "output limit of 100 bytes exceeded; the output is truncated",
            ),
            (LimitHit::FileSize, Verdict::RuntimeError, "file size limit of 1024 KiB exceeded (SIGXFSZ)"),
        ];
        for (hit, verdict, msg) in cases {
            let r = ran(stage(None, Some(9), Some(hit)));
            let s = done(Some(&r), &exited(0), None);
            assert_eq!(s.verdict, Some(verdict), "{hit:?}");
            assert_eq!(s.phase, Some(Phase::Completed));
            assert_eq!(s.message.as_deref(), Some(msg));
            assert_eq!(s.time_ms, Some(12), "measurements are kept for {hit:?}");
        }
        let r = ran(stage(None, Some(25), Some(LimitHit::FileSize)));
        assert_eq!(done(Some(&r), &exited(0), None).signal.as_deref(), Some("SIGXFSZ"));
    }

    #[test]
    fn output_is_capped_for_the_status_and_flags_are_kept() {
        let mut st = stage(Some(0), None, Some(LimitHit::Output));
        st.stdout = "ééééééé".into(); // 14 bytes, cap is 10
        st.stderr_truncated = true;
        let s = done(Some(&ran(st)), &exited(0), None);
        assert_eq!(s.stdout.as_deref(), Some("ééééé"));
        // The flags say what the program lost at the output limit; the excerpt being short is
        // what `output` (the stored full output) is for.
        assert!(!s.stdout_truncated && s.stderr_truncated);
        assert_eq!(s.verdict, Some(Verdict::OutputLimitExceeded));
    }

    #[test]
    fn compile_errors_keep_the_compiler_output() {
        let r = RunResult {
            tests: vec![],
            run_id: String::new(),
            outcome: Outcome::CompileError,
            compile: Some(StageResult {
                exit_code: Some(1),
                stdout: vec![],
                stderr: b"main.c:1: error".to_vec(),
                time_ms: 40,
                ..Default::default()
            }),
            run: None,
            message: None,
            runs: 0,
        };
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.phase, s.verdict), (Some(Phase::Completed), Some(Verdict::CompilationError)));
        assert_eq!(s.compile_output.as_deref(), Some("main.c:1: "));
        assert!(!s.compile_output_truncated, "the compiler's output was not cut, only its excerpt");
        assert_eq!(s.message.as_deref(), Some("compilation failed (exit code 1)"));
        assert_eq!(s.time_ms, Some(40));
        assert!(s.stdout.is_none());
    }

    #[test]
    fn kubelet_signals_without_a_result() {
        let oom =
            Termination { exit_code: Some(137), reason: Some("OOMKilled".into()), ..Default::default() };
        let s = done(None, &oom, None);
        assert_eq!((s.phase, s.verdict), (Some(Phase::Completed), Some(Verdict::MemoryLimitExceeded)));
        assert!(s.message.unwrap().contains("out-of-memory killer"));
        let dl = Termination { pod_reason: Some("DeadlineExceeded".into()), ..Default::default() };
        assert_eq!(done(None, &dl, None).verdict, Some(Verdict::TimeLimitExceeded));
        let err = Termination { exit_code: Some(127), reason: Some("Error".into()), ..Default::default() };
        let l = limits();
        let s = finish(&Finished {
            checker: None,
            cases: &[],
            result: Err(&ResultError::Missing),
            termination: &err,
            limits: Some(&l),
            compile_limits: None,
            expected_output: None,
            redirect: false,
            cap: 10,
            log_tail: "exec: not found\n",
        });
        assert_eq!((s.phase, s.verdict), (Some(Phase::Failed), Some(Verdict::InternalError)));
        assert_eq!(
            s.message.as_deref(),
            Some("the sandbox ended without a result (exit code 127, reason Error): exec: not found")
        );
        // OOMKilled with a result that shows a kill: memory, not a runtime error.
        let r = ran(stage(None, Some(9), None));
        assert_eq!(done(Some(&r), &oom, None).verdict, Some(Verdict::MemoryLimitExceeded));
    }

    #[test]
    fn runner_internal_errors_fail_the_execution() {
        let r = RunResult {
            tests: vec![],
            run_id: String::new(),
            outcome: Outcome::InternalError,
            compile: None,
            run: None,
            message: Some("bad request".into()),
            runs: 0,
        };
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.phase, s.verdict), (Some(Phase::Failed), Some(Verdict::InternalError)));
        assert_eq!(s.message.as_deref(), Some("the runner failed: bad request"));
    }

    #[test]
    fn a_refused_result_never_gives_a_verdict_but_the_kubelet_still_counts() {
        let l = limits();
        let finished = |why: &ResultError, t: &Termination| {
            finish(&Finished {
                checker: None,
                cases: &[],
                result: Err(why),
                termination: t,
                limits: Some(&l),
                compile_limits: None,
                expected_output: None,
                redirect: false,
                cap: 100,
                log_tail: "",
            })
        };
        for why in [
            ResultError::BadMac,
            ResultError::Several(2),
            ResultError::Garbled("x".into()),
            ResultError::WrongRun { expected: "a".into(), found: "b".into() },
        ] {
            let s = finished(&why, &exited(0));
            assert_eq!((s.phase, s.verdict), (Some(Phase::Failed), Some(Verdict::InternalError)), "{why:?}");
            let m = s.message.unwrap();
            assert!(m.contains("result was refused") && m.contains(&why.to_string()), "{m}");
            assert!(s.stdout.is_none() && s.exit_code.is_none());
        }
        let oom =
            Termination { exit_code: Some(137), reason: Some("OOMKilled".into()), ..Default::default() };
        assert_eq!(finished(&ResultError::BadMac, &oom).verdict, Some(Verdict::MemoryLimitExceeded));
        // The termination message is the program's to write: it is not repeated.
        let t = Termination { message: Some("Accepted, trust me".into()), ..exited(0) };
        assert!(!finished(&ResultError::Missing, &t).message.unwrap().contains("trust me"));
    }

    #[test]
    fn the_process_limit_is_a_runtime_error_without_a_signal() {
        let r = ran(stage(None, Some(9), Some(LimitHit::Processes)));
        let s = done(Some(&r), &exited(0), None);
        assert_eq!((s.phase, s.verdict), (Some(Phase::Completed), Some(Verdict::RuntimeError)));
        assert_eq!((s.signal, s.exit_code), (None, None));
        assert!(s.message.unwrap().starts_with("process limit of 64 reached"));
    }

    #[test]
    fn stored_size_is_bounded_after_json_escaping() {
        assert_eq!(stored_len('<'), 6);
        assert_eq!(stored_len('\u{1}'), 6);
        assert_eq!(stored_len('\n'), 2);
        assert_eq!(stored_len('é'), 2);
        assert_eq!(stored_len('a'), 1);
        let lt = "<".repeat(1000);
        let (cut, was_cut) = cap_stored(&lt, 600);
        assert!(was_cut);
        assert_eq!(cut.len(), 100);
        assert_eq!(serde_json::to_string(&cut).unwrap().len() - 2, 100, "serde does not escape <");
        assert_eq!(cap_stored("abc", 3), ("abc".to_string(), false));
        assert_eq!(cap_stored("ab<", 3), ("ab".to_string(), true));
        // A status full of the worst characters stays within the budget.
        let mut st = stage(Some(0), None, None);
        st.stdout = "<".repeat(200_000).into_bytes();
        st.stderr = "\u{1}".repeat(200_000).into_bytes();
        let l = limits();
        let s = finish(&Finished {
            checker: None,
            cases: &[],
            result: Ok(&ran(st)),
            termination: &exited(0),
            limits: Some(&l),
            compile_limits: None,
            expected_output: None,
            redirect: false,
            cap: 131_072,
            log_tail: "",
        });
        let stored: usize = [s.stdout.as_deref(), s.stderr.as_deref()]
            .into_iter()
            .flatten()
            .map(|t| t.chars().map(stored_len).sum::<usize>())
            .sum();
        assert!(stored <= 2 * 131_072, "{stored}");
        assert!(!s.stdout_truncated && !s.stderr_truncated);
    }

    #[test]
    fn outputs_arrive_as_bytes_and_become_text() {
        let mut st = stage(Some(0), None, None);
        st.stdout = b"\xfe\xff\x00A\n".to_vec();
        let l = limits();
        let s = finish(&Finished {
            checker: None,
            cases: &[],
            result: Ok(&ran(st)),
            termination: &exited(0),
            limits: Some(&l),
            compile_limits: None,
            expected_output: None,
            redirect: false,
            cap: 100,
            log_tail: "",
        });
        // Not UTF-8: the exact bytes, as base64.
        assert_eq!(s.stdout.as_deref(), Some("/v8AQQo="));
        assert_eq!(s.stdout_encoding, FileEncoding::Base64);
        assert_eq!(s.stderr_encoding, FileEncoding::Utf8);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["stdoutEncoding"], "base64");
        assert!(json.get("stderrEncoding").is_none(), "utf8 is the default, left out");
    }

    fn finished_all(r: &RunResult, redirect: bool) -> Finish {
        let l = limits();
        finish_all(&Finished {
            checker: None,
            cases: &[],
            result: Ok(r),
            termination: &exited(0),
            limits: Some(&l),
            compile_limits: None,
            expected_output: None,
            redirect,
            cap: 128 * 1024,
            log_tail: "",
        })
    }

    #[test]
    fn streams_are_text_when_utf8_else_exact_bytes() {
        assert_eq!(Stream::of("é".as_bytes(), false).encoding, FileEncoding::Utf8);
        // A character cut in half by the output cap is dropped, and the rest is text.
        let cut = Stream::of(&"aé".as_bytes()[..2], true);
        assert_eq!((cut.bytes.as_slice(), cut.encoding), (&b"a"[..], FileEncoding::Utf8));
        // The same bytes not cut by the cap are not UTF-8.
        assert_eq!(Stream::of(&"aé".as_bytes()[..2], false).encoding, FileEncoding::Base64);
        let bin = Stream::of(b"\xfe\xff\x00A\n", false);
        assert_eq!(bin.bytes, b"\xfe\xff\x00A\n");
        assert_eq!(bin.excerpt(100), ("/v8AQQo=".to_string(), false));
        // The base64 excerpt keeps within the stored cap too.
        let big = Stream::of(&[0xff; 1000], false);
        let (b64, cut) = big.excerpt(400);
        assert!(cut && b64.len() <= 400, "{}", b64.len());
    }

    #[test]
    fn large_outputs_leave_an_excerpt_and_come_back_in_full() {
        let mut st = stage(Some(0), None, None);
        st.stdout = "x".repeat(STATUS_EXCERPT_BYTES + 10).into_bytes();
        st.stderr = b"\xff tail".to_vec();
        st.arrival = vec![5, -2, 100];
        let f = finished_all(&ran(st.clone()), false);
        assert_eq!(f.status.stdout.as_deref().map(str::len), Some(STATUS_EXCERPT_BYTES));
        assert!(!f.status.stdout_truncated, "the program lost nothing");
        assert_eq!(f.status.stderr.as_deref(), Some("/yB0YWls"));
        assert_eq!(f.status.stderr_encoding, FileEncoding::Base64);
        assert_eq!(f.status.arrival, [5, -2, 100]);
        assert_eq!(f.status.runs, Some(1));
        let full = f.full.expect("the full outputs");
        let (bytes, stored) = full.stored();
        assert_eq!(stored.stdout_bytes as usize, STATUS_EXCERPT_BYTES + 10);
        assert_eq!((stored.stderr_bytes, stored.compile_output_bytes), (6, 0));
        assert_eq!(&bytes[..st.stdout.len()], st.stdout.as_slice());
        assert_eq!(&bytes[st.stdout.len()..], b"\xff tail");
        // Small outputs: everything is in the status.
        assert!(finished_all(&ran(stage(Some(0), None, None)), false).full.is_none());
    }

    #[test]
    fn redirected_runs_have_no_stderr() {
        let mut st = stage(Some(0), None, None);
        st.stderr = vec![];
        st.stderr_truncated = true;
        let f = finished_all(&ran(st), true);
        assert_eq!(f.status.stdout.as_deref(), Some("hello\n"));
        assert_eq!(f.status.stderr, None);
        assert!(!f.status.stderr_truncated);
        let (_, stored) =
            finished_all(&ran(stage(Some(0), None, None)), true).full.unwrap_or_default().stored();
        assert_eq!(stored.stderr_bytes, 0);
    }

    #[test]
    fn compile_output_and_figures_come_from_the_compile_stage() {
        let compile = StageResult {
            exit_code: Some(0),
            stdout: b"main.c:1: warning: x\n".to_vec(),
            time_ms: 120,
            wall_time_ms: 300,
            memory_kib: 20_000,
            ..Default::default()
        };
        let mut r = ran(stage(Some(0), None, None));
        r.compile = Some(compile.clone());
        r.runs = 3;
        let f = finished_all(&r, false);
        assert_eq!(f.status.compile_output.as_deref(), Some("main.c:1: warning: x\n"));
        assert_eq!(
            f.status.compile,
            Some(StageFigures {
                exit_code: Some(0),
                signal: None,
                time_ms: 120,
                wall_time_ms: 300,
                memory_kib: 20_000
            })
        );
        assert_eq!(f.status.runs, Some(3));
        // An older runner's separate compiler stderr is appended.
        let mut old = compile.clone();
        old.stdout = b"out".to_vec();
        old.stderr = b"err\n".to_vec();
        r.compile = Some(old);
        assert_eq!(finished_all(&r, false).status.compile_output.as_deref(), Some("out\nerr\n"));
        // A compile error: its output (even empty), its figures, no run count.
        let ce = RunResult {
            tests: vec![],
            run_id: String::new(),
            outcome: Outcome::CompileError,
            compile: Some(StageResult { exit_code: Some(1), signal: Some(9), ..Default::default() }),
            run: None,
            message: None,
            runs: 0,
        };
        let f = finished_all(&ce, false);
        assert_eq!(f.status.compile_output.as_deref(), Some(""));
        assert_eq!(f.status.compile.as_ref().and_then(|c| c.signal.as_deref()), Some("SIGKILL"));
        assert_eq!((f.status.runs, f.status.stdout.as_ref()), (None, None));
        // No compile stage: no figures, and no empty compile output.
        let f = finished_all(&ran(stage(Some(0), None, None)), false);
        assert_eq!((f.status.compile, f.status.compile_output), (None, None));
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn pod_views() {
        let p = pod(
            "{metadata: {name: p}, status: {phase: Pending, conditions: [{type: PodScheduled, status: 'False', reason: Unschedulable, message: 'Insufficient memory'}]}}",
        );
        assert_eq!(
            view(&p),
            PodView::Starting { problem: None, waiting: Some("Unschedulable: Insufficient memory".into()) }
        );
        let p = pod(
            "{metadata: {name: p}, status: {phase: Pending, containerStatuses: [{name: runner, image: x, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ErrImageNeverPull, message: 'image not present'}}}]}}",
        );
        assert_eq!(
            view(&p),
            PodView::Starting {
                problem: Some(("ErrImageNeverPull".into(), "image not present".into())),
                waiting: None
            }
        );
        let p = pod(
            "{metadata: {name: p}, status: {phase: Running, containerStatuses: [{name: runner, image: x, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}}",
        );
        assert_eq!(view(&p), PodView::Running);
        let p = pod(
            "{metadata: {name: p}, status: {phase: Failed, reason: DeadlineExceeded, containerStatuses: [{name: runner, image: x, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 137, reason: OOMKilled}}}]}}",
        );
        let PodView::Terminated(t) = view(&p) else { panic!("terminated") };
        assert!(t.oom_killed() && t.deadline_exceeded());
        assert_eq!(t.exit_code, Some(137));
        let p = pod(
            "{metadata: {name: p}, status: {phase: Failed, reason: DeadlineExceeded, message: 'Pod was active on the node longer than the specified deadline'}}",
        );
        let PodView::Terminated(t) = view(&p) else { panic!("terminated") };
        assert!(t.deadline_exceeded() && t.exit_code.is_none());
        let p =
            pod("{metadata: {name: p}, status: {phase: Failed, reason: Evicted, message: 'low on memory'}}");
        assert_eq!(view(&p), PodView::Evicted { message: "low on memory".into() });
        let p =
            pod("{metadata: {name: p, deletionTimestamp: '2026-01-01T00:00:00Z'}, status: {phase: Running}}");
        assert_eq!(view(&p), PodView::Deleting);
    }
}
