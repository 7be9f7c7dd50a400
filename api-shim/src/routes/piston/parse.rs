//! A Piston execute request as sent ([`RawRequest`]), validated into the Runtime and a
//! [`Submission`]. Errors carry Piston's own messages (400, or 422 for an unknown runtime or
//! a limit over the Runtime's maximum); unknown keys are ignored.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{
    limits::units::piston as units, FileEncoding, LimitError, Limits, ResolvedLimits, Runtime, SourceFile,
};
use serde::Deserialize;
use serde_json::Value;

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
    run_timeout: Option<Loose<f64>>,
    run_cpu_time: Option<Loose<f64>>,
    run_memory_limit: Option<Loose<f64>>,
    compile_timeout: Option<Loose<f64>>,
    compile_memory_limit: Option<Loose<f64>>,
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

fn limit_message(e: &LimitError) -> String {
    let (field, max) = units::field(e.field, e.maximum).unwrap_or((e.field.name(), e.maximum.to_string()));
    if e.requested == 0 {
        format!("{field} must be greater than 0")
    } else {
        format!("{field} cannot exceed the configured limit of {max}")
    }
}

/// A number of milliseconds or bytes (a JSON number; a fraction is cut off).
fn int(given: Option<Loose<f64>>, key: &str) -> Result<Option<i64>, ApiError> {
    match given {
        None => Ok(None),
        Some(Loose::Valid(f)) => Ok(Some(f as i64)),
        Some(Loose::Invalid(_)) => Err(bad(format!("{key} must be a number"))),
    }
}

/// Parse a Piston request into the runtime and a submission.
pub fn parse(
    body: &Value,
    runtimes: &[Arc<Runtime>],
    cap: &ResolvedLimits,
) -> Result<(Arc<Runtime>, Submission), ApiError> {
    raw::object::<RawRequest>(body)
        .ok_or_else(|| bad("the request body must be a JSON object"))?
        .validate(runtimes, cap)
}

impl RawRequest {
    pub fn validate(
        self,
        runtimes: &[Arc<Runtime>],
        cap: &ResolvedLimits,
    ) -> Result<(Arc<Runtime>, Submission), ApiError> {
        let language = match self.language {
            Some(Loose::Valid(s)) if !s.is_empty() => s,
            _ => return Err(bad("language is required as a string")),
        };
        let version = match self.version {
            None => "*".to_string(),
            Some(Loose::Valid(s)) => s,
            Some(Loose::Invalid(_)) => return Err(bad("version is required as a string")),
        };
        let Some(Loose::Valid(files)) = self.files else {
            return Err(bad("files is required as an array"));
        };
        let runtime = catalog::find(runtimes, &language)
            .filter(|rt| catalog::version_matches(&version, &rt.spec.version))
            .ok_or_else(|| {
                let known: Vec<String> = catalog::sorted(runtimes.to_vec())
                    .iter()
                    .map(|r| format!("{}-{}", catalog::name(r), r.spec.version))
                    .collect();
                let mut e = ApiError::unknown_language(&language, known.clone());
                e.message =
                    format!("{language}-{version} runtime is unknown; known runtimes: {}", known.join(", "));
                e
            })?;
        let mut out = Vec::with_capacity(files.len());
        for (i, f) in files.into_iter().enumerate() {
            let Some(RawFile { name, content: Some(Loose::Valid(content)), encoding }) =
                f.valid().map(|o| o.0)
            else {
                return Err(bad(format!("files[{i}].content is required as a string")));
            };
            let name = match name.and_then(Loose::valid).filter(|n| !n.is_empty()) {
                Some(n) => n,
                None if i == 0 => runtime.spec.source_file.clone(),
                None => format!("file{i}.code"),
            };
            let encoding = encoding.and_then(Loose::valid);
            let (content, encoding) = match encoding.as_deref().unwrap_or("utf8") {
                "utf8" => (content, FileEncoding::Utf8),
                "base64" => (content, FileEncoding::Base64),
                "hex" => {
                    let bytes = (0..content.len() / 2)
                        .map(|j| u8::from_str_radix(content.get(2 * j..2 * j + 2).unwrap_or("zz"), 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| bad(format!("files[{i}].content is not valid hex")))?;
                    (B64.encode(bytes), FileEncoding::Base64)
                }
                other => {
                    return Err(bad(format!("files[{i}].encoding {other:?} is not one of utf8, base64, hex")))
                }
            };
            out.push(SourceFile { name, content, encoding });
        }
        if out.is_empty() {
            return Err(bad("files is required as an array"));
        }
        check_files(&out).map_err(|e| bad(e.message))?;
        let stdin = match self.stdin {
            None => None,
            Some(Loose::Valid(s)) => Some(s),
            Some(Loose::Invalid(_)) => return Err(bad("stdin must be a string")),
        };
        let args = match self.args {
            None => vec![],
            Some(Loose::Valid(a)) => a,
            Some(Loose::Invalid(_)) => return Err(bad("args must be an array of strings")),
        };
        let run_timeout = int(self.run_timeout, "run_timeout")?;
        let run_cpu = int(self.run_cpu_time, "run_cpu_time")?;
        let run_mem = int(self.run_memory_limit, "run_memory_limit")?;
        int(self.compile_timeout, "compile_timeout")?;
        int(self.compile_memory_limit, "compile_memory_limit")?;
        let positive = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u64);
        let limits = Limits {
            wall_time_ms: positive(run_timeout),
            cpu_time_ms: positive(run_cpu),
            memory_mib: positive(run_mem).map(units::bytes_to_mib),
            ..Default::default()
        };
        let limits = (limits != Limits::default()).then_some(limits);
        if let Err(e) = catalog::resolve_limits(&runtime, limits.as_ref(), cap) {
            let mut err = ApiError::limit(&e);
            err.message = limit_message(&e);
            return Err(err);
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
            stdin,
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
        assert_eq!(f(json!({"files": []})), "files is required as an array");
        assert_eq!(f(json!({"files": [["1"]]})), "files[0].content is required as a string");
        assert_eq!(
            f(json!({"files": [{"content": "1", "encoding": "utf16"}]})),
            "files[0].encoding \"utf16\" is not one of utf8, base64, hex"
        );
        assert_eq!(
            f(json!({"files": [{"content": "zz", "encoding": "hex"}]})),
            "files[0].content is not valid hex"
        );
        assert_eq!(f(json!({"stdin": 1})), "stdin must be a string");
        assert_eq!(f(json!({"args": ["a", 1]})), "args must be an array of strings");
        assert_eq!(f(json!({"compile_timeout": "1"})), "compile_timeout must be a number");
        assert_eq!(
            f(json!({"run_memory_limit": 4294967296_u64})),
            "run_memory_limit cannot exceed the configured limit of 536870912"
        );
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
