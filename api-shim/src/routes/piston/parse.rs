//! A Piston execute request as sent ([`RawRequest`]), validated into the Runtime and a
//! [`Submission`]. Errors carry Piston's own messages and status (400, in upstream's order of
//! checking); unknown keys are ignored.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{limits::units::piston as units, FileEncoding, Limits, ResolvedLimits, Runtime, SourceFile};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::names;
use crate::{
    catalog,
    error::{ApiError, Flavor},
    routes::{
        native::check_files,
        raw::{self, Loose, Object},
    },
    submit::{Program, Submission},
};

/// The fields of a request that rce reads.
#[derive(Debug, Deserialize)]
pub struct RawRequest {
    language: Option<Loose<String>>,
    version: Option<Loose<String>>,
    files: Option<Loose<Vec<Loose<Object<RawFile>>>>>,
    stdin: Option<Loose<String>>,
    args: Option<Loose<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    name: Option<Loose<String>>,
    content: Option<Loose<String>>,
    encoding: Option<Loose<String>>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// The six limit fields in upstream's order of checking (`memory_limit`, `timeout`,
/// `cpu_time`, each for `compile` then `run`).
const CONSTRAINTS: [&str; 6] = [
    "compile_memory_limit",
    "run_memory_limit",
    "compile_timeout",
    "run_timeout",
    "compile_cpu_time",
    "run_cpu_time",
];

/// JavaScript's falsiness, which upstream's `if (!constraint_value) continue` relies on: an
/// absent, null, false, 0 or empty-string limit is no limit at all (the default applies).
fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Upstream's configured compile timeout and CPU time (`PISTON_COMPILE_TIMEOUT`,
/// `PISTON_COMPILE_CPU_TIME`), in ms.
const PISTON_COMPILE_LIMIT_MS: u64 = 10_000;

/// The configured limit of a constraint, in the request's unit (ms or bytes): the
/// Runtime's maximum (under the operator's ceilings) for the run stage, the compile stage's
/// own limits (`compileLimits`) for the compile stage.
fn configured(name: &str, runtime: &Runtime, cap: &ResolvedLimits) -> u64 {
    // A language without a compile stage has upstream's configured compile limits (its
    // config's defaults: 10 s, 10 s of CPU, no memory limit): every client sends them, and
    // they limit nothing, as upstream's do not for an interpreted language.
    if runtime.spec.compile.is_none() && name.starts_with("compile_") {
        return match name {
            "compile_timeout" | "compile_cpu_time" => PISTON_COMPILE_LIMIT_MS,
            _ => 0,
        };
    }
    let max = catalog::max_limits(runtime, cap);
    let run = catalog::resolve_limits(runtime, None, cap).unwrap_or(max);
    let compile = ResolvedLimits::for_compile(&runtime.spec.compile_limits.unwrap_or_default(), &run, cap);
    match name {
        "run_timeout" => max.wall_time_ms,
        "run_cpu_time" => max.cpu_time_ms,
        "run_memory_limit" => units::mib_to_bytes(max.memory_mib),
        "compile_timeout" => compile.wall_time_ms,
        "compile_cpu_time" => compile.cpu_time_ms,
        _ => units::mib_to_bytes(compile.memory_mib),
    }
}

/// Check the limit fields as upstream does; the run stage's as the Execution's limits
/// (a fraction is cut off; a negative memory limit is upstream's `-1`, no limit of one's
/// own: the Runtime's default).
fn constraints(
    body: &Map<String, Value>,
    runtime: &Runtime,
    cap: &ResolvedLimits,
) -> Result<Limits, ApiError> {
    let mut limits = Limits::default();
    for name in CONSTRAINTS {
        let Some(v) = body.get(name).filter(|v| !falsy(v)) else { continue };
        let Some(n) = v.as_f64() else {
            return Err(bad(format!("If specified, {name} must be a number")));
        };
        let limit = configured(name, runtime, cap);
        if limit > 0 && n > limit as f64 {
            return Err(bad(format!("{name} cannot exceed the configured limit of {limit}")));
        }
        if n < 0.0 {
            if name.ends_with("memory_limit") {
                continue;
            }
            return Err(bad(format!("{name} must be non-negative")));
        }
        let n = n as u64;
        match name {
            "run_timeout" => limits.wall_time_ms = Some(n.max(1)),
            "run_cpu_time" => limits.cpu_time_ms = Some(n.max(1)),
            "run_memory_limit" => limits.memory_mib = Some(units::bytes_to_mib(n).max(1)),
            // The compile stage runs under the Runtime's compile limits (checked above; an
            // Execution cannot lower them).
            _ => {}
        }
    }
    Ok(limits)
}

/// Parse a Piston request into the runtime and a submission.
pub fn parse(
    body: &Value,
    runtimes: &[Arc<Runtime>],
    cap: &ResolvedLimits,
) -> Result<(Arc<Runtime>, Submission), ApiError> {
    let Some(map) = body.as_object() else {
        return Err(bad("the request body must be a JSON object"));
    };
    raw::object::<RawRequest>(body)
        .ok_or_else(|| bad("the request body must be a JSON object"))?
        .validate(map, runtimes, cap)
}

impl RawRequest {
    /// Validate in upstream's order (`get_job` of `api/src/api/v2.js`), with its messages;
    /// all of them are 400. rce's leniencies: a missing `version` means any; an unknown
    /// key is ignored.
    pub fn validate(
        self,
        body: &Map<String, Value>,
        runtimes: &[Arc<Runtime>],
        cap: &ResolvedLimits,
    ) -> Result<(Arc<Runtime>, Submission), ApiError> {
        let language = match self.language {
            Some(Loose::Valid(s)) if !s.is_empty() => s,
            _ => return Err(bad("language is required as a string")),
        };
        let version = match self.version {
            None => "*".to_string(),
            Some(Loose::Valid(s)) if !s.is_empty() => s,
            Some(_) => return Err(bad("version is required as a string")),
        };
        let Some(Loose::Valid(files)) = self.files else {
            return Err(bad("files is required as an array"));
        };
        let mut raw_files = Vec::with_capacity(files.len());
        for (i, f) in files.into_iter().enumerate() {
            let Some(RawFile { name, content: Some(Loose::Valid(content)), encoding }) =
                f.valid().map(|o| o.0)
            else {
                return Err(bad(format!("files[{i}].content is required as a string")));
            };
            raw_files.push((name.and_then(Loose::valid).filter(|n| !n.is_empty()), content, encoding));
        }
        let runtime = names::find(runtimes, &language, &version)
            .ok_or_else(|| bad(format!("{language}-{version} runtime is unknown")))?;
        // Upstream wants one file given as utf8 (or without an encoding); an encoding it
        // does not know is then taken as utf8.
        let given_utf8 = |e: &Option<Loose<String>>| match e {
            None => true,
            Some(Loose::Valid(e)) => e == "utf8",
            Some(Loose::Invalid(v)) => falsy(v),
        };
        if !raw_files.iter().any(|(_, _, e)| given_utf8(e)) {
            return Err(bad("files must include at least one utf8 encoded file"));
        }
        let limits = constraints(body, &runtime, cap)?;
        let mut out = Vec::with_capacity(raw_files.len());
        for (i, (name, content, encoding)) in raw_files.into_iter().enumerate() {
            let name = match name {
                Some(n) => n,
                None if i == 0 => runtime.spec.source_file.clone(),
                None => format!("file{i}.code"),
            };
            let (content, encoding) = match encoding.and_then(Loose::valid).as_deref() {
                Some("base64") => (content, FileEncoding::Base64),
                Some("hex") => {
                    let bytes = (0..content.len() / 2)
                        .map(|j| u8::from_str_radix(content.get(2 * j..2 * j + 2).unwrap_or("zz"), 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| bad(format!("files[{i}].content is not valid hex")))?;
                    (B64.encode(bytes), FileEncoding::Base64)
                }
                _ => (content, FileEncoding::Utf8),
            };
            out.push(SourceFile { name, content, encoding });
        }
        // Upstream runs the first utf8 file (its `code_files[0]`): it is the entry point.
        if let Some(first) = out.iter().position(|f| f.encoding == FileEncoding::Utf8) {
            let entry = out.remove(first);
            out.insert(0, entry);
        }
        check_files(&out).map_err(|e| bad(e.message))?;
        // Upstream: `stdin ?? ''`, then a final newline when there is none.
        let mut stdin = match self.stdin {
            None => String::new(),
            Some(Loose::Valid(s)) => s,
            Some(Loose::Invalid(_)) => return Err(bad("stdin must be a string")),
        };
        if !stdin.ends_with('\n') {
            stdin.push('\n');
        }
        let args = match self.args {
            None => vec![],
            Some(Loose::Valid(a)) => a,
            Some(Loose::Invalid(_)) => return Err(bad("args must be an array of strings")),
        };
        let limits = (limits != Limits::default()).then_some(limits);
        if let Err(e) = catalog::resolve_limits(&runtime, limits.as_ref(), cap) {
            // Within the maximum but under the operator's ceilings or the like.
            let (field, max) =
                units::field(e.field, e.maximum).unwrap_or((e.field.name(), e.maximum.to_string()));
            return Err(bad(format!("{field} cannot exceed the configured limit of {max}")));
        }
        let program = if out.len() == 1
            && out[0].encoding == FileEncoding::Utf8
            && out[0].name == runtime.spec.source_file
        {
            Program::Source(out.remove(0).content)
        } else {
            Program::Files(out)
        };
        let sub = Submission {
            runtime: runtime.clone(),
            program,
            stdin: Some(stdin),
            args,
            limits,
            expected_output: None,
            api: Flavor::Piston,
            annotations: Default::default(),
        };
        Ok((runtime, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::seed_runtimes;
    use serde_json::json;

    fn message(v: Value) -> String {
        let rts: Vec<Arc<Runtime>> = seed_runtimes().into_iter().map(Arc::new).collect();
        parse(&v, &rts, &ResolvedLimits::CEILING).unwrap_err().message
    }

    #[test]
    fn wrong_values_get_pistons_messages() {
        let f = |extra: Value| {
            let mut v = json!({"language": "python", "files": [{"content": "1"}]});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            message(v)
        };
        assert_eq!(message(json!([1])), "the request body must be a JSON object");
        assert_eq!(message(json!({"language": 1})), "language is required as a string");
        assert_eq!(f(json!({"version": 3})), "version is required as a string");
        assert_eq!(f(json!({"files": {}})), "files is required as an array");
        assert_eq!(f(json!({"version": ""})), "version is required as a string");
        assert_eq!(f(json!({"files": []})), "files must include at least one utf8 encoded file");
        assert_eq!(f(json!({"files": [["1"]]})), "files[0].content is required as a string");
        assert_eq!(
            f(json!({"files": [{"content": 1}], "language": "cobol"})),
            "files[0].content is required as a string"
        );
        assert_eq!(f(json!({"language": "cobol"})), "cobol-* runtime is unknown");
        assert_eq!(f(json!({"version": "2.7"})), "python-2.7 runtime is unknown");
        assert_eq!(
            f(json!({"files": [{"content": "1", "encoding": "utf16"}]})),
            "files must include at least one utf8 encoded file"
        );
        assert_eq!(
            f(json!({"files": [{"content": "AA==", "encoding": "base64"}]})),
            "files must include at least one utf8 encoded file"
        );
        assert_eq!(
            f(json!({"files": [{"content": "1"}, {"content": "zz", "encoding": "hex"}]})),
            "files[1].content is not valid hex"
        );
        assert_eq!(f(json!({"stdin": 1})), "stdin must be a string");
        assert_eq!(f(json!({"args": ["a", 1]})), "args must be an array of strings");
        assert_eq!(f(json!({"compile_timeout": "1"})), "If specified, compile_timeout must be a number");
        assert_eq!(f(json!({"run_timeout": -5})), "run_timeout must be non-negative");
        assert_eq!(
            f(json!({"run_timeout": 999999})),
            "run_timeout cannot exceed the configured limit of 15000"
        );
        assert_eq!(f(json!({"run_cpu_time": [1]})), "If specified, run_cpu_time must be a number");
        assert_eq!(
            f(json!({"run_memory_limit": 4294967296_u64})),
            "run_memory_limit cannot exceed the configured limit of 536870912"
        );
    }

    #[test]
    fn interpreted_languages_take_upstreams_compile_limits() {
        // What every Piston client sends by default (upstream's config defaults).
        let body = json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}],
            "compile_timeout": 10000, "run_timeout": 3000, "compile_cpu_time": 10000,
            "run_cpu_time": 3000, "compile_memory_limit": -1, "run_memory_limit": -1});
        let rt = runtime_without_compile();
        let body = body.as_object().expect("an object").clone();
        assert!(constraints(&body, &rt, &ResolvedLimits::CEILING).is_ok());
        let over = json!({"compile_timeout": 10001});
        let e = constraints(over.as_object().expect("an object"), &rt, &ResolvedLimits::CEILING).unwrap_err();
        assert!(
            format!("{e:?}").contains("compile_timeout cannot exceed the configured limit of 10000"),
            "{e:?}"
        );
    }

    fn runtime_without_compile() -> Runtime {
        serde_json::from_value(json!({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Runtime", "metadata": {"name": "python"},
            "spec": {"version": "3.11.2", "image": "x", "sourceFile": "main.py", "run": ["python3", "{file}"]}
        }))
        .expect("a Runtime")
    }

    #[test]
    fn stdin_gets_its_final_newline_and_falsy_limits_are_defaults() {
        let rts: Vec<Arc<Runtime>> = seed_runtimes().into_iter().map(Arc::new).collect();
        let sub = |v: Value| parse(&v, &rts, &ResolvedLimits::CEILING).unwrap().1;
        let base = |extra: Value| {
            let mut v = json!({"language": "python", "files": [{"content": "1"}]});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(sub(base(json!({}))).stdin.as_deref(), Some("\n"));
        assert_eq!(sub(base(json!({"stdin": "a\nb"}))).stdin.as_deref(), Some("a\nb\n"));
        assert_eq!(sub(base(json!({"stdin": "a\n"}))).stdin.as_deref(), Some("a\n"));
        // 0, null, false and "" are no limit (upstream's `if (!value) continue`); a negative
        // memory limit is upstream's -1.
        let s = sub(base(json!({"run_timeout": 0, "run_cpu_time": null, "compile_timeout": "",
                                 "run_memory_limit": -1, "compile_memory_limit": -1})));
        assert_eq!(s.limits, None);
        // `c++`-style names resolve through the Runtime's aliases; the default version is any.
        assert_eq!(
            catalog::name(
                &parse(
                    &json!({"language": "python3", "files": [{"content": "1"}]}),
                    &rts,
                    &ResolvedLimits::CEILING
                )
                .unwrap()
                .0
            ),
            "python"
        );
    }

    #[test]
    fn the_first_utf8_file_is_the_entry_point() {
        let rts: Vec<Arc<Runtime>> = seed_runtimes().into_iter().map(Arc::new).collect();
        let body = json!({"language": "python", "files": [
            {"name": "data.bin", "content": "AAE=", "encoding": "base64"},
            {"name": "prog.py", "content": "print(1)", "encoding": "latin1"},
            {"name": "other.py", "content": "print(2)"}]});
        let (_, sub) = parse(&body, &rts, &ResolvedLimits::CEILING).unwrap();
        let Program::Files(files) = sub.program else { panic!("two files") };
        assert_eq!((files[0].name.as_str(), files[0].encoding), ("prog.py", FileEncoding::Utf8));
        assert_eq!((files[1].name.as_str(), files[1].encoding), ("data.bin", FileEncoding::Base64));
    }

    #[test]
    fn files_take_default_names_and_decode_hex() {
        let rts: Vec<Arc<Runtime>> = seed_runtimes().into_iter().map(Arc::new).collect();
        let body = json!({"language": "py", "files": [{"content": "1", "name": 7}, {"content": "6869", "encoding": "hex"}],
                          "run_timeout": 2000.9, "args": null});
        let (rt, sub) = parse(&body, &rts, &ResolvedLimits::CEILING).unwrap();
        assert_eq!(catalog::name(&rt), "python");
        assert_eq!(sub.api, Flavor::Piston);
        assert_eq!(sub.limits.unwrap().wall_time_ms, Some(2000));
        let Program::Files(files) = sub.program else { panic!("two files") };
        assert_eq!(files[0].name, "main.py");
        assert_eq!((files[1].name.as_str(), files[1].content.as_str()), ("file1.code", "aGk="));
    }
}
