//! The Judge0 handlers: submissions (single, batch, `wait=true`), languages, statuses and
//! the informational routes.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use rce_api::Runtime;
use serde_json::{json, Value};

use super::{
    fields::{language_name, needs_spec, render, requested_fields},
    parse::{batch_items, parse_submission},
    status::STATUSES,
};
use crate::{
    auth::Tenant,
    backend::{lookup, ExecView},
    catalog,
    error::{parse_json, read_body, ApiError},
    state::AppState,
    submit,
};

/// The Judge0 version this surface follows.
pub const VERSION: &str = "1.13.1";

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}

/// A batch holds at least one and at most `--max-batch` submissions.
fn check_batch_size(n: usize, max: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request("there should be at least one submission in a batch"));
    }
    if n > max {
        return Err(ApiError::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {max}"
        )));
    }
    Ok(())
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
    let sub = parse_submission(&body, b64, &runtimes, &state.cap())
        .map_err(|errors| ApiError::invalid("invalid submission").with_fields(Value::Object(errors)))?;
    let created = submit::submit(&state, &tenant, sub).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    if !wait {
        return Ok((StatusCode::CREATED, Json(json!({ "token": name }))).into_response());
    }
    let done = submit::wait_result(&state, &tenant.namespace, &name).await?;
    let mut view = ExecView::from_execution(&created);
    view.status = done.status;
    Ok((StatusCode::CREATED, Json(Value::Object(render(&view, &fields, b64, &runtimes, &state.cap()))))
        .into_response())
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
    Ok(Json(Value::Object(render(&view, &fields, b64, &state.cluster.runtimes(), &state.cap()))))
}

/// `DELETE /submissions/{token}`: disabled, as in Judge0's default configuration.
#[utoipa::path(delete, path = "/submissions/{token}", tag = "judge0", params(("token" = String, Path)),
    responses((status = 400, description = "{\"error\": \"delete not allowed\"}"), (status = 401)))]
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
    let items = batch_items(&body);
    check_batch_size(items.len(), state.config.max_batch)?;
    submit::check_backpressure(&state, items.len())?;
    let runtimes = state.cluster.runtimes();
    let mut out = Vec::with_capacity(items.len());
    let mut any_valid = false;
    for item in &items {
        match parse_submission(item, b64, &runtimes, &state.cap()) {
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
    check_batch_size(tokens.len(), state.config.max_batch)?;
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
            Some(v) => Value::Object(render(&v, &fields, b64, &runtimes, &state.cap())),
            None => Value::Null,
        });
    }
    Ok(Json(json!({ "submissions": out })))
}

fn language_list(state: &AppState) -> Vec<(u32, Arc<Runtime>)> {
    let mut list: Vec<(u32, Arc<Runtime>)> = state
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
#[utoipa::path(get, path = "/languages/all", tag = "judge0", responses((status = 200, description = "[{id, name, is_archived}]")))]
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
#[utoipa::path(get, path = "/version", tag = "judge0", responses((status = 200, description = "The Judge0 version", content_type = "text/plain")))]
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
