//! Running an Execution in a serving sandbox: a claimed warm Pod ([`crate::claim`]) or a cold
//! Pod started with `--serve` (interactive Executions). The request goes over the attach
//! session ([`crate::attach`]), the result comes back on it, sealed; live output goes to
//! Redis ([`crate::live`]), an interactive program's stdin comes from there.
//!
//! The operator never waits for the kubelet to report anything here: the run ends when the
//! sealed result arrives on the stream.
//!
//! What survives a lost session (the operator restarted, the connection dropped): the claim
//! (the Pod's labels name the Execution and its run id), and the runner's log, which holds
//! every frame and result it printed. [`recover`] reads it: the result is taken from there
//! if it was printed; if the run never started (the request never arrived) it is sent now;
//! if it started, the result is awaited on a new session. A run is therefore never started
//! twice in one Pod, and never lost.
//!
//! Two operators may send the same run: replicas share the Executions out by a hash over
//! the live members, and while the membership changes two of them may both act on one
//! Execution (both read the log before either sent, both saw "not started"). That never
//! runs the program twice: the runner starts a run id at most once in its life and answers
//! a second `Run` of it with a refusal marked `already` (see [`rce_api::serve`]). Such a
//! refusal is no verdict on the run (it did not fail to start: it started, for the other
//! sender), so the operator that gets it takes the run over, as after a restart: the result
//! from the log if it is there already, else awaited on its own session (the runner's output
//! goes to every attached session), with the log looked at again every [`LOG_RECHECK`] (a
//! result printed before this session attached is only there). It does not forward an
//! interactive run's stdin then: the sender does (or the take-over after it is gone). Any
//! other refusal of a run names its run id: one naming another run is another session's and
//! is ignored; one naming none (a runner older than the marker, an unreadable line) is taken
//! as before, as this run's.

use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{Api, LogParams},
    runtime::controller::Action,
    ResourceExt,
};
use rce_api::{
    protocol::{ResultError, ResultLine, RunRequest, RunResult},
    serve::{self, Input, Output},
    Execution,
};

use crate::{
    attach::{self, Line, Session, SessionError},
    controller::Context,
    live::{StdinEntry, StdinReader},
    outcome::Termination,
};

/// Time allowed on top of the run's own (compile and runs × wall time) for the request to
/// arrive, the files to be written and the result to come back.
pub const MARGIN: Duration = Duration::from_secs(10);
/// How long the runner may take after a result to prove a clean slate.
pub const READY_WITHIN: Duration = Duration::from_secs(5);
/// How often the log is read again for the result of a run this operator took over after
/// the runner refused its `Run` as already started.
pub const LOG_RECHECK: Duration = Duration::from_secs(2);

/// What a runner's refusal means to the driver of run `ours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The run was refused: nothing ran.
    NotRun,
    /// Run `ours` was started before (another sender): take it over, wait for its result.
    TakeOver,
    /// Not about this run (another session's line, or a line sent after the run began).
    NotOurs,
}

/// How the driver of run `ours` reads a refusal of run `refused` (`None`: a refusal naming no
/// run), given whether it sent the run and whether the run is known to have started.
fn refusal(ours: &str, sent: bool, started: bool, refused: Option<&str>, already: bool) -> Refusal {
    if !sent || started {
        return Refusal::NotOurs;
    }
    match refused {
        Some(r) if r != ours => Refusal::NotOurs,
        Some(_) if already => Refusal::TakeOver,
        _ => Refusal::NotRun,
    }
}

/// The longest a run of `request` can take in the sandbox.
pub fn budget(request: &RunRequest) -> Duration {
    Duration::from_millis(request.budget_ms()) + MARGIN
}

/// How a run over a session ended.
#[derive(Debug)]
pub enum Driven {
    /// The result, sealed under the Pod's key and naming this run.
    Result(Box<RunResult>),
    /// A result line that is not this run's to take (bad MAC, garbled).
    Refused(ResultError),
    /// The runner refused the request (it was not idle) or is spoiled: nothing ran.
    NotRun(String),
    /// The session ended (or timed out) before a result; `started` if the run had begun.
    Lost { why: String, started: bool },
}

/// Where a run's live output goes.
pub struct LiveTarget<'a> {
    pub ctx: &'a Context,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl LiveTarget<'_> {
    fn push(&self, kind: &'static str, data: &[u8]) {
        if let Some(live) = &self.ctx.live {
            live.push(self.namespace, self.name, kind, data);
        }
    }
}

/// Drive run `request.run_id` on `session`: send it (unless `send` is false: an operator
/// that took over a run already started), forward live output and, for an interactive run,
/// stdin; wait for its result until `deadline`.
pub async fn drive(
    session: &mut Session,
    request: &RunRequest,
    send: bool,
    key: &[u8],
    deadline: Instant,
    live: &LiveTarget<'_>,
    mut stdin: Option<StdinReader>,
) -> Driven {
    let run_id = request.run_id.clone();
    if send {
        if let Err(e) = session.send(&Input::Run { request: Box::new(request.clone()) }).await {
            return Driven::Lost { why: e.to_string(), started: false };
        }
    }
    let mut started = !send;
    // Set once the run was taken over (refused as already started): when the log is read again.
    let mut recheck: Option<Instant> = None;
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        let until = recheck.map_or(deadline, |r| r.min(deadline));
        let line = match &mut stdin {
            Some(reader) if started => {
                tokio::select! {
                    biased;
                    line = session.next_until(until) => line,
                    entries = reader.next(Duration::from_millis(500)) => {
                        match entries {
                            Ok(entries) => {
                                for e in entries {
                                    let input = match e {
                                        StdinEntry::Data(d) => Input::Stdin { data: b64.encode(d) },
                                        StdinEntry::Eof => Input::Eof,
                                        StdinEntry::Signal(s) => Input::Signal { signal: s },
                                    };
                                    if let Err(e) = session.send(&input).await {
                                        return Driven::Lost { why: e.to_string(), started };
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, run = %run_id, "reading the interactive stdin failed; stdin ends");
                                let _ = session.send(&Input::Eof).await;
                                stdin = None;
                            }
                        }
                        continue;
                    }
                }
            }
            _ => session.next_until(until).await,
        };
        match line {
            Err(SessionError::Timeout(_)) if recheck.is_some() && Instant::now() < deadline => {
                if let Some(r) = logged_result(live, &session.pod, key, &run_id).await {
                    return Driven::Result(r);
                }
                recheck = Some(Instant::now() + LOG_RECHECK);
            }
            Err(SessionError::Timeout(_)) => {
                return Driven::Lost { why: format!("no result within {:?}", budget(request)), started }
            }
            Err(e) => return Driven::Lost { why: e.to_string(), started },
            Ok(None) => return Driven::Lost { why: "the attach stream ended".into(), started },
            Ok(Some(Line::Frame(frame))) => match frame {
                Output::Started { run_id: r } if r == run_id => started = true,
                Output::Stage { run_id: r, stage } if r == run_id => live.push("stage", stage.as_bytes()),
                Output::Data { run_id: r, stream, data } if r == run_id => {
                    if let Ok(bytes) = b64.decode(data) {
                        let kind = match stream {
                            serve::Stream::Stdout => "stdout",
                            serve::Stream::Stderr => "stderr",
                        };
                        live.push(kind, &bytes);
                    }
                }
                Output::Refused { reason, run_id: refused, already } => {
                    match refusal(&run_id, send, started, refused.as_deref(), already) {
                        Refusal::NotOurs => {}
                        Refusal::NotRun => {
                            return Driven::NotRun(format!("the runner refused the request: {reason}"))
                        }
                        Refusal::TakeOver => {
                            tracing::info!(pod = %session.pod, run = %run_id, "run already started by another sender; taken over");
                            if let Some(r) = logged_result(live, &session.pod, key, &run_id).await {
                                return Driven::Result(r);
                            }
                            started = true;
                            stdin = None; // (the sender forwards it)
                            recheck = Some(Instant::now() + LOG_RECHECK);
                        }
                    }
                }
                Output::Spoiled { reason, .. } => {
                    return if started {
                        Driven::Lost { why: format!("the runner gave up: {reason}"), started }
                    } else {
                        Driven::NotRun(format!("the runner is spoiled: {reason}"))
                    }
                }
                // Frames of an earlier run, or answers to pings.
                _ => {}
            },
            Ok(Some(Line::Result(bytes))) => match ResultLine::open(&bytes, key, &run_id) {
                Ok(r) if r.run_id == run_id => return Driven::Result(Box::new(r)),
                // A sealed result of an earlier run on this stream: not ours.
                Err(ResultError::WrongRun { .. }) => {}
                Ok(_) => {}
                Err(why) => return Driven::Refused(why),
            },
            Ok(Some(Line::Other(_))) => {}
        }
    }
}

/// The result of `run_id` in `pod`'s log, if it is there.
async fn logged_result(live: &LiveTarget<'_>, pod: &str, key: &[u8], run_id: &str) -> Option<Box<RunResult>> {
    match look_up(live.ctx, live.namespace, pod, key, run_id).await {
        Logged::Result(r) => Some(r),
        _ => None,
    }
}

/// After a result: wait for the runner's proof of a clean slate. `Some(served)` when it
/// printed a `Ready` that verifies under `key`; `None` when it is spoiled, silent or lying.
pub async fn await_ready(session: &mut Session, key: &[u8]) -> Option<u32> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        match session.next_until(deadline).await {
            Ok(Some(Line::Frame(Output::Ready { served, nonce, mac }))) if nonce.is_empty() => {
                return serve::ready_verifies(key, served, &nonce, &mac).then_some(served);
            }
            Ok(Some(Line::Frame(Output::Spoiled { reason, .. }))) => {
                tracing::info!(pod = %session.pod, %reason, "warm sandbox spoiled; discarded");
                return None;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The Termination a serving run is recorded with: the runner answered (exit code 0 stands
/// for "the runner reported"; the program's own status is in the result).
pub fn answered() -> Termination {
    Termination { exit_code: Some(0), reason: Some("Completed".into()), pod_reason: None, message: None }
}

/// The runner's log, at most the operator's log limit (`None`: it could not be read).
pub async fn read_log(ctx: &Context, ns: &str, pod: &str) -> Option<Vec<u8>> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let lp = LogParams {
        container: Some(crate::sandbox::CONTAINER.into()),
        limit_bytes: Some(ctx.config.max_log_bytes),
        ..Default::default()
    };
    crate::controller::read_log(&pods, pod, &lp, ctx.config.max_log_bytes).await.ok()
}

/// What the log says about run `run_id`.
#[derive(Debug)]
pub enum Logged {
    Result(Box<RunResult>),
    Started,
    NotStarted,
    /// The log could not be read.
    Unknown,
}

pub async fn look_up(ctx: &Context, ns: &str, pod: &str, key: &[u8], run_id: &str) -> Logged {
    match read_log(ctx, ns, pod).await {
        None => Logged::Unknown,
        Some(log) => match attach::find_result(&log, key, run_id) {
            Some(r) => Logged::Result(Box::new(r)),
            None if attach::started_in(&log, run_id) => Logged::Started,
            None => Logged::NotStarted,
        },
    }
}

/// Take over run `request.run_id` in `pod` as its log tells: the result if it was printed,
/// the request sent if it never started, else the run awaited on a session. `None`: the
/// log could not be read (look again later).
pub async fn resume(
    exec: &Execution,
    pod: &Pod,
    request: &RunRequest,
    key: &[u8],
    ctx: &Context,
) -> Option<(Driven, Option<Session>)> {
    let ns = exec.namespace().unwrap_or_default();
    Some(match look_up(ctx, &ns, &pod.name_any(), key, &request.run_id).await {
        Logged::Result(r) => (Driven::Result(r), None),
        Logged::NotStarted => run_in(exec, pod, request, true, key, ctx).await,
        Logged::Started => run_in(exec, pod, request, false, key, ctx).await,
        Logged::Unknown => return None,
    })
}

/// Open a session with `pod`, or take the one held for it.
pub async fn session_for(ctx: &Context, ns: &str, pod: &Pod) -> std::result::Result<Session, SessionError> {
    if let Some(s) = pod.uid().and_then(|u| ctx.sessions.take(&u)) {
        return Ok(s);
    }
    Session::open(ctx.client.clone(), ns, &pod.name_any()).await
}

/// Run `request` in `pod` over a session, from the start or (`send` false) taking over a run
/// already started; when the session is lost, the log decides. The result or why there is
/// none, the session (for the runner's `Ready`), and whether the Pod may have run something
/// (so it must not be trusted again without a proof).
pub async fn run_in(
    exec: &Execution,
    pod: &Pod,
    request: &RunRequest,
    send: bool,
    key: &[u8],
    ctx: &Context,
) -> (Driven, Option<Session>) {
    let ns = exec.namespace().unwrap_or_default();
    let name = exec.name_any();
    let deadline = Instant::now() + budget(request);
    let live = LiveTarget { ctx, namespace: &ns, name: &name };
    let stdin = match (&ctx.live, request.interactive) {
        (Some(l), true) => l.stdin(&ns, &name).await,
        _ => None,
    };
    let mut session = match session_for(ctx, &ns, pod).await {
        Ok(s) => s,
        Err(e) => return (Driven::Lost { why: e.to_string(), started: !send }, None),
    };
    let driven = drive(&mut session, request, send, key, deadline, &live, stdin).await;
    if let Driven::Lost { why, started } = &driven {
        // The result may be in the log all the same (printed as the stream broke).
        match look_up(ctx, &ns, &pod.name_any(), key, &request.run_id).await {
            Logged::Result(r) => {
                session.close();
                return (Driven::Result(r), None);
            }
            Logged::NotStarted if !*started => {
                session.close();
                return (Driven::NotRun(why.clone()), None);
            }
            _ => {}
        }
        session.close();
        return (driven, None);
    }
    if matches!(driven, Driven::Result(_)) {
        live.push("end", b"");
    }
    (driven, Some(session))
}

/// Requeue soon: used when a warm run ended in a way that the next reconcile decides.
pub fn soon() -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::protocol::StageLimits;

    fn request(runs: u32, compile: bool) -> RunRequest {
        let limits = StageLimits {
            wall_time_ms: 2000,
            cpu_time_ms: 1000,
            memory_kib: 1024,
            processes: 8,
            output_bytes: 100,
            file_size_kib: 10,
            stack_kib: 8192,
        };
        RunRequest {
            tests: vec![],
            stop_on_first_failure: false,
            checker: None,
            run_id: "u/1".into(),
            files: vec![],
            stdin: String::new(),
            stdin_sealed: None,
            args: vec![],
            compile: compile.then(|| vec!["cc".into()]),
            run: vec!["a".into()],
            env: vec![],
            limits,
            compile_limits: compile.then_some(StageLimits { wall_time_ms: 5000, ..limits }),
            redirect_stderr_to_stdout: false,
            runs,
            interactive: false,
        }
    }

    #[test]
    fn a_refusal_as_already_started_takes_the_run_over_and_only_the_senders() {
        use Refusal::*;
        // This operator sent run u/1, not yet seen started.
        assert_eq!(refusal("u/1", true, false, Some("u/1"), true), TakeOver);
        assert_eq!(refusal("u/1", true, false, Some("u/1"), false), NotRun);
        // A runner older than the marker, or a refusal of an unreadable line: as before.
        assert_eq!(refusal("u/1", true, false, None, false), NotRun);
        // Another session's run, refused either way: not about this run.
        assert_eq!(refusal("u/1", true, false, Some("u/2"), true), NotOurs);
        assert_eq!(refusal("u/1", true, false, Some("u/2"), false), NotOurs);
        // Once the run is seen started, or when this operator sent nothing (a take-over),
        // no refusal is about it: another sender's `Run` of it is refused, it still runs.
        assert_eq!(refusal("u/1", true, true, Some("u/1"), true), NotOurs);
        assert_eq!(refusal("u/1", false, true, Some("u/1"), true), NotOurs);
        assert_eq!(refusal("u/1", false, true, None, false), NotOurs);
    }

    #[test]
    fn budgets_cover_the_compile_stage_and_every_run() {
        assert_eq!(budget(&request(1, false)), Duration::from_secs(12));
        assert_eq!(budget(&request(1, true)), Duration::from_secs(17));
        // Three runs: each its wall time and a second for the restore.
        assert_eq!(budget(&request(3, true)), Duration::from_secs(24));
    }
}
