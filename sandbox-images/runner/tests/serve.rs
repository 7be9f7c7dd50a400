//! Runs the real `rce-runner --serve` binary with pipes for its stdin and stdout, as the
//! operator's attach stream would be, and talks to it in the framing of `rce_api::serve`:
//! runs one after another, their frames and sealed results, the clean slate between them,
//! interactive stdin, signals, refusals and the end of the input.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use rce_runner::protocol::{
    Outcome, ResultLine, RunRequest, RunResult, StageLimits, RESULT_KEY_ENV, RESULT_PREFIX,
};
use rce_runner::serve::{ready_mac, Input, Output, Stream, MAX_DATA_CHUNK, SERVE_ARG};

const RUNNER: &str = env!("CARGO_BIN_EXE_rce-runner");
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY: [u8; 32] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];
/// How long any one frame may take to come.
const FRAME_WAIT: Duration = Duration::from_secs(20);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

fn limits() -> StageLimits {
    StageLimits {
        wall_time_ms: 10_000,
        cpu_time_ms: 5_000,
        memory_kib: 512 * 1024,
        processes: 64,
        output_bytes: 64 * 1024,
        file_size_kib: 10 * 1024,
        stack_kib: 8 * 1024,
    }
}

fn sh(run_id: &str, script: &str) -> RunRequest {
    RunRequest {
        tests: vec![],
        stop_on_first_failure: false,
        checker: None,
        run_id: run_id.into(),
        files: vec![],
        stdin: String::new(),
        stdin_sealed: None,
        args: vec![],
        compile: None,
        run: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![],
        limits: limits(),
        compile_limits: None,
        redirect_stderr_to_stdout: false,
        runs: 1,
        interactive: false,
    }
}

/// One line the runner printed: a frame or the sealed result line.
#[derive(Debug)]
enum Line {
    Frame(Output),
    Result(String),
}

/// A serving runner in temporary work, tmp and shm dirs, removed on drop.
struct Server {
    root: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Held while it runs: the host's SysV IPC objects are shared by every runner of this
    /// binary (outside a sandbox there is no IPC namespace of its own), so the one test that
    /// leaves an object there runs alone ([`HOST_IPC`]).
    _ipc: Option<IpcTurn>,
}

#[allow(dead_code)]
enum IpcTurn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// Taken for writing by the test that creates a host SysV IPC object, for reading by every
/// other runner: a parallel test's runner would otherwise see that object and, rightly,
/// refuse to vouch for its slate.
static HOST_IPC: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Server {
        let turn = IpcTurn::Shared(HOST_IPC.read().unwrap_or_else(|p| p.into_inner()));
        let mut s = Server::spawn(env);
        s._ipc = Some(turn);
        s
    }

    /// A runner alone on the host's SysV IPC (no other runner of this binary runs meanwhile).
    fn start_alone() -> Server {
        let turn = IpcTurn::Alone(HOST_IPC.write().unwrap_or_else(|p| p.into_inner()));
        let mut s = Server::spawn(&[]);
        s._ipc = Some(turn);
        s
    }

    fn spawn(env: &[(&str, &str)]) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "rce-runner-serve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["work", "tmp", "shm", "watched"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let mut cmd = Command::new(RUNNER);
        cmd.arg(SERVE_ARG)
            .env("RCE_WORK_DIR", root.join("work"))
            .env("RCE_TMP_DIR", root.join("tmp"))
            .env("RCE_SHM_DIR", root.join("shm"))
            .env(RESULT_KEY_ENV, KEY_HEX)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v.replace("{root}", &root.display().to_string()));
        }
        let mut child = cmd.spawn().expect("start rce-runner --serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Server { root, child, stdin, lines, _ipc: None }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn send(&mut self, input: &Input) {
        self.send_raw(&input.line());
    }

    fn send_raw(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write to the runner");
        stdin.flush().expect("flush");
    }

    fn next(&self) -> Line {
        let line = self.lines.recv_timeout(FRAME_WAIT).expect("a line from the runner in time");
        if line.starts_with(RESULT_PREFIX) {
            return Line::Result(line);
        }
        Line::Frame(Output::parse(line.as_bytes()).unwrap_or_else(|| panic!("not a frame: {line:?}")))
    }

    fn frame(&self) -> Output {
        match self.next() {
            Line::Frame(f) => f,
            Line::Result(r) => panic!("a result line where a frame was expected: {r}"),
        }
    }

    /// The next frame is a `Ready` for `served` with a MAC that verifies (and `nonce`).
    fn expect_ready(&self, served: u32, nonce: &str) {
        match self.frame() {
            Output::Ready { served: s, nonce: n, mac } => {
                assert_eq!((s, n.as_str()), (served, nonce));
                assert_eq!(mac, ready_mac(&KEY, served, nonce));
                assert!(rce_runner::serve::ready_verifies(&KEY, served, nonce, &mac));
            }
            other => panic!("expected Ready {{ served: {served} }}, got {other:?}"),
        }
    }

    /// Frames up to and including the result line, which must verify for `run_id`.
    fn finish(&self, run_id: &str) -> (Vec<Output>, RunResult) {
        let mut frames = Vec::new();
        loop {
            match self.next() {
                Line::Frame(f) => frames.push(f),
                Line::Result(line) => {
                    let r = ResultLine::open(line.as_bytes(), &KEY, run_id)
                        .unwrap_or_else(|e| panic!("a sealed result for {run_id}: {e:?}"));
                    return (frames, r);
                }
            }
        }
    }

    /// Sends a run, returns its frames and result, and checks the `Ready` after it.
    fn run(&mut self, req: RunRequest, served_after: u32) -> (Vec<Output>, RunResult) {
        let id = req.run_id.clone();
        self.send(&Input::Run { request: Box::new(req) });
        let out = self.finish(&id);
        self.expect_ready(served_after, "");
        out
    }

    /// Waits for the runner to exit; its status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < until, "the runner did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("chmod").args(["-R", "u+rwx"]).arg(&self.root).status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The stdout (or stderr) carried by a run's `Data` frames, in order.
fn data_of(frames: &[Output], run_id: &str, stream: Stream) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        if let Output::Data { run_id: id, stream: s, data } = f {
            assert_eq!(id, run_id);
            let bytes = unb64(data);
            assert!(bytes.len() <= MAX_DATA_CHUNK);
            if *s == stream {
                v.extend_from_slice(&bytes);
            }
        }
    }
    v
}

fn ran(r: &RunResult) -> &rce_runner::protocol::StageResult {
    assert_eq!(r.outcome, Outcome::Ran, "{r:#?}");
    r.run.as_ref().expect("a run stage")
}

/// Processes anywhere on this machine whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if e.file_name().to_str().is_some_and(|s| s.parse::<u32>().is_ok()) {
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                if c.contains(marker) {
                    v.push(format!("{}: {c}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    v
}

#[test]
fn a_runs_frames_in_order_its_sealed_result_and_ready_after_it() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let mut req = sh("uid-1/1", "echo out; echo err >&2; exit 3");
    req.compile = Some(vec!["/bin/sh".into(), "-c".into(), "echo compiling".into()]);
    let (frames, r) = s.run(req, 1);
    assert_eq!(frames[0], Output::Started { run_id: "uid-1/1".into() });
    assert_eq!(frames[1], Output::Stage { run_id: "uid-1/1".into(), stage: "compile".into() });
    let run_at = frames
        .iter()
        .position(|f| *f == Output::Stage { run_id: "uid-1/1".into(), stage: "run".into() })
        .expect("a run stage frame");
    assert_eq!(data_of(&frames[..run_at], "uid-1/1", Stream::Stdout), b"compiling\n");
    assert_eq!(data_of(&frames[run_at..], "uid-1/1", Stream::Stdout), b"out\n");
    assert_eq!(data_of(&frames[run_at..], "uid-1/1", Stream::Stderr), b"err\n");
    assert_eq!(r.run_id, "uid-1/1");
    assert_eq!(r.compile.as_ref().map(|c| c.stdout.clone()), Some(b"compiling\n".to_vec()));
    let run = ran(&r);
    assert_eq!(
        (run.exit_code, run.stdout.as_slice(), run.stderr.as_slice()),
        (Some(3), &b"out\n"[..], &b"err\n"[..])
    );
}

#[test]
fn two_runs_back_to_back_with_their_own_ids() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let (_, r1) = s.run(sh("a/1", "echo first"), 1);
    let (frames, r2) = s.run(sh("b/1", "echo second"), 2);
    assert_eq!(ran(&r1).stdout, b"first\n");
    assert_eq!(ran(&r2).stdout, b"second\n");
    assert!(frames.iter().all(|f| !matches!(f, Output::Data { run_id, .. } if run_id != "b/1")));
    assert_eq!(data_of(&frames, "b/1", Stream::Stdout), b"second\n");
}

#[test]
fn files_of_one_run_are_not_visible_to_the_next() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let shm = s.dir("shm").display().to_string();
    let mut w = sh(
        "w/1",
        "echo secret > left; mkdir -p locked/deep && echo x > locked/deep/f && chmod 000 locked/deep locked; \
         echo t > \"$TMPDIR/t\"; mkdir \"$TMPDIR/ro\" && touch \"$TMPDIR/ro/f\" && chmod 500 \"$TMPDIR/ro\"; \
         echo s > \"$SHM/seg\"; chmod 500 .; ls -A",
    );
    w.env = vec![("SHM".into(), shm.clone())];
    let (_, r1) = s.run(w, 1);
    assert_eq!(ran(&r1).stdout, b"left\nlocked\n", "{r1:#?}");
    let mut r = sh("r/1", "ls -A . \"$TMPDIR\" \"$SHM\"; cat left 2>&1; test -w . && echo writable");
    r.env = vec![("SHM".into(), shm)];
    let (_, r2) = s.run(r, 2);
    let out = String::from_utf8_lossy(&ran(&r2).stdout).into_owned();
    assert!(!out.contains("left") || out.contains("No such file"), "{out}");
    assert!(
        !out.contains("secret") && !out.contains("locked") && !out.contains("seg") && !out.contains("ro"),
        "{out}"
    );
    assert!(out.ends_with("writable\n"), "the work dir's mode is back: {out}");
}

#[test]
fn processes_left_by_one_run_are_gone_before_ready_and_not_seen_by_the_next() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let marker = format!("99{}.5", std::process::id() % 10_000);
    let script = format!(
        "sleep {marker} & setsid sleep {marker} & (sh -c 'sleep {marker} & exit 0' &) ; \
         (trap '' TERM INT HUP; exec sleep {marker}) & sleep 0.2; echo started"
    );
    let (_, r1) = s.run(sh("bg/1", &script), 1);
    assert_eq!(ran(&r1).stdout, b"started\n");
    // Ready came: nothing of run 1 may be left on this machine.
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    let look = format!("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep {marker}' || true");
    let (_, r2) = s.run(sh("bg/2", &look), 2);
    assert_eq!(ran(&r2).stdout, b"0\n", "no sleep of run 1 is visible to run 2");
}

#[test]
fn an_interactive_program_answers_each_line_before_the_next_is_sent() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let mut req = sh("i/1", "read a; echo \"got $a\"; read b; echo \"got $b\"");
    req.interactive = true;
    s.send(&Input::Run { request: Box::new(req) });
    assert_eq!(s.frame(), Output::Started { run_id: "i/1".into() });
    assert_eq!(s.frame(), Output::Stage { run_id: "i/1".into(), stage: "run".into() });
    s.send(&Input::Stdin { data: b64(b"one\n") });
    match s.frame() {
        Output::Data { stream: Stream::Stdout, data, .. } => assert_eq!(unb64(&data), b"got one\n"),
        other => panic!("expected the answer to line 1, got {other:?}"),
    }
    s.send(&Input::Stdin { data: b64(b"two\n") });
    let (frames, r) = s.finish("i/1");
    assert_eq!(data_of(&frames, "i/1", Stream::Stdout), b"got two\n");
    assert_eq!(ran(&r).stdout, b"got one\ngot two\n");
    assert_eq!(ran(&r).exit_code, Some(0));
    s.expect_ready(1, "");
}

#[test]
fn stdin_sent_before_the_run_stage_is_kept_and_eof_ends_it() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let mut req = sh("e/1", "cat; echo done");
    req.compile = Some(vec!["/bin/sh".into(), "-c".into(), "sleep 0.3".into()]);
    req.interactive = true;
    // All at once, while it compiles: kept for the run stage.
    let mut text = Input::Run { request: Box::new(req) }.line();
    text.push_str(&Input::Stdin { data: b64(b"abc") }.line());
    text.push_str(&Input::Eof.line());
    s.send_raw(&text);
    let (_, r) = s.finish("e/1");
    assert_eq!(ran(&r).stdout, b"abcdone\n");
    s.expect_ready(1, "");
}

#[test]
fn a_signal_frame_ends_the_program_with_that_signal() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let mut req = sh("sig/1", "");
    req.run = vec!["sleep".into(), "30".into()];
    let started = Instant::now();
    s.send(&Input::Run { request: Box::new(req) });
    assert_eq!(s.frame(), Output::Started { run_id: "sig/1".into() });
    assert_eq!(s.frame(), Output::Stage { run_id: "sig/1".into(), stage: "run".into() });
    std::thread::sleep(Duration::from_millis(200));
    s.send(&Input::Signal { signal: "SIGNOPE".into() });
    assert!(matches!(s.frame(), Output::Refused { reason, .. } if reason.contains("SIGNOPE")));
    s.send(&Input::Signal { signal: "SIGINT".into() });
    let (_, r) = s.finish("sig/1");
    let run = ran(&r);
    assert_eq!((run.exit_code, run.signal, run.signal_name.as_deref()), (None, Some(2), Some("SIGINT")));
    assert_eq!(run.limit, None);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    s.expect_ready(1, "");
}

#[test]
fn garbage_and_out_of_place_lines_are_refused_and_the_runner_still_serves() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    s.send_raw("this is not json\n");
    assert!(matches!(s.frame(), Output::Refused { .. }));
    s.send(&Input::Stdin { data: b64(b"x") });
    assert!(matches!(s.frame(), Output::Refused { .. }));
    s.send(&Input::Eof);
    assert!(matches!(s.frame(), Output::Refused { .. }));
    s.send(&Input::Ping { nonce: "n-1".into() });
    s.expect_ready(0, "n-1");
    let mut bad = sh("bad/1", "true");
    bad.interactive = true;
    bad.runs = 2;
    s.send(&Input::Run { request: Box::new(bad) });
    assert!(matches!(s.frame(), Output::Refused { reason, .. } if reason.contains("runs")));
    // A run during a run is refused; the first one goes on.
    s.send(&Input::Run { request: Box::new(sh("long/1", "sleep 0.5; echo ok")) });
    assert_eq!(s.frame(), Output::Started { run_id: "long/1".into() });
    s.send(&Input::Run { request: Box::new(sh("other/1", "true")) });
    let (frames, r) = s.finish("long/1");
    assert!(
        frames.iter().any(|f| matches!(f, Output::Refused { reason, .. } if reason.contains("in progress"))),
        "{frames:?}"
    );
    assert_eq!(ran(&r).stdout, b"ok\n");
    s.expect_ready(1, "");
    let (_, r) = s.run(sh("after/1", "echo still"), 2);
    assert_eq!(ran(&r).stdout, b"still\n");
}

#[test]
fn a_line_longer_than_the_limit_is_refused() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let long = "x".repeat(rce_runner::serve::MAX_INPUT_LINE + 10);
    s.send_raw(&long);
    s.send_raw("\n");
    assert!(matches!(s.frame(), Output::Refused { reason, .. } if reason.contains("longer")));
    let (_, r) = s.run(sh("l/1", "echo fine"), 1);
    assert_eq!(ran(&r).stdout, b"fine\n");
}

#[test]
fn the_end_of_stdin_ends_the_runner() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    s.stdin = None; // closes the pipe
    let st = s.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "{st:?}");
}

#[test]
fn an_earlier_runs_cpu_time_and_memory_do_not_count_in_a_later_run() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    // Run 1 burns CPU in the foreground and leaves a spinner behind.
    let burn = "(while :; do :; done) & i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; \
                x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let (_, r1) = s.run(sh("cpu/1", burn), 1);
    let run1 = ran(&r1).clone();
    assert!(run1.time_ms >= 200, "run 1 used CPU: {run1:#?}");
    let (_, r2) = s.run(sh("cpu/2", "echo small"), 2);
    let run2 = ran(&r2);
    assert!(
        run2.time_ms < 100,
        "run 2's CPU time is its own: {} ms (run 1: {} ms)",
        run2.time_ms,
        run1.time_ms
    );
    assert!(
        run2.memory_kib < run1.memory_kib / 4,
        "run 2's memory is its own: {} KiB (run 1: {} KiB)",
        run2.memory_kib,
        run1.memory_kib
    );
}

#[test]
fn a_change_to_a_watched_mount_spoils_the_sandbox() {
    let mut s = Server::start_with(&[("RCE_SERVE_WATCH", "{root}/watched")]);
    s.expect_ready(0, "");
    let watched = s.dir("watched").display().to_string();
    s.send(&Input::Run { request: Box::new(sh("m/1", &format!("echo planted > {watched}/note"))) });
    let _ = s.finish("m/1");
    match s.frame() {
        Output::Spoiled { served, reason } => {
            assert_eq!(served, 1);
            assert!(reason.contains("watched") && reason.contains("note"), "{reason}");
        }
        other => panic!("expected Spoiled, got {other:?}"),
    }
    assert!(s.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn sysv_ipc_left_by_a_run_is_found() {
    // Outside a sandbox the runner does not remove the host's objects: it must refuse to
    // vouch for the slate. (In a sandbox, its own IPC namespace, it removes them.)
    if Command::new("ipcmk").arg("--help").output().is_err() {
        panic!("ipcmk (util-linux) is needed for this test");
    }
    let mut s = Server::start_alone();
    s.expect_ready(0, "");
    s.send(&Input::Run { request: Box::new(sh("ipc/1", "ipcmk -M 4096")) });
    let (_, r) = s.finish("ipc/1");
    let out = String::from_utf8_lossy(&ran(&r).stdout).into_owned();
    let id: i32 = out.split_whitespace().last().and_then(|x| x.parse().ok()).expect("an id from ipcmk");
    let frame = s.frame();
    // SAFETY: removing the test's own segment.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    match frame {
        Output::Spoiled { reason, .. } => assert!(reason.contains("shm"), "{reason}"),
        other => panic!("expected Spoiled, got {other:?}"),
    }
}

#[test]
fn a_run_id_runs_once_whoever_sends_it_again_during_the_run_or_after() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let count = s.dir("count");
    let script = |id: &str| format!("sleep 0.5; echo {id} >> '{}'; echo ran {id}", count.display());
    let refused_again =
        |f: &Output, id: &str| matches!(f, Output::Refused { run_id: Some(r), already: true, .. } if r == id);
    // A second sender's `Run` of the same run id while the first runs: refused, marked.
    s.send(&Input::Run { request: Box::new(sh("dup/1", &script("dup/1"))) });
    assert_eq!(s.frame(), Output::Started { run_id: "dup/1".into() });
    s.send(&Input::Run { request: Box::new(sh("dup/1", &script("dup/1"))) });
    let (frames, r) = s.finish("dup/1");
    assert_eq!(ran(&r).stdout, b"ran dup/1\n");
    assert_eq!(frames.iter().filter(|f| refused_again(f, "dup/1")).count(), 1, "{frames:?}");
    assert!(!frames.iter().any(|f| matches!(f, Output::Started { .. })), "{frames:?}");
    s.expect_ready(1, "");
    // And after it ended (a sender that lost its session, or came late): refused, marked.
    s.send(&Input::Run { request: Box::new(sh("dup/1", &script("dup/1"))) });
    let f = s.frame();
    assert!(refused_again(&f, "dup/1"), "{f:?}");
    // Still idle and serving: a ping answers with the same count, a new run id runs.
    s.send(&Input::Ping { nonce: "after".into() });
    s.expect_ready(1, "after");
    let (frames, r) = s.run(sh("dup/2", &script("dup/2")), 2);
    assert_eq!(frames.first(), Some(&Output::Started { run_id: "dup/2".into() }));
    assert_eq!(ran(&r).stdout, b"ran dup/2\n");
    // The second id sent again during a third run (of another id): marked as started too,
    // while a fresh id sent during that run is refused as busy, not as already started.
    s.send(&Input::Run { request: Box::new(sh("dup/3", &script("dup/3"))) });
    assert_eq!(s.frame(), Output::Started { run_id: "dup/3".into() });
    s.send(&Input::Run { request: Box::new(sh("dup/2", &script("dup/2"))) });
    s.send(&Input::Run { request: Box::new(sh("dup/4", &script("dup/4"))) });
    let (frames, _) = s.finish("dup/3");
    assert!(frames.iter().any(|f| refused_again(f, "dup/2")), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Output::Refused { run_id: Some(r), already: false, .. } if r == "dup/4")),
        "{frames:?}"
    );
    s.expect_ready(3, "");
    // The programs ran once each: dup/1, dup/2, dup/3.
    let ran_ids = std::fs::read_to_string(&count).expect("the programs' record");
    assert_eq!(ran_ids, "dup/1\ndup/2\ndup/3\n");
    // dup/4 was refused for being early, not remembered: it runs now.
    let (_, r) = s.run(sh("dup/4", &script("dup/4")), 4);
    assert_eq!(ran(&r).stdout, b"ran dup/4\n");
}

#[test]
fn a_run_id_too_long_to_remember_is_refused() {
    let mut s = Server::start();
    s.expect_ready(0, "");
    let id = "x".repeat(rce_runner::serve::MAX_RUN_ID + 1);
    s.send(&Input::Run { request: Box::new(sh(&id, "true")) });
    let f = s.frame();
    assert!(
        matches!(&f, Output::Refused { run_id: Some(r), already: false, reason } if *r == id && reason.contains("longer")),
        "{f:?}"
    );
    let (_, r) = s.run(sh("short/1", "echo fine"), 1);
    assert_eq!(ran(&r).stdout, b"fine\n");
}
