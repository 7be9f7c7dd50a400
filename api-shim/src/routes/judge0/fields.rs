//! Judge0's submission fields: one table of every field with its wire name, whether it is
//! among the default fields, and whether its value comes from the Execution's spec (so the
//! Execution must be read, not only the Redis document); [`Field::render`] says how each one
//! renders.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{limits::units::judge0 as units, ExecutionSpec, FileEncoding, ResolvedLimits, Runtime};
use serde_json::{json, Map, Value};

use super::status::{message, signal_number, status_description, status_id};
use crate::{backend::ExecView, catalog, error::ApiError, submit::JUDGE0_ID_ANNOTATION};

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
    NumberOfRuns                         "number_of_runs"                             no  no;
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
    CompilerOptions                      "compiler_options"                           no  no;
    CommandLineArguments                 "command_line_arguments"                     no  yes;
    RedirectStderrToStdout               "redirect_stderr_to_stdout"                  no  no;
    CallbackUrl                          "callback_url"                               no  no;
    AdditionalFiles                      "additional_files"                           no  no;
    EnableNetwork                        "enable_network"                             no  no;
    Status                               "status"                                     yes no;
    Language                             "language"                                   no  yes;
}

impl Field {
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// This field's value for a submission.
    pub fn render(self, s: &Rendering<'_>) -> Value {
        let (view, st, spec, limits, b64) = (s.view, &s.view.status, s.spec, s.limits, s.b64);
        match self {
            Field::Token => json!(view.name),
            Field::SourceCode => text(s.source.as_deref(), b64),
            Field::LanguageId => json!(s.language_id),
            Field::Language => match (s.language_id, s.runtime) {
                (Some(id), Some(rt)) => json!({ "id": id, "name": language_name(rt) }),
                _ => Value::Null,
            },
            Field::Stdin => text(spec.and_then(|s| s.stdin.as_deref()), b64),
            Field::ExpectedOutput => text(spec.and_then(|s| s.expected_output.as_deref()), b64),
            Field::Stdout => text(st.stdout.as_deref(), b64),
            Field::Stderr => text(st.stderr.as_deref(), b64),
            Field::CompileOutput => text(st.compile_output.as_deref(), b64),
            Field::Message => text(message(view).as_deref(), b64),
            Field::Status => json!({ "id": s.status_id, "description": status_description(s.status_id) }),
            Field::StatusId => json!(s.status_id),
            Field::CreatedAt => json!(view.created_at.clone().or_else(|| view.submitted_at())),
            Field::FinishedAt => json!(st.finished_at),
            Field::Time => json!(st.time_ms.map(decimal_secs)),
            Field::WallTime => json!(st.wall_time_ms.map(decimal_secs)),
            Field::Memory => json!(st.memory_kib),
            Field::ExitCode => json!(st.exit_code),
            Field::ExitSignal => json!(st.signal.as_deref().and_then(signal_number)),
            Field::NumberOfRuns => json!(1),
            Field::CpuTimeLimit => json!(limits.map(|l| decimal_secs(l.cpu_time_ms))),
            Field::CpuExtraTime => json!("0.0"),
            Field::WallTimeLimit => json!(limits.map(|l| decimal_secs(l.wall_time_ms))),
            Field::MemoryLimit | Field::StackLimit => json!(limits.map(|l| units::mib_to_kb(l.memory_mib))),
            Field::MaxProcessesAndOrThreads => json!(limits.map(|l| l.processes)),
            Field::MaxFileSize => json!(limits.map(|l| l.file_size_kib)),
            Field::EnablePerProcessAndThreadTimeLimit
            | Field::EnablePerProcessAndThreadMemoryLimit
            | Field::RedirectStderrToStdout
            | Field::EnableNetwork => json!(false),
            Field::CommandLineArguments => {
                json!(spec.filter(|s| !s.args.is_empty()).map(|s| s.args.join(" ")))
            }
            Field::CompilerOptions | Field::CallbackUrl | Field::AdditionalFiles => Value::Null,
        }
    }
}

/// Parse `fields`: absent → the defaults, `*` → all, else a comma-separated list.
pub fn requested_fields(param: Option<&str>) -> Result<Vec<Field>, ApiError> {
    let Some(p) = param.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(Field::ALL.iter().copied().filter(|f| f.is_default()).collect());
    };
    if p == "*" {
        return Ok(Field::ALL.to_vec());
    }
    let mut out = Vec::new();
    let mut invalid = Vec::new();
    for f in p.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match Field::from_name(f) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => invalid.push(f.to_string()),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!("invalid fields: [{}]", invalid.join(", "))));
    }
    Ok(out)
}

/// Must the Execution itself be read to render these fields?
pub fn needs_spec(fields: &[Field]) -> bool {
    fields.iter().any(|f| f.needs_spec())
}

/// Seconds with Judge0's decimal rendering ("0.031", "5.0").
pub use rce_api::limits::units::judge0::secs as decimal_secs;

fn text(s: Option<&str>, b64: bool) -> Value {
    match s {
        None => Value::Null,
        Some(s) if b64 => Value::String(B64.encode(s.as_bytes())),
        Some(s) => Value::String(s.to_string()),
    }
}

fn judge0_language_id(view: &ExecView, rt: Option<&Runtime>) -> Option<u32> {
    view.annotations
        .get(JUDGE0_ID_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .or_else(|| rt.and_then(|r| r.spec.judge0_ids.first().copied()))
}

/// A language's Judge0 name, e.g. "Python (3.11.2)".
pub fn language_name(rt: &Runtime) -> String {
    format!("{} ({})", catalog::display_name(rt), rt.spec.version)
}

/// What the fields of one submission are rendered from, worked out once.
pub struct Rendering<'a> {
    view: &'a ExecView,
    runtime: Option<&'a Runtime>,
    spec: Option<&'a ExecutionSpec>,
    limits: Option<ResolvedLimits>,
    status_id: u32,
    language_id: Option<u32>,
    /// The source text (the first file's, decoded, for a multi-file submission).
    source: Option<String>,
    b64: bool,
}

impl<'a> Rendering<'a> {
    pub fn new(view: &'a ExecView, runtime: Option<&'a Runtime>, b64: bool, cap: &ResolvedLimits) -> Self {
        let spec = view.spec.as_ref();
        let limits = match (runtime, spec) {
            (Some(rt), Some(spec)) => catalog::resolve_limits(rt, spec.limits.as_ref(), cap).ok(),
            _ => None,
        };
        let source = spec.and_then(|s| {
            s.source.clone().or_else(|| {
                s.files.as_ref().and_then(|f| f.first()).map(|f| match f.encoding {
                    FileEncoding::Utf8 => f.content.clone(),
                    FileEncoding::Base64 => B64
                        .decode(f.content.trim())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                })
            })
        });
        Rendering {
            view,
            runtime,
            spec,
            limits,
            status_id: status_id(view),
            language_id: judge0_language_id(view, runtime),
            source,
            b64,
        }
    }
}

/// Render a submission with the requested fields.
pub fn render(
    view: &ExecView,
    fields: &[Field],
    b64: bool,
    runtimes: &[Arc<Runtime>],
    cap: &ResolvedLimits,
) -> Map<String, Value> {
    let rt = catalog::find(runtimes, &view.language);
    let r = Rendering::new(view, rt.as_deref(), b64, cap);
    fields.iter().map(|f| (f.name().to_string(), f.render(&r))).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn names(fields: &[Field]) -> Vec<&'static str> {
        fields.iter().map(|f| f.name()).collect()
    }

    #[test]
    fn fields_parse_like_judge0() {
        let defaults: BTreeSet<_> = names(&requested_fields(None).unwrap()).into_iter().collect();
        let expected: BTreeSet<_> =
            ["token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"].into();
        assert_eq!(defaults, expected);
        assert_eq!(names(&requested_fields(Some("stdout,status_id")).unwrap()), vec!["stdout", "status_id"]);
        assert!(names(&requested_fields(Some("*")).unwrap()).contains(&"source_code"));
        let e = requested_fields(Some("stdout,bogus,nope")).unwrap_err();
        assert_eq!(e.message, "invalid fields: [bogus, nope]");
    }

    #[test]
    fn the_table_has_judge0s_fields_once_each() {
        assert_eq!(Field::ALL.len(), 35);
        let unique: BTreeSet<_> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(unique.len(), Field::ALL.len());
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(*f));
        }
        let spec: BTreeSet<_> = Field::ALL.iter().filter(|f| f.needs_spec()).map(|f| f.name()).collect();
        let expected: BTreeSet<_> = [
            "source_code",
            "language_id",
            "stdin",
            "expected_output",
            "language",
            "cpu_time_limit",
            "wall_time_limit",
            "memory_limit",
            "max_processes_and_or_threads",
            "max_file_size",
            "command_line_arguments",
            "stack_limit",
            "created_at",
        ]
        .into();
        assert_eq!(spec, expected);
        assert!(!needs_spec(&requested_fields(None).unwrap()));
        assert!(needs_spec(&[Field::Stdout, Field::SourceCode]));
    }

    #[test]
    fn decimals_render_like_rails() {
        assert_eq!(decimal_secs(31), "0.031");
        assert_eq!(decimal_secs(5000), "5.0");
        assert_eq!(decimal_secs(2500), "2.5");
    }
}
