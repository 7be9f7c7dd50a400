//! The Piston handlers: `POST …/execute` (synchronous) and `GET …/runtimes`. Their paths are
//! relative: the router serves them under `/api/v2` and again under `/api/v2/piston`.

use axum::{
    extract::{Request, State},
    http::StatusCode,
    Extension, Json,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use super::names::PistonRuntime;
use super::{names, parse::parse, result::result};
use crate::{
    auth::Tenant,
    error::{parse_json, read_body, ApiError},
    outputs,
    state::AppState,
    submit,
};

/// `GET /api/v2/runtimes`: each Runtime as upstream names it (`spec.piston`), or under its
/// own name, version and aliases.
#[utoipa::path(get, path = "/runtimes", tag = "piston", responses((status = 200, body = Vec<PistonRuntime>)))]
pub async fn runtimes(State(state): State<AppState>) -> Result<Json<Vec<PistonRuntime>>, ApiError> {
    Ok(Json(names::list(state.runtimes()?)))
}

// The handler reads the body as a `parse::RawRequest` (every field taken loosely so as to
// refuse a wrong one with Piston's exact message); this struct only documents it. Its doc
// comment is the schema's description in the OpenAPI document.
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
    compile_cpu_time: Option<i64>,
    run_cpu_time: Option<i64>,
    compile_memory_limit: Option<i64>,
    run_memory_limit: Option<i64>,
}

/// `POST /api/v2/execute`: run and answer with the result (bounded by the wait maximum).
#[utoipa::path(post, path = "/execute", tag = "piston", request_body = PistonExecuteRequest,
    responses((status = 200, description = "{language, version, run: {stdout, stderr, output, code, signal, message, status, cpu_time, wall_time, memory}, compile?}"),
        (status = 400), (status = 413), (status = 429), (status = 503), (status = 504)))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Value = parse_json(&read_body(req, &state).await?)?;
    let runtimes = state.runtimes()?;
    let (runtime, sub) = parse(&body, &runtimes, &state.cap())?;
    let created = submit::submit(&state, &tenant, sub).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let view = submit::wait_result(&state, &tenant.namespace, &name).await?;
    if !view.is_terminal() {
        let mut e = ApiError::timeout();
        e.message = format!(
            "the execution did not finish within {} s; it goes on as /api/executions/{name}",
            state.config.wait_max_secs
        );
        return Err(e);
    }
    let out = outputs::read(&*state.cluster, &view).await?;
    Ok((StatusCode::OK, Json(result(&runtime, &view, &out))))
}
