//! A Judge0 submission as sent ([`RawSubmission`]), validated into a [`Judge0Submission`] or
//! into Judge0-style field errors (`{"field": ["message", ...]}`, answered with 422), with
//! upstream's validations and words (`app/models/submission.rb`).
//!
//! Judge0 is lenient about types: numbers may come as numeric strings, booleans as Rails
//! reads them (`"true"`, `"1"`, `"on"`, …), a non-string text field is taken as its JSON text,
//! a non-string `command_line_arguments` is ignored, base64 is decoded as Ruby's `decode64`
//! does (never failing). Keys upstream does not know are ignored.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{
    judge0::{
        decode64, ADDITIONAL_FILES_ANNOTATION, COMPILER_OPTIONS_ANNOTATION, MEMORY_LIMIT_ANNOTATION,
        MULTI_FILE_LANGUAGE_ID,
    },
    limits::units::judge0 as units,
    options, Callback, CallbackFormat, FileEncoding, LimitError, LimitField, Limits, ResolvedLimits, Runtime,
    SourceFile, MAX_RUNS,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{args::split_args, zipfiles};
use crate::{
    catalog,
    error::Flavor,
    routes::raw::{self, Loose},
    submit::{Program, Submission, JUDGE0_ID_ANNOTATION},
};

/// Upstream's default `max_file_size` (KB), which is also its output cap.
pub const DEFAULT_MAX_FILE_SIZE_KB: u64 = 1024;
/// Runtime annotation: the smallest file size limit (KiB) its programs need, given to Judge0
/// submissions that set no `max_file_size` (their output cap stays the default).
pub const MIN_FILE_SIZE_ANNOTATION: &str = "rce.dev/judge0-min-file-size-kib";
/// Longest `compiler_options` and `command_line_arguments` (upstream's length validations).
pub const MAX_OPTIONS_TEXT: usize = 512;
/// Largest `additional_files` kept (as given) to be answered back; a larger zip is still
/// extracted and run, and answered as null.
pub const MAX_KEPT_ZIP: usize = 96 * 1024;

/// A number as Judge0 takes it: a JSON number or a numeric string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Numeric {
    Number(f64),
    Text(String),
}

/// A boolean as Rails casts it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Switch {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Switch {
    /// ActiveModel's boolean cast: `None` for "" (nil), false for its FALSE_VALUES, else true.
    fn value(&self) -> Option<bool> {
        match self {
            Switch::Bool(b) => Some(*b),
            Switch::Number(n) => Some(*n != 0.0),
            Switch::Text(t) if t.is_empty() => None,
            Switch::Text(t) => {
                Some(!matches!(t.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF"))
            }
        }
    }
}

/// The fields of a submission that upstream permits.
#[derive(Debug, Deserialize)]
pub struct RawSubmission {
    source_code: Option<Loose<String>>,
    language_id: Option<Loose<Numeric>>,
    compiler_options: Option<Loose<String>>,
    command_line_arguments: Option<Loose<String>>,
    number_of_runs: Option<Loose<Numeric>>,
    stdin: Option<Loose<String>>,
    expected_output: Option<Loose<String>>,
    cpu_time_limit: Option<Loose<Numeric>>,
    cpu_extra_time: Option<Loose<Numeric>>,
    wall_time_limit: Option<Loose<Numeric>>,
    memory_limit: Option<Loose<Numeric>>,
    stack_limit: Option<Loose<Numeric>>,
    max_processes_and_or_threads: Option<Loose<Numeric>>,
    enable_per_process_and_thread_time_limit: Option<Loose<Switch>>,
    enable_per_process_and_thread_memory_limit: Option<Loose<Switch>>,
    max_file_size: Option<Loose<Numeric>>,
    redirect_stderr_to_stdout: Option<Loose<Switch>>,
    callback_url: Option<Loose<String>>,
    additional_files: Option<Loose<String>>,
    enable_network: Option<Loose<Switch>>,
}

/// A batch: `{"submissions": [submission, ...]}`.
#[derive(Debug, Deserialize)]
struct RawBatch {
    submissions: Option<Loose<Vec<Value>>>,
}

/// The submissions of a batch body (none when it has no `submissions` array).
pub fn batch_items(body: &Value) -> Vec<Value> {
    raw::object::<RawBatch>(body).and_then(|b| b.submissions).and_then(Loose::valid).unwrap_or_default()
}

/// What the Judge0 surface needs besides the common [`Submission`]: the spec fields it sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub redirect_stderr_to_stdout: bool,
    pub compiler_options: Vec<String>,
    pub runs: Option<u32>,
    pub callback: Option<Callback>,
}

impl Extras {
    /// Put them into the Execution's spec.
    pub fn apply(&self, spec: &mut rce_api::ExecutionSpec) {
        spec.redirect_stderr_to_stdout = self.redirect_stderr_to_stdout;
        spec.compiler_options = self.compiler_options.clone();
        spec.runs = self.runs;
        spec.callback = self.callback.clone();
    }
}

/// A validated Judge0 submission.
#[derive(Debug, Clone)]
pub struct Judge0Submission {
    pub sub: Submission,
    pub extras: Extras,
}

/// What validation needs from the server: the catalog, the ceilings, the callback policy.
pub struct Context<'a> {
    pub runtimes: &'a [Arc<Runtime>],
    pub cap: &'a ResolvedLimits,
    pub callbacks: &'a rce_api::callback::Policy,
}

fn add_error(errors: &mut Map<String, Value>, key: &str, msg: impl Into<String>) {
    let entry = errors.entry(key.to_string()).or_insert_with(|| json!([]));
    if let Value::Array(a) = entry {
        a.push(Value::String(msg.into()));
    }
}

/// A number given as a JSON number or a numeric string.
fn number(given: Option<Loose<Numeric>>, key: &str, errors: &mut Map<String, Value>) -> Option<f64> {
    match given? {
        Loose::Valid(Numeric::Number(n)) => Some(n),
        Loose::Valid(Numeric::Text(s)) if s.trim().is_empty() => None,
        Loose::Valid(Numeric::Text(s)) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                add_error(errors, key, "is not a number");
                None
            }
        },
        Loose::Invalid(_) => {
            add_error(errors, key, "is not a number");
            None
        }
    }
}

/// A scalar text: a string, or a number/boolean as its JSON text; arrays and objects are
/// dropped (Rails' strong parameters permit scalars only).
fn scalar(given: Option<Loose<String>>) -> Option<String> {
    match given? {
        Loose::Valid(s) => Some(s),
        Loose::Invalid(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Loose::Invalid(_) => None,
    }
}

/// A text field's bytes: base64-decoded (as Ruby does) with `base64_encoded=true`.
fn bytes(given: Option<Loose<String>>, b64: bool) -> Option<Vec<u8>> {
    let s = scalar(given)?;
    Some(if b64 { decode64(&s) } else { s.into_bytes() })
}

fn utf8(bytes: Option<Vec<u8>>, key: &str, errors: &mut Map<String, Value>) -> Option<String> {
    bytes.and_then(|b| match String::from_utf8(b) {
        Ok(s) => Some(s),
        Err(_) => {
            add_error(errors, key, "is not valid UTF-8 text");
            None
        }
    })
}

fn switch(given: Option<Loose<Switch>>) -> Option<bool> {
    match given? {
        Loose::Valid(s) => s.value(),
        Loose::Invalid(_) => None,
    }
}

/// Upstream removes these from `compiler_options` and `command_line_arguments` before use.
fn sanitized(text: &str) -> String {
    text.trim().chars().filter(|c| !"$&;<>|`".contains(*c)).collect()
}

/// The most `max_file_size` may be: the file-size and the output maxima (KB) of the Runtime.
fn max_file_size(rt: &Runtime, cap: &ResolvedLimits) -> u64 {
    let m = catalog::max_limits(rt, cap);
    m.file_size_kib.min(m.output_bytes / 1024)
}

/// The `max_file_size` a submission gets when it gives none.
pub fn default_max_file_size(rt: &Runtime, cap: &ResolvedLimits) -> u64 {
    DEFAULT_MAX_FILE_SIZE_KB.min(max_file_size(rt, cap)).max(1)
}

fn limit_error(errors: &mut Map<String, Value>, e: &LimitError, rt: &Runtime, cap: &ResolvedLimits) {
    let (field, max) = match e.field {
        LimitField::FileSizeKiB | LimitField::OutputBytes => {
            ("max_file_size", max_file_size(rt, cap).to_string())
        }
        f => units::field(f, e.maximum).unwrap_or((f.name(), e.maximum.to_string())),
    };
    if e.requested == 0 {
        add_error(errors, field, "must be greater than 0");
    } else if !errors.contains_key(field) {
        add_error(errors, field, format!("must be less than or equal to {max}"));
    }
}

/// Upstream's refusal for a language whose compiler takes no options: "setting compiler
/// options is only allowed for A, B and C" (the languages that take them).
fn options_languages(runtimes: &[Arc<Runtime>]) -> String {
    let mut names: Vec<String> = runtimes
        .iter()
        .filter(|rt| {
            options::takes_options(rt.spec.compile.as_deref()) && !rt.spec.compiler_options.is_empty()
        })
        .map(|rt| catalog::display_name(rt))
        .collect();
    names.sort();
    names.dedup();
    match names.split_last() {
        None => "setting compiler options is not allowed".to_string(),
        Some((last, [])) => format!("setting compiler options is only allowed for {last}"),
        Some((last, rest)) => {
            format!("setting compiler options is only allowed for {} and {last}", rest.join(", "))
        }
    }
}

/// Parse one Judge0 submission object, or Judge0-style field errors.
pub fn parse_submission(
    v: &Value,
    b64: bool,
    ctx: &Context<'_>,
) -> Result<Judge0Submission, Map<String, Value>> {
    match raw::object::<RawSubmission>(v) {
        Some(raw) => raw.validate(b64, ctx),
        None => {
            let mut errors = Map::new();
            add_error(&mut errors, "submission", "must be a JSON object");
            Err(errors)
        }
    }
}

impl RawSubmission {
    /// Check every field (collecting all the errors, as Judge0 does) and map them.
    pub fn validate(self, b64: bool, ctx: &Context<'_>) -> Result<Judge0Submission, Map<String, Value>> {
        let mut errors = Map::new();
        let language_id = number(self.language_id, "language_id", &mut errors);
        let runtime = match language_id {
            None => {
                if !errors.contains_key("language_id") {
                    add_error(&mut errors, "language_id", "can't be blank");
                }
                None
            }
            Some(id) => {
                match catalog::find_judge0(ctx.runtimes, id as u32).filter(|_| id >= 0.0 && id.fract() == 0.0)
                {
                    Some(rt) => Some(rt),
                    None => {
                        add_error(&mut errors, "language_id", format!("language with id {id} doesn't exist"));
                        None
                    }
                }
            }
        };
        let is_project = language_id == Some(f64::from(MULTI_FILE_LANGUAGE_ID));

        // Source code, and the zip of additional files (base64 whatever `base64_encoded` says).
        let source = bytes(self.source_code, b64).filter(|s| !s.is_empty());
        let zip =
            scalar(self.additional_files).map(|z| (decode64(&z), z)).filter(|(bytes, _)| !bytes.is_empty());
        if is_project {
            if source.is_some() {
                add_error(&mut errors, "source_code", "must be blank");
            }
            if zip.is_none() {
                add_error(&mut errors, "additional_files", "can't be blank");
            }
        } else if source.is_none() {
            add_error(&mut errors, "source_code", "can't be blank");
        }

        let stdin = utf8(bytes(self.stdin, b64), "stdin", &mut errors);
        let expected_output = utf8(bytes(self.expected_output, b64), "expected_output", &mut errors);

        // Numbers, with upstream's bounds where rce's limits do not say them.
        // Upstream's numericality bounds: `Above(m)` is "greater than m", `From(m)` "greater
        // than or equal to m", `FromZero` the same for 0, where 0 is isolate's "no limit"
        // (rce's largest: the Runtime's maximum under the ceilings).
        enum Bound {
            Above(u32),
            From(u32),
            FromZero,
        }
        let mut bounded = |given: Option<Loose<Numeric>>, key: &str, bound: Bound| {
            let v = number(given, key, &mut errors)?;
            let refusal = match bound {
                Bound::Above(m) if v <= f64::from(m) => Some(format!("must be greater than {m}")),
                Bound::From(m) if v < f64::from(m) => Some(format!("must be greater than or equal to {m}")),
                Bound::FromZero if v < 0.0 => Some("must be greater than or equal to 0".to_string()),
                _ => None,
            };
            match refusal {
                Some(words) => {
                    add_error(&mut errors, key, words);
                    None
                }
                None => Some(v),
            }
        };
        let runs = bounded(self.number_of_runs, "number_of_runs", Bound::Above(0));
        let cpu = bounded(self.cpu_time_limit, "cpu_time_limit", Bound::FromZero);
        let extra = bounded(self.cpu_extra_time, "cpu_extra_time", Bound::From(0));
        let wall = bounded(self.wall_time_limit, "wall_time_limit", Bound::From(1));
        let mem = bounded(self.memory_limit, "memory_limit", Bound::From(2048));
        let stack = bounded(self.stack_limit, "stack_limit", Bound::FromZero);
        let procs =
            bounded(self.max_processes_and_or_threads, "max_processes_and_or_threads", Bound::Above(0));
        let fsize = bounded(self.max_file_size, "max_file_size", Bound::FromZero);
        if let Some(r) = runs {
            if r > f64::from(MAX_RUNS) {
                add_error(&mut errors, "number_of_runs", format!("must be less than or equal to {MAX_RUNS}"));
            }
        }
        // rce stops a program at its CPU limit: there is no extra time to give.
        if extra.is_some_and(|e| e > 0.0) {
            add_error(&mut errors, "cpu_extra_time", "must be less than or equal to 0.0");
        }
        // rce limits the whole program (all its processes together), as upstream does by default.
        for (given, key) in [
            (self.enable_per_process_and_thread_time_limit, "enable_per_process_and_thread_time_limit"),
            (self.enable_per_process_and_thread_memory_limit, "enable_per_process_and_thread_memory_limit"),
        ] {
            if switch(given) == Some(true) {
                add_error(&mut errors, key, "this option cannot be enabled");
            }
        }
        if switch(self.enable_network) == Some(true) {
            add_error(&mut errors, "enable_network", "enabling network is not allowed");
        }
        let redirect = switch(self.redirect_stderr_to_stdout).unwrap_or(false);

        // Compiler options and arguments.
        let options_text = scalar(self.compiler_options).filter(|s| !s.trim().is_empty());
        let mut compiler_options = Vec::new();
        if let Some(text) = &options_text {
            if text.chars().count() > MAX_OPTIONS_TEXT {
                add_error(&mut errors, "compiler_options", "is too long (maximum is 512 characters)");
            } else if let Some(rt) = &runtime {
                if rt.spec.compile.is_none() || is_project {
                    add_error(
                        &mut errors,
                        "compiler_options",
                        "setting compiler options is only allowed for compiled languages",
                    );
                } else {
                    compiler_options = options::split(&sanitized(text));
                    if !options::takes_options(rt.spec.compile.as_deref()) {
                        // Compiled, but its compile command takes no options: upstream's
                        // words for a language outside ALLOWED_LANGUAGES_FOR_COMPILER_OPTIONS.
                        add_error(&mut errors, "compiler_options", options_languages(ctx.runtimes));
                    } else if let Err(e) = options::check(&rt.spec.compiler_options, true, &compiler_options)
                    {
                        add_error(&mut errors, "compiler_options", e.0);
                    }
                }
            }
        }
        let args = match self.command_line_arguments {
            Some(Loose::Valid(s)) if s.chars().count() > MAX_OPTIONS_TEXT => {
                add_error(&mut errors, "command_line_arguments", "is too long (maximum is 512 characters)");
                vec![]
            }
            // A project's `run` script is run as it is: upstream adds no arguments to it.
            Some(Loose::Valid(_)) if is_project => vec![],
            Some(Loose::Valid(s)) => split_args(&sanitized(&s)),
            _ => vec![],
        };

        // The callback.
        let callback = match scalar(self.callback_url).filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(_) if ctx.callbacks.is_off() => {
                add_error(&mut errors, "callback_url", "setting callback is not allowed");
                None
            }
            Some(url) => match ctx.callbacks.check_url(url.trim()) {
                Ok(_) => Some(Callback { url: url.trim().to_string(), format: CallbackFormat::Judge0 }),
                Err(e) => {
                    add_error(&mut errors, "callback_url", e.0);
                    None
                }
            },
        };

        // Limits.
        let mut limits = Limits {
            cpu_time_ms: cpu.map(units::secs_to_ms),
            wall_time_ms: wall.map(units::secs_to_ms),
            memory_mib: mem.map(units::kb_to_mib),
            processes: procs.map(units::whole),
            stack_kib: stack.map(units::whole),
            ..Default::default()
        };
        if let Some(rt) = &runtime {
            let max = catalog::max_limits(rt, ctx.cap);
            if cpu == Some(0.0) {
                limits.cpu_time_ms = Some(max.cpu_time_ms);
            }
            if stack == Some(0.0) {
                limits.stack_kib = Some(max.stack_kib);
            }
            let fsize = match fsize {
                Some(0.0) => Some(max_file_size(rt, ctx.cap) as f64),
                v => v,
            };
            let kb = fsize.map(units::whole).unwrap_or_else(|| default_max_file_size(rt, ctx.cap));
            // The output cap is max_file_size, as isolate's; the file size limit too, except
            // that a submission giving none gets at least what its Runtime says it needs
            // (annotation `rce.dev/judge0-min-file-size-kib`: Erlang's JIT maps a 16 MiB file
            // at start).
            let floor = rt
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MIN_FILE_SIZE_ANNOTATION))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            limits.file_size_kib = Some(match fsize {
                Some(_) => kb,
                None => kb.max(floor.min(max.file_size_kib)),
            });
            limits.output_bytes = Some(kb.saturating_mul(1024));
            // Limits not given take Judge0's defaults, the ones `/config_info` tells (as
            // upstream, where they are global), under the Runtime's maximum.
            let d = ResolvedLimits::DEFAULT;
            for (field, default) in [
                (LimitField::CpuTimeMs, d.cpu_time_ms),
                (LimitField::WallTimeMs, d.wall_time_ms),
                (LimitField::MemoryMiB, d.memory_mib),
                (LimitField::Processes, d.processes),
                (LimitField::StackKiB, d.stack_kib),
            ] {
                if limits.get(field).is_none() {
                    limits.set(field, Some(default.min(max.get(field))));
                }
            }
            if let Err(e) = catalog::resolve_limits(rt, Some(&limits), ctx.cap) {
                limit_error(&mut errors, &e, rt, ctx.cap);
            }
        }

        // The program: the source, and the zip's files beside it.
        let mut files_from_zip = Vec::new();
        if let (Some((zip_bytes, _)), Some(rt)) = (&zip, &runtime) {
            let skip: Vec<&str> = if is_project { vec![] } else { vec![rt.spec.source_file.as_str()] };
            match zipfiles::extract(zip_bytes, &skip) {
                Ok(mut files) => {
                    if is_project {
                        // The entry point is the `run` script.
                        if let Some(i) = files.iter().position(|f| f.name == "run") {
                            let run = files.remove(i);
                            files.insert(0, run);
                        }
                        if files.is_empty() {
                            add_error(&mut errors, "additional_files", "has no files");
                        }
                    }
                    files_from_zip = files;
                }
                Err(why) => add_error(&mut errors, "additional_files", why),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(runtime), Some(id)) = (runtime, language_id) else {
            return Err(errors);
        };
        let program = if is_project {
            Program::Files(files_from_zip)
        } else {
            let source = source.unwrap_or_default();
            match (String::from_utf8(source), files_from_zip.is_empty()) {
                (Ok(s), true) => Program::Source(s),
                (text, _) => {
                    let first = match text {
                        Ok(s) => SourceFile {
                            name: runtime.spec.source_file.clone(),
                            content: s,
                            encoding: FileEncoding::Utf8,
                        },
                        Err(e) => SourceFile {
                            name: runtime.spec.source_file.clone(),
                            content: B64.encode(e.into_bytes()),
                            encoding: FileEncoding::Base64,
                        },
                    };
                    Program::Files(std::iter::once(first).chain(files_from_zip).collect())
                }
            }
        };
        let mut annotations: std::collections::BTreeMap<String, String> =
            [(JUDGE0_ID_ANNOTATION.to_string(), (id as u32).to_string())].into();
        if let Some((_, given)) = zip.filter(|(_, given)| given.len() <= MAX_KEPT_ZIP) {
            annotations.insert(ADDITIONAL_FILES_ANNOTATION.to_string(), given);
        }
        if let Some(text) = options_text {
            annotations.insert(COMPILER_OPTIONS_ANNOTATION.to_string(), text);
        }
        // The memory limit as given, in KB: rce enforces whole MiB (rounded up), upstream
        // answers the number it was sent.
        if let Some(kb) = mem.filter(|kb| *kb > 0.0) {
            annotations.insert(MEMORY_LIMIT_ANNOTATION.to_string(), units::whole(kb).to_string());
        }
        Ok(Judge0Submission {
            sub: Submission {
                runtime,
                program,
                stdin,
                args,
                limits: Some(limits),
                expected_output,
                api: Flavor::Judge0,
                annotations,
            },
            extras: Extras {
                redirect_stderr_to_stdout: redirect,
                compiler_options,
                runs: runs.map(|r| units::whole(r) as u32),
                callback,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::seed_runtimes;

    fn runtimes() -> Vec<Arc<Runtime>> {
        seed_runtimes().into_iter().map(Arc::new).collect()
    }

    fn parse(v: Value, b64: bool) -> Result<Judge0Submission, Map<String, Value>> {
        let rts = runtimes();
        let policy = rce_api::callback::Policy::parse("127.0.0.1/32").unwrap();
        parse_submission(
            &v,
            b64,
            &Context { runtimes: &rts, cap: &ResolvedLimits::CEILING, callbacks: &policy },
        )
    }

    fn errors(v: Value, b64: bool) -> Value {
        Value::Object(parse(v, b64).unwrap_err())
    }

    #[test]
    fn loose_values_are_read_as_judge0_reads_them() {
        let j = parse(
            json!({"language_id": "71", "source_code": 42, "cpu_time_limit": " 2.5 ", "wall_time_limit": "",
                    "command_line_arguments": ["ignored"], "enable_network": false, "unknown": {},
                    "redirect_stderr_to_stdout": "1", "number_of_runs": "3", "callback_url": "http://127.0.0.1:9/x"}),
            false,
        )
        .unwrap();
        let sub = j.sub;
        assert!(matches!(&sub.program, Program::Source(s) if s == "42"));
        let l = sub.limits.unwrap();
        assert_eq!(l.cpu_time_ms, Some(2500));
        // An empty wall_time_limit is no value: Judge0's default (the one /config_info tells).
        assert_eq!(l.wall_time_ms, Some(ResolvedLimits::DEFAULT.wall_time_ms));
        assert_eq!(
            (l.memory_mib, l.stack_kib, l.processes),
            (Some(ResolvedLimits::DEFAULT.memory_mib), Some(64_000), Some(ResolvedLimits::DEFAULT.processes))
        );
        assert_eq!((l.file_size_kib, l.output_bytes), (Some(1024), Some(1024 * 1024)));
        assert!(!sub.annotations.contains_key(MEMORY_LIMIT_ANNOTATION), "no memory_limit given");
        assert!(sub.args.is_empty());
        assert_eq!(sub.api, Flavor::Judge0);
        assert_eq!(sub.annotations[JUDGE0_ID_ANNOTATION], "71");
        assert!(j.extras.redirect_stderr_to_stdout);
        assert_eq!(j.extras.runs, Some(3));
        assert_eq!(j.extras.callback.unwrap().format, CallbackFormat::Judge0);
    }

    #[test]
    fn wrong_values_are_field_errors_in_upstreams_words() {
        assert_eq!(errors(json!([1, 2]), false), json!({"submission": ["must be a JSON object"]}));
        assert_eq!(
            errors(
                json!({"language_id": 71.5, "source_code": "!!", "stdin": "/w==", "memory_limit": true}),
                true
            ),
            json!({
                "language_id": ["language with id 71.5 doesn't exist"],
                "source_code": ["can't be blank"],
                "stdin": ["is not valid UTF-8 text"],
                "memory_limit": ["is not a number"],
            })
        );
        assert_eq!(
            errors(
                json!({"language_id": 71, "source_code": "1", "enable_network": "true", "stack_limit": -1,
                       "number_of_runs": 21, "cpu_extra_time": 0.5, "memory_limit": 1000, "wall_time_limit": 0.5,
                       "enable_per_process_and_thread_time_limit": true, "enable_per_process_and_thread_memory_limit": "on",
                       "compiler_options": "-O2", "callback_url": "http://10.1.2.3/x"}),
                false
            ),
            json!({
                "enable_network": ["enabling network is not allowed"],
                "stack_limit": ["must be greater than or equal to 0"],
                "number_of_runs": ["must be less than or equal to 20"],
                "cpu_extra_time": ["must be less than or equal to 0.0"],
                "memory_limit": ["must be greater than or equal to 2048"],
                "wall_time_limit": ["must be greater than or equal to 1"],
                "enable_per_process_and_thread_time_limit": ["this option cannot be enabled"],
                "enable_per_process_and_thread_memory_limit": ["this option cannot be enabled"],
                "compiler_options": ["setting compiler options is only allowed for compiled languages"],
                "callback_url": ["callback URL \"http://10.1.2.3/x\" is not allowed: its address is not admitted by the server's callback allow-list"],
            })
        );
        let e = errors(
            json!({"language_id": 71, "source_code": "1", "max_file_size": 5000, "compiler_options": "x".repeat(513),
                              "command_line_arguments": "y".repeat(513)}),
            false,
        );
        assert_eq!(e["max_file_size"], json!(["must be less than or equal to 4096"]));
        assert_eq!(e["compiler_options"], json!(["is too long (maximum is 512 characters)"]));
        assert_eq!(e["command_line_arguments"], json!(["is too long (maximum is 512 characters)"]));
        // Zero and false are what upstream takes as "not enabled".
        assert!(parse(
            json!({"language_id": 71, "source_code": "1", "cpu_extra_time": 0, "enable_network": "false",
                             "enable_per_process_and_thread_time_limit": false}),
            false
        )
        .is_ok());
    }

    #[test]
    fn callbacks_off_are_refused_as_upstream_refuses_them() {
        let rts = runtimes();
        let off = rce_api::callback::Policy::default();
        let e = parse_submission(
            &json!({"language_id": 71, "source_code": "1", "callback_url": "http://127.0.0.1:9/x"}),
            false,
            &Context { runtimes: &rts, cap: &ResolvedLimits::CEILING, callbacks: &off },
        )
        .unwrap_err();
        assert_eq!(Value::Object(e), json!({"callback_url": ["setting callback is not allowed"]}));
    }

    #[test]
    fn a_batch_without_a_submissions_array_is_empty() {
        assert_eq!(batch_items(&json!({"submissions": [{}, 1]})), vec![json!({}), json!(1)]);
        assert!(batch_items(&json!({"submissions": {}})).is_empty());
        assert!(batch_items(&json!([[{}]])).is_empty());
    }
}
