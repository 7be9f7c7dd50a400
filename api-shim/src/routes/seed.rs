//! The seed executor's API, unchanged for its clients.

use axum::{
    extract::{Path, State},
    Extension, Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::Tenant,
    backend::lookup,
    catalog,
    error::{ApiError, Flavor, JsonBody},
    state::AppState,
    submit::{self, Program, Submission},
    views::ExecutionView,
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SeedExecuteRequest {
    /// `python`, `javascript` or `bash` (or any Runtime name or alias).
    pub language: Option<String>,
    /// The program's source text.
    pub code: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeedExecuteResponse {
    pub job_id: String,
    /// Always `Pending`.
    pub status: String,
    /// Always `Job submitted successfully`.
    pub message: String,
}

/// Submit code (the seed's `POST /api/execute`).
#[utoipa::path(post, path = "/api/execute", tag = "seed", request_body = SeedExecuteRequest,
    responses((status = 200, body = SeedExecuteResponse), (status = 400), (status = 413), (status = 422), (status = 503)))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    JsonBody(req): JsonBody<SeedExecuteRequest>,
) -> Result<Json<SeedExecuteResponse>, ApiError> {
    let (Some(language), Some(code)) = (req.language.filter(|l| !l.trim().is_empty()), req.code) else {
        return Err(ApiError::bad_request("language and code are required"));
    };
    if code.trim().is_empty() {
        return Err(ApiError::bad_request("language and code are required"));
    }
    let runtimes = state.runtimes()?;
    let runtime = catalog::find(&runtimes, &language)
        .ok_or_else(|| ApiError::unknown_language(&language, catalog::known_names(&runtimes)))?;
    let sub = Submission {
        runtime,
        program: Program::Source(code),
        stdin: None,
        args: vec![],
        limits: None,
        expected_output: None,
        api: Flavor::Seed,
        annotations: Default::default(),
    };
    let created = submit::submit(&state, &tenant, sub).await?;
    Ok(Json(SeedExecuteResponse {
        job_id: created.metadata.name.unwrap_or_default(),
        status: "Pending".into(),
        message: "Job submitted successfully".into(),
    }))
}

/// A job's status (the seed's `GET /api/status/{jobId}`), with the richer fields beside.
#[utoipa::path(get, path = "/api/status/{job_id}", tag = "seed",
    params(("job_id" = String, Path, description = "The job id returned by POST /api/execute")),
    responses((status = 200, body = ExecutionView), (status = 404)))]
pub async fn status(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(job_id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    if !submit::plausible_name(&job_id) {
        return Err(ApiError::not_found("Job not found"));
    }
    let view = lookup(&*state.cluster, &*state.status, &tenant.namespace, &job_id, false)
        .await?
        .ok_or_else(|| ApiError::not_found("Job not found"))?;
    let out = crate::outputs::read(&*state.cluster, &view).await?;
    Ok(Json(ExecutionView::from(&view).with_outputs(&out)))
}
