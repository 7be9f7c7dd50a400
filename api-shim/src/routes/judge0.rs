//! A Judge0 CE 1.13.1 compatible surface: `/submissions` (with `base64_encoded`, `wait`,
//! `fields`), `/submissions/batch`, `/languages`, `/statuses`, `/about`, `/config_info`.
//!
//! Mapping of rce's verdicts onto Judge0's status ids (Judge0 reads them from isolate):
//! Pending → 1 In Queue, Processing → 2, Accepted → 3, WrongAnswer → 4,
//! TimeLimitExceeded → 5, CompilationError → 6, RuntimeError by signal: SIGSEGV → 7,
//! SIGXFSZ → 8, SIGFPE → 9, SIGABRT → 10, any other signal → 12, a non-zero exit without a
//! signal → 11 (NZEC). Judge0 has no memory or output verdicts: isolate reports a memory
//! overrun as a kill by signal, so MemoryLimitExceeded → 12 "Runtime Error (Other)"; output is
//! capped by the file-size limit, so OutputLimitExceeded → 8 (SIGXFSZ). `message` carries
//! rce's precise reason in both cases. InternalError and Cancelled (phase Failed) → 13.
//!
//! Limits: `cpu_time_limit` and `wall_time_limit` in seconds → ms; `memory_limit` in KB →
//! MiB (rounded up); `max_processes_and_or_threads` → processes; `max_file_size` in KB →
//! KiB. `cpu_extra_time`, `stack_limit` and `number_of_runs` are validated and otherwise
//! ignored; `redirect_stderr_to_stdout`, `compiler_options`, `callback_url` and
//! `additional_files` are accepted and ignored; `enable_network: true` is refused.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{FileEncoding, LimitError, Limits, Phase, Runtime, SourceFile, Verdict};
use serde_json::{json, Map, Value};

use crate::{
    auth::Tenant,
    backend::{lookup, wait_terminal, ExecView},
    catalog,
    error::{parse_json, read_body, ApiError, Flavor},
    state::AppState,
    submit::{self, Program, Submission, JUDGE0_ID_ANNOTATION},
};

pub const VERSION: &str = "1.13.1";

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

/// Signal number of a signal name ("SIGSEGV", "SEGV" or "11").
pub fn signal_number(signal: &str) -> Option<i32> {
    let s = signal.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "XCPU" => 24,
        "XFSZ" => 25,
        "SYS" => 31,
        _ => return None,
    })
}

/// The Judge0 status id of an Execution (see the module docs).
pub fn status_id(view: &ExecView) -> u32 {
    match view.phase() {
        Phase::Pending => 1,
        Phase::Processing => 2,
        Phase::Failed => 13,
        Phase::Completed => match view.status.verdict {
            Some(Verdict::Accepted) => 3,
            Some(Verdict::WrongAnswer) => 4,
            Some(Verdict::TimeLimitExceeded) => 5,
            Some(Verdict::CompilationError) => 6,
            Some(Verdict::OutputLimitExceeded) => 8,
            Some(Verdict::MemoryLimitExceeded) => 12,
            Some(Verdict::RuntimeError) => match view.status.signal.as_deref().and_then(signal_number) {
                Some(11) => 7,
                Some(25) => 8,
                Some(8) => 9,
                Some(6) => 10,
                Some(_) => 12,
                None => 11,
            },
            Some(Verdict::InternalError | Verdict::Cancelled) | None => 13,
        },
    }
}

fn message(view: &ExecView) -> Option<String> {
    if let Some(m) = &view.status.message {
        return Some(m.clone());
    }
    match status_id(view) {
        11 => view.status.exit_code.map(|c| format!("Exited with error status {c}")),
        7..=10 | 12 => {
            view.status.signal.as_deref().and_then(signal_number).map(|n| format!("Exited with signal {n}"))
        }
        _ => None,
    }
}

pub const DEFAULT_FIELDS: [&str; 8] =
    ["token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"];

pub const ALL_FIELDS: [&str; 35] = [
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// Fields whose value comes from the Execution's spec (so it must be read, not just the
/// Redis document).
const SPEC_FIELDS: [&str; 13] = [
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
];

/// Parse `fields`: absent → the defaults, `*` → all, else a comma-separated list.
pub fn requested_fields(param: Option<&str>) -> Result<Vec<&'static str>, ApiError> {
    let Some(p) = param.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    if p == "*" {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut out = Vec::new();
    let mut invalid = Vec::new();
    for f in p.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match ALL_FIELDS.iter().find(|a| **a == f) {
            Some(a) if !out.contains(a) => out.push(*a),
            Some(_) => {}
            None => invalid.push(f.to_string()),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!("invalid fields: [{}]", invalid.join(", "))));
    }
    Ok(out)
}

fn needs_spec(fields: &[&str]) -> bool {
    fields.iter().any(|f| SPEC_FIELDS.contains(f))
}

/// Seconds with Judge0's decimal rendering ("0.031", "5.0").
fn decimal_secs(ms: u64) -> String {
    let s = format!("{:.3}", ms as f64 / 1000.0);
    let t = s.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    }
}

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

fn language_name(rt: &Runtime) -> String {
    format!("{} ({})", catalog::display_name(rt), rt.spec.version)
}

/// Render a submission with the requested fields.
pub fn render(
    view: &ExecView,
    fields: &[&str],
    b64: bool,
    runtimes: &[std::sync::Arc<Runtime>],
) -> Map<String, Value> {
    let rt = catalog::find(runtimes, &view.language);
    let rt = rt.as_deref();
    let spec = view.spec.as_ref();
    let limits = match (rt, spec) {
        (Some(rt), Some(spec)) => catalog::resolve_limits(rt, spec.limits.as_ref()).ok(),
        _ => None,
    };
    let st = &view.status;
    let sid = status_id(view);
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
    let mut out = Map::new();
    for f in fields {
        let v = match *f {
            "token" => json!(view.name),
            "source_code" => text(source.as_deref(), b64),
            "language_id" => json!(judge0_language_id(view, rt)),
            "language" => match (judge0_language_id(view, rt), rt) {
                (Some(id), Some(rt)) => json!({ "id": id, "name": language_name(rt) }),
                _ => Value::Null,
            },
            "stdin" => text(spec.and_then(|s| s.stdin.as_deref()), b64),
            "expected_output" => text(spec.and_then(|s| s.expected_output.as_deref()), b64),
            "stdout" => text(st.stdout.as_deref(), b64),
            "stderr" => text(st.stderr.as_deref(), b64),
            "compile_output" => text(st.compile_output.as_deref(), b64),
            "message" => text(message(view).as_deref(), b64),
            "status" => json!({ "id": sid, "description": status_description(sid) }),
            "status_id" => json!(sid),
            "created_at" => json!(view.created_at.clone().or_else(|| view.submitted_at())),
            "finished_at" => json!(st.finished_at),
            "time" => json!(st.time_ms.map(decimal_secs)),
            "wall_time" => json!(st.wall_time_ms.map(decimal_secs)),
            "memory" => json!(st.memory_kib),
            "exit_code" => json!(st.exit_code),
            "exit_signal" => json!(st.signal.as_deref().and_then(signal_number)),
            "number_of_runs" => json!(1),
            "cpu_time_limit" => json!(limits.map(|l| decimal_secs(l.cpu_time_ms))),
            "cpu_extra_time" => json!("0.0"),
            "wall_time_limit" => json!(limits.map(|l| decimal_secs(l.wall_time_ms))),
            "memory_limit" => json!(limits.map(|l| l.memory_mib * 1024)),
            "stack_limit" => json!(limits.map(|l| l.memory_mib * 1024)),
            "max_processes_and_or_threads" => json!(limits.map(|l| l.processes)),
            "max_file_size" => json!(limits.map(|l| l.file_size_kib)),
            "enable_per_process_and_thread_time_limit" => json!(false),
            "enable_per_process_and_thread_memory_limit" => json!(false),
            "command_line_arguments" => json!(spec.filter(|s| !s.args.is_empty()).map(|s| s.args.join(" "))),
            "redirect_stderr_to_stdout" => json!(false),
            "enable_network" => json!(false),
            "compiler_options" | "callback_url" | "additional_files" => Value::Null,
            _ => continue,
        };
        out.insert((*f).to_string(), v);
    }
    out
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}

/// A number given as a JSON number or a numeric string.
fn number(obj: &Map<String, Value>, key: &str, errors: &mut Map<String, Value>) -> Option<f64> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => {
                add_error(errors, key, "is not a number");
                None
            }
        },
        Some(_) => {
            add_error(errors, key, "is not a number");
            None
        }
    }
}

fn add_error(errors: &mut Map<String, Value>, key: &str, msg: impl Into<String>) {
    let entry = errors.entry(key.to_string()).or_insert_with(|| json!([]));
    if let Value::Array(a) = entry {
        a.push(Value::String(msg.into()));
    }
}

fn string(
    obj: &Map<String, Value>,
    key: &str,
    b64: bool,
    errors: &mut Map<String, Value>,
) -> Option<Vec<u8>> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if b64 => match B64.decode(s.trim().replace(['\n', '\r'], "")) {
            Ok(b) => Some(b),
            Err(_) => {
                add_error(errors, key, "is not valid base64");
                None
            }
        },
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => Some(other.to_string().into_bytes()),
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

/// Split `command_line_arguments` like a shell would (quotes, backslashes), without expansion.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn limit_error(errors: &mut Map<String, Value>, e: &LimitError) {
    let (field, max) = match e.field {
        "cpuTimeMs" => ("cpu_time_limit", decimal_secs(e.maximum)),
        "wallTimeMs" => ("wall_time_limit", decimal_secs(e.maximum)),
        "memoryMiB" => ("memory_limit", (e.maximum * 1024).to_string()),
        "processes" => ("max_processes_and_or_threads", e.maximum.to_string()),
        "fileSizeKiB" => ("max_file_size", e.maximum.to_string()),
        other => (other, e.maximum.to_string()),
    };
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
    runtimes: &[std::sync::Arc<Runtime>],
) -> Result<Submission, Map<String, Value>> {
    let mut errors = Map::new();
    let Some(obj) = v.as_object() else {
        add_error(&mut errors, "submission", "must be a JSON object");
        return Err(errors);
    };
    let source = string(obj, "source_code", b64, &mut errors);
    if source.as_ref().is_none_or(|s| s.is_empty()) && !errors.contains_key("source_code") {
        add_error(&mut errors, "source_code", "can't be blank");
    }
    let language_id = number(obj, "language_id", &mut errors);
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
    let stdin_bytes = string(obj, "stdin", b64, &mut errors);
    let stdin = utf8(stdin_bytes, "stdin", &mut errors);
    let expected_bytes = string(obj, "expected_output", b64, &mut errors);
    let expected_output = utf8(expected_bytes, "expected_output", &mut errors);
    let mut positive = |key: &str| {
        let v = number(obj, key, &mut errors);
        if v.is_some_and(|v| v <= 0.0) {
            add_error(&mut errors, key, "must be greater than 0");
            return None;
        }
        v
    };
    let cpu = positive("cpu_time_limit");
    let wall = positive("wall_time_limit");
    let mem = positive("memory_limit");
    let procs = positive("max_processes_and_or_threads");
    let fsize = positive("max_file_size");
    let _ = positive("cpu_extra_time");
    let _ = positive("stack_limit");
    let _ = positive("number_of_runs");
    if obj.get("enable_network").is_some_and(|v| v == &json!(true) || v == &json!("true")) {
        add_error(&mut errors, "enable_network", "this option cannot be enabled");
    }
    let args = match obj.get("command_line_arguments") {
        Some(Value::String(s)) => split_args(s),
        _ => vec![],
    };
    let limits = Limits {
        cpu_time_ms: cpu.map(|s| (s * 1000.0).round().max(1.0) as u64),
        wall_time_ms: wall.map(|s| (s * 1000.0).round().max(1.0) as u64),
        memory_mib: mem.map(|kb| (kb / 1024.0).ceil().max(1.0) as u64),
        processes: procs.map(|p| p.ceil() as u64),
        file_size_kib: fsize.map(|k| k.ceil() as u64),
        output_bytes: None,
    };
    let limits = (limits != Limits::default()).then_some(limits);
    if let (Some(rt), Some(l)) = (&runtime, &limits) {
        if let Err(e) = catalog::resolve_limits(rt, Some(l)) {
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

/// `POST /submissions`
#[utoipa::path(post, path = "/submissions", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query), ("wait" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    request_body(content = Object, description = "A Judge0 submission: source_code, language_id, stdin, expected_output, cpu_time_limit, wall_time_limit, memory_limit, ..."),
    responses((status = 201, description = "{token} or, with wait=true, the submission"), (status = 400), (status = 401), (status = 413), (status = 422), (status = 429), (status = 503)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    let wait = flag(&q, "wait");
    let body: Value = parse_json(&read_body(req, &state).await?)?;
    let runtimes = state.cluster.runtimes();
    let sub = parse_submission(&body, b64, &runtimes)
        .map_err(|errors| ApiError::invalid("invalid submission").with_fields(Value::Object(errors)))?;
    let created = submit::submit(&state, &tenant, sub).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    if !wait {
        return Ok((StatusCode::CREATED, Json(json!({ "token": name }))).into_response());
    }
    let done = wait_terminal(
        &*state.cluster,
        &*state.status,
        state.poll_interval,
        &tenant.namespace,
        &name,
        state.wait_max(),
    )
    .await?;
    let mut view = ExecView::from_execution(&created);
    view.status = done.status;
    Ok((StatusCode::CREATED, Json(Value::Object(render(&view, &fields, b64, &runtimes)))).into_response())
}

/// `GET /submissions/{token}`
#[utoipa::path(get, path = "/submissions/{token}", tag = "judge0",
    params(("token" = String, Path), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    responses((status = 200, description = "The submission, with the requested fields"), (status = 400), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(token): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    if !submit::plausible_name(&token) {
        return Err(ApiError::not_found("Not Found"));
    }
    let view = lookup(&*state.cluster, &*state.status, &tenant.namespace, &token, needs_spec(&fields))
        .await?
        .ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(Value::Object(render(&view, &fields, b64, &state.cluster.runtimes()))))
}

/// `DELETE /submissions/{token}`: disabled, as in Judge0's default configuration.
pub async fn delete_one() -> ApiError {
    ApiError::bad_request("delete not allowed")
}

/// `POST /submissions/batch`
#[utoipa::path(post, path = "/submissions/batch", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query)),
    request_body(content = Object, description = "{\"submissions\": [submission, ...]}"),
    responses((status = 201, description = "One {token} or field-error object per submission"), (status = 400), (status = 422), (status = 503)))]
pub async fn batch_create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let b64 = flag(&q, "base64_encoded");
    let body: Value = parse_json(&read_body(req, &state).await?)?;
    let items = body.get("submissions").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.is_empty() {
        return Err(ApiError::bad_request("there should be at least one submission in a batch"));
    }
    if items.len() > state.config.max_batch {
        return Err(ApiError::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {}",
            state.config.max_batch
        )));
    }
    submit::check_backpressure(&state, items.len())?;
    let runtimes = state.cluster.runtimes();
    let mut out = Vec::with_capacity(items.len());
    let mut any_valid = false;
    for item in &items {
        match parse_submission(item, b64, &runtimes) {
            Err(errors) => out.push(Value::Object(errors)),
            Ok(sub) => {
                let ex = submit::build(&tenant, &submit::new_name(), &sub, &state.labels);
                let created = submit::create(&state, ex).await?;
                any_valid = true;
                out.push(json!({ "token": created.metadata.name }));
            }
        }
    }
    let status = if any_valid { StatusCode::CREATED } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Json(Value::Array(out))).into_response())
}

/// `GET /submissions/batch?tokens=a,b,c`
#[utoipa::path(get, path = "/submissions/batch", tag = "judge0",
    params(("tokens" = String, Query), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    responses((status = 200, description = "{\"submissions\": [submission or null, ...]}"), (status = 400)))]
pub async fn batch_get(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    let raw = headers
        .get("tokens")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("tokens").cloned())
        .unwrap_or_default();
    let tokens: Vec<&str> = raw.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Err(ApiError::bad_request("there should be at least one submission in a batch"));
    }
    if tokens.len() > state.config.max_batch {
        return Err(ApiError::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {}",
            state.config.max_batch
        )));
    }
    let runtimes = state.cluster.runtimes();
    let spec = needs_spec(&fields);
    let lookups = tokens.iter().map(|t| {
        let state = state.clone();
        let ns = tenant.namespace.clone();
        let t = t.to_string();
        async move {
            if !submit::plausible_name(&t) {
                return Ok(None);
            }
            lookup(&*state.cluster, &*state.status, &ns, &t, spec).await
        }
    });
    let results = futures::future::join_all(lookups).await;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(match r? {
            Some(v) => Value::Object(render(&v, &fields, b64, &runtimes)),
            None => Value::Null,
        });
    }
    Ok(Json(json!({ "submissions": out })))
}

fn language_list(state: &AppState) -> Vec<(u32, std::sync::Arc<Runtime>)> {
    let mut list: Vec<(u32, std::sync::Arc<Runtime>)> = state
        .cluster
        .runtimes()
        .into_iter()
        .flat_map(|rt| rt.spec.judge0_ids.clone().into_iter().map(move |id| (id, rt.clone())))
        .collect();
    list.sort_by_key(|(id, _)| *id);
    list.dedup_by_key(|(id, _)| *id);
    list
}

/// `GET /languages`
#[utoipa::path(get, path = "/languages", tag = "judge0", responses((status = 200, description = "[{id, name}]")))]
pub async fn languages(State(state): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        language_list(&state).iter().map(|(id, rt)| json!({ "id": id, "name": language_name(rt) })).collect(),
    ))
}

/// `GET /languages/all`
pub async fn languages_all(State(state): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        language_list(&state)
            .iter()
            .map(|(id, rt)| json!({ "id": id, "name": language_name(rt), "is_archived": false }))
            .collect(),
    ))
}

/// `GET /languages/{id}`
#[utoipa::path(get, path = "/languages/{id}", tag = "judge0", params(("id" = u32, Path)),
    responses((status = 200, description = "{id, name, is_archived, source_file, compile_cmd, run_cmd}"), (status = 404)))]
pub async fn language(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: u32 = id.parse().map_err(|_| ApiError::not_found("Not Found"))?;
    let rt = catalog::find_judge0(&state.cluster.runtimes(), id)
        .ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(json!({
        "id": id,
        "name": language_name(&rt),
        "is_archived": false,
        "source_file": rt.spec.source_file,
        "compile_cmd": rt.spec.compile.as_ref().map(|c| c.join(" ")),
        "run_cmd": rt.spec.run.join(" "),
    })))
}

/// `GET /statuses`
#[utoipa::path(get, path = "/statuses", tag = "judge0", responses((status = 200, description = "[{id, description}]")))]
pub async fn statuses() -> Json<Value> {
    Json(Value::Array(STATUSES.iter().map(|(id, d)| json!({ "id": id, "description": d })).collect()))
}

/// `GET /about`
#[utoipa::path(get, path = "/about", tag = "judge0", responses((status = 200, description = "{version, homepage, source_code, maintainer}")))]
pub async fn about() -> Json<Value> {
    Json(json!({
        "version": VERSION,
        "homepage": "rce: a Kubernetes-native remote code execution engine (Judge0 CE 1.13.1 compatible API)",
        "source_code": "rce api-shim",
        "maintainer": "rce",
    }))
}

/// `GET /version`
pub async fn version() -> &'static str {
    VERSION
}

/// `GET /config_info`: Judge0's configuration keys, with rce's values.
#[utoipa::path(get, path = "/config_info", tag = "judge0", responses((status = 200, description = "Judge0 configuration keys")))]
pub async fn config_info(State(state): State<AppState>) -> Json<Value> {
    let d = rce_api::ResolvedLimits::DEFAULT;
    let c = rce_api::ResolvedLimits::CEILING;
    let secs = |ms: u64| ms as f64 / 1000.0;
    Json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": false,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": false,
        "callbacks_max_tries": 0,
        "callbacks_timeout": 0,
        "enable_additional_files": false,
        "max_queue_size": state.config.max_pending,
        "cpu_time_limit": secs(d.cpu_time_ms),
        "max_cpu_time_limit": secs(c.cpu_time_ms),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": 0.0,
        "wall_time_limit": secs(d.wall_time_ms),
        "max_wall_time_limit": secs(c.wall_time_ms),
        "memory_limit": d.memory_mib * 1024,
        "max_memory_limit": c.memory_mib * 1024,
        "stack_limit": d.memory_mib * 1024,
        "max_stack_limit": c.memory_mib * 1024,
        "max_processes_and_or_threads": d.processes,
        "max_max_processes_and_or_threads": c.processes,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": d.file_size_kib,
        "max_max_file_size": c.file_size_kib,
        "number_of_runs": 1,
        "max_number_of_runs": 1,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": 0,
        "enable_batched_submissions": true,
        "max_submission_batch_size": state.config.max_batch,
        "submission_cache_duration": 0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::ExecutionStatus;

    fn view(phase: Phase, verdict: Option<Verdict>, signal: Option<&str>, exit: Option<i32>) -> ExecView {
        ExecView {
            namespace: "default".into(),
            name: "t".into(),
            language: "python".into(),
            created_at: None,
            status: ExecutionStatus {
                phase: Some(phase),
                verdict,
                signal: signal.map(str::to_string),
                exit_code: exit,
                ..Default::default()
            },
            spec: None,
            annotations: Default::default(),
        }
    }

    #[test]
    fn verdicts_map_to_judge0_status_ids() {
        use Verdict::*;
        let c = Phase::Completed;
        assert_eq!(status_id(&view(Phase::Pending, None, None, None)), 1);
        assert_eq!(status_id(&view(Phase::Processing, None, None, None)), 2);
        assert_eq!(status_id(&view(c, Some(Accepted), None, Some(0))), 3);
        assert_eq!(status_id(&view(c, Some(WrongAnswer), None, Some(0))), 4);
        assert_eq!(status_id(&view(c, Some(TimeLimitExceeded), Some("SIGKILL"), None)), 5);
        assert_eq!(status_id(&view(c, Some(CompilationError), None, Some(1))), 6);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGSEGV"), None)), 7);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGXFSZ"), None)), 8);
        assert_eq!(status_id(&view(c, Some(OutputLimitExceeded), None, None)), 8);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGFPE"), None)), 9);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGABRT"), None)), 10);
        assert_eq!(status_id(&view(c, Some(RuntimeError), None, Some(1))), 11);
        // The process limit: stopped by the runner, no signal or exit code of its own.
        assert_eq!(status_id(&view(c, Some(RuntimeError), None, None)), 11);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGKILL"), None)), 12);
        assert_eq!(status_id(&view(c, Some(MemoryLimitExceeded), Some("SIGKILL"), None)), 12);
        assert_eq!(status_id(&view(Phase::Failed, Some(InternalError), None, None)), 13);
        assert_eq!(status_description(11), "Runtime Error (NZEC)");
        let v = view(c, Some(RuntimeError), None, Some(3));
        assert_eq!(message(&v).as_deref(), Some("Exited with error status 3"));
    }

    #[test]
    fn fields_parse_like_judge0() {
        assert_eq!(requested_fields(None).unwrap(), DEFAULT_FIELDS.to_vec());
        assert_eq!(requested_fields(Some("stdout,status_id")).unwrap(), vec!["stdout", "status_id"]);
        assert!(requested_fields(Some("*")).unwrap().contains(&"source_code"));
        let e = requested_fields(Some("stdout,bogus,nope")).unwrap_err();
        assert_eq!(e.message, "invalid fields: [bogus, nope]");
    }

    #[test]
    fn decimals_render_like_rails() {
        assert_eq!(decimal_secs(31), "0.031");
        assert_eq!(decimal_secs(5000), "5.0");
        assert_eq!(decimal_secs(2500), "2.5");
    }

    #[test]
    fn command_line_arguments_split_like_a_shell() {
        assert_eq!(split_args(r#"a "b c" 'd e' f\ g"#), vec!["a", "b c", "d e", "f g"]);
        assert!(split_args("   ").is_empty());
    }
}
