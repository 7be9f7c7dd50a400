//! rce's own API: full submissions, status, live streams (SSE and WebSocket), languages.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{
        ws::{
            close_code, rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket,
            WebSocketUpgrade,
        },
        Path, Query, State,
    },
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rce_api::{options, signal::Signal, Callback, Checker, Limits, SourceFile, MAX_RUNS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::{
    auth::Tenant,
    backend::{lookup, ExecView, Live, OutStream, StdinEntry},
    catalog,
    error::{ApiError, Flavor, JsonBody},
    live::{watch_live, Chunk, Update, Utf8Carry},
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
    /// The program's stdin comes from the client while it runs: messages on the
    /// Execution's WebSocket (`/api/executions/{id}/ws`: `{"type":"stdin","text":"..."}`,
    /// `{"type":"eof"}`, `{"type":"signal","signal":"SIGINT"}`). `stdin` must be unset.
    #[serde(default)]
    pub interactive: bool,
    /// Test cases, `[{name, stdin, args, expectedOutput, limits}]`: compiled once, run once
    /// per case in a clean work dir; the status lists each case's verdict (`tests`) and
    /// `passed`/`total`, the verdict is the first failing case's. Excludes `stdin`,
    /// `expectedOutput`, `runs` and `interactive`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tests: Option<Vec<TestCaseRequest>>,
    /// With `tests`: stop at the first case that is not Accepted (the rest are skipped).
    #[serde(default)]
    pub stop_on_first_failure: bool,
    /// `{mode, epsilon}`: how stdout is compared with an expected output: `exact`,
    /// `trimTrailingWhitespace` (the default, as Judge0) or `float` (tokens, numbers within
    /// `epsilon`, a decimal string, default "1e-6").
    #[schema(value_type = Option<Object>)]
    pub checker: Option<Checker>,
}

/// One test case of [`CreateExecution::tests`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestCaseRequest {
    pub name: Option<String>,
    pub stdin: Option<String>,
    /// In place of the submission's `args`.
    pub args: Option<Vec<String>>,
    pub expected_output: Option<String>,
    /// Each unset one is the submission's.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Limits>,
}

/// Test data up to this many bytes stays in the Execution; more goes into ConfigMaps that
/// the Execution owns ([`rce_api::DataRef`]).
pub const INLINE_TEST_DATA_BYTES: usize = 256 * 1024;

/// Most bytes of test data in one such ConfigMap (a ConfigMap holds at most 1 MiB).
pub const TEST_DATA_PART_BYTES: usize = rce_api::OUTPUT_PART_BYTES;

/// A test-data ConfigMap to create: its name, its keys' texts.
type SpilledMap = (String, std::collections::BTreeMap<String, String>);

/// Move the test data of `spec` into ConfigMaps named after the Execution `name` when it is
/// more than [`INLINE_TEST_DATA_BYTES`]: the spec then refers to them; returns their
/// contents (name → key → text), to be created once the Execution exists.
fn spill_test_data(spec: &mut rce_api::ExecutionSpec, name: &str) -> Result<Vec<SpilledMap>, ApiError> {
    let Some(tests) = spec.tests.as_mut() else { return Ok(Vec::new()) };
    let total: usize = tests
        .iter()
        .map(|t| t.stdin.as_ref().map_or(0, String::len) + t.expected_output.as_ref().map_or(0, String::len))
        .sum();
    if total <= INLINE_TEST_DATA_BYTES {
        return Ok(Vec::new());
    }
    let mut maps: Vec<SpilledMap> = Vec::new();
    let mut size = usize::MAX;
    for (i, t) in tests.iter_mut().enumerate() {
        for (text, from, suffix) in [
            (t.stdin.take(), &mut t.stdin_from, "in"),
            (t.expected_output.take(), &mut t.expected_output_from, "out"),
        ] {
            let Some(text) = text else { continue };
            if text.len() > TEST_DATA_PART_BYTES {
                return Err(ApiError::invalid(format!(
                    "tests[{i}]: its {} is {} bytes; one case's stdin or expected output is at most {TEST_DATA_PART_BYTES} bytes",
                    if suffix == "in" { "stdin" } else { "expected output" },
                    text.len()
                )));
            }
            if size.saturating_add(text.len()) > TEST_DATA_PART_BYTES {
                maps.push((format!("{name}.tests-{}", maps.len()), Default::default()));
                size = 0;
            }
            size += text.len();
            let (map, data) = maps.last_mut().expect("a ConfigMap was added");
            let key = format!("{i}.{suffix}");
            *from = Some(rce_api::DataRef { config_map: map.clone(), key: key.clone() });
            data.insert(key, text);
        }
    }
    Ok(maps)
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
    // The larger body limit of this route is for test data; the rest keeps the usual one.
    let rest = req.source.as_ref().map_or(0, String::len)
        + req.files.iter().flatten().map(|f| f.name.len() + f.content.len()).sum::<usize>()
        + req.stdin.as_ref().map_or(0, String::len)
        + req.expected_output.as_ref().map_or(0, String::len)
        + req.args.iter().map(String::len).sum::<usize>();
    if rest > state.config.body_limit {
        return Err(ApiError::payload_too_large(state.config.body_limit));
    }
    let runtimes = state.runtimes()?;
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
    if req.interactive && req.stdin.is_some() {
        return Err(ApiError::invalid(
            "an interactive execution reads its stdin from its WebSocket: give no stdin",
        ));
    }
    if let Some(cb) = &req.callback {
        state.callback_policy().check_url(cb.url.trim()).map_err(|e| ApiError::invalid(e.0))?;
    }
    if let Some(c) = &req.checker {
        c.epsilon().map_err(ApiError::invalid)?;
    }
    let sub = Submission {
        runtime: runtime.clone(),
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
    ex.spec.interactive = req.interactive;
    ex.spec.callback = req.callback.map(|c| Callback { url: c.url.trim().to_string(), ..c });
    ex.spec.tests = req.tests.map(|tests| {
        tests
            .into_iter()
            .map(|t| rce_api::TestCase {
                name: t.name,
                stdin: t.stdin,
                args: t.args,
                expected_output: t.expected_output,
                limits: t.limits,
                ..Default::default()
            })
            .collect()
    });
    ex.spec.stop_on_first_failure = req.stop_on_first_failure;
    ex.spec.checker = req.checker;
    rce_api::check_tests(&ex.spec, &runtime.spec, &state.cap(), &state.config.tests)
        .map_err(ApiError::invalid)?;
    let name = ex.metadata.name.clone().unwrap_or_default();
    let spilled = spill_test_data(&mut ex.spec, &name)?;
    #[cfg(feature = "amqp")]
    if !spilled.is_empty() && state.amqp.is_some() {
        return Err(ApiError::invalid(format!(
            "more than {INLINE_TEST_DATA_BYTES} bytes of test data cannot go through the broker: submit it directly"
        )));
    }
    let created = submit::submit_execution(&state, ex).await?;
    // The data the Execution now refers to, owned by it (the operator waits for it).
    for (cm_name, data) in spilled {
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(cm_name),
                namespace: created.metadata.namespace.clone(),
                labels: Some([("rce.dev/test-data".to_string(), "true".to_string())].into()),
                // Not blocking the owner's deletion: that needs the right to update
                // `executions/finalizers`, which the shim does not have.
                owner_references: kube::Resource::controller_owner_ref(&created, &())
                    .map(|o| vec![OwnerReference { block_owner_deletion: None, ..o }]),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        state.cluster.create_config_map(cm).await.map_err(|e| {
            tracing::warn!(error = %e, "creating a test-data ConfigMap failed");
            ApiError::unavailable()
        })?;
    }
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

/// `GET /api/executions/{id}` options.
#[derive(Debug, Default, Deserialize)]
pub struct GetOptions {
    /// Add `queuePosition` and `queueLength`.
    #[serde(default)]
    pub position: bool,
}

/// An Execution's status. With `?position=true`, also `queuePosition` (1-based place in the
/// admission order, `null` when it is not waiting) and `queueLength` (Executions waiting, every
/// namespace), from this replica's view of the cluster's Executions.
#[utoipa::path(get, path = "/api/executions/{id}", tag = "rce",
    params(("id" = String, Path),
        ("position" = Option<bool>, Query, description = "add queuePosition and queueLength")),
    responses((status = 200, body = ExecutionView), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(opts): Query<GetOptions>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let view = find(&state, &tenant, &id).await?;
    let out = outputs::read(&*state.cluster, &view).await?;
    let mut body = serde_json::to_value(ExecutionView::from(&view).with_outputs(&out))
        .map_err(|_| ApiError::internal())?;
    if opts.position {
        let (position, length) = queue_position(&state, &view).await;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("queuePosition".into(), position.into());
            obj.insert("queueLength".into(), length.into());
        }
    }
    Ok(Json(body))
}

/// The Execution's place in the admission order (`rce_api::queue`), over the Executions of
/// every namespace in the watch cache, with the operator's per-namespace share from
/// `rce:capacity` when it is there.
async fn queue_position(state: &AppState, view: &ExecView) -> (Option<usize>, usize) {
    let per_namespace = match tokio::time::timeout(Duration::from_millis(500), state.status.capacity()).await
    {
        Ok(Some(c)) => c.per_namespace.unwrap_or(0),
        _ => 0,
    };
    let limits = rce_api::queue::Limits { capacity: 0, per_namespace };
    let mut list = state.cluster.list(None);
    let cached = list.iter().any(|e| {
        e.metadata.namespace.as_deref() == Some(view.namespace.as_str())
            && e.metadata.name.as_deref() == Some(view.name.as_str())
    });
    if !cached && view.phase() == rce_api::Phase::Pending {
        // Just created: not in the cache yet, but it waits all the same.
        list.push(std::sync::Arc::new(view_as_execution(view)));
    }
    let (position, length) = crate::backend::queue_position(&list, &limits, &view.namespace, &view.name);
    // The status read may be ahead of the cache (Processing already): then it waits no more.
    let position = position.filter(|_| view.phase() == rce_api::Phase::Pending);
    (position, length)
}

/// Enough of an Execution for its queue entry.
fn view_as_execution(view: &ExecView) -> rce_api::Execution {
    let mut ex = rce_api::Execution::new(&view.name, Default::default());
    ex.metadata.namespace = Some(view.namespace.clone());
    ex.metadata.creation_timestamp = view
        .created_at
        .as_deref()
        .and_then(|t| t.parse().ok())
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    ex.metadata.annotations = Some(view.annotations.clone());
    ex.status = Some(view.status.clone());
    ex
}

async fn follow(state: &AppState, tenant: &Tenant, id: &str) -> Result<mpsc::Receiver<Update>, ApiError> {
    if !submit::plausible_name(id) {
        return Err(ApiError::not_found(format!("no execution {id:?}")));
    }
    watch_live(
        state.cluster.clone(),
        state.status.clone(),
        state.poll_interval,
        &tenant.namespace,
        id,
        Duration::from_secs(state.config.stream_max_secs),
        state.cap().output_bytes,
    )
    .await
}

/// The JSON of a live output chunk: `{"stream":"stdout","text":"..."}` when the bytes are
/// UTF-8 (a character split across two reads waits for its end), else
/// `{"stream":"stdout","base64":"..."}`.
pub fn output_json(stream: OutStream, chunk: Chunk) -> serde_json::Value {
    match chunk {
        Chunk::Text(t) => serde_json::json!({"stream": stream.as_str(), "text": t}),
        Chunk::Bytes(b) => serde_json::json!({"stream": stream.as_str(), "base64": B64.encode(b)}),
    }
}

/// The live updates as (event name, JSON) pairs, the status views as ExecutionView JSON;
/// what an incomplete character still held at the end is flushed before the terminal view.
fn messages(update: Update, carry: &mut Utf8Carry) -> Vec<(&'static str, serde_json::Value, bool)> {
    match update {
        Update::Status(v) => {
            let mut out = Vec::new();
            if v.is_terminal() {
                for s in [OutStream::Stdout, OutStream::Stderr] {
                    if let Some(c) = carry.flush(s) {
                        out.push(("output", output_json(s, c), false));
                    }
                }
            }
            let view = serde_json::to_value(ExecutionView::from(&*v)).unwrap_or_default();
            out.push(("status", view, v.is_terminal()));
            out
        }
        Update::Live(Live::Output { stream, data }) => carry
            .push(stream, &data)
            .map(|c| vec![("output", output_json(stream, c), false)])
            .unwrap_or_default(),
        Update::Live(Live::Stage(stage)) => vec![("stage", serde_json::json!({"stage": stage}), false)],
        Update::Live(Live::End) => Vec::new(),
    }
}

/// Server-sent events: one `status` event per status change (data: the ExecutionView JSON),
/// and, while the program runs in a serving sandbox, its output as it comes: `output`
/// events (`{"stream":"stdout"|"stderr","text":"..."}`, or `"base64"` instead of `"text"`
/// for bytes that are not UTF-8) and `stage` events (`{"stage":"compile"|"run"}`); then an
/// `end` event after the terminal status, and the stream closes.
#[utoipa::path(get, path = "/api/executions/{id}/events", tag = "rce", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of ExecutionView", content_type = "text/event-stream"), (status = 404)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = follow(&state, &tenant, &id).await?;
    let mut carry = Utf8Carry::default();
    let updates = tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(move |u| {
        let events: Vec<Result<Event, Infallible>> = messages(u, &mut carry)
            .into_iter()
            .map(|(name, json, _)| Ok(Event::default().event(name).data(json.to_string())))
            .collect();
        futures::stream::iter(events)
    });
    let end = futures::stream::once(async { Ok(Event::default().event("end").data("{}")) });
    Ok(Sse::new(updates.chain(end)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// WebSocket: one text message (ExecutionView JSON) per status change; while the program
/// runs in a serving sandbox, also its output as it comes (`{"type":"output","stream":
/// "stdout","text":"..."}` or with `"base64"`, and `{"type":"stage","stage":"run"}`; the
/// status messages have no `type`); closed with 1000 after the terminal status. For an
/// interactive Execution the client sends the program's stdin: `{"type":"stdin","text":
/// "..."}` (or `"base64"`), `{"type":"eof"}`, `{"type":"signal","signal":"SIGINT"}`; a
/// refused message is answered with `{"type":"error","message":"..."}`. A client that goes
/// away does not stop the program (it may connect again; the output is replayed from the
/// start).
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
    let input = Input {
        state: state.clone(),
        namespace: tenant.namespace.clone(),
        name: id,
        interactive: None,
        sent: 0,
    };
    Ok(upgrade
        .max_message_size(state.config.body_limit)
        .on_upgrade(move |socket| pump(socket, rx, input))
        .into_response())
}

/// A native WebSocket's client messages: stdin for an interactive Execution.
struct Input {
    state: AppState,
    namespace: String,
    name: String,
    /// Is the Execution interactive? Read at the first message.
    interactive: Option<bool>,
    /// Stdin bytes sent so far (at most `--body-limit` per connection).
    sent: usize,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Stdin { text: Option<String>, base64: Option<String> },
    Eof,
    Signal { signal: String },
}

impl Input {
    /// Forward one client message; `Err`: what to tell the client.
    async fn handle(&mut self, text: &str) -> Result<(), String> {
        let msg: ClientMessage =
            serde_json::from_str(text).map_err(|e| format!("unreadable message: {e}"))?;
        if self.interactive.is_none() {
            let view = lookup(&*self.state.cluster, &*self.state.status, &self.namespace, &self.name, true)
                .await
                .map_err(|e| e.message)?;
            self.interactive = Some(view.and_then(|v| v.spec).is_some_and(|s| s.interactive));
        }
        if self.interactive != Some(true) {
            return Err("this execution is not interactive: it takes no stdin".into());
        }
        let entry = match msg {
            ClientMessage::Stdin { text: Some(t), base64: None } => StdinEntry::Data(t.into_bytes()),
            ClientMessage::Stdin { text: None, base64: Some(b) } => {
                StdinEntry::Data(B64.decode(b.trim()).map_err(|_| "base64 is not valid base64".to_string())?)
            }
            ClientMessage::Stdin { .. } => return Err("stdin takes one of text and base64".into()),
            ClientMessage::Eof => StdinEntry::Eof,
            ClientMessage::Signal { signal } => match Signal::parse(&signal) {
                Some(s) if !signal.trim().starts_with(|c: char| c.is_ascii_digit()) => {
                    StdinEntry::Signal(s.name().into_owned())
                }
                _ => return Err(format!("unknown signal {signal:?}")),
            },
        };
        if let StdinEntry::Data(d) = &entry {
            self.sent += d.len();
            if self.sent > self.state.config.body_limit {
                return Err(format!("more than {} bytes of stdin", self.state.config.body_limit));
            }
        }
        self.state.status.send_stdin(&self.namespace, &self.name, entry).await.map_err(|e| {
            tracing::warn!(error = %e, "stdin write failed");
            "stdin could not be forwarded (the status store is unavailable)".to_string()
        })
    }
}

async fn pump(mut socket: WebSocket, mut rx: mpsc::Receiver<Update>, mut input: Input) {
    let mut carry = Utf8Carry::default();
    loop {
        tokio::select! {
            v = rx.recv() => match v {
                Some(u) => {
                    for (kind, mut json, terminal) in messages(u, &mut carry) {
                        if kind != "status" {
                            json["type"] = kind.into();
                        }
                        if socket.send(Message::Text(json.to_string().into())).await.is_err() {
                            return;
                        }
                        if terminal {
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "finished".into() })))
                                .await;
                            return;
                        }
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
                Some(Ok(Message::Text(t))) => {
                    if let Err(message) = input.handle(t.as_str()).await {
                        let e = serde_json::json!({"type": "error", "message": message});
                        if socket.send(Message::Text(e.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
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
    /// The code editor's syntax mode (the Runtime's `editorMode`); `null`: plain text.
    pub editor_mode: Option<String>,
    /// Resolved default limits.
    #[schema(value_type = Object)]
    pub default_limits: serde_json::Value,
    /// The most a submission may ask for.
    #[schema(value_type = Object)]
    pub max_limits: serde_json::Value,
}

/// The languages this cluster runs (its Runtime objects).
#[utoipa::path(get, path = "/api/languages", tag = "rce", responses((status = 200, body = Vec<LanguageInfo>)))]
pub async fn languages(State(state): State<AppState>) -> Result<Json<Vec<LanguageInfo>>, ApiError> {
    let list = catalog::sorted(state.runtimes()?)
        .into_iter()
        .map(|rt| LanguageInfo {
            name: catalog::name(&rt).to_string(),
            display_name: catalog::display_name(&rt),
            version: rt.spec.version.clone(),
            aliases: rt.spec.aliases.clone(),
            judge0_ids: rt.spec.judge0_ids.clone(),
            editor_mode: rt.spec.editor_mode.clone(),
            default_limits: catalog::resolve_limits(&rt, None, &state.cap())
                .ok()
                .and_then(|l| serde_json::to_value(l).ok())
                .unwrap_or_default(),
            max_limits: serde_json::to_value(catalog::max_limits(&rt, &state.cap())).unwrap_or_default(),
        })
        .collect();
    Ok(Json(list))
}
