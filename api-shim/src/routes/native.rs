//! rce's own API: full submissions, status, live streams (SSE and WebSocket), languages.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{
        ws::{
            close_code, rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket,
            WebSocketUpgrade,
        },
        Path, State,
    },
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use futures::{Stream, StreamExt};
use rce_api::{options, Callback, Limits, SourceFile, MAX_RUNS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::{
    auth::Tenant,
    backend::{lookup, watch, ExecView},
    catalog,
    error::{ApiError, Flavor, JsonBody},
    outputs,
    state::AppState,
    submit::{self, Program, Submission},
    views::ExecutionView,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateExecution {
    /// A Runtime name or alias (see `GET /api/languages`).
    pub language: String,
    /// The source text. Give `source` or `files`.
    pub source: Option<String>,
    /// Several files, the first being the entry point.
    #[schema(value_type = Option<Vec<Object>>)]
    pub files: Option<Vec<SourceFile>>,
    pub stdin: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// `wallTimeMs`, `cpuTimeMs`, `memoryMiB`, `processes`, `outputBytes`, `fileSizeKiB`.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Limits>,
    /// When given, stdout is compared with it: Accepted or WrongAnswer.
    pub expected_output: Option<String>,
    /// The program's stderr goes to its stdout (one stream, in the order written).
    #[serde(default)]
    pub redirect_stderr_to_stdout: bool,
    /// Options for the compiler, one argument each; each must match the Runtime's
    /// `compilerOptions` allow-list. Refused for a language without a compile step.
    #[serde(default)]
    pub compiler_options: Vec<String>,
    /// How many times the program runs (1 to 20); the figures are the average.
    pub runs: Option<u32>,
    /// `{url, format}`: where the result is PUT once the Execution ends (`format`: `rce`,
    /// the status document, by default; or `judge0`). The destination must be admitted by
    /// the server's `--callback-allow`.
    #[schema(value_type = Option<Object>)]
    pub callback: Option<Callback>,
}

/// Check a submission's files by the domain core's rules (the operator's, word for word).
pub fn check_files(files: &[SourceFile]) -> Result<(), ApiError> {
    rce_api::files::check_files(files).map_err(|e| ApiError::invalid(e.0))
}

/// Submit an Execution.
#[utoipa::path(post, path = "/api/executions", tag = "rce", request_body = CreateExecution,
    responses((status = 201, body = ExecutionView), (status = 400), (status = 413), (status = 422), (status = 429), (status = 503)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    JsonBody(req): JsonBody<CreateExecution>,
) -> Result<(StatusCode, Json<ExecutionView>), ApiError> {
    let runtimes = state.cluster.runtimes();
    let runtime = catalog::find(&runtimes, &req.language)
        .ok_or_else(|| ApiError::unknown_language(&req.language, catalog::known_names(&runtimes)))?;
    let program = match (req.source, req.files) {
        (Some(s), None) => Program::Source(s),
        (None, Some(f)) => {
            check_files(&f)?;
            Program::Files(f)
        }
        _ => return Err(ApiError::invalid("give exactly one of source and files")),
    };
    if let Some(runs) = req.runs {
        if runs == 0 || runs > MAX_RUNS {
            return Err(ApiError::invalid(format!("runs must be between 1 and {MAX_RUNS}")));
        }
    }
    if !req.compiler_options.is_empty() {
        let compiles = options::takes_options(runtime.spec.compile.as_deref());
        options::check(&runtime.spec.compiler_options, compiles, &req.compiler_options)
            .map_err(|e| ApiError::invalid(e.0))?;
    }
    if let Some(cb) = &req.callback {
        state.callback_policy().check_url(cb.url.trim()).map_err(|e| ApiError::invalid(e.0))?;
    }
    let sub = Submission {
        runtime,
        program,
        stdin: req.stdin,
        args: req.args,
        limits: req.limits,
        expected_output: req.expected_output,
        api: Flavor::Native,
        annotations: Default::default(),
    };
    catalog::resolve_limits(&sub.runtime, sub.limits.as_ref(), &state.cap())
        .map_err(|e| ApiError::limit(&e))?;
    let mut ex = submit::build(&tenant, &submit::new_name(), &sub, &state.labels);
    ex.spec.redirect_stderr_to_stdout = req.redirect_stderr_to_stdout;
    ex.spec.compiler_options = req.compiler_options;
    ex.spec.runs = req.runs;
    ex.spec.callback = req.callback.map(|c| Callback { url: c.url.trim().to_string(), ..c });
    let created = submit::submit_execution(&state, ex).await?;
    Ok((StatusCode::CREATED, Json(ExecutionView::from(&ExecView::from_execution(&created)))))
}

async fn find(state: &AppState, tenant: &Tenant, id: &str) -> Result<ExecView, ApiError> {
    if !submit::plausible_name(id) {
        return Err(ApiError::not_found(format!("no execution {id:?}")));
    }
    lookup(&*state.cluster, &*state.status, &tenant.namespace, id, false)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution {id:?}")))
}

/// An Execution's status.
#[utoipa::path(get, path = "/api/executions/{id}", tag = "rce", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionView), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let view = find(&state, &tenant, &id).await?;
    let out = outputs::read(&*state.cluster, &view).await?;
    Ok(Json(ExecutionView::from(&view).with_outputs(&out)))
}

async fn follow(state: &AppState, tenant: &Tenant, id: &str) -> Result<mpsc::Receiver<ExecView>, ApiError> {
    if !submit::plausible_name(id) {
        return Err(ApiError::not_found(format!("no execution {id:?}")));
    }
    watch(
        state.cluster.clone(),
        state.status.clone(),
        state.poll_interval,
        &tenant.namespace,
        id,
        Duration::from_secs(state.config.stream_max_secs),
    )
    .await
}

/// Server-sent events: one `status` event per status change (data: the ExecutionView JSON),
/// then an `end` event after the terminal one, and the stream closes.
#[utoipa::path(get, path = "/api/executions/{id}/events", tag = "rce", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of ExecutionView", content_type = "text/event-stream"), (status = 404)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = follow(&state, &tenant, &id).await?;
    let updates = tokio_stream::wrappers::ReceiverStream::new(rx).map(|v| {
        let view = ExecutionView::from(&v);
        let data = serde_json::to_string(&view).unwrap_or_else(|_| "{}".into());
        Ok(Event::default().event("status").data(data))
    });
    let end = futures::stream::once(async { Ok(Event::default().event("end").data("{}")) });
    Ok(Sse::new(updates.chain(end)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// WebSocket: one text message (ExecutionView JSON) per status change; closed with 1000
/// after the terminal one.
#[utoipa::path(get, path = "/api/executions/{id}/ws", tag = "rce", params(("id" = String, Path)),
    responses((status = 101, description = "WebSocket of ExecutionView messages"), (status = 404)))]
pub async fn ws(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|_| ApiError::bad_request("this endpoint needs a WebSocket upgrade request"))?;
    let rx = follow(&state, &tenant, &id).await?;
    Ok(upgrade.on_upgrade(move |socket| pump(socket, rx)).into_response())
}

async fn pump(mut socket: WebSocket, mut rx: mpsc::Receiver<ExecView>) {
    loop {
        tokio::select! {
            v = rx.recv() => match v {
                Some(v) => {
                    let terminal = v.is_terminal();
                    let text = serde_json::to_string(&ExecutionView::from(&v)).unwrap_or_else(|_| "{}".into());
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                    if terminal {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "finished".into() })))
                            .await;
                        return;
                    }
                }
                None => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: close_code::AWAY, reason: "stream ended".into() })))
                        .await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LanguageInfo {
    pub name: String,
    pub display_name: String,
    pub version: String,
    pub aliases: Vec<String>,
    pub judge0_ids: Vec<u32>,
    /// Resolved default limits.
    #[schema(value_type = Object)]
    pub default_limits: serde_json::Value,
    /// The most a submission may ask for.
    #[schema(value_type = Object)]
    pub max_limits: serde_json::Value,
}

/// The languages this cluster runs (its Runtime objects).
#[utoipa::path(get, path = "/api/languages", tag = "rce", responses((status = 200, body = Vec<LanguageInfo>)))]
pub async fn languages(State(state): State<AppState>) -> Json<Vec<LanguageInfo>> {
    let list = catalog::sorted(state.cluster.runtimes())
        .into_iter()
        .map(|rt| LanguageInfo {
            name: catalog::name(&rt).to_string(),
            display_name: catalog::display_name(&rt),
            version: rt.spec.version.clone(),
            aliases: rt.spec.aliases.clone(),
            judge0_ids: rt.spec.judge0_ids.clone(),
            default_limits: catalog::resolve_limits(&rt, None, &state.cap())
                .ok()
                .and_then(|l| serde_json::to_value(l).ok())
                .unwrap_or_default(),
            max_limits: serde_json::to_value(catalog::max_limits(&rt, &state.cap())).unwrap_or_default(),
        })
        .collect();
    Json(list)
}
