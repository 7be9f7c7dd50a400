//! The Judge0 handlers: submissions (create, `wait=true`, the list, show, delete, batches),
//! languages, statuses, the informational routes, authentication and authorization.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use rce_api::{judge0, Execution, Phase, Runtime};
use serde_json::{json, Map, Value};

use super::{
    fields::{language_name, needs_outputs, needs_spec, render, requested_fields, Field, NotText, Outputs},
    parse::{batch_items, parse_submission, Context, Judge0Submission, DEFAULT_MAX_FILE_SIZE_KB},
    status::STATUSES,
    zipfiles,
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
pub const VERSION: &str = judge0::VERSION;

/// Upstream's words when a text attribute is not UTF-8 and `base64_encoded` is off.
pub const NOT_UTF8_ONE: &str = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";
pub const NOT_UTF8_MANY: &str = "some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter";

/// Upstream's authorization header (`AUTHZ_HEADER`'s default).
pub const AUTHZ_HEADER: &str = "X-Auth-User";
/// Upstream's authentication header (`AUTHN_HEADER`'s default).
pub const AUTHN_HEADER: &str = "X-Auth-Token";

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

/// Upstream's words for a full queue (`check_queue_size`: 503 `{"error": "queue is full"}`).
fn queue_words(mut e: ApiError) -> ApiError {
    if e.code == "queue_full" {
        e.message = "queue is full".into();
    }
    e
}

fn invalid(errors: Map<String, Value>) -> ApiError {
    ApiError::invalid("invalid submission").with_fields(Value::Object(errors))
}

/// The Execution of a validated submission (pure).
fn execution(tenant: &Tenant, name: &str, j: &Judge0Submission, state: &AppState) -> Execution {
    let mut ex = submit::build(tenant, name, &j.sub, &state.labels);
    j.extras.apply(&mut ex.spec);
    ex.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(judge0::CREATED_AT_ANNOTATION.to_string(), judge0::format_time(now_millis()));
    ex
}

/// Create it (back-pressure, then create, or publish with a queue).
async fn create_execution(state: &AppState, ex: Execution) -> Result<Execution, ApiError> {
    submit::submit_execution(state, ex).await.map_err(queue_words)
}

/// The full outputs of a finished submission whose status holds only excerpts (read from
/// its output ConfigMaps), when the fields show an output.
async fn full_outputs(
    state: &AppState,
    view: &ExecView,
    fields: &[Field],
) -> Result<Option<Outputs>, ApiError> {
    if view.status.output.is_none() || !needs_outputs(fields) {
        return Ok(None);
    }
    Ok(Some(crate::outputs::read(&*state.cluster, view).await?.into()))
}

/// The Executions of a namespace (all namespaces: `None`), newest first, as the watch cache
/// holds them (small copies: see `Cluster::list`).
fn executions(state: &AppState, namespace: Option<&str>) -> Option<Vec<Arc<Execution>>> {
    state.cluster.ready().then(|| state.cluster.list(namespace))
}

async fn render_one(
    state: &AppState,
    view: &ExecView,
    fields: &[Field],
    b64: bool,
    runtimes: &[Arc<Runtime>],
) -> Result<Result<Map<String, Value>, NotText>, ApiError> {
    let outputs = full_outputs(state, view, fields).await?;
    Ok(render(view, fields, b64, runtimes, &state.cap(), outputs))
}

/// `POST /submissions`
#[utoipa::path(post, path = "/submissions", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query), ("wait" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    request_body(content = Object, description = "A Judge0 submission: source_code, language_id, stdin, expected_output, cpu_time_limit, wall_time_limit, memory_limit, stack_limit, max_file_size, number_of_runs, compiler_options, command_line_arguments, redirect_stderr_to_stdout, callback_url, additional_files, ..."),
    responses((status = 201, description = "{token} or, with wait=true, the submission"), (status = 400), (status = 401), (status = 413), (status = 422), (status = 429), (status = 503)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let wait = flag(&q, "wait");
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    submit::check_backpressure(&state, 1).map_err(queue_words)?;
    let body: Value = parse_json(&read_body(req, &state).await?)?;
    let runtimes = state.runtimes()?;
    let cap = state.cap();
    let ctx = Context { runtimes: &runtimes, cap: &cap, callbacks: state.callback_policy() };
    let j = parse_submission(&body, b64, &ctx).map_err(invalid)?;
    let name = submit::new_name();
    let created = create_execution(&state, execution(&tenant, &name, &j, &state)).await?;
    let name = created.metadata.name.clone().unwrap_or(name);
    if !wait {
        return Ok((StatusCode::CREATED, Json(json!({ "token": name }))).into_response());
    }
    let done = submit::wait_result(&state, &tenant.namespace, &name).await?;
    let mut view = ExecView::from_execution(&created);
    view.status = done.status;
    match render_one(&state, &view, &fields, b64, &runtimes).await? {
        Ok(m) => Ok((StatusCode::CREATED, Json(Value::Object(m))).into_response()),
        Err(NotText) => {
            Ok((StatusCode::CREATED, Json(json!({ "error": NOT_UTF8_ONE, "token": name }))).into_response())
        }
    }
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
) -> Result<Response, ApiError> {
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    if !submit::plausible_name(&token) {
        return Err(ApiError::not_found("Not Found"));
    }
    let view = lookup(&*state.cluster, &*state.status, &tenant.namespace, &token, needs_spec(&fields))
        .await?
        .ok_or_else(|| ApiError::not_found("Not Found"))?;
    match render_one(&state, &view, &fields, b64, &state.runtimes()?).await? {
        Ok(m) => Ok(Json(Value::Object(m)).into_response()),
        Err(NotText) => Err(ApiError::bad_request(NOT_UTF8_ONE)),
    }
}

/// The tenant that `X-Auth-User` (header or parameter) authorizes, as upstream's
/// `authorize_request`: none configured (rce's auth off) or not a valid credential → 403
/// with an empty body. It must be the caller's own tenant.
fn authorized_tenant(
    state: &AppState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Tenant, StatusCode> {
    if !state.auth.enabled() {
        return Err(StatusCode::FORBIDDEN);
    }
    let given = headers
        .get(AUTHZ_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get(AUTHZ_HEADER).cloned())
        .filter(|v| !v.trim().is_empty())
        .ok_or(StatusCode::FORBIDDEN)?;
    state
        .auth
        .authenticate(&HeaderMap::new(), Some(given.trim()), None)
        .map(|(t, _)| t)
        .map_err(|_| StatusCode::FORBIDDEN)
}

/// `GET /submissions?page=&per_page=`: the caller's submissions, newest first, with
/// upstream's `meta` (guarded by `X-Auth-User`, as upstream guards it).
#[utoipa::path(get, path = "/submissions", tag = "judge0",
    params(("page" = Option<i64>, Query), ("per_page" = Option<i64>, Query), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query),
           ("X-Auth-User" = Option<String>, Header, description = "An API key of the caller's tenant (Judge0's authorization token)")),
    responses((status = 200, description = "{submissions: [...], meta: {current_page, next_page, prev_page, total_pages, total_count}}"), (status = 400), (status = 401), (status = 403)))]
pub async fn index(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let authorized = match authorized_tenant(&state, &headers, &q) {
        Ok(t) => t,
        Err(code) => return Ok(code.into_response()),
    };
    if authorized.namespace != tenant.namespace {
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let fields = requested_fields(q.get("fields").map(String::as_str))?;
    let b64 = flag(&q, "base64_encoded");
    // Ruby's `to_i`: leading digits, else 0.
    let to_i = |s: &str| -> i64 {
        let t = s.trim_start();
        let (sign, digits) = match t.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, t.strip_prefix('+').unwrap_or(t)),
        };
        let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
        sign * n.parse::<i64>().unwrap_or(0)
    };
    let page = q.get("page").map_or(1, |p| to_i(p));
    let per_page = q.get("per_page").map_or(20, |p| to_i(p));
    if page <= 0 {
        return Err(ApiError::bad_request(format!("invalid page: {page}")));
    }
    if per_page < 0 {
        return Err(ApiError::bad_request(format!("invalid per_page: {per_page}")));
    }
    let Some(all) = executions(&state, Some(&tenant.namespace)) else {
        return Err(ApiError::unavailable());
    };
    let page_of = pagination(all.len() as u64, page as u64, per_page as u64);
    let runtimes = state.runtimes()?;
    let start = usize::try_from((page as u64 - 1).saturating_mul(per_page as u64)).unwrap_or(usize::MAX);
    let spec = needs_spec(&fields);
    // The cache holds small copies: each listed submission is read whole (Redis, then the
    // Execution), as `GET /submissions/{token}` reads it.
    let lookups = all.iter().skip(start).take(usize::try_from(per_page).unwrap_or(usize::MAX)).map(|ex| {
        let (state, ns) = (state.clone(), tenant.namespace.clone());
        let name = ex.metadata.name.clone().unwrap_or_default();
        async move { lookup(&*state.cluster, &*state.status, &ns, &name, spec).await }
    });
    let mut out = Vec::new();
    for found in futures::future::join_all(lookups).await {
        let Some(view) = found? else { continue };
        match render_one(&state, &view, &fields, b64, &runtimes).await? {
            Ok(m) => out.push(Value::Object(m)),
            Err(NotText) => return Err(ApiError::bad_request(NOT_UTF8_MANY)),
        }
    }
    Ok(Json(json!({ "submissions": out, "meta": page_of })).into_response())
}

/// will_paginate's numbers, as upstream's `pagination_dict`.
pub fn pagination(total: u64, page: u64, per_page: u64) -> Value {
    let total_pages = if per_page == 0 { 0 } else { total.div_ceil(per_page) };
    json!({
        "current_page": page,
        "next_page": (page < total_pages).then_some(page + 1),
        "prev_page": (page > 1).then(|| page - 1),
        "total_pages": total_pages,
        "total_count": total,
    })
}

/// `DELETE /submissions/{token}`: disabled, as in Judge0's default configuration
/// (`ENABLE_SUBMISSION_DELETE=false`), after upstream's authorization check.
#[utoipa::path(delete, path = "/submissions/{token}", tag = "judge0", params(("token" = String, Path)),
    responses((status = 400, description = "{\"error\": \"delete not allowed\"}"), (status = 401), (status = 403)))]
pub async fn delete_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match authorized_tenant(&state, &headers, &q) {
        Ok(_) => ApiError::bad_request("delete not allowed").into_response(),
        Err(code) => code.into_response(),
    }
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
    submit::check_backpressure(&state, items.len()).map_err(queue_words)?;
    let runtimes = state.runtimes()?;
    let cap = state.cap();
    let ctx = Context { runtimes: &runtimes, cap: &cap, callbacks: state.callback_policy() };
    let mut out = Vec::with_capacity(items.len());
    let mut any_valid = false;
    for item in &items {
        match parse_submission(item, b64, &ctx) {
            Err(errors) => out.push(Value::Object(errors)),
            Ok(j) => {
                let created =
                    create_execution(&state, execution(&tenant, &submit::new_name(), &j, &state)).await?;
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
    let tokens: Vec<&str> = raw.trim().split(',').filter(|t| !t.is_empty()).collect();
    check_batch_size(tokens.len(), state.config.max_batch)?;
    let runtimes = state.runtimes()?;
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
            Some(v) => match render_one(&state, &v, &fields, b64, &runtimes).await? {
                Ok(m) => Value::Object(m),
                Err(NotText) => return Err(ApiError::bad_request(NOT_UTF8_MANY)),
            },
            None => Value::Null,
        });
    }
    Ok(Json(json!({ "submissions": out })))
}

/// Each Runtime once, under its first Judge0 id, sorted by name (upstream's default scope).
fn language_list(state: &AppState) -> Result<Vec<(u32, String, Arc<Runtime>)>, ApiError> {
    let mut list: Vec<(u32, String, Arc<Runtime>)> = state
        .runtimes()?
        .into_iter()
        .filter_map(|rt| rt.spec.judge0_ids.first().copied().map(|id| (id, language_name(&rt), rt)))
        .collect();
    list.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    list.dedup_by_key(|(id, _, _)| *id);
    Ok(list)
}

/// `GET /languages`
#[utoipa::path(get, path = "/languages", tag = "judge0", responses((status = 200, description = "[{id, name}]")))]
pub async fn languages(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(
        language_list(&state)?.iter().map(|(id, name, _)| json!({ "id": id, "name": name })).collect(),
    )))
}

/// `GET /languages/all`
#[utoipa::path(get, path = "/languages/all", tag = "judge0", responses((status = 200, description = "[{id, name, is_archived}]")))]
pub async fn languages_all(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(
        language_list(&state)?
            .iter()
            .map(|(id, name, _)| json!({ "id": id, "name": name, "is_archived": false }))
            .collect(),
    )))
}

/// A command as Judge0 writes it: `{options}` as `%s` (where the options go), `{file}` as
/// the source file.
fn command(argv: &[String], source_file: &str) -> String {
    argv.iter()
        .map(|a| {
            if a == rce_api::options::PLACEHOLDER {
                "%s".to_string()
            } else {
                a.replace("{file}", source_file)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /languages/{id}`
#[utoipa::path(get, path = "/languages/{id}", tag = "judge0", params(("id" = u32, Path)),
    responses((status = 200, description = "{id, name, is_archived, source_file, compile_cmd, run_cmd}"), (status = 404)))]
pub async fn language(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: u32 = id.parse().map_err(|_| ApiError::not_found("Not Found"))?;
    let rt = catalog::find_judge0(&state.runtimes()?, id).ok_or_else(|| ApiError::not_found("Not Found"))?;
    let project = id == judge0::MULTI_FILE_LANGUAGE_ID;
    Ok(Json(json!({
        "id": id,
        "name": language_name(&rt),
        "is_archived": false,
        "source_file": (!project).then(|| rt.spec.source_file.clone()),
        "compile_cmd": if project { None } else { rt.spec.compile.as_ref().map(|c| command(c, &rt.spec.source_file)) },
        "run_cmd": (!project).then(|| command(&rt.spec.run, &rt.spec.source_file)),
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

/// `GET /license`: rce's license (upstream answers its LICENSE file).
#[utoipa::path(get, path = "/license", tag = "judge0", responses((status = 200, description = "The license", content_type = "text/plain")))]
pub async fn license() -> &'static str {
    "rce is licensed under the Apache License, Version 2.0 (SPDX: Apache-2.0).\n\
     You may obtain a copy of the License at https://www.apache.org/licenses/LICENSE-2.0\n\
     This API follows the interface of Judge0 CE 1.13.1 (GPL-3.0); no Judge0 code is part of rce.\n"
}

/// `GET /isolate`: upstream answers `isolate --version`; rce's sandbox is not isolate, and
/// this says what it is.
#[utoipa::path(get, path = "/isolate", tag = "judge0", responses((status = 200, description = "The sandbox in use", content_type = "text/plain")))]
pub async fn isolate() -> &'static str {
    "rce runner (not isolate): one Kubernetes Pod per run with its own cgroup limits (CPU time, wall time, memory, \
     processes, file size, stack), read-only root, no network, no capabilities, seccomp RuntimeDefault; \
     optionally gVisor.\n"
}

/// `GET /config_info`: Judge0's configuration keys, with the values rce applies.
#[utoipa::path(get, path = "/config_info", tag = "judge0", responses((status = 200, description = "Judge0 configuration keys")))]
pub async fn config_info(State(state): State<AppState>) -> Json<Value> {
    Json(config_values(&state))
}

/// The values of `/config_info`: rce's built-in defaults (a Runtime may set its own, which
/// its submissions show), as maxima the most any Runtime allows under the ceilings
/// (`--cap-*`), in Judge0's units (s, KB).
pub fn config_values(state: &AppState) -> Value {
    let d = rce_api::ResolvedLimits::DEFAULT;
    // The maxima: the most any language allows (its Runtime's maximum under the ceilings).
    let cap = state.cap();
    let runtimes = state.cluster.runtimes().unwrap_or_default();
    let c = if runtimes.is_empty() {
        cap
    } else {
        rce_api::ResolvedLimits::from_fn(|f| {
            runtimes.iter().map(|rt| catalog::max_limits(rt, &cap).get(f)).max().unwrap_or(cap.get(f))
        })
    };
    let secs = |ms: u64| ms as f64 / 1000.0;
    let max_file = c.file_size_kib.min(c.output_bytes / 1024);
    let mut compile_options: Vec<String> = runtimes
        .iter()
        .filter(|rt| rt.spec.compile.is_some() && !rt.spec.compiler_options.is_empty())
        .map(|rt| catalog::display_name(rt))
        .collect();
    compile_options.sort();
    compile_options.dedup();
    json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": compile_options,
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": !state.callback_policy().is_off(),
        "callbacks_max_tries": rce_api::callback::MAX_TRIES,
        "callbacks_timeout": rce_api::callback::TIMEOUT_SECS as f64,
        "enable_additional_files": true,
        "max_queue_size": state.config.max_pending,
        "cpu_time_limit": secs(d.cpu_time_ms),
        "max_cpu_time_limit": secs(c.cpu_time_ms),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": 0.0,
        "wall_time_limit": secs(d.wall_time_ms),
        "max_wall_time_limit": secs(c.wall_time_ms),
        "memory_limit": d.memory_mib * 1024,
        "max_memory_limit": c.memory_mib * 1024,
        "stack_limit": d.stack_kib,
        "max_stack_limit": c.stack_kib,
        "max_processes_and_or_threads": d.processes,
        "max_max_processes_and_or_threads": c.processes,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": DEFAULT_MAX_FILE_SIZE_KB.min(max_file),
        "max_max_file_size": max_file,
        "number_of_runs": 1,
        "max_number_of_runs": rce_api::MAX_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": zipfiles::MAX_EXTRACT_BYTES / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": state.config.max_batch,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })
}

/// `free -h`'s rendering of a size in KiB ("15Gi", "512Mi").
fn human_kib(kib: u64) -> String {
    let units = ["Ki", "Mi", "Gi", "Ti"];
    let mut v = kib as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if v < 10.0 && i > 0 {
        format!("{:.1}{}", v, units[i])
    } else {
        format!("{:.0}{}", v, units[i])
    }
}

/// `GET /system_info`: upstream answers `lscpu` and `free -h` of its host as one object;
/// rce answers the same keys for the host the shim runs on (sandboxes run on the cluster's
/// nodes).
#[utoipa::path(get, path = "/system_info", tag = "judge0", responses((status = 200, description = "lscpu- and free-style keys of the shim's host")))]
pub async fn system_info() -> Json<Value> {
    let mut m = Map::new();
    m.insert("Architecture".into(), json!(std::env::consts::ARCH));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    m.insert("CPU(s)".into(), json!(cpus.to_string()));
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        for (key, want) in [("model name", "Model name"), ("vendor_id", "Vendor ID")] {
            if let Some(v) = info.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key)) {
                m.insert(want.into(), json!(v.1.trim()));
            }
        }
    }
    if let Ok(mem) = std::fs::read_to_string("/proc/meminfo") {
        let kib = |key: &str| {
            mem.lines().find_map(|l| {
                l.strip_prefix(key).and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        };
        if let Some(v) = kib("MemTotal:") {
            m.insert("Mem".into(), json!(human_kib(v)));
        }
        if let Some(v) = kib("SwapTotal:") {
            m.insert("Swap".into(), json!(human_kib(v)));
        }
    }
    Json(Value::Object(m))
}

/// `GET /statistics`: counts by language and status, and per day, from the Executions the
/// cluster holds (rce keeps no database: finished Executions live until they are removed).
#[utoipa::path(get, path = "/statistics", tag = "judge0", responses((status = 200, description = "{created_at, cached_until, submissions, languages, statuses, database}"), (status = 503)))]
pub async fn statistics(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = executions(&state, None).ok_or_else(ApiError::unavailable)?;
    Ok(Json(statistics_of(&all, &state.runtimes()?, now_millis())))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The statistics of a set of Executions at time `now` (ms since the epoch).
pub fn statistics_of(all: &[Arc<Execution>], runtimes: &[Arc<Runtime>], now: i64) -> Value {
    let day_ms = 86_400_000;
    let today = now.div_euclid(day_ms);
    let mut by_language: HashMap<u32, u64> = HashMap::new();
    let mut by_status: HashMap<u32, u64> = HashMap::new();
    let mut by_day: HashMap<i64, u64> = HashMap::new();
    for ex in all {
        let st = ex.status.clone().unwrap_or_default();
        let id = ex
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(judge0::LANGUAGE_ID_ANNOTATION))
            .and_then(|v| v.parse().ok())
            .or_else(|| {
                catalog::find(runtimes, &ex.spec.language).and_then(|r| r.spec.judge0_ids.first().copied())
            });
        if let Some(id) = id {
            *by_language.entry(id).or_default() += 1;
        }
        *by_status.entry(judge0::status_id(&st)).or_default() += 1;
        if let Some(t) =
            ex.metadata.creation_timestamp.as_ref().and_then(|t| judge0::parse_time(&t.0.to_string()))
        {
            *by_day.entry(t.div_euclid(day_ms)).or_default() += 1;
        }
    }
    let mut languages: Vec<(u32, u64)> = by_language.into_iter().collect();
    languages.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut statuses: Vec<(u32, u64)> = by_status.into_iter().collect();
    statuses.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut last_30 = Map::new();
    for d in (today - 30..today).rev() {
        let date = &judge0::format_time(d * day_ms)[..10];
        last_30.insert(date.to_string(), json!(by_day.get(&d).copied().unwrap_or(0)));
    }
    let name_of = |id: u32| catalog::find_judge0(runtimes, id).map(|rt| language_name(&rt));
    json!({
        "created_at": judge0::format_time(now),
        "cached_until": judge0::format_time(now),
        "submissions": {
            "total": all.len(),
            "today": by_day.get(&today).copied().unwrap_or(0),
            "last_30_days": last_30,
        },
        "languages": languages.iter().map(|(id, n)| json!({"language": {"id": id, "name": name_of(*id)}, "count": n})).collect::<Vec<_>>(),
        "statuses": statuses.iter().map(|(id, n)| json!({"status": {"id": id, "name": judge0::status_description(*id)}, "count": n})).collect::<Vec<_>>(),
        "database": {"size_pretty": null, "size_in_bytes": null},
    })
}

/// `GET /workers`: upstream lists its Resque queues and workers; rce's queue is the
/// Executions waiting for a sandbox (`size`: phase Pending), its workers the sandboxes
/// (`working`: phase Processing). rce starts a sandbox per run, so there are no idle or
/// paused workers; `failed`: Executions that ended Failed.
#[utoipa::path(get, path = "/workers", tag = "judge0", responses((status = 200, description = "[{queue, size, available, idle, working, paused, failed}]")))]
pub async fn workers(State(state): State<AppState>) -> Json<Value> {
    let pending = state.cluster.pending();
    let (size, working, failed) = match executions(&state, None) {
        Some(all) => {
            let count =
                |p: Phase| all.iter().filter(|e| e.status.as_ref().and_then(|s| s.phase) == Some(p)).count();
            (pending.unwrap_or_else(|| count(Phase::Pending)), count(Phase::Processing), count(Phase::Failed))
        }
        None => (pending.unwrap_or(0), 0, 0),
    };
    Json(json!([{
        "queue": VERSION,
        "size": size,
        "available": working,
        "idle": 0,
        "working": working,
        "paused": 0,
        "failed": failed,
    }]))
}

/// `POST /authenticate`: 200 when the `X-Auth-Token` (or another rce credential) is valid or
/// authentication is off, else 401; empty bodies, as upstream.
#[utoipa::path(post, path = "/authenticate", tag = "judge0",
    params(("X-Auth-Token" = Option<String>, Header, description = "An rce API key or bearer token")),
    responses((status = 200), (status = 401)))]
pub async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match authenticated(&state, &headers, &q) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(code) => code.into_response(),
    }
}

fn authenticated(
    state: &AppState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(), StatusCode> {
    let token = q.get(AUTHN_HEADER).map(String::as_str);
    state.auth.authenticate(headers, token, None).map(|_| ()).map_err(|_| StatusCode::UNAUTHORIZED)
}

/// `POST /authorize`: 401 without valid authentication, 403 unless `X-Auth-User` is an rce
/// credential of the same tenant (and auth is on), else 200; empty bodies, as upstream.
#[utoipa::path(post, path = "/authorize", tag = "judge0",
    params(("X-Auth-Token" = Option<String>, Header), ("X-Auth-User" = Option<String>, Header, description = "An API key of the caller's tenant")),
    responses((status = 200), (status = 401), (status = 403)))]
pub async fn authorize_route(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(code) = authenticated(&state, &headers, &q) {
        return code.into_response();
    }
    let caller = state.auth.authenticate(&headers, q.get(AUTHN_HEADER).map(String::as_str), None).ok();
    match authorized_tenant(&state, &headers, &q) {
        Ok(t) if caller.is_none_or(|(c, _)| c.namespace == t.namespace) => StatusCode::OK.into_response(),
        Ok(_) => StatusCode::FORBIDDEN.into_response(),
        Err(code) => code.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_as_will_paginate_counts_them() {
        assert_eq!(
            pagination(45, 2, 20),
            json!({"current_page": 2, "next_page": 3, "prev_page": 1, "total_pages": 3, "total_count": 45})
        );
        assert_eq!(
            pagination(0, 1, 20),
            json!({"current_page": 1, "next_page": null, "prev_page": null, "total_pages": 0, "total_count": 0})
        );
        assert_eq!(pagination(5, 1, 0)["total_pages"], 0);
    }

    #[test]
    fn sizes_read_as_free_prints_them() {
        assert_eq!(human_kib(16 * 1024 * 1024), "16Gi");
        assert_eq!(human_kib(1536 * 1024), "1.5Gi");
        assert_eq!(human_kib(512), "512Ki");
    }
}
