//! Judge0 CE 1.13.1's view of an Execution: its statuses and the submission document, pure,
//! so that the shim (which serves it) and the operator (which PUTs it to a `callback_url`)
//! render the same thing.
//!
//! What upstream does, and so what this renders (judge0/judge0 v1.13.1,
//! `app/jobs/isolate_job.rb`, `app/serializers/submission_serializer.rb`):
//! - the status comes from isolate's verdict: `TO` → 5, `SG` → by signal (11 → 7 SIGSEGV,
//!   25 → 8 SIGXFSZ, 8 → 9 SIGFPE, 6 → 10 SIGABRT, any other → 12), `RE` → 11 NZEC, `XX` →
//!   13; else 3 or 4 by `expected_output`. rce's verdicts map onto what isolate would have
//!   reported for the same program: a memory overrun is a kill by SIGKILL (the cgroup's OOM
//!   killer) → 12 with signal 9, unless the program exited with an error of its own; output
//!   over `max_file_size` (rce's output limit, set from it) is SIGXFSZ → 8 with signal 25.
//! - `exit_code` is `metadata[:exitcode] || 0` (0 after a signal or a timeout), `exit_signal`
//!   the signal's number, `message` isolate's words: "Exited with error status 1",
//!   "Caught fatal signal 11", "Time limit exceeded" ("… (wall clock)").
//! - a compile error leaves `time`, `wall_time`, `memory`, `stdout`, `stderr`, `exit_code`,
//!   `exit_signal` and `message` null; a compile stopped by its time limit has
//!   `compile_output` "Compilation time limit exceeded.".
//! - empty outputs are null; times are decimal seconds as text ("0.031"), memory KB.
//! - with `base64_encoded=true`, texts are Ruby's `Base64.encode64` of the bytes (lines of 60
//!   characters, each ending in a newline), `message` too; without it, an output that is not
//!   text cannot be rendered ([`NotText`]; upstream answers 400 "some attributes for this
//!   submission cannot be converted to UTF-8, use base64_encoded=true query parameter").
//!   (Upstream refuses any byte above 0x7f there, valid UTF-8 or not; rce renders valid UTF-8.)
//! - timestamps with milliseconds, in UTC: `2026-12-01T22:04:49.123Z`.

use std::collections::BTreeMap;

use base64::{
    alphabet,
    engine::{general_purpose::STANDARD, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};
use serde_json::{json, Map, Value};

use crate::{
    limits::units::judge0 as units, Execution, ExecutionSpec, ExecutionStatus, FileEncoding, Phase,
    ResolvedLimits, Runtime, Signal, Verdict,
};

/// The Judge0 version this surface follows.
pub const VERSION: &str = "1.13.1";

/// Annotation of an Execution submitted through the Judge0 surface: the language id asked for.
pub const LANGUAGE_ID_ANNOTATION: &str = "rce.dev/judge0-language-id";
/// Annotation holding the `additional_files` zip as given (base64), so that it can be
/// answered back as upstream does.
pub const ADDITIONAL_FILES_ANNOTATION: &str = "rce.dev/judge0-additional-files";
/// Annotation holding the time the submission was received, with milliseconds (an
/// Execution's `creationTimestamp` has whole seconds only).
pub const CREATED_AT_ANNOTATION: &str = "rce.dev/judge0-created-at";
/// Annotation holding `compiler_options` as given (one string).
pub const COMPILER_OPTIONS_ANNOTATION: &str = "rce.dev/judge0-compiler-options";
/// The `memory_limit` as the submission gave it, in KB (rce enforces it in whole MiB).
pub const MEMORY_LIMIT_ANNOTATION: &str = "rce.dev/judge0-memory-limit";

/// Judge0's statuses (`app/enumerations/status.rb`).
pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

pub fn status_description(id: u32) -> &'static str {
    STATUSES.iter().find(|(i, _)| *i == id).map_or("Unknown", |(_, d)| d)
}

/// Judge0's `Status.find_runtime_error_by_status_code`.
pub fn status_of_signal(signal: i32) -> u32 {
    match signal {
        11 => 7,
        25 => 8,
        8 => 9,
        6 => 10,
        _ => 12,
    }
}

/// The status and the three isolate-derived fields of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status_id: u32,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub message: Option<String>,
}

fn killed(signal: i32) -> Outcome {
    Outcome {
        status_id: status_of_signal(signal),
        exit_code: Some(0),
        exit_signal: Some(signal),
        message: Some(format!("Caught fatal signal {signal}")),
    }
}

fn exited(code: i32) -> Outcome {
    Outcome {
        status_id: 11,
        exit_code: Some(code),
        exit_signal: None,
        message: Some(format!("Exited with error status {code}")),
    }
}

/// What Judge0 reports for an Execution with this status (see the module docs).
pub fn outcome(st: &ExecutionStatus) -> Outcome {
    let signal = st.signal.as_deref().and_then(Signal::parse).map(Signal::number);
    let plain = |status_id| Outcome { status_id, exit_code: None, exit_signal: None, message: None };
    match st.phase.unwrap_or(Phase::Pending) {
        Phase::Pending => plain(1),
        Phase::Processing => plain(2),
        Phase::Failed => Outcome { message: st.message.clone(), exit_code: st.exit_code, ..plain(13) },
        Phase::Completed => match st.verdict {
            Some(Verdict::Accepted) => Outcome { exit_code: Some(st.exit_code.unwrap_or(0)), ..plain(3) },
            Some(Verdict::WrongAnswer) => Outcome { exit_code: Some(st.exit_code.unwrap_or(0)), ..plain(4) },
            Some(Verdict::TimeLimitExceeded) => {
                let wall =
                    st.message.as_deref().is_some_and(|m| m.contains("wall-clock") || m.contains("deadline"));
                Outcome {
                    exit_code: Some(0),
                    message: Some(
                        if wall { "Time limit exceeded (wall clock)" } else { "Time limit exceeded" }
                            .to_string(),
                    ),
                    ..plain(5)
                }
            }
            Some(Verdict::CompilationError) => plain(6),
            Some(Verdict::OutputLimitExceeded) => killed(Signal::XFSZ.number()),
            Some(Verdict::MemoryLimitExceeded) => match (signal, st.exit_code) {
                (Some(n), _) => killed(n),
                (None, Some(code)) if code != 0 => exited(code),
                _ => killed(Signal::KILL.number()),
            },
            Some(Verdict::RuntimeError) => match (signal, st.exit_code) {
                (Some(n), _) => killed(n),
                (None, Some(code)) if code != 0 => exited(code),
                // Stopped by rce (the process limit) with no exit of its own: rce's words.
                _ => Outcome { exit_code: Some(0), message: st.message.clone(), ..plain(11) },
            },
            Some(Verdict::InternalError | Verdict::Cancelled) | None => {
                Outcome { message: st.message.clone(), exit_code: st.exit_code, ..plain(13) }
            }
        },
    }
}

/// The Judge0 status id of an Execution with this status.
pub fn status_id(st: &ExecutionStatus) -> u32 {
    outcome(st).status_id
}

// ------------------------------------------------------------------ encodings and times

/// Ruby's `Base64.encode64`: standard base64 in lines of 60 characters, each ending in "\n".
pub fn encode64(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for chunk in flat.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Ruby's `Base64.decode64`: lenient; characters outside the alphabet are skipped, decoding
/// stops at the padding, an incomplete last group is dropped. Never fails.
pub fn decode64(text: &str) -> Vec<u8> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let mut clean: String = text
        .chars()
        .take_while(|c| *c != '=')
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(clean.as_bytes()).unwrap_or_default()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An RFC 3339 time as milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let (date, rest) = t.split_at_checked(10)?;
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hms, rest) = rest.split_at_checked(8)?;
    let mut h = hms.split(':');
    let (hh, mi, ss) = (num(h.next()?)?, num(h.next()?)?, num(h.next()?)?);
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..n], &r[n..])
        }
        None => ("", rest),
    };
    let millis = format!("{frac:0<3}").get(..3).and_then(num).unwrap_or(0);
    let offset_min = match zone {
        "Z" | "z" | "" => 0,
        z => {
            let sign = match z.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = z[1..].split_once(':')?;
            sign * (num(oh)? * 60 + num(om)?)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, da) * 86_400 + hh * 3600 + mi * 60 + ss - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Milliseconds since the epoch as Rails renders a time: `2026-12-01T22:04:49.123Z`.
pub fn format_time(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", s / 3600, s / 60 % 60, s % 60)
}

/// An RFC 3339 time in Judge0's rendering (`None` when it does not parse).
pub fn timestamp(text: &str) -> Option<String> {
    parse_time(text).map(format_time)
}

// ------------------------------------------------------------------ outputs

/// The bytes of a submission's three outputs (`None`: none was recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub compile_output: Option<Vec<u8>>,
}

fn decoded(text: Option<&str>, encoding: FileEncoding) -> Option<Vec<u8>> {
    let text = text?;
    Some(match encoding {
        FileEncoding::Utf8 => text.as_bytes().to_vec(),
        FileEncoding::Base64 => STANDARD.decode(text.trim()).unwrap_or_else(|_| decode64(text)),
    })
}

impl Outputs {
    /// The outputs held in the status itself (the excerpts, when `status.output` is set).
    pub fn from_status(st: &ExecutionStatus) -> Outputs {
        Outputs {
            stdout: decoded(st.stdout.as_deref(), st.stdout_encoding),
            stderr: decoded(st.stderr.as_deref(), st.stderr_encoding),
            compile_output: decoded(st.compile_output.as_deref(), st.compile_output_encoding),
        }
    }

    /// The full outputs from the concatenated bytes of the output ConfigMaps
    /// ([`crate::StoredOutput`]: stdout, then stderr, then the compile output).
    pub fn from_stored(stored: &crate::StoredOutput, bytes: &[u8]) -> Option<Outputs> {
        let a = usize::try_from(stored.stdout_bytes).ok()?;
        let b = a.checked_add(usize::try_from(stored.stderr_bytes).ok()?)?;
        let c = b.checked_add(usize::try_from(stored.compile_output_bytes).ok()?)?;
        if bytes.len() != c {
            return None;
        }
        Some(Outputs {
            stdout: Some(bytes[..a].to_vec()),
            stderr: Some(bytes[a..b].to_vec()),
            compile_output: Some(bytes[b..c].to_vec()),
        })
    }
}

// ------------------------------------------------------------------ fields

macro_rules! yes_no {
    (yes) => {
        true
    };
    (no) => {
        false
    };
}

macro_rules! field_table {
    ($($variant:ident $name:literal $default:ident $spec:ident;)*) => {
        /// A field of a Judge0 submission.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Field {
            $($variant,)*
        }

        impl Field {
            /// Every field, in Judge0's order (what `fields=*` asks for).
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            /// Is it among the fields answered when `fields` is not given?
            pub fn is_default(self) -> bool {
                match self {
                    $(Field::$variant => yes_no!($default),)*
                }
            }

            /// Does its value come from the Execution's spec (or metadata)?
            pub fn needs_spec(self) -> bool {
                match self {
                    $(Field::$variant => yes_no!($spec),)*
                }
            }
        }
    };
}

field_table! {
    // variant                           wire name                                    default spec
    SourceCode                           "source_code"                                no  yes;
    LanguageId                           "language_id"                                no  yes;
    Stdin                                "stdin"                                      no  yes;
    ExpectedOutput                       "expected_output"                            no  yes;
    Stdout                               "stdout"                                     yes no;
    StatusId                             "status_id"                                  no  no;
    CreatedAt                            "created_at"                                 no  yes;
    FinishedAt                           "finished_at"                                no  no;
    Time                                 "time"                                       yes no;
    Memory                               "memory"                                     yes no;
    Stderr                               "stderr"                                     yes no;
    Token                                "token"                                      yes no;
    NumberOfRuns                         "number_of_runs"                             no  yes;
    CpuTimeLimit                         "cpu_time_limit"                             no  yes;
    CpuExtraTime                         "cpu_extra_time"                             no  no;
    WallTimeLimit                        "wall_time_limit"                            no  yes;
    MemoryLimit                          "memory_limit"                               no  yes;
    StackLimit                           "stack_limit"                                no  yes;
    MaxProcessesAndOrThreads             "max_processes_and_or_threads"               no  yes;
    EnablePerProcessAndThreadTimeLimit   "enable_per_process_and_thread_time_limit"   no  no;
    EnablePerProcessAndThreadMemoryLimit "enable_per_process_and_thread_memory_limit" no  no;
    MaxFileSize                          "max_file_size"                              no  yes;
    CompileOutput                        "compile_output"                             yes no;
    ExitCode                             "exit_code"                                  no  no;
    ExitSignal                           "exit_signal"                                no  no;
    Message                              "message"                                    yes no;
    WallTime                             "wall_time"                                  no  no;
    CompilerOptions                      "compiler_options"                           no  yes;
    CommandLineArguments                 "command_line_arguments"                     no  yes;
    RedirectStderrToStdout               "redirect_stderr_to_stdout"                  no  yes;
    CallbackUrl                          "callback_url"                               no  yes;
    AdditionalFiles                      "additional_files"                           no  yes;
    EnableNetwork                        "enable_network"                             no  no;
    Status                               "status"                                     yes no;
    Language                             "language"                                   no  yes;
}

impl Field {
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The default fields (`SubmissionSerializer.default_fields`).
    pub fn defaults() -> Vec<Field> {
        Field::ALL.iter().copied().filter(|f| f.is_default()).collect()
    }
}

/// Judge0's `fields` parameter: absent or empty → the defaults, `*` anywhere → all, else the
/// listed ones. `Err`: the names that are no field (upstream: 400 "invalid fields: [a, b]").
pub fn requested_fields(param: Option<&str>) -> Result<Vec<Field>, Vec<String>> {
    let names: Vec<&str> = param.unwrap_or("").split(',').filter(|f| !f.is_empty()).collect();
    let invalid: Vec<String> =
        names.iter().filter(|n| **n != "*" && Field::from_name(n).is_none()).map(|n| n.to_string()).collect();
    if !invalid.is_empty() {
        return Err(invalid);
    }
    if names.contains(&"*") {
        return Ok(Field::ALL.to_vec());
    }
    let mut out = Vec::new();
    for f in names.iter().filter_map(|n| Field::from_name(n)) {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if out.is_empty() {
        out = Field::defaults();
    }
    Ok(out)
}

/// A language's Judge0 name: the display name with the version inside its parenthesis, as
/// Judge0 writes them ("C (GCC 12.2.0)", "JavaScript (Node.js 18.19.0)"), or after it
/// ("Python (3.11.2)"); the multi-file language by its bare name, "Multi-file program".
/// Judge0 ids whose languages upstream lists under a bare name, without a version.
pub const BARE_NAMED: [u32; 3] = [43, 44, MULTI_FILE_LANGUAGE_ID];

pub fn language_name(rt: &Runtime) -> String {
    let display = if rt.spec.display_name.is_empty() {
        rt.metadata.name.clone().unwrap_or_default()
    } else {
        rt.spec.display_name.clone()
    };
    let version = rt.spec.version.trim();
    // Upstream names three languages without a version: Plain Text (43), Executable (44) and
    // the multi-file program (89, `Language#is_project` knows it by that bare name).
    if version.is_empty() || rt.spec.judge0_ids.first().is_some_and(|id| BARE_NAMED.contains(id)) {
        return display;
    }
    match display.trim_end().strip_suffix(')') {
        Some(head) if head.contains('(') => format!("{head} {version})"),
        _ => format!("{} ({version})", display.trim_end()),
    }
}

/// Some text to render is not UTF-8 (answer it with `base64_encoded=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotText;

/// Everything one submission's fields are rendered from.
#[derive(Clone, Debug)]
pub struct Submission<'a> {
    pub token: &'a str,
    pub status: &'a ExecutionStatus,
    /// The spec, when the Execution itself was read.
    pub spec: Option<&'a ExecutionSpec>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The Execution's creation time (RFC 3339).
    pub created_at: Option<&'a str>,
    pub runtime: Option<&'a Runtime>,
    /// The limits the Execution runs with (resolved against its Runtime).
    pub limits: Option<ResolvedLimits>,
    /// The full outputs (else those in the status).
    pub outputs: Outputs,
}

impl<'a> Submission<'a> {
    /// A submission from its Execution, with the outputs its status holds.
    pub fn of(exec: &'a Execution, status: &'a ExecutionStatus) -> Submission<'a> {
        Submission {
            token: exec.metadata.name.as_deref().unwrap_or(""),
            status,
            spec: Some(&exec.spec),
            annotations: exec.metadata.annotations.as_ref(),
            created_at: None,
            runtime: None,
            limits: None,
            outputs: Outputs::from_status(status),
        }
    }

    fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations.and_then(|a| a.get(key)).map(String::as_str)
    }

    fn language_id(&self) -> Option<u32> {
        self.annotation(LANGUAGE_ID_ANNOTATION)
            .and_then(|v| v.parse().ok())
            .or_else(|| self.runtime.and_then(|r| r.spec.judge0_ids.first().copied()))
    }

    /// The source text (none for a multi-file program, whose files are all in the zip).
    fn source(&self) -> Option<Vec<u8>> {
        let spec = self.spec?;
        if self.language_id() == Some(MULTI_FILE_LANGUAGE_ID) {
            return None;
        }
        spec.source.as_ref().map(|s| s.as_bytes().to_vec()).or_else(|| {
            spec.files.as_ref().and_then(|f| f.first()).and_then(|f| decoded(Some(&f.content), f.encoding))
        })
    }
}

/// Judge0's "Multi-file program": no source code; the zip holds `compile` and `run`.
pub const MULTI_FILE_LANGUAGE_ID: u32 = 89;

fn text(bytes: Option<&[u8]>, b64: bool) -> Result<Value, NotText> {
    match bytes {
        None => Ok(Value::Null),
        Some([]) => Ok(Value::Null),
        Some(b) if b64 => Ok(Value::String(encode64(b))),
        Some(b) => std::str::from_utf8(b).map(|s| Value::String(s.to_string())).map_err(|_| NotText),
    }
}

/// An input text as given (empty stays empty; absent is null).
fn input(s: Option<&str>, b64: bool) -> Value {
    match s {
        None => Value::Null,
        Some(s) if b64 => Value::String(encode64(s.as_bytes())),
        Some(s) => Value::String(s.to_string()),
    }
}

impl Field {
    /// This field's value for a submission.
    pub fn render(self, s: &Submission<'_>, o: &Outcome, b64: bool) -> Result<Value, NotText> {
        let (st, spec, limits) = (s.status, s.spec, s.limits);
        let ce = o.status_id == 6;
        let figure = |v: Option<u64>| if ce { None } else { v };
        Ok(match self {
            Field::Token => json!(s.token),
            Field::SourceCode => text(s.source().as_deref(), b64)?,
            Field::LanguageId => json!(s.language_id()),
            Field::Language => match (s.language_id(), s.runtime) {
                (Some(id), Some(rt)) => json!({ "id": id, "name": language_name(rt) }),
                _ => Value::Null,
            },
            Field::Stdin => input(spec.and_then(|s| s.stdin.as_deref()), b64),
            Field::ExpectedOutput => input(spec.and_then(|s| s.expected_output.as_deref()), b64),
            Field::Stdout if ce => Value::Null,
            Field::Stderr if ce => Value::Null,
            Field::Stdout => text(s.outputs.stdout.as_deref(), b64)?,
            Field::Stderr => text(s.outputs.stderr.as_deref(), b64)?,
            Field::CompileOutput => {
                let stopped = ce
                    && st
                        .message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("compilation stopped") && m.contains("time limit"));
                if stopped {
                    text(Some(b"Compilation time limit exceeded."), b64)?
                } else {
                    text(s.outputs.compile_output.as_deref(), b64)?
                }
            }
            Field::Message => match &o.message {
                Some(m) if b64 => json!(encode64(m.as_bytes())),
                m => json!(m),
            },
            Field::Status => json!({ "id": o.status_id, "description": status_description(o.status_id) }),
            Field::StatusId => json!(o.status_id),
            Field::CreatedAt => json!(s
                .annotation(CREATED_AT_ANNOTATION)
                .or(s.created_at)
                .or(st.submitted_at.as_deref())
                .and_then(timestamp)),
            Field::FinishedAt => json!(st.finished_at.as_deref().and_then(timestamp)),
            Field::Time => json!(figure(st.time_ms).map(units::secs)),
            Field::WallTime => json!(figure(st.wall_time_ms).map(units::secs)),
            Field::Memory => json!(figure(st.memory_kib)),
            Field::ExitCode => json!(o.exit_code),
            Field::ExitSignal => json!(o.exit_signal),
            Field::NumberOfRuns => json!(spec.map(|s| s.runs.unwrap_or(1))),
            Field::CpuTimeLimit => json!(limits.map(|l| units::secs(l.cpu_time_ms))),
            Field::CpuExtraTime => json!("0.0"),
            Field::WallTimeLimit => json!(limits.map(|l| units::secs(l.wall_time_ms))),
            Field::MemoryLimit => {
                match s.annotation(MEMORY_LIMIT_ANNOTATION).and_then(|kb| kb.parse::<u64>().ok()) {
                    Some(kb) => json!(kb),
                    None => json!(limits.map(|l| units::mib_to_kb(l.memory_mib))),
                }
            }
            Field::StackLimit => json!(limits.map(|l| l.stack_kib)),
            Field::MaxProcessesAndOrThreads => json!(limits.map(|l| l.processes)),
            Field::MaxFileSize => json!(limits.map(|l| l.file_size_kib)),
            Field::EnablePerProcessAndThreadTimeLimit
            | Field::EnablePerProcessAndThreadMemoryLimit
            | Field::EnableNetwork => json!(false),
            Field::RedirectStderrToStdout => json!(spec.map(|s| s.redirect_stderr_to_stdout)),
            Field::CommandLineArguments => {
                json!(spec.filter(|s| !s.args.is_empty()).map(|s| s.args.join(" ")))
            }
            Field::CompilerOptions => match s.annotation(COMPILER_OPTIONS_ANNOTATION) {
                Some(given) => json!(given),
                None => json!(spec
                    .filter(|s| !s.compiler_options.is_empty())
                    .map(|s| s.compiler_options.join(" "))),
            },
            Field::CallbackUrl => json!(spec.and_then(|s| s.callback.as_ref()).map(|c| c.url.clone())),
            // Upstream answers the zip base64-encoded whatever `base64_encoded` says.
            Field::AdditionalFiles => match s.annotation(ADDITIONAL_FILES_ANNOTATION) {
                Some(zip) => json!(encode64(&decode64(zip))),
                None => Value::Null,
            },
        })
    }
}

/// Render a submission with the requested fields.
pub fn render(s: &Submission<'_>, fields: &[Field], b64: bool) -> Result<Map<String, Value>, NotText> {
    let o = outcome(s.status);
    fields.iter().map(|f| Ok((f.name().to_string(), f.render(s, &o, b64)?))).collect()
}

/// The body of a Judge0 result callback (`spec.callback.format: judge0`): the submission with
/// the default fields, base64-encoded, as upstream's `IsolateJob#call_callback` PUTs it. The
/// outputs are those in the status; see [`callback_body_with`] for the full ones.
pub fn callback_body(exec: &Execution) -> Vec<u8> {
    let status = exec.status.clone().unwrap_or_default();
    let outputs = Outputs::from_status(&status);
    callback_body_with(exec, outputs)
}

/// [`callback_body`] with the full outputs (when the status holds only excerpts:
/// [`Outputs::from_stored`]).
pub fn callback_body_with(exec: &Execution, outputs: Outputs) -> Vec<u8> {
    let status = exec.status.clone().unwrap_or_default();
    let mut s = Submission::of(exec, &status);
    s.outputs = outputs;
    let map = render(&s, &Field::defaults(), true).unwrap_or_default();
    serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecutionSpec, RuntimeSpec};

    fn status(
        phase: Phase,
        verdict: Option<Verdict>,
        signal: Option<&str>,
        exit: Option<i32>,
    ) -> ExecutionStatus {
        ExecutionStatus {
            phase: Some(phase),
            verdict,
            signal: signal.map(str::to_string),
            exit_code: exit,
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_map_as_isolate_reports_them() {
        use Verdict::*;
        let c = Phase::Completed;
        let o = |p, v, s, e| outcome(&status(p, v, s, e));
        assert_eq!(o(Phase::Pending, None, None, None).status_id, 1);
        assert_eq!(o(Phase::Processing, None, None, None).status_id, 2);
        assert_eq!(
            o(c, Some(Accepted), None, Some(0)),
            Outcome { status_id: 3, exit_code: Some(0), exit_signal: None, message: None }
        );
        assert_eq!(o(c, Some(WrongAnswer), None, Some(0)).status_id, 4);
        assert_eq!(
            o(c, Some(TimeLimitExceeded), Some("SIGKILL"), None),
            Outcome {
                status_id: 5,
                exit_code: Some(0),
                exit_signal: None,
                message: Some("Time limit exceeded".into())
            }
        );
        let mut wall = status(c, Some(TimeLimitExceeded), None, None);
        wall.message = Some("wall-clock time limit of 5000 ms exceeded".into());
        assert_eq!(outcome(&wall).message.as_deref(), Some("Time limit exceeded (wall clock)"));
        assert_eq!(
            o(c, Some(CompilationError), None, Some(1)),
            Outcome { status_id: 6, exit_code: None, exit_signal: None, message: None }
        );
        assert_eq!(
            o(c, Some(RuntimeError), Some("SIGSEGV"), None),
            Outcome {
                status_id: 7,
                exit_code: Some(0),
                exit_signal: Some(11),
                message: Some("Caught fatal signal 11".into())
            }
        );
        assert_eq!(o(c, Some(RuntimeError), Some("SIGXFSZ"), None).status_id, 8);
        assert_eq!(
            o(c, Some(OutputLimitExceeded), None, None),
            Outcome {
                status_id: 8,
                exit_code: Some(0),
                exit_signal: Some(25),
                message: Some("Caught fatal signal 25".into())
            }
        );
        assert_eq!(o(c, Some(RuntimeError), Some("SIGFPE"), None).status_id, 9);
        assert_eq!(o(c, Some(RuntimeError), Some("SIGABRT"), None).status_id, 10);
        assert_eq!(
            o(c, Some(RuntimeError), None, Some(1)),
            Outcome {
                status_id: 11,
                exit_code: Some(1),
                exit_signal: None,
                message: Some("Exited with error status 1".into())
            }
        );
        assert_eq!(o(c, Some(RuntimeError), None, None).status_id, 11);
        assert_eq!(o(c, Some(RuntimeError), Some("SIGKILL"), None).status_id, 12);
        assert_eq!(o(c, Some(RuntimeError), Some("SIGRTMIN+2"), None).exit_signal, Some(36));
        assert_eq!(o(c, Some(MemoryLimitExceeded), None, None).exit_signal, Some(9));
        assert_eq!(o(c, Some(MemoryLimitExceeded), None, None).status_id, 12);
        assert_eq!(o(c, Some(MemoryLimitExceeded), None, Some(1)).status_id, 11);
        assert_eq!(o(Phase::Failed, Some(InternalError), None, None).status_id, 13);
        assert_eq!(status_description(14), "Exec Format Error");
    }

    #[test]
    fn base64_as_ruby_writes_and_reads_it() {
        assert_eq!(encode64(b"hi\n"), "aGkK\n");
        assert_eq!(encode64(&[0xfe, 0xff, 0x00, 0x41, 0x0a]), "/v8AQQo=\n");
        let long = encode64(&[b'a'; 100]);
        assert_eq!(long.lines().map(str::len).collect::<Vec<_>>(), vec![60, 60, 16]);
        assert!(long.ends_with('\n'));
        assert_eq!(decode64(&long), vec![b'a'; 100]);
        assert_eq!(decode64("aGk=\n"), b"hi");
        assert_eq!(decode64("aGk"), b"hi");
        assert_eq!(decode64("!!"), b"");
        assert_eq!(decode64("a"), b"");
    }

    #[test]
    fn times_have_milliseconds_in_utc() {
        assert_eq!(timestamp("2026-12-01T22:04:49Z").as_deref(), Some("2026-12-01T22:04:49.000Z"));
        assert_eq!(timestamp("2026-12-01T22:04:49.123456Z").as_deref(), Some("2026-12-01T22:04:49.123Z"));
        assert_eq!(timestamp("2026-12-01T22:04:49.5+00:00").as_deref(), Some("2026-12-01T22:04:49.500Z"));
        assert_eq!(timestamp("2026-12-02T00:30:00+01:00").as_deref(), Some("2026-12-01T23:30:00.000Z"));
        assert_eq!(timestamp("2024-02-29T23:59:59.999-00:30").as_deref(), Some("2024-03-01T00:29:59.999Z"));
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn fields_parse_like_upstream() {
        let names = |f: Vec<Field>| f.iter().map(|f| f.name()).collect::<Vec<_>>();
        assert_eq!(
            names(requested_fields(None).unwrap()),
            ["stdout", "time", "memory", "stderr", "token", "compile_output", "message", "status"]
        );
        assert_eq!(names(requested_fields(Some("")).unwrap()).len(), 8);
        assert_eq!(
            names(requested_fields(Some("stdout,status_id,stdout")).unwrap()),
            ["stdout", "status_id"]
        );
        assert_eq!(requested_fields(Some("stdout,*")).unwrap().len(), 35);
        assert_eq!(requested_fields(Some("stdout,bogus, token")).unwrap_err(), vec!["bogus", " token"]);
    }

    fn runtime(display: &str, version: &str) -> Runtime {
        Runtime::new(
            "x",
            RuntimeSpec { display_name: display.into(), version: version.into(), ..Default::default() },
        )
    }

    #[test]
    fn language_names_in_judge0_style() {
        assert_eq!(language_name(&runtime("C (GCC)", "12.2.0")), "C (GCC 12.2.0)");
        assert_eq!(language_name(&runtime("Python", "3.11.2")), "Python (3.11.2)");
        assert_eq!(
            language_name(&runtime("JavaScript (Node.js)", "18.19.0")),
            "JavaScript (Node.js 18.19.0)"
        );
        assert_eq!(language_name(&runtime("Plain Text", "")), "Plain Text");
        let mut multi = runtime("Multi-file program", "5.2.15");
        multi.spec.judge0_ids = vec![89];
        assert_eq!(language_name(&multi), "Multi-file program");
        let mut text = runtime("Plain Text", "9.1");
        text.spec.judge0_ids = vec![43];
        assert_eq!(language_name(&text), "Plain Text", "upstream's 43 has no version");
    }

    fn exec(status: ExecutionStatus) -> Execution {
        let mut e = Execution::new("0b7e4a4e-0000-4000-8000-000000000001", ExecutionSpec::default());
        e.status = Some(status);
        e
    }

    #[test]
    fn the_callback_is_the_default_fields_in_base64() {
        let mut st = status(Phase::Completed, Some(Verdict::RuntimeError), Some("SIGSEGV"), None);
        st.stdout = Some("/v8AQQo=".into());
        st.stdout_encoding = FileEncoding::Base64;
        st.stderr = Some(String::new());
        st.time_ms = Some(31);
        st.memory_kib = Some(2048);
        let body: Value = serde_json::from_slice(&callback_body(&exec(st))).unwrap();
        assert_eq!(
            body,
            json!({
                "token": "0b7e4a4e-0000-4000-8000-000000000001",
                "stdout": "/v8AQQo=\n", "stderr": null, "compile_output": null,
                "time": "0.031", "memory": 2048,
                "message": "Q2F1Z2h0IGZhdGFsIHNpZ25hbCAxMQ==\n",
                "status": {"id": 7, "description": "Runtime Error (SIGSEGV)"},
            })
        );
        let full = Outputs { stdout: Some(vec![b'x'; 3]), ..Default::default() };
        let body: Value =
            serde_json::from_slice(&callback_body_with(&exec(ExecutionStatus::default()), full)).unwrap();
        assert_eq!(body["stdout"], "eHh4\n");
        assert_eq!(body["status"]["id"], 1);
        assert_eq!(body["time"], Value::Null);
    }

    #[test]
    fn a_compile_error_leaves_the_run_fields_null() {
        let mut st = status(Phase::Completed, Some(Verdict::CompilationError), None, Some(1));
        st.compile_output = Some("main.c:1: error\n".into());
        st.stdout = Some("x".into());
        st.time_ms = Some(100);
        st.memory_kib = Some(100);
        st.message = Some("compilation failed (exit code 1)".into());
        let e = exec(st.clone());
        let s = Submission::of(&e, &st);
        let all = render(&s, Field::ALL, false).unwrap();
        for f in ["time", "wall_time", "memory", "stdout", "stderr", "exit_code", "exit_signal", "message"] {
            assert_eq!(all[f], Value::Null, "{f}");
        }
        assert_eq!(all["compile_output"], "main.c:1: error\n");
        st.message = Some("compilation stopped: CPU time limit of 3000 ms exceeded".into());
        let s = Submission::of(&e, &st);
        assert_eq!(
            render(&s, &[Field::CompileOutput], false).unwrap()["compile_output"],
            "Compilation time limit exceeded."
        );
    }

    #[test]
    fn bytes_that_are_not_text_need_base64() {
        let mut st = status(Phase::Completed, Some(Verdict::Accepted), None, Some(0));
        st.stdout = Some("/v8AQQo=".into());
        st.stdout_encoding = FileEncoding::Base64;
        let e = exec(st.clone());
        let s = Submission::of(&e, &st);
        assert_eq!(render(&s, &[Field::Stdout], false), Err(NotText));
        assert_eq!(render(&s, &[Field::Stdout], true).unwrap()["stdout"], "/v8AQQo=\n");
        assert!(render(&s, &[Field::Stderr], false).unwrap()["stderr"].is_null());
    }

    #[test]
    fn stored_outputs_split_by_their_lengths() {
        let stored = crate::StoredOutput {
            config_maps: vec!["a".into()],
            stdout_bytes: 2,
            stderr_bytes: 1,
            compile_output_bytes: 0,
        };
        let o = Outputs::from_stored(&stored, b"abc").unwrap();
        assert_eq!(
            (o.stdout.unwrap(), o.stderr.unwrap(), o.compile_output.unwrap()),
            (b"ab".to_vec(), b"c".to_vec(), vec![])
        );
        assert!(Outputs::from_stored(&stored, b"ab").is_none());
    }
}
