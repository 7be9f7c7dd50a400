//! Piston's interactive endpoint, `GET /api/v2/connect` (a WebSocket), as upstream's
//! `router.ws('/connect', ...)` of `api/src/api/v2.js` and `Job.execute` of `api/src/job.js`
//! behave.
//!
//! Client → server: `{"type":"init", ...}` with `/execute`'s fields (validated as
//! `/execute` validates them, same messages; `stdin` is discarded), then
//! `{"type":"data","stream":"stdin","data":"..."}` and `{"type":"signal","signal":"SIGINT"}`;
//! other types are ignored. Server → client: `{"type":"runtime","language","version"}` once
//! the Execution exists, `{"type":"stage","stage":"compile"|"run"}`, `{"type":"data",
//! "stream":"stdout"|"stderr","data":"..."}` as the program writes (text; bytes that are not
//! UTF-8 replaced, upstream's `data.toString()`), `{"type":"exit","stage","code","signal"}`
//! at the end of each stage, `{"type":"error","message"}` before a close with 4002.
//!
//! Close codes, upstream's, in its order of checks: 4000 `Already Initialized` (a second
//! `init`), 4001 `Initialization Timeout` (no `init` within 1 s), 4002 `Notified Error`
//! (after an `error` message: unreadable JSON, an invalid `init`, a refused submission, a
//! failed Execution), 4003 `Not yet initialized` (`data` or `signal` before `init`), 4004
//! `Can only write to stdin`, 4005 `Invalid signal` (a name not in upstream's list), 4999
//! `Job Completed`.
//!
//! rce: the Execution is created with `spec.interactive` (it runs in a serving sandbox,
//! stdin through `redis_keys::stdin_key`, output through `redis_keys::live_key`). A socket
//! that ends while the program runs (the client went away, or the server closed it with
//! 4000/4003/4004/4005) sends it SIGKILL: nobody could talk to it any more (upstream lets it
//! run to its timeout). Upstream's own `signal` does not reach the process (its job listens
//! for `kill`, its socket emits `signal`); rce's does. No live stream (Redis down, a sandbox
//! that streams nothing): the outputs are sent from the final result, stage by stage, before
//! each stage's `exit`. The socket lives at most `--stream-max-secs`.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::{IntoResponse, Response},
    Extension,
};
use rce_api::{Phase, Runtime};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{names, parse::parse, result::result};
use crate::{
    auth::Tenant,
    backend::{ExecView, Live, OutStream, StdinEntry},
    catalog,
    error::ApiError,
    live::{watch_live, Update, Utf8Carry},
    outputs::{self, lossy, Outputs},
    state::AppState,
    submit,
};

/// Upstream's `globals.SIGNALS`, the names a `signal` message may carry.
const SIGNALS: [&str; 62] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
    "SIGRTMIN",
    "SIGRTMIN+1",
    "SIGRTMIN+2",
    "SIGRTMIN+3",
    "SIGRTMIN+4",
    "SIGRTMIN+5",
    "SIGRTMIN+6",
    "SIGRTMIN+7",
    "SIGRTMIN+8",
    "SIGRTMIN+9",
    "SIGRTMIN+10",
    "SIGRTMIN+11",
    "SIGRTMIN+12",
    "SIGRTMIN+13",
    "SIGRTMIN+14",
    "SIGRTMIN+15",
    "SIGRTMAX-14",
    "SIGRTMAX-13",
    "SIGRTMAX-12",
    "SIGRTMAX-11",
    "SIGRTMAX-10",
    "SIGRTMAX-9",
    "SIGRTMAX-8",
    "SIGRTMAX-7",
    "SIGRTMAX-6",
    "SIGRTMAX-5",
    "SIGRTMAX-4",
    "SIGRTMAX-3",
    "SIGRTMAX-2",
    "SIGRTMAX-1",
    "SIGRTMAX",
];

/// How long a socket may stay without `init` (upstream: 1 s).
const INIT_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /api/v2/connect`: interactive execution over a WebSocket, upstream's protocol.
#[utoipa::path(get, path = "/connect", tag = "piston",
    responses((status = 101, description = "WebSocket: init, data, signal → runtime, stage, data, exit, error; closes 4000-4005, 4999")))]
pub async fn connect(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|_| ApiError::bad_request("this endpoint needs a WebSocket upgrade request"))?;
    let limit = state.config.body_limit;
    Ok(upgrade
        .max_message_size(limit)
        .on_upgrade(move |socket| Session::new(state, tenant).run(socket))
        .into_response())
}

/// The running job of a socket.
struct Job {
    name: String,
    runtime: Arc<Runtime>,
    /// The Execution was created.
    followed: bool,
    /// The stage the live stream is in.
    stage: Option<String>,
    seen_live: bool,
    carry: Utf8Carry,
    /// Stdin bytes sent (at most `--body-limit`).
    sent: usize,
}

struct Session {
    state: AppState,
    tenant: Tenant,
    job: Option<Job>,
    /// The updates of the job just created, for the socket's loop to take.
    new_updates: Option<mpsc::Receiver<Update>>,
}

/// What a client message leads to.
enum Step {
    Continue,
    Close(u16, &'static str),
    /// Send `{"type":"error","message"}` and close with 4002.
    Error(String),
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

impl Session {
    fn new(state: AppState, tenant: Tenant) -> Session {
        Session { state, tenant, job: None, new_updates: None }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let init_deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
        let mut updates: Option<mpsc::Receiver<Update>> = None;
        let step = loop {
            if let Some(rx) = self.new_updates.take() {
                updates = Some(rx);
            }
            let has_updates = updates.is_some();
            tokio::select! {
                _ = tokio::time::sleep_until(init_deadline), if self.job.is_none() => {
                    break Step::Close(4001, "Initialization Timeout");
                }
                u = async { match updates.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } }, if has_updates => {
                    match self.forward(u, &mut socket).await {
                        Ok(Step::Continue) => {}
                        Ok(step) => break step,
                        Err(()) => break Step::Close(0, ""),
                    }
                }
                msg = socket.recv() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break Step::Close(0, ""),
                    Some(Ok(Message::Text(t))) => match self.handle(t.as_str(), &mut socket).await {
                        Step::Continue => {}
                        step => break step,
                    },
                    Some(Ok(Message::Binary(b))) => match self.handle(&String::from_utf8_lossy(&b), &mut socket).await {
                        Step::Continue => {}
                        step => break step,
                    },
                    Some(Ok(_)) => {}
                },
            }
        };
        let finished = matches!(step, Step::Close(4999, _));
        match step {
            Step::Close(0, _) | Step::Continue => {}
            Step::Close(code, reason) => close(&mut socket, code, reason).await,
            Step::Error(message) => {
                let _ = socket.send(text(json!({"type": "error", "message": message}))).await;
                close(&mut socket, 4002, "Notified Error").await;
            }
        }
        if let (Some(job), false) = (&self.job, finished) {
            if job.followed {
                let sent = self
                    .state
                    .status
                    .send_stdin(&self.tenant.namespace, &job.name, StdinEntry::Signal("SIGKILL".into()))
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, name = job.name, "could not stop an interactive execution");
                }
            }
        }
    }

    /// One client message, upstream's checks in upstream's order.
    async fn handle(&mut self, raw: &str, socket: &mut WebSocket) -> Step {
        let msg: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => return Step::Error(format!("Unexpected JSON: {e}")),
        };
        if msg.is_null() {
            return Step::Error("Cannot read properties of null (reading 'type')".into());
        }
        match msg.get("type").and_then(Value::as_str) {
            Some("init") => {
                if self.job.is_some() {
                    return Step::Close(4000, "Already Initialized");
                }
                self.init(msg, socket).await
            }
            Some("data") => {
                let Some(job) = self.job.as_mut() else { return Step::Close(4003, "Not yet initialized") };
                if msg.get("stream").and_then(Value::as_str) != Some("stdin") {
                    return Step::Close(4004, "Can only write to stdin");
                }
                let Some(data) = msg.get("data").and_then(Value::as_str) else {
                    return Step::Error("data must be a string".into());
                };
                job.sent += data.len();
                if job.sent > self.state.config.body_limit {
                    return Step::Error(format!("more than {} bytes of stdin", self.state.config.body_limit));
                }
                let entry = StdinEntry::Data(data.as_bytes().to_vec());
                self.write(entry).await
            }
            Some("signal") => {
                if self.job.is_none() {
                    return Step::Close(4003, "Not yet initialized");
                }
                match msg.get("signal").and_then(Value::as_str) {
                    Some(s) if SIGNALS.contains(&s) => self.write(StdinEntry::Signal(s.to_string())).await,
                    _ => Step::Close(4005, "Invalid signal"),
                }
            }
            _ => Step::Continue,
        }
    }

    async fn write(&self, entry: StdinEntry) -> Step {
        let Some(job) = &self.job else { return Step::Continue };
        match self.state.status.send_stdin(&self.tenant.namespace, &job.name, entry).await {
            Ok(()) => Step::Continue,
            Err(e) => {
                tracing::warn!(error = %e, "stdin write failed");
                Step::Error("stdin could not be forwarded (the status store is unavailable)".into())
            }
        }
    }

    /// `init`: validate as `/execute` does, create the interactive Execution, say which
    /// runtime runs it, and follow it.
    async fn init(&mut self, mut msg: Value, socket: &mut WebSocket) -> Step {
        if let Some(map) = msg.as_object_mut() {
            map.remove("stdin");
            map.remove("type");
        }
        let runtimes = match self.state.runtimes() {
            Ok(r) => r,
            Err(e) => return Step::Error(e.message),
        };
        let cap = self.state.cap();
        let (runtime, mut sub) = match parse(&msg, &runtimes, &cap) {
            Ok(x) => x,
            Err(e) => return Step::Error(e.message),
        };
        sub.stdin = None;
        let limits = match catalog::resolve_limits(&runtime, sub.limits.as_ref(), &cap) {
            Ok(l) => l,
            Err(e) => return Step::Error(ApiError::limit(&e).message),
        };
        let name = submit::new_name();
        let mut ex = submit::build(&self.tenant, &name, &sub, &self.state.labels);
        ex.spec.interactive = true;
        // Initialized from here on (upstream: once the job is built), whatever follows.
        self.job = Some(Job {
            name: name.clone(),
            runtime: runtime.clone(),
            followed: false,
            stage: None,
            seen_live: false,
            carry: Utf8Carry::default(),
            sent: 0,
        });
        if let Err(e) = submit::submit_execution(&self.state, ex).await {
            return Step::Error(e.message);
        }
        if let Some(job) = self.job.as_mut() {
            job.followed = true;
        }
        let entry = names::entry(&runtime);
        let hello = json!({"type": "runtime", "language": entry.language, "version": entry.version});
        if socket.send(text(hello)).await.is_err() {
            return Step::Close(0, "");
        }
        let updates = watch_live(
            self.state.cluster.clone(),
            self.state.status.clone(),
            self.state.poll_interval,
            &self.tenant.namespace,
            &name,
            Duration::from_secs(self.state.config.stream_max_secs),
            limits.output_bytes,
        )
        .await;
        match updates {
            Ok(rx) => {
                self.new_updates = Some(rx);
                Step::Continue
            }
            Err(e) => Step::Error(e.message),
        }
    }

    /// One update of the job, as upstream's messages. `Err`: the socket failed.
    async fn forward(&mut self, update: Option<Update>, socket: &mut WebSocket) -> Result<Step, ()> {
        let Some(job) = self.job.as_mut() else { return Ok(Step::Continue) };
        let mut out = Vec::new();
        let step = match update {
            None => {
                let max = self.state.config.stream_max_secs;
                Step::Error(format!("the execution did not finish within {max} s"))
            }
            Some(Update::Live(Live::Stage(stage))) => {
                job.seen_live = true;
                if job.stage.as_deref() == Some("compile") && stage == "run" {
                    // The run stage follows only a compile stage that exited with 0.
                    out.push(json!({"type": "exit", "stage": "compile", "code": 0, "signal": null}));
                }
                out.push(json!({"type": "stage", "stage": stage}));
                job.stage = Some(stage);
                Step::Continue
            }
            Some(Update::Live(Live::Output { stream, data })) => {
                job.seen_live = true;
                if let Some(chunk) = job.carry.push(stream, &data) {
                    out.push(json!({"type": "data", "stream": stream.as_str(), "data": chunk.lossy()}));
                }
                Step::Continue
            }
            Some(Update::Live(Live::End)) => Step::Continue,
            Some(Update::Status(view)) if !view.is_terminal() => Step::Continue,
            Some(Update::Status(view)) => {
                for s in [OutStream::Stdout, OutStream::Stderr] {
                    if let Some(chunk) = job.carry.flush(s) {
                        out.push(json!({"type": "data", "stream": s.as_str(), "data": chunk.lossy()}));
                    }
                }
                if view.phase() == Phase::Failed {
                    let message =
                        view.status.message.clone().unwrap_or_else(|| "the execution failed".into());
                    Step::Error(message)
                } else {
                    let seen_live = job.seen_live;
                    let stage = job.stage.clone();
                    let runtime = job.runtime.clone();
                    out.extend(self.finish(&runtime, &view, seen_live, stage).await);
                    Step::Close(4999, "Job Completed")
                }
            }
        };
        for m in out {
            socket.send(text(m)).await.map_err(|_| ())?;
        }
        Ok(step)
    }

    /// The messages that end a job: each remaining stage's `exit` (and, when no live
    /// stream came, each stage's `stage` and output first, from the result).
    async fn finish(
        &self,
        runtime: &Runtime,
        view: &ExecView,
        seen_live: bool,
        stage: Option<String>,
    ) -> Vec<Value> {
        let out = if seen_live {
            Outputs::default()
        } else {
            outputs::read(&*self.state.cluster, view).await.unwrap_or_default()
        };
        let doc = result(runtime, view, &out);
        let exit = |stage: &str, s: &Value| json!({"type": "exit", "stage": stage, "code": s["code"], "signal": s["signal"]});
        let compile_failed = view.status.verdict == Some(rce_api::Verdict::CompilationError);
        let mut msgs = Vec::new();
        if seen_live {
            match stage.as_deref() {
                Some("compile") if compile_failed => msgs.push(exit("compile", &doc["compile"])),
                Some("compile") => {
                    msgs.push(exit("compile", &doc["compile"]));
                    msgs.push(exit("run", &doc["run"]));
                }
                _ => msgs.push(exit("run", &doc["run"])),
            }
            return msgs;
        }
        let data = |stream: &str, bytes: &[u8]| {
            (!bytes.is_empty()).then(|| json!({"type": "data", "stream": stream, "data": lossy(bytes)}))
        };
        if doc.get("compile").is_some() {
            msgs.push(json!({"type": "stage", "stage": "compile"}));
            msgs.extend(data("stderr", out.compile_output()));
            msgs.push(exit("compile", &doc["compile"]));
            if compile_failed {
                return msgs;
            }
        }
        msgs.push(json!({"type": "stage", "stage": "run"}));
        msgs.extend(data("stdout", out.stdout()));
        msgs.extend(data("stderr", out.stderr()));
        msgs.push(exit("run", &doc["run"]));
        msgs
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}
