//! A Judge0 submission as sent ([`RawSubmission`]), validated into a [`Submission`] or into
//! Judge0-style field errors (`{"field": ["message", ...]}`, answered with 422).
//!
//! Judge0 is lenient about types: numbers may come as numeric strings, a non-string text
//! field is taken as its JSON text, a non-string `command_line_arguments` is ignored, and
//! unknown keys (`redirect_stderr_to_stdout`, `compiler_options`, `callback_url`,
//! `additional_files`, ...) are accepted and ignored. `enable_network: true` is refused.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{
    limits::units::judge0 as units, FileEncoding, LimitError, Limits, ResolvedLimits, Runtime, SourceFile,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::args::split_args;
use crate::{
    catalog,
    error::Flavor,
    routes::raw::{self, Loose},
    submit::{Program, Submission, JUDGE0_ID_ANNOTATION},
};

/// A number as Judge0 takes it: a JSON number or a numeric string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Numeric {
    Number(f64),
    Text(String),
}

/// A boolean as Judge0 takes it: `true` or `"true"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Switch {
    Bool(bool),
    Text(String),
}

/// The fields of a submission that rce reads.
#[derive(Debug, Deserialize)]
pub struct RawSubmission {
    source_code: Option<Loose<String>>,
    language_id: Option<Loose<Numeric>>,
    stdin: Option<Loose<String>>,
    expected_output: Option<Loose<String>>,
    cpu_time_limit: Option<Loose<Numeric>>,
    wall_time_limit: Option<Loose<Numeric>>,
    memory_limit: Option<Loose<Numeric>>,
    max_processes_and_or_threads: Option<Loose<Numeric>>,
    max_file_size: Option<Loose<Numeric>>,
    cpu_extra_time: Option<Loose<Numeric>>,
    stack_limit: Option<Loose<Numeric>>,
    number_of_runs: Option<Loose<Numeric>>,
    enable_network: Option<Loose<Switch>>,
    command_line_arguments: Option<Loose<String>>,
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
            Ok(v) => Some(v),
            Err(_) => {
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

/// A text field's bytes: base64-decoded with `base64_encoded=true`; a non-string value is
/// taken as its JSON text.
fn bytes(
    given: Option<Loose<String>>,
    key: &str,
    b64: bool,
    errors: &mut Map<String, Value>,
) -> Option<Vec<u8>> {
    match given? {
        Loose::Valid(s) if b64 => match B64.decode(s.trim().replace(['\n', '\r'], "")) {
            Ok(b) => Some(b),
            Err(_) => {
                add_error(errors, key, "is not valid base64");
                None
            }
        },
        Loose::Valid(s) => Some(s.into_bytes()),
        Loose::Invalid(other) => Some(other.to_string().into_bytes()),
    }
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

fn limit_error(errors: &mut Map<String, Value>, e: &LimitError) {
    let (field, max) = units::field(e.field, e.maximum).unwrap_or((e.field.name(), e.maximum.to_string()));
    if e.requested == 0 {
        add_error(errors, field, "must be greater than 0");
    } else {
        add_error(errors, field, format!("must be less than or equal to {max}"));
    }
}

/// Parse one Judge0 submission object into a [`Submission`], or Judge0-style field errors.
pub fn parse_submission(
    v: &Value,
    b64: bool,
    runtimes: &[Arc<Runtime>],
    cap: &ResolvedLimits,
) -> Result<Submission, Map<String, Value>> {
    match raw::object::<RawSubmission>(v) {
        Some(raw) => raw.validate(b64, runtimes, cap),
        None => {
            let mut errors = Map::new();
            add_error(&mut errors, "submission", "must be a JSON object");
            Err(errors)
        }
    }
}

impl RawSubmission {
    /// Check every field (collecting all the errors, as Judge0 does) and map the limits.
    pub fn validate(
        self,
        b64: bool,
        runtimes: &[Arc<Runtime>],
        cap: &ResolvedLimits,
    ) -> Result<Submission, Map<String, Value>> {
        let mut errors = Map::new();
        let source = bytes(self.source_code, "source_code", b64, &mut errors);
        if source.as_ref().is_none_or(|s| s.is_empty()) && !errors.contains_key("source_code") {
            add_error(&mut errors, "source_code", "can't be blank");
        }
        let language_id = number(self.language_id, "language_id", &mut errors);
        let runtime = match language_id {
            None => {
                if !errors.contains_key("language_id") {
                    add_error(&mut errors, "language_id", "can't be blank");
                }
                None
            }
            Some(id) => {
                match catalog::find_judge0(runtimes, id as u32).filter(|_| id >= 0.0 && id.fract() == 0.0) {
                    Some(rt) => Some(rt),
                    None => {
                        add_error(&mut errors, "language_id", format!("language with id {id} doesn't exist"));
                        None
                    }
                }
            }
        };
        let stdin_bytes = bytes(self.stdin, "stdin", b64, &mut errors);
        let stdin = utf8(stdin_bytes, "stdin", &mut errors);
        let expected_bytes = bytes(self.expected_output, "expected_output", b64, &mut errors);
        let expected_output = utf8(expected_bytes, "expected_output", &mut errors);
        let mut positive = |given: Option<Loose<Numeric>>, key: &str| {
            let v = number(given, key, &mut errors);
            if v.is_some_and(|v| v <= 0.0) {
                add_error(&mut errors, key, "must be greater than 0");
                return None;
            }
            v
        };
        let cpu = positive(self.cpu_time_limit, "cpu_time_limit");
        let wall = positive(self.wall_time_limit, "wall_time_limit");
        let mem = positive(self.memory_limit, "memory_limit");
        let procs = positive(self.max_processes_and_or_threads, "max_processes_and_or_threads");
        let fsize = positive(self.max_file_size, "max_file_size");
        let _ = positive(self.cpu_extra_time, "cpu_extra_time");
        let _ = positive(self.stack_limit, "stack_limit");
        let _ = positive(self.number_of_runs, "number_of_runs");
        let network = self.enable_network.and_then(Loose::valid);
        if matches!(&network, Some(Switch::Bool(true)))
            || matches!(&network, Some(Switch::Text(t)) if t == "true")
        {
            add_error(&mut errors, "enable_network", "this option cannot be enabled");
        }
        let args = match self.command_line_arguments {
            Some(Loose::Valid(s)) => split_args(&s),
            _ => vec![],
        };
        let limits = Limits {
            cpu_time_ms: cpu.map(units::secs_to_ms),
            wall_time_ms: wall.map(units::secs_to_ms),
            memory_mib: mem.map(units::kb_to_mib),
            processes: procs.map(units::whole),
            file_size_kib: fsize.map(units::whole),
            output_bytes: None,
            stack_kib: None,
        };
        let limits = (limits != Limits::default()).then_some(limits);
        if let (Some(rt), Some(l)) = (&runtime, &limits) {
            if let Err(e) = catalog::resolve_limits(rt, Some(l), cap) {
                limit_error(&mut errors, &e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(runtime), Some(source), Some(id)) = (runtime, source, language_id) else {
            return Err(errors);
        };
        let program = match String::from_utf8(source) {
            Ok(s) => Program::Source(s),
            Err(e) => Program::Files(vec![SourceFile {
                name: runtime.spec.source_file.clone(),
                content: B64.encode(e.into_bytes()),
                encoding: FileEncoding::Base64,
            }]),
        };
        Ok(Submission {
            runtime,
            program,
            stdin,
            args,
            limits,
            expected_output,
            api: Flavor::Judge0,
            annotations: [(JUDGE0_ID_ANNOTATION.to_string(), (id as u32).to_string())].into(),
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

    fn errors(v: Value, b64: bool) -> Value {
        Value::Object(parse_submission(&v, b64, &runtimes(), &ResolvedLimits::CEILING).unwrap_err())
    }

    #[test]
    fn loose_values_are_read_as_judge0_reads_them() {
        let sub = parse_submission(
            &json!({"language_id": "71", "source_code": 42, "cpu_time_limit": " 2.5 ", "wall_time_limit": "",
                    "command_line_arguments": ["ignored"], "enable_network": false, "unknown": {}}),
            false,
            &runtimes(),
            &ResolvedLimits::CEILING,
        )
        .unwrap();
        assert!(matches!(&sub.program, Program::Source(s) if s == "42"));
        assert_eq!(sub.limits.unwrap().cpu_time_ms, Some(2500));
        assert_eq!(sub.limits.unwrap().wall_time_ms, None);
        assert!(sub.args.is_empty());
        assert_eq!(sub.api, Flavor::Judge0);
        assert_eq!(sub.annotations[JUDGE0_ID_ANNOTATION], "71");
    }

    #[test]
    fn wrong_values_are_field_errors() {
        assert_eq!(errors(json!([1, 2]), false), json!({"submission": ["must be a JSON object"]}));
        assert_eq!(
            errors(
                json!({"language_id": 71.5, "source_code": "!!", "stdin": "/w==", "memory_limit": true}),
                true
            ),
            json!({
                "language_id": ["language with id 71.5 doesn't exist"],
                "source_code": ["is not valid base64"],
                "stdin": ["is not valid UTF-8 text"],
                "memory_limit": ["is not a number"],
            })
        );
        assert_eq!(
            errors(
                json!({"language_id": 71, "source_code": "1", "enable_network": "true", "stack_limit": -1}),
                false
            ),
            json!({"enable_network": ["this option cannot be enabled"], "stack_limit": ["must be greater than 0"]})
        );
    }

    #[test]
    fn a_batch_without_a_submissions_array_is_empty() {
        assert_eq!(batch_items(&json!({"submissions": [{}, 1]})), vec![json!({}), json!(1)]);
        assert!(batch_items(&json!({"submissions": {}})).is_empty());
        assert!(batch_items(&json!([[{}]])).is_empty());
    }
}
