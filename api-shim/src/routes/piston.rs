//! A Piston v2 compatible surface: `POST /api/v2/execute` (synchronous) and
//! `GET /api/v2/runtimes`.
//!
//! Mapping: `run_timeout` (ms) → wall-time limit, `run_cpu_time` (ms) → CPU limit,
//! `run_memory_limit` (bytes, -1 = default) → memory limit (MiB, rounded up);
//! `compile_timeout` and `compile_memory_limit` are accepted and left to the Runtime's compile
//! limits. `run.status` follows Piston: `RE` non-zero exit, `SG` killed by a signal (memory
//! overruns included), `TO` time limit, `OL` output limit, `XX` internal error. As in
//! Piston, a failed compile answers with `compile` and no `run`.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    Extension, Json,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{FileEncoding, LimitError, Limits, Phase, Runtime, SourceFile, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::{
    auth::Tenant,
    backend::{wait_terminal, ExecView},
    catalog,
    error::{parse_json, read_body, ApiError, Flavor},
    routes::native::check_files,
    state::AppState,
    submit::{self, Program, Submission},
};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PistonRuntime {
    pub language: String,
    pub version: String,
    pub aliases: Vec<String>,
}

/// `GET /api/v2/runtimes`
#[utoipa::path(get, path = "/api/v2/runtimes", tag = "piston", responses((status = 200, body = Vec<PistonRuntime>)))]
pub async fn runtimes(State(state): State<AppState>) -> Json<Vec<PistonRuntime>> {
    Json(
        catalog::sorted(state.cluster.runtimes())
            .iter()
            .map(|rt| PistonRuntime {
                language: catalog::name(rt).to_string(),
                version: rt.spec.version.clone(),
                aliases: rt.spec.aliases.clone(),
            })
            .collect(),
    )
}

/// Documentation of the request (the handler parses it by hand to answer with Piston's
/// exact messages).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PistonExecuteRequest {
    language: String,
    version: String,
    #[schema(value_type = Vec<Object>)]
    files: Vec<Value>,
    stdin: Option<String>,
    args: Option<Vec<String>>,
    compile_timeout: Option<i64>,
    run_timeout: Option<i64>,
    compile_memory_limit: Option<i64>,
    run_memory_limit: Option<i64>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn limit_message(e: &LimitError) -> String {
    let (field, max) = match e.field {
        "wallTimeMs" => ("run_timeout", e.maximum.to_string()),
        "cpuTimeMs" => ("run_cpu_time", e.maximum.to_string()),
        "memoryMiB" => ("run_memory_limit", (e.maximum * 1024 * 1024).to_string()),
        other => (other, e.maximum.to_string()),
    };
    if e.requested == 0 {
        format!("{field} must be greater than 0")
    } else {
        format!("{field} cannot exceed the configured limit of {max}")
    }
}

fn int(body: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as i64)).ok_or_else(|| bad(format!("{key} must be a number"))),
    }
}

/// Parse a Piston request into the runtime and a submission.
pub fn parse(body: &Value, runtimes: &[Arc<Runtime>]) -> Result<(Arc<Runtime>, Submission), ApiError> {
    let language = match body.get("language") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad("language is required as a string")),
    };
    let version = match body.get("version") {
        None | Some(Value::Null) => "*".to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return Err(bad("version is required as a string")),
    };
    let Some(files) = body.get("files").and_then(Value::as_array) else {
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
    for (i, f) in files.iter().enumerate() {
        let Some(content) = f.get("content").and_then(Value::as_str) else {
            return Err(bad(format!("files[{i}].content is required as a string")));
        };
        let name = match f.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None if i == 0 => runtime.spec.source_file.clone(),
            None => format!("file{i}.code"),
        };
        let (content, encoding) = match f.get("encoding").and_then(Value::as_str).unwrap_or("utf8") {
            "utf8" => (content.to_string(), FileEncoding::Utf8),
            "base64" => (content.to_string(), FileEncoding::Base64),
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
    let stdin = match body.get("stdin") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        _ => return Err(bad("stdin must be a string")),
    };
    let args = match body.get("args") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad("args must be an array of strings")))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("args must be an array of strings")),
    };
    let run_timeout = int(body, "run_timeout")?;
    let run_cpu = int(body, "run_cpu_time")?;
    let run_mem = int(body, "run_memory_limit")?;
    int(body, "compile_timeout")?;
    int(body, "compile_memory_limit")?;
    let positive = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u64);
    let limits = Limits {
        wall_time_ms: positive(run_timeout),
        cpu_time_ms: positive(run_cpu),
        memory_mib: positive(run_mem).map(|b| b.div_ceil(1024 * 1024)),
        ..Default::default()
    };
    let limits = (limits != Limits::default()).then_some(limits);
    if let Err(e) = catalog::resolve_limits(&runtime, limits.as_ref()) {
        let mut err = ApiError::limit(&e);
        err.message = limit_message(&e);
        return Err(err);
    }
    let program =
        if out.len() == 1 && out[0].encoding == FileEncoding::Utf8 && out[0].name == runtime.spec.source_file
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

/// The Piston result document for a finished Execution.
pub fn result(runtime: &Runtime, view: &ExecView) -> Value {
    let s = &view.status;
    let verdict = s.verdict;
    let stdout = s.stdout.clone().unwrap_or_default();
    let stderr = s.stderr.clone().unwrap_or_default();
    let status = match (view.phase(), verdict) {
        (Phase::Failed, _) => Some("XX"),
        (_, Some(Verdict::TimeLimitExceeded)) => Some("TO"),
        (_, Some(Verdict::OutputLimitExceeded)) => Some("OL"),
        (_, Some(Verdict::MemoryLimitExceeded)) => Some("SG"),
        (_, Some(Verdict::RuntimeError)) if s.signal.is_some() => Some("SG"),
        (_, Some(Verdict::RuntimeError)) => Some("RE"),
        _ => None,
    };
    let signal = s.signal.clone().or_else(|| {
        matches!(verdict, Some(Verdict::MemoryLimitExceeded | Verdict::TimeLimitExceeded))
            .then(|| "SIGKILL".to_string())
    });
    let code = if signal.is_some() { None } else { s.exit_code };
    let message = s.message.clone().or_else(|| match status {
        Some("RE") => s.exit_code.map(|c| format!("Exited with code {c}")),
        _ => None,
    });
    let mut doc = json!({
        "language": catalog::name(runtime),
        "version": runtime.spec.version,
    });
    let compiled = runtime.spec.compile.is_some() || verdict == Some(Verdict::CompilationError);
    if compiled {
        let out = s.compile_output.clone().unwrap_or_default();
        let failed = verdict == Some(Verdict::CompilationError);
        doc["compile"] = json!({
            "stdout": "",
            "stderr": out,
            "output": out,
            "code": if failed { 1 } else { 0 },
            "signal": Value::Null,
            "message": if failed { s.message.clone() } else { None },
            "status": if failed { Some("RE") } else { None },
        });
        if failed {
            return doc;
        }
    }
    doc["run"] = json!({
        "stdout": stdout,
        "stderr": stderr,
        "output": format!("{stdout}{stderr}"),
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": s.time_ms,
        "wall_time": s.wall_time_ms,
        "memory": s.memory_kib.map(|k| k * 1024),
    });
    doc
}

/// `POST /api/v2/execute`: run and answer with the result (bounded by the wait maximum).
#[utoipa::path(post, path = "/api/v2/execute", tag = "piston", request_body = PistonExecuteRequest,
    responses((status = 200, description = "{language, version, run: {stdout, stderr, output, code, signal, ...}, compile?}"),
        (status = 400), (status = 413), (status = 422), (status = 429), (status = 503), (status = 504)))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Value = parse_json(&read_body(req, &state).await?)?;
    if !body.is_object() {
        return Err(bad("the request body must be a JSON object"));
    }
    let runtimes = state.cluster.runtimes();
    let (runtime, sub) = parse(&body, &runtimes)?;
    let created = submit::submit(&state, &tenant, sub).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let view = wait_terminal(
        &*state.cluster,
        &*state.status,
        state.poll_interval,
        &tenant.namespace,
        &name,
        state.wait_max(),
    )
    .await?;
    if !view.is_terminal() {
        let mut e = ApiError::timeout();
        e.message = format!(
            "the execution did not finish within {} s; it goes on as /api/executions/{name}",
            state.config.wait_max_secs
        );
        return Err(e);
    }
    Ok((StatusCode::OK, Json(result(&runtime, &view))))
}
