//! The serving runner (`rce-runner --serve`): a warm sandbox's entrypoint. It starts idle,
//! holding no submission, and talks to the operator over its own stdin and stdout in the
//! framing of [`rce_api::serve`] (the container's attached streams, through the API server).
//!
//! Its life:
//! 1. the same protections as a cold runner, before anything else: non-dumpable, the result
//!    key taken from the environment and scrubbed; then stdin and stdout are duplicated to
//!    private close-on-exec descriptors and fds 0, 1 and 2 are made close-on-exec too
//!    ([`sys::park_serve_stdio`]; they stay open: closing them breaks `pods/attach` on
//!    containerd): no stage inherits any of them, and every stage's stdin is a pipe of the
//!    runner's;
//! 2. it records the [`clean::Baseline`] (before any program has run) and prints
//!    `Ready{served: 0}`;
//! 3. it reads [`Input`] lines. `Run` starts a run: `Started`, then `Stage` as each stage
//!    begins, the output as `Data` frames as it is read (at most `outputBytes` per stream
//!    and stage, in chunks of at most [`MAX_DATA_CHUNK`]), then the sealed result line, the
//!    same as a cold runner's ([`crate::execute`] with a [`Channel`]); then the clean-slate
//!    proof ([`clean::Baseline::prove`]) and `Ready{served: n}`, or `Spoiled{reason}` and exit
//!    0. `Ping` while idle is answered with `Ready` and its nonce. An unreadable line, one
//!    longer than [`MAX_INPUT_LINE`] or one out of place is answered with `Refused`, and the
//!    runner carries on. End of its stdin: exit 0, quietly (after the run in progress, if
//!    any: its result still goes to the container log).
//!
//! A run id runs at most once: the runner remembers every run id it started (for its life,
//! at most [`MAX_STARTED_RUNS`]) and answers a `Run` of one of them, during that run or after
//! it, with `Refused{runId, already: true}` and starts nothing (see [`rce_api::serve`]). Two
//! operators (replicas whose ownership of an Execution overlapped, or one that lost its
//! session and sent the run again on a new one) write to the same stdin; only the first
//! `Run` of a run id starts a program. Every other refusal of a `Run` names its run id too
//! (`already` unset).
//!
//! During a run the parked stdin is one more descriptor in the stage's poll loop (the
//! runner stays single-threaded): `Stdin` (an interactive request's stdin, kept until the
//! run stage starts), `Eof` (the program's stdin pipe is closed) and `Signal` (sent to every
//! process of the running stage; ignored between stages) take effect while the program
//! runs. An interactive request has no `stdin` of its own and a single run (`runs` ≤ 1);
//! otherwise its `Run` is refused.
//!
//! Writes to the operator never block the loop for long: frames wait in a queue of at most
//! [`MAX_PENDING_OUTPUT`] bytes, written when stdout takes them. A `Data` frame that does not
//! fit after [`SLOW_READER_WAIT`] is dropped (and the rest of that run's `Data` frames that do
//! not fit, without waiting again): they are for live streaming, the result line stays the
//! record. The result line and the frames around it are waited for up to [`FINAL_FLUSH`].
//!
//! What the parked descriptors are not: they are in the runner's file table (the runner
//! reads and writes them while a program runs, so they cannot be in flight on a socket as a
//! cold runner's are). The runner is non-dumpable, so `/proc/1/fd` is root's; a runtime that
//! does not honour that for `/proc/<pid>/fd` would let a program write frames there. It
//! cannot forge the sealed result line or a `Ready` (both carry MACs under a key the program
//! never sees), but `Data` frames carry none.

use std::collections::{HashSet, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use base64::Engine;

pub use rce_api::serve::{
    ready_mac, ready_verifies, Input, Output, Stream, MAX_DATA_CHUNK, MAX_INPUT_LINE, MAX_RUN_ID,
    MAX_STARTED_RUNS, SERVE_ARG,
};

use crate::{clean, protocol, sys, Config};

/// Most bytes of frames waiting for the operator to read them.
pub const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// How long a `Data` frame may wait for room in a full queue before it is dropped.
pub const SLOW_READER_WAIT: Duration = Duration::from_secs(2);
/// How long the result line and the frames before it may take to be written.
pub const FINAL_FLUSH: Duration = Duration::from_secs(60);
/// Most bytes of an interactive program's stdin kept, not yet taken by its pipe: past it a
/// `Stdin` frame is refused.
pub const MAX_PENDING_STDIN: usize = 8 << 20;
/// Bytes read from the operator per `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

/// What the channel knows of the run in progress.
#[derive(Debug, Default)]
struct RunState {
    run_id: String,
    interactive: bool,
    /// Stdin received, not yet taken by the stage.
    stdin: Vec<u8>,
    eof: bool,
    signals: Vec<i32>,
    /// A stage runs (signals are for it).
    in_stage: bool,
    /// A `Data` frame was dropped in this run: later ones that do not fit are dropped
    /// without waiting.
    dropping: bool,
}

/// The runner's two streams to the operator, parked.
pub struct Channel {
    input: OwnedFd,
    output: OwnedFd,
    /// The line being read.
    line: Vec<u8>,
    /// The rest of a too-long line is being skipped.
    skipping: bool,
    input_eof: bool,
    /// Lines read while no run was in progress (or before its start), in order.
    pending: VecDeque<Result<Input, String>>,
    out: VecDeque<u8>,
    /// stdout failed: nothing more can be said.
    broken: bool,
    run: Option<RunState>,
    /// `Data` bytes dropped for a slow reader, over the runner's life.
    pub dropped_data: u64,
    /// The run ids started, over the runner's life.
    started: HashSet<String>,
}

impl Channel {
    /// The parked stdin and stdout (both non-blocking).
    pub fn new(input: OwnedFd, output: OwnedFd) -> Channel {
        Channel {
            input,
            output,
            line: Vec::new(),
            skipping: false,
            input_eof: false,
            pending: VecDeque::new(),
            out: VecDeque::new(),
            broken: false,
            run: None,
            dropped_data: 0,
            started: HashSet::new(),
        }
    }

    /// The descriptors the channel holds (for the clean-slate check of the runner's own).
    pub fn fds(&self) -> [RawFd; 2] {
        [self.input.as_raw_fd(), self.output.as_raw_fd()]
    }

    /// The parked stdin, while it has not reached end-of-file.
    pub fn input_fd(&self) -> Option<RawFd> {
        (!self.input_eof).then(|| self.input.as_raw_fd())
    }

    /// The parked stdout, when frames wait for it.
    pub fn output_fd_if_pending(&self) -> Option<RawFd> {
        (!self.out.is_empty() && !self.broken).then(|| self.output.as_raw_fd())
    }

    pub fn input_eof(&self) -> bool {
        self.input_eof
    }

    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Queues one frame and writes what stdout takes.
    pub fn frame(&mut self, o: &Output) {
        self.raw_line(&o.line());
    }

    /// Queues one line as it is (the sealed result line; `line` ends with `\n` or gets one).
    pub fn raw_line(&mut self, line: &str) {
        if self.broken {
            return;
        }
        self.out.extend(line.as_bytes());
        if !line.ends_with('\n') {
            self.out.push_back(b'\n');
        }
        self.flush();
        if self.out.len() > MAX_PENDING_OUTPUT {
            self.flush_blocking(SLOW_READER_WAIT);
        }
    }

    /// A stage begins.
    pub fn stage(&mut self, stage: &str) {
        if let Some(r) = &self.run {
            let o = Output::Stage { run_id: r.run_id.clone(), stage: stage.to_string() };
            self.frame(&o);
        }
    }

    /// A stage's process runs (or no longer does): `Signal` frames are for it.
    pub fn set_in_stage(&mut self, running: bool) {
        if let Some(r) = &mut self.run {
            r.in_stage = running;
        }
    }

    /// Output of the running stage, as it was read (only what the stage keeps).
    pub fn data(&mut self, stream: Stream, bytes: &[u8]) {
        let Some(run_id) = self.run.as_ref().map(|r| r.run_id.clone()) else { return };
        for chunk in bytes.chunks(MAX_DATA_CHUNK) {
            let o = Output::Data {
                run_id: run_id.clone(),
                stream,
                data: base64::engine::general_purpose::STANDARD.encode(chunk),
            };
            let line = o.line();
            if self.out.len() + line.len() > MAX_PENDING_OUTPUT {
                self.flush();
                let dropping = self.run.as_ref().is_some_and(|r| r.dropping);
                if !dropping && self.out.len() + line.len() > MAX_PENDING_OUTPUT {
                    self.flush_blocking(SLOW_READER_WAIT);
                }
                if self.out.len() + line.len() > MAX_PENDING_OUTPUT {
                    self.dropped_data += chunk.len() as u64;
                    if let Some(r) = &mut self.run {
                        r.dropping = true;
                    }
                    continue;
                }
            }
            self.raw_line(&line);
        }
    }

    /// Writes what stdout takes now, without blocking.
    pub fn flush(&mut self) {
        while !self.out.is_empty() && !self.broken {
            let (a, _) = self.out.as_slices();
            // SAFETY: writing from a valid slice.
            let n = unsafe { libc::write(self.output.as_raw_fd(), a.as_ptr().cast(), a.len()) };
            if n > 0 {
                self.out.drain(..n as usize);
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => return,
                _ => {
                    self.broken = true;
                    self.out.clear();
                }
            }
        }
    }

    /// Writes everything queued, waiting up to `timeout`; whether it all went.
    pub fn flush_blocking(&mut self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            self.flush();
            if self.out.is_empty() {
                return true;
            }
            if self.broken {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            let ms = libc::c_int::try_from((until - now).as_millis()).unwrap_or(libc::c_int::MAX).max(1);
            let mut fd = libc::pollfd { fd: self.output.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut fd, 1, ms) };
        }
    }

    /// Waits (without a time limit) until the operator sends something, writing queued
    /// frames meanwhile; then reads it.
    pub fn wait_input(&mut self) {
        loop {
            if self.input_eof || !self.pending.is_empty() {
                return;
            }
            let mut fds = vec![libc::pollfd { fd: self.input.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            if let Some(fd) = self.output_fd_if_pending() {
                fds.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
            }
            // SAFETY: a valid array of pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n <= 0 {
                continue;
            }
            if fds.get(1).is_some_and(|f| f.revents != 0) {
                self.flush();
            }
            if fds[0].revents != 0 {
                self.read_input();
            }
        }
    }

    /// Reads what the operator sent (without blocking) and takes each complete line: during
    /// a run at once, otherwise kept for [`Channel::next_idle`].
    pub fn read_input(&mut self) {
        let mut chunk = vec![0u8; READ_CHUNK];
        while !self.input_eof {
            // SAFETY: reading into a local buffer of its size.
            let n = unsafe { libc::read(self.input.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n == 0 {
                self.input_eof = true;
                if let Some(r) = &mut self.run {
                    r.eof = true; // nobody will type more
                }
                break;
            }
            if n < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => break,
                    _ => {
                        self.input_eof = true;
                        break;
                    }
                }
            }
            let mut rest = &chunk[..n as usize];
            while !rest.is_empty() {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        if !self.skipping {
                            self.line.extend_from_slice(&rest[..i]);
                            let line = std::mem::take(&mut self.line);
                            if line.len() > MAX_INPUT_LINE {
                                self.take(Err(format!("a line longer than {MAX_INPUT_LINE} bytes")));
                            } else {
                                self.take_line(&line);
                            }
                        }
                        self.skipping = false;
                        rest = &rest[i + 1..];
                    }
                    None => {
                        if !self.skipping {
                            self.line.extend_from_slice(rest);
                            if self.line.len() > MAX_INPUT_LINE {
                                self.line = Vec::new();
                                self.skipping = true;
                                self.take(Err(format!("a line longer than {MAX_INPUT_LINE} bytes")));
                            }
                        }
                        rest = &[];
                    }
                }
            }
        }
    }

    fn take_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return; // (an empty line says nothing)
        }
        let msg = serde_json::from_slice::<Input>(line).map_err(|e| format!("an unreadable line: {e}"));
        self.take(msg);
    }

    fn take(&mut self, msg: Result<Input, String>) {
        if self.run.is_some() && self.pending.is_empty() {
            self.handle_in_run(msg);
        } else {
            self.pending.push_back(msg);
        }
    }

    /// A message during a run.
    fn handle_in_run(&mut self, msg: Result<Input, String>) {
        let Some(run) = &mut self.run else { return };
        let refusal = match msg {
            Err(reason) => Some(reason),
            Ok(Input::Run { request }) => {
                let o = match self.started.contains(&request.run_id) {
                    true => Output::refused_run(already_reason(&request.run_id), &request.run_id, true),
                    false => Output::refused_run("a run is in progress", &request.run_id, false),
                };
                self.frame(&o);
                return;
            }
            Ok(Input::Ping { .. }) => Some("a run is in progress (ping is answered when idle)".to_string()),
            Ok(Input::Stdin { .. }) if !run.interactive => {
                Some("stdin for a run that is not interactive".into())
            }
            Ok(Input::Stdin { .. }) | Ok(Input::Eof) if run.eof => Some("stdin after its end".to_string()),
            Ok(Input::Stdin { data }) => {
                match base64::engine::general_purpose::STANDARD.decode(data.as_bytes()) {
                    Err(e) => Some(format!("stdin that is not base64: {e}")),
                    Ok(bytes) if run.stdin.len() + bytes.len() > MAX_PENDING_STDIN => {
                        Some(format!("more than {MAX_PENDING_STDIN} bytes of stdin waiting for the program"))
                    }
                    Ok(bytes) => {
                        run.stdin.extend_from_slice(&bytes);
                        None
                    }
                }
            }
            Ok(Input::Eof) if !run.interactive => {
                Some("end of stdin for a run that is not interactive".into())
            }
            Ok(Input::Eof) => {
                run.eof = true;
                None
            }
            Ok(Input::Signal { signal }) => match parse_signal(&signal) {
                None => Some(format!("unknown signal {signal:?}")),
                Some(n) => {
                    if run.in_stage {
                        run.signals.push(n);
                    }
                    None
                }
            },
        };
        if let Some(reason) = refusal {
            self.frame(&Output::refused(reason));
        }
    }

    /// Why run `request` may not start now, if it may not: its run id was started before
    /// (`already`), is too long, or no more can be remembered.
    fn run_refusal(&self, request: &protocol::RunRequest) -> Option<Output> {
        let id = &request.run_id;
        if self.started.contains(id) {
            return Some(Output::refused_run(already_reason(id), id, true));
        }
        let why = if id.len() > MAX_RUN_ID {
            format!("a run id longer than {MAX_RUN_ID} bytes")
        } else if self.started.len() >= MAX_STARTED_RUNS {
            format!("this runner started {MAX_STARTED_RUNS} runs, as many as it remembers")
        } else {
            return refusal(request).map(|why| Output::refused_run(why, id, false));
        };
        Some(Output::refused_run(why, id, false))
    }

    /// The signals received for the running stage.
    pub fn take_signals(&mut self) -> Vec<i32> {
        self.run.as_mut().map(|r| std::mem::take(&mut r.signals)).unwrap_or_default()
    }

    /// The stdin received and not yet taken.
    pub fn take_stdin(&mut self) -> Vec<u8> {
        self.run.as_mut().map(|r| std::mem::take(&mut r.stdin)).unwrap_or_default()
    }

    /// The operator ended the program's stdin (or its own stream ended).
    pub fn stdin_eof(&self) -> bool {
        self.run.as_ref().is_none_or(|r| r.eof)
    }

    /// A run begins: the lines read after its `Run` are its own.
    fn begin_run(&mut self, run_id: &str, interactive: bool) {
        self.run = Some(RunState {
            run_id: run_id.to_string(),
            interactive,
            eof: self.input_eof,
            ..Default::default()
        });
        while let Some(msg) = self.pending.pop_front() {
            self.handle_in_run(msg);
        }
        // (A large request's line is not kept in the runner's memory while it runs.)
        if self.line.capacity() > READ_CHUNK {
            self.line.shrink_to(READ_CHUNK);
        }
    }

    fn end_run(&mut self) {
        self.run = None;
    }

    /// The next message while idle, waiting for it; `None` at the end of the input.
    fn next_idle(&mut self) -> Option<Result<Input, String>> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            if self.input_eof || self.broken {
                return None;
            }
            self.wait_input();
        }
    }
}

/// A signal the operator may send: a name or number of [`rce_api::signal`], 1 to 64.
pub fn parse_signal(name: &str) -> Option<i32> {
    rce_api::Signal::parse(name).map(|s| s.number()).filter(|n| (1..=64).contains(n))
}

fn already_reason(run_id: &str) -> String {
    format!("run {run_id:?} was started before by this runner: it is not started again")
}

/// Why a `Run` is refused before it starts, if it is (besides its run id).
fn refusal(req: &protocol::RunRequest) -> Option<String> {
    if req.interactive && req.runs > 1 {
        return Some("an interactive request runs once (runs > 1)".into());
    }
    if req.interactive && (!req.stdin.is_empty() || req.stdin_sealed.is_some()) {
        return Some("an interactive request has no stdin of its own".into());
    }
    None
}

/// The serving runner; returns its exit status. `protected`: whether making the runner
/// non-dumpable worked (done first, in `main`).
pub fn main(protected: std::io::Result<()>, key: Option<Vec<u8>>, config: &Config) -> i32 {
    let spoiled = |served, reason: String| Output::Spoiled { served, reason };
    let (input, output) = match sys::park_serve_stdio() {
        Ok(p) => p,
        Err(e) => {
            let line = spoiled(0, format!("cannot park stdin and stdout: {e}")).line();
            // SAFETY: writing a local buffer to fd 1, whatever it is now.
            unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            return 0;
        }
    };
    let mut chan = Channel::new(input, output);
    let fail = |chan: &mut Channel, served, reason| {
        chan.frame(&spoiled(served, reason));
        chan.flush_blocking(FINAL_FLUSH);
        0
    };
    if let Err(e) = protected {
        return fail(&mut chan, 0, format!("cannot make the runner non-dumpable: {e}"));
    }
    let Some(key) = key else {
        return fail(&mut chan, 0, format!("no result key in {}", protocol::RESULT_KEY_ENV));
    };
    if let Err(e) = sys::init() {
        return fail(&mut chan, 0, format!("cannot set up the SIGCHLD pipe: {e}"));
    }
    let baseline = match clean::Baseline::record(config, clean::shm_dir(|k| std::env::var(k).ok())) {
        Ok(b) => b,
        Err(e) => return fail(&mut chan, 0, format!("cannot record the clean slate: {e}")),
    };
    let mut served: u32 = 0;
    chan.frame(&Output::Ready { served, nonce: String::new(), mac: ready_mac(&key, served, "") });
    while let Some(msg) = chan.next_idle() {
        let request = match msg {
            Err(reason) => {
                chan.frame(&Output::refused(reason));
                continue;
            }
            Ok(Input::Ping { nonce }) => {
                let mac = ready_mac(&key, served, &nonce);
                chan.frame(&Output::Ready { served, nonce, mac });
                continue;
            }
            Ok(Input::Run { request }) => request,
            Ok(other) => {
                let what = serde_json::to_value(&other)
                    .ok()
                    .and_then(|v| v.get("t").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_default();
                chan.frame(&Output::refused(format!("{what:?} while no run is in progress")));
                continue;
            }
        };
        if let Some(refused) = chan.run_refusal(&request) {
            chan.frame(&refused);
            continue;
        }
        let run_id = request.run_id.clone();
        // Remembered before anything else: nothing starts this run id again.
        chan.started.insert(run_id.clone());
        chan.frame(&Output::Started { run_id: run_id.clone() });
        chan.begin_run(&run_id, request.interactive);
        let result = {
            let (chan, key) = (&mut chan, key.as_slice());
            crate::catch_panics(std::panic::AssertUnwindSafe(move || {
                crate::run_request(*request, config, Some(key), Some(chan))
            }))
        };
        chan.end_run();
        let result = protocol::RunResult { run_id: run_id.clone(), ..result };
        chan.raw_line(&protocol::seal(&result, Some(&key)));
        served = served.saturating_add(1);
        if !chan.flush_blocking(FINAL_FLUSH) {
            return 0; // nobody can hear more (the log has what was written)
        }
        if result.message.as_deref().is_some_and(|m| m.starts_with("runner panicked")) {
            return fail(&mut chan, served, "the runner panicked during the run".into());
        }
        if chan.input_eof() {
            return 0;
        }
        match baseline.prove(&chan) {
            Ok(()) => {
                chan.frame(&Output::Ready { served, nonce: String::new(), mac: ready_mac(&key, served, "") })
            }
            Err(reason) => return fail(&mut chan, served, reason),
        }
    }
    chan.flush_blocking(FINAL_FLUSH);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number_and_nothing_else() {
        assert_eq!(parse_signal("SIGINT"), Some(libc::SIGINT));
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+1"), Some(35));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99"), None);
        assert_eq!(parse_signal("SIG99"), None);
    }
}
