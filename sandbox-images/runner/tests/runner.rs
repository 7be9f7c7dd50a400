//! Runs the real `rce-runner` binary on requests with `/bin/sh` programs, each in its own
//! temporary work dir, and checks the result line it prints.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rce_runner::protocol::{
    Encoding, File, LimitHit, Outcome, ResultLine, RunRequest, RunResult, SealedText, StageLimits, TestRun,
    RESULT_KEY_ENV, RESULT_PREFIX,
};

const RUNNER: &str = env!("CARGO_BIN_EXE_rce-runner");
/// The result key the tests give the runner (hex), and its bytes.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY: [u8; 32] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];
const RUN_ID: &str = "run-under-test";

/// Output bytes as text, for comparisons.
fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary directory with `work/` and `tmp/`, removed on drop.
struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "rce-runner-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("work")).expect("mkdir work");
        std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");
        Sandbox { root }
    }

    fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// The runner on `req`, started through `wrapper` (e.g. `unshare ...`) if not empty.
    fn command(&self, req: &RunRequest, wrapper: &[&str]) -> Command {
        let path = self.root.join("request.json");
        std::fs::write(&path, serde_json::to_vec(req).expect("serialise")).expect("write request");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(RUNNER);
                c
            }
            None => Command::new(RUNNER),
        };
        cmd.arg(&path)
            .env("RCE_WORK_DIR", self.work())
            .env("RCE_TMP_DIR", self.root.join("tmp"))
            .env("RCE_TEST_LEAK", "must-not-reach-the-program")
            .env(RESULT_KEY_ENV, KEY_HEX);
        cmd
    }

    /// Runs the runner; returns its parsed result and how long it took.
    fn run(&self, req: &RunRequest) -> (RunResult, Duration) {
        let start = Instant::now();
        let out = self.command(req, &[]).output().expect("start rce-runner");
        (parse_output(&out), start.elapsed())
    }

    /// Runs the runner under a uid of its own (as in a sandbox: root escapes RLIMIT_NPROC
    /// and may read any /proc file).
    /// (`RLIMIT_NPROC` counts per uid: tests running at once need uids of their own.)
    fn run_as_user(&self, req: &RunRequest, uid: u32) -> (RunResult, Duration) {
        let uid = uid.to_string();
        let uid = uid.as_str();
        let chown = Command::new("chown").args(["-R", &format!("{uid}:{uid}")]).arg(&self.root).status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the sandbox dir (the test runs as root)");
        let start = Instant::now();
        let mut cmd = self.command(req, &["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups"]);
        let out = cmd.output().expect("start setpriv");
        (parse_output(&out), start.elapsed())
    }

    /// Runs the runner as PID 1 of a new PID namespace (with its own /proc).
    fn run_as_pid_1(&self, req: &RunRequest) -> (RunResult, Duration) {
        let start = Instant::now();
        let out = self.command(req, &UNSHARE).output().expect("start unshare");
        (parse_output(&out), start.elapsed())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The runner exits 0 and prints exactly one line, the result line.
fn parse_output(out: &std::process::Output) -> RunResult {
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8 stdout");
    assert!(
        out.status.success(),
        "runner exit status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches('\n').count(), 1, "exactly one line on stdout: {stdout:?}");
    assert!(stdout.starts_with(RESULT_PREFIX) && stdout.ends_with('\n'), "{stdout:?}");
    let _: serde_json::Value = serde_json::from_str(&stdout).expect("the line is JSON");
    ResultLine::open(stdout.as_bytes(), &KEY, RUN_ID).expect("a result sealed with the key, for the run")
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

fn sh(script: &str) -> RunRequest {
    RunRequest {
        run_id: RUN_ID.into(),
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
        tests: vec![],
        stop_on_first_failure: false,
        checker: None,
    }
}

fn file(name: &str, content: &str) -> File {
    File { name: name.into(), content: content.into(), encoding: Encoding::Utf8 }
}

fn ran(r: &RunResult) -> &rce_runner::protocol::StageResult {
    assert_eq!(r.outcome, Outcome::Ran, "{r:#?}");
    r.run.as_ref().expect("a run stage")
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn hello_world_exits_zero() {
    let sb = Sandbox::new();
    let (r, _) = sb.run(&sh("echo hello; echo oops >&2"));
    let run = ran(&r);
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.signal, None);
    assert_eq!(s(&run.stdout), "hello\n");
    assert_eq!(s(&run.stderr), "oops\n");
    assert!(!run.stdout_truncated && !run.stderr_truncated);
    assert_eq!(run.limit, None);
    assert!(run.wall_time_ms < 5_000, "{run:?}");
    assert!(run.memory_kib > 0, "peak memory is measured: {run:?}");
    assert!(r.compile.is_none() && r.message.is_none());
}

#[test]
fn files_placeholder_and_args() {
    let sb = Sandbox::new();
    let mut req = sh("");
    req.files = vec![
        file("main.sh", "echo \"args: $*\"; cat data/in.txt; cat bin.dat"),
        file("data/in.txt", "from a nested file\n"),
        File { name: "bin.dat".into(), content: "YmluYXJ5Cg==".into(), encoding: Encoding::Base64 },
    ];
    req.run = vec!["sh".into(), "{file}".into()];
    req.args = vec!["one".into(), "two words".into()];
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(s(&run.stdout), "args: one two words\nfrom a nested file\nbinary\n", "{run:?}");
    assert_eq!(
        std::fs::read_to_string(sb.work().join("data/in.txt")).expect("written"),
        "from a nested file\n"
    );
}

#[test]
fn clean_environment_plus_request_env() {
    let sb = Sandbox::new();
    let mut req = sh("env | sort; pwd");
    req.env = vec![("GREETING".into(), "hi there".into())];
    let (r, _) = sb.run(&req);
    let out = &s(&ran(&r).stdout);
    let work = sb.work();
    assert!(out.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"), "{out}");
    assert!(out.contains(&format!("HOME={}\n", work.display())), "{out}");
    assert!(out.contains("LANG=C.UTF-8\n"), "{out}");
    assert!(out.contains(&format!("TMPDIR={}\n", sb.root.join("tmp").display())), "{out}");
    assert!(out.contains("GREETING=hi there\n"), "{out}");
    assert!(!out.contains("RCE_TEST_LEAK"), "the runner's environment leaked: {out}");
    assert!(out.ends_with(&format!("{}\n", work.display())), "cwd is the work dir: {out}");
}

#[test]
fn stdin_is_fed_to_the_program() {
    let sb = Sandbox::new();
    let mut req = sh("cat");
    req.stdin = "line one\nline two\n".into();
    let (r, _) = sb.run(&req);
    assert_eq!(s(&ran(&r).stdout), "line one\nline two\n");

    // More than a pipe buffer holds, in both directions.
    let mut req = sh("cat");
    req.stdin = "0123456789abcdef".repeat(64 * 1024); // 1 MiB
    req.limits.output_bytes = 2 * 1024 * 1024;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.stdout.len(), 1024 * 1024);
    assert_eq!(s(&run.stdout), req.stdin);
}

#[test]
fn a_program_that_ignores_its_stdin_is_fine() {
    let sb = Sandbox::new();
    let mut req = sh("exit 0");
    req.stdin = "x".repeat(1024 * 1024);
    let (r, elapsed) = sb.run(&req);
    assert_eq!(ran(&r).exit_code, Some(0));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn non_zero_exit_code() {
    let sb = Sandbox::new();
    let (r, _) = sb.run(&sh("echo partial; exit 3"));
    let run = ran(&r);
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.signal, None);
    assert_eq!(s(&run.stdout), "partial\n");
    assert_eq!(run.limit, None);
}

#[test]
fn death_by_signal() {
    let sb = Sandbox::new();
    let (r, _) = sb.run(&sh("kill -SEGV $$"));
    let run = ran(&r);
    assert_eq!(run.exit_code, None);
    assert_eq!(run.signal, Some(11));
    assert_eq!(run.signal_name.as_deref(), Some("SIGSEGV"));
    assert_eq!(run.limit, None);
}

#[test]
fn wall_time_limit() {
    let sb = Sandbox::new();
    let mut req = sh("sleep 30");
    req.limits.wall_time_ms = 500;
    let (r, elapsed) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::WallTime), "{run:?}");
    assert_eq!(run.signal_name.as_deref(), Some("SIGKILL"));
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!((500..2_500).contains(&run.wall_time_ms), "{run:?}");
}

#[test]
fn cpu_time_limit() {
    let sb = Sandbox::new();
    let mut req = sh("while :; do :; done");
    req.limits.cpu_time_ms = 1_000;
    req.limits.wall_time_ms = 30_000;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::CpuTime), "{run:?}");
    // The kernel's SIGXCPU at the rlimit, or the runner's own kill when it samples the CPU
    // time past the limit, whichever comes first.
    assert!(matches!(run.signal_name.as_deref(), Some("SIGXCPU" | "SIGKILL")), "{run:?}");
    assert!((800..=2_500).contains(&run.time_ms), "CPU time near the limit: {run:?}");
}

/// A CPU-time verdict is the runner's, on the measure it reports: the busy loop is killed
/// once its measured CPU time passes the limit (not by `RLIMIT_CPU`'s whole seconds, which
/// count the kernel's own measure and fire at the limit when it is a multiple of a second),
/// and the reported time is at least the limit, and not much more: two sampling periods of
/// 10 ms, and one clock tick, the granularity of the `/proc` measure these tests use.
#[test]
fn a_cpu_time_verdict_reports_at_least_the_limit() {
    let sb = Sandbox::new();
    for cpu_time_ms in [1_000, 2_000] {
        let mut req = sh("while :; do :; done");
        req.limits.cpu_time_ms = cpu_time_ms;
        req.limits.wall_time_ms = 30_000;
        let (r, _) = sb.run(&req);
        let run = ran(&r);
        assert_eq!(run.limit, Some(LimitHit::CpuTime), "{run:?}");
        assert_eq!(
            run.signal_name.as_deref(),
            Some("SIGKILL"),
            "the runner's kill, not RLIMIT_CPU's: {run:?}"
        );
        // At least the limit (the verdict's truth); past it by no more than the sampling
        // delay of a loaded machine (the suite runs beside the cluster tests).
        assert!(
            (cpu_time_ms..cpu_time_ms + 250).contains(&run.time_ms),
            "limit {cpu_time_ms} ms: CPU time at or just past it: {run:?}"
        );
    }
}

#[test]
fn a_program_ignoring_sigterm_still_ends_at_the_wall_limit() {
    let sb = Sandbox::new();
    let mut req = sh("trap '' TERM; while :; do :; done");
    req.limits.wall_time_ms = 1_000;
    req.limits.cpu_time_ms = 60_000;
    let (r, elapsed) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::WallTime), "{run:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn output_flood_is_cut_at_the_limit() {
    let sb = Sandbox::new();
    let mut req = sh("yes");
    req.limits.output_bytes = 1000;
    let (r, elapsed) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Output), "{run:?}");
    assert!(run.stdout_truncated);
    assert_eq!(run.stdout.len(), 1000);
    assert!(run.stdout.starts_with(b"y\ny\n"));
    assert!(!run.stderr_truncated);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn too_much_output_from_a_quick_program_is_still_an_output_limit() {
    let sb = Sandbox::new();
    let mut req = sh("head -c 5000 /dev/zero | tr '\\0' e >&2");
    req.limits.output_bytes = 100;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Output), "{run:?}");
    assert!(run.stderr_truncated && !run.stdout_truncated);
    assert_eq!(s(&run.stderr), "e".repeat(100));
}

#[test]
fn file_size_limit() {
    let sb = Sandbox::new();
    let mut req = sh("head -c 10M /dev/zero > f");
    req.limits.file_size_kib = 1024;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::FileSize), "{run:?}");
    assert!(
        run.signal_name.as_deref() == Some("SIGXFSZ") || run.exit_code.is_some_and(|c| c != 0),
        "{run:?}"
    );
    let len = std::fs::metadata(sb.work().join("f")).expect("f exists").len();
    assert_eq!(len, 1024 * 1024, "the file stops at the limit");

    // Killed by SIGXFSZ itself (no shell in between), in the temporary dir this time.
    let sb = Sandbox::new();
    let mut req = sh("exec head -c 3M /dev/zero > \"$TMPDIR/g\"");
    req.limits.file_size_kib = 1024;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.signal_name.as_deref(), Some("SIGXFSZ"), "{run:?}");
    assert_eq!(run.limit, Some(LimitHit::FileSize), "{run:?}");
    assert_eq!(std::fs::metadata(sb.root.join("tmp/g")).expect("g exists").len(), 1024 * 1024);

    // Writing less than the limit and failing is not a file-size verdict.
    let sb = Sandbox::new();
    let mut req = sh("head -c 1000 /dev/zero > f; exit 1");
    req.limits.file_size_kib = 1024;
    let (r, _) = sb.run(&req);
    assert_eq!(ran(&r).limit, None, "{r:?}");
}

#[test]
fn compile_failure_stops_before_running() {
    let sb = Sandbox::new();
    let mut req = sh("echo should not run > ran.txt");
    req.files = vec![file("main.c", "int main(){}")];
    req.compile = Some(vec!["sh".into(), "-c".into(), "echo bad >&2; exit 1".into()]);
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::CompileError, "{r:#?}");
    let compile = r.compile.as_ref().expect("compile stage");
    assert_eq!(compile.exit_code, Some(1));
    // The compiler's stderr is in its stdout (Judge0's --stderr-to-stdout).
    assert_eq!(s(&compile.stdout), "bad\n");
    assert_eq!(s(&compile.stderr), "");
    assert!(r.run.is_none());
    assert_eq!(r.runs, 0, "the program never ran");
    assert!(!sb.work().join("ran.txt").exists());
}

#[test]
fn compile_then_run_with_separate_limits() {
    let sb = Sandbox::new();
    let mut req = sh("sh ./prog.sh");
    req.files = vec![file("src/main.sh", "echo compiled and ran")];
    req.compile = Some(vec!["sh".into(), "-c".into(), "echo compiling {file}; cp {file} prog.sh".into()]);
    // The compile stage gets its own (tighter) wall limit: a slow compiler hits it.
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::Ran, "{r:#?}");
    assert_eq!(s(&r.compile.as_ref().expect("compile").stdout), "compiling src/main.sh\n");
    assert_eq!(s(&ran(&r).stdout), "compiled and ran\n");

    let sb = Sandbox::new();
    let mut req = sh("echo ran");
    req.compile = Some(vec!["sleep".into(), "30".into()]);
    req.compile_limits = Some(StageLimits { wall_time_ms: 300, ..limits() });
    let (r, elapsed) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::CompileError, "{r:#?}");
    assert_eq!(r.compile.as_ref().expect("compile").limit, Some(LimitHit::WallTime));
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn path_traversal_is_an_internal_error() {
    let sb = Sandbox::new();
    let mut req = sh("echo hi");
    req.files = vec![file("ok.txt", "fine"), file("../x", "escaped")];
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::InternalError);
    let msg = r.message.as_deref().expect("message");
    assert!(msg.contains("file name \"../x\" is not allowed"), "{msg}");
    assert!(r.run.is_none());
    assert!(!sb.root.join("x").exists());

    for bad in ["/etc/evil", "a//b", "a/./b", "dir/"] {
        let mut req = sh("echo hi");
        req.files = vec![file(bad, "x")];
        let (r, _) = sb.run(&req);
        assert_eq!(r.outcome, Outcome::InternalError, "{bad}");
        assert!(r.message.as_deref().expect("message").contains(&format!("{bad:?}")), "{r:?}");
    }
}

#[test]
fn symlinks_planted_in_the_work_dir_are_not_followed() {
    let sb = Sandbox::new();
    let outside = sb.root.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(outside.join("target"), sb.work().join("main.sh")).expect("symlink");
    std::os::unix::fs::symlink(&outside, sb.work().join("lib")).expect("symlink");

    let mut req = sh("echo hi");
    req.files = vec![file("main.sh", "evil")];
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::InternalError, "{r:#?}");
    assert!(r.message.as_deref().expect("message").contains("\"main.sh\""), "{r:?}");
    assert!(!outside.join("target").exists(), "wrote through a symlink");

    let mut req = sh("echo hi");
    req.files = vec![file("lib/mod.sh", "evil")];
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::InternalError, "{r:#?}");
    assert!(!outside.join("mod.sh").exists(), "wrote through a symlinked directory");
}

#[test]
fn background_processes_are_killed_and_do_not_hold_the_runner() {
    let sb = Sandbox::new();
    // The first keeps stdout open; the second leaves the process group with setsid.
    let (r, elapsed) = sb.run(&sh("sleep 100 & echo $!; setsid sleep 100 > /dev/null 2>&1 & echo $!"));
    let run = ran(&r);
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    let pids: Vec<i32> = s(&run.stdout).lines().map(|l| l.parse().expect("a pid")).collect();
    assert_eq!(pids.len(), 2, "{run:?}");
    for pid in pids {
        assert!(!alive(pid), "background process {pid} survived the runner");
    }
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn compile_leftovers_are_gone_before_the_run() {
    let sb = Sandbox::new();
    let mut req = sh("sleep 1; cat leak.txt 2>/dev/null || echo clean");
    req.compile = Some(vec![
        "sh".into(),
        "-c".into(),
        "setsid sh -c 'sleep 0.5; echo leaked > leak.txt' & sleep 0.2; exit 0".into(),
    ]);
    let (r, _) = sb.run(&req);
    assert_eq!(s(&ran(&r).stdout), "clean\n", "{r:#?}");
}

#[test]
fn a_missing_or_broken_request_is_an_internal_error() {
    let sb = Sandbox::new();
    let out = Command::new(RUNNER)
        .arg(sb.root.join("nope.json"))
        .env("RCE_WORK_DIR", sb.work())
        .env(RESULT_KEY_ENV, KEY_HEX)
        .output()
        .expect("start rce-runner");
    let r = parse_output(&out);
    assert_eq!(r.outcome, Outcome::InternalError);
    assert!(r.message.as_deref().expect("message").contains("nope.json"), "{r:?}");

    std::fs::write(sb.root.join("bad.json"), "{\"files\": 3}").expect("write");
    let out = Command::new(RUNNER)
        .env("RCE_REQUEST", sb.root.join("bad.json"))
        .env("RCE_WORK_DIR", sb.work())
        .env(RESULT_KEY_ENV, KEY_HEX)
        .output()
        .expect("start rce-runner");
    let r = parse_output(&out);
    assert_eq!(r.outcome, Outcome::InternalError);
    assert!(r.message.as_deref().expect("message").starts_with("invalid request"), "{r:?}");
}

#[test]
fn a_command_that_does_not_exist_is_an_internal_error() {
    let sb = Sandbox::new();
    let mut req = sh("");
    req.run = vec!["/nonexistent/compiler".into()];
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::InternalError, "{r:#?}");
    assert!(r.message.as_deref().expect("message").contains("/nonexistent/compiler"), "{r:?}");
}

const UNSHARE: [&str; 4] = ["unshare", "--pid", "--fork", "--mount-proc"];

/// Whether this host lets us start the runner as PID 1 of a new PID namespace (root only).
fn can_unshare() -> bool {
    Command::new(UNSHARE[0]).args(&UNSHARE[1..]).arg("true").output().is_ok_and(|o| o.status.success())
}

/// As PID 1 the runner kills with `kill(-1)` and reaps orphans: leftovers of the compile stage
/// (even ones that left the session) are neither running nor zombies when the program runs.
#[test]
fn as_pid_1_leftovers_are_killed_and_reaped() {
    if !can_unshare() {
        eprintln!("SKIPPED: cannot create a PID namespace here (needs root and unshare)");
        return;
    }
    let sb = Sandbox::new();
    let mut req = sh("sleep 0.3; for f in /proc/[0-9]*/stat; do cut -d' ' -f2,3 $f; done 2>/dev/null");
    req.compile = Some(vec![
        "sh".into(),
        "-c".into(),
        "sleep 100 & setsid sleep 100 & (setsid sh -c 'sleep 100 & exit 0') ; sleep 0.2; exit 0".into(),
    ]);
    req.limits.wall_time_ms = 5_000;
    let (r, elapsed) = sb.run_as_pid_1(&req);
    let run = ran(&r);
    let text = s(&run.stdout);
    let procs: Vec<&str> = text.lines().collect();
    // (The runner may be sleeping or running, reading this very output.)
    let runner = procs.iter().filter(|p| p.starts_with("(rce-runner) ")).count();
    assert_eq!(runner, 1, "the runner is alive in its namespace: {procs:?}");
    assert!(!procs.iter().any(|p| p.starts_with("(sleep)")), "compile leftovers survived: {procs:?}");
    assert!(!procs.iter().any(|p| p.ends_with(" Z")), "zombies were not reaped: {procs:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // The wall limit as PID 1 too, with a background process and SIGTERM ignored.
    let req = RunRequest {
        limits: StageLimits { wall_time_ms: 500, ..limits() },
        ..sh("trap '' TERM; sleep 30 & while :; do :; done")
    };
    let (r, elapsed) = sb.run_as_pid_1(&req);
    assert_eq!(ran(&r).limit, Some(LimitHit::WallTime), "{r:#?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn extreme_limits_do_not_break_the_runner() {
    let sb = Sandbox::new();
    let max = StageLimits {
        wall_time_ms: u64::MAX,
        cpu_time_ms: u64::MAX,
        memory_kib: u64::MAX,
        processes: u64::MAX,
        output_bytes: u64::MAX,
        file_size_kib: u64::MAX,
        stack_kib: u64::MAX,
    };
    let (r, _) = sb.run(&RunRequest { limits: max, ..sh("echo big") });
    assert_eq!(s(&ran(&r).stdout), "big\n", "{r:#?}");
    assert_eq!(ran(&r).limit, None);

    let zero = StageLimits { output_bytes: 0, file_size_kib: 0, ..limits() };
    let (r, _) = sb.run(&RunRequest { limits: zero, ..sh("touch empty; exit 1") });
    assert_eq!(ran(&r).limit, None, "an empty file is not a file-size verdict: {r:#?}");
    let (r, _) = sb.run(&RunRequest { limits: zero, ..sh("echo x") });
    assert_eq!(ran(&r).limit, Some(LimitHit::Output), "{r:#?}");
    assert_eq!(s(&ran(&r).stdout), "");
}

/// Peak RSS above `memoryKib` is a memory verdict even when the program exits normally (no
/// memory bomb here: any shell needs more than 256 KiB).
#[test]
fn peak_memory_above_the_limit() {
    let sb = Sandbox::new();
    let req = RunRequest { limits: StageLimits { memory_kib: 256, ..limits() }, ..sh("echo small") };
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert!(run.memory_kib > 256, "{run:?}");
    // Measured after it exited, or seen by the live sampler first and stopped.
    assert!(run.exit_code == Some(0) || run.signal_name.as_deref() == Some("SIGKILL"), "{run:?}");
    assert_eq!(run.limit, Some(LimitHit::Memory), "{run:?}");
}

#[test]
fn memory_is_enforced_while_the_program_runs_not_only_judged_after() {
    // A shell that doubles a string: its resident memory grows without bound. With a 32 MiB
    // limit it must be stopped near the limit, long before the wall clock, and reported as
    // Memory.
    let mut req = sh(r#"s=x; while :; do s="$s$s"; done"#);
    req.limits.memory_kib = 32 * 1024;
    req.limits.wall_time_ms = 20_000;
    req.limits.cpu_time_ms = 20_000;
    let sb = Sandbox::new();
    let (r, took) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Memory), "{run:?}");
    assert!(run.memory_kib > 32 * 1024, "peak {} KiB should be above the limit", run.memory_kib);
    assert!(run.memory_kib < 32 * 1024 * 4, "killed late: peak {} KiB", run.memory_kib);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(run.signal_name.as_deref(), Some("SIGKILL"), "{run:?}");
}

#[test]
fn a_program_under_its_memory_limit_is_not_touched() {
    let mut req = sh("s=$(head -c 2000000 /dev/zero | tr '\\0' x); echo ${#s}");
    req.limits.memory_kib = 64 * 1024;
    let sb = Sandbox::new();
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, None, "{run:?}");
    assert_eq!(s(&run.stdout), "2000000\n");
    assert_eq!(run.exit_code, Some(0));
}

/// The runner is non-dumpable: the program, under the same uid, cannot read its memory,
/// environment or file descriptors, nor write into its output.
#[test]
fn the_program_cannot_reach_the_runner_through_proc() {
    let sb = Sandbox::new();
    let script = r#"for f in environ mem maps; do if head -c 64 /proc/$PPID/$f >/dev/null 2>&1; then echo "$f REACHED"; else echo "$f denied"; fi; done
if ls /proc/$PPID/fd >/dev/null 2>&1; then echo "fd REACHED"; else echo "fd denied"; fi
if echo '{"rceResult":{}}' > /proc/$PPID/fd/1; then echo "write REACHED"; else echo "write denied"; fi"#;
    let (r, _) = sb.run_as_user(&sh(script), 54321);
    let out = s(&ran(&r).stdout);
    assert!(!out.contains("REACHED"), "{out}");
    assert_eq!(out.matches("denied").count(), 5, "{out}");
}

/// As PID 1 the runner cannot be stopped or killed by the program, nor reniced.
#[test]
fn as_pid_1_the_runner_survives_signals_and_keeps_its_priority() {
    assert!(can_unshare(), "this test needs `unshare --pid` (root)");
    let sb = Sandbox::new();
    let script =
        "kill -STOP 1; kill -KILL 1; renice -n 19 -p 1 >/dev/null 2>&1 && echo renice REACHED; echo survived";
    let (r, took) = sb.run_as_pid_1(&sh(script));
    let out = s(&ran(&r).stdout);
    assert_eq!(out, "survived\n", "{r:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// The key reaches neither the program's environment nor the runner's own environment block.
#[test]
fn the_result_key_is_scrubbed_and_never_passed_on() {
    let sb = Sandbox::new();
    let child = sb
        .command(&sh("env; sleep 1"), &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start rce-runner");
    std::thread::sleep(Duration::from_millis(400));
    // The test runs as root, so it may read the runner's environment block.
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap_or_default();
    let out = child.wait_with_output().expect("wait");
    let r = parse_output(&out);
    assert!(!environ.is_empty(), "the test could not read the runner's environment");
    assert!(!String::from_utf8_lossy(&environ).contains(KEY_HEX), "the key is still in the runner's environ");
    let env = s(&ran(&r).stdout);
    assert!(!env.contains(KEY_HEX) && !env.contains(RESULT_KEY_ENV), "{env}");
}

#[test]
fn more_processes_than_the_limit_is_the_processes_limit() {
    let sb = Sandbox::new();
    let mut req = sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 3 & done; wait");
    req.limits.processes = 6;
    let (r, took) = sb.run_as_user(&req, 54323);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Processes), "{run:?}");
    assert!(run.peak_tasks > 6, "{run:?}");
    assert!(took < Duration::from_secs(3), "stopped when it went past the limit: {took:?}");
    // Within the limit, nothing happens.
    let mut req = sh("for i in 1 2 3; do sleep 0.2 & done; wait; echo ok");
    req.limits.processes = 6;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!((run.limit, s(&run.stdout).as_str()), (None, "ok\n"), "{run:?}");
}

#[test]
fn cpu_time_of_all_processes_together_is_enforced_while_they_run() {
    let sb = Sandbox::new();
    // Two spinning processes, each well under the limit on its own when it is reached.
    let mut req = sh("(while :; do :; done) & (while :; do :; done) & wait");
    req.limits.cpu_time_ms = 1000;
    req.limits.wall_time_ms = 10_000;
    let (r, took) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::CpuTime), "{run:?}");
    assert!(run.time_ms >= 1000, "{run:?}");
    assert!(took < Duration::from_secs(4), "the limit was judged only afterwards: {took:?}");
}

/// Like the canonical bash fork bomb, whose first shell exits 0 at once: what the main
/// process left behind still runs under the limits for a moment, and reaches the process
/// limit. (The bomb itself is a cluster test: without the cgroup's high-water mark, as here,
/// the runner sees only what it samples, and a bomb's short-lived processes come and go.)
#[test]
fn processes_left_by_an_exited_main_process_still_reach_the_process_limit() {
    let sb = Sandbox::new();
    let mut req = sh("for i in $(seq 1 30); do sleep 3 & done 2>/dev/null; exit 0");
    req.limits.processes = 16;
    let (r, took) = sb.run_as_user(&req, 54322);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Processes), "{run:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A background job that outlives its shell by a little is waited for, and its output kept.
    let (r, _) = sb.run(&sh("(sleep 0.05; echo late) & echo early"));
    let run = ran(&r);
    assert_eq!((run.limit, s(&run.stdout).as_str()), (None, "early\nlate\n"), "{run:?}");
}

/// The stdin arrives sealed under the Pod's key: the request file holds only ciphertext, and
/// the program gets the plain text on its stdin.
#[test]
fn sealed_stdin_reaches_the_program_and_only_ciphertext_is_in_the_request() {
    let sb = Sandbox::new();
    let mut req = sh("cat");
    req.stdin_sealed = Some(SealedText::seal(&KEY, b"0123456789abcdef", "secret input 42\n"));
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(s(&run.stdout).lines().next(), Some("secret input 42"), "{run:?}");
    let on_disk = std::fs::read_to_string(sb.root.join("request.json")).expect("request");
    assert!(!on_disk.contains("secret input"), "{on_disk}");
    // Sealed under another key: refused, nothing runs.
    req.stdin_sealed = Some(SealedText::seal(b"not the pod's key", b"0123456789abcdef", "x\n"));
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::InternalError, "{r:?}");
}

/// While a stage runs, the runner's stdout and stderr are in no process's file table: even
/// a program that may read the runner's /proc files (here: root) cannot write into them.
#[test]
fn the_runners_output_is_out_of_reach_while_the_program_runs() {
    let sb = Sandbox::new();
    let script = r#"for n in 1 2; do echo '{"rceResult":{}}' > /proc/$PPID/fd/$n 2>/dev/null; done
readlink /proc/$PPID/fd/1 /proc/$PPID/fd/2"#;
    let (r, _) = sb.run(&sh(script));
    let run = ran(&r);
    // parse_output has checked that the runner printed exactly its one sealed line: the
    // writes above went nowhere.
    assert_eq!(s(&run.stdout), "/dev/null\n/dev/null\n", "{run:?}");
}

/// `stackKiB` is the RLIMIT_STACK (soft and hard) of each stage's program: a recursion that
/// needs more than the usual 8 MiB succeeds under a larger limit and fails under 8 MiB.
#[test]
fn the_stack_limit_is_each_stages_stack_kib() {
    let sb = Sandbox::new();
    let mut req = sh("ulimit -s; ulimit -Hs");
    req.limits.stack_kib = 65536;
    req.compile = Some(vec!["sh".into(), "-c".into(), "ulimit -s; ulimit -Hs".into()]);
    req.compile_limits = Some(StageLimits { stack_kib: 12345, ..limits() });
    let (r, _) = sb.run(&req);
    assert_eq!(s(&r.compile.as_ref().expect("compile").stdout), "12345\n12345\n", "{r:#?}");
    assert_eq!(s(&ran(&r).stdout), "65536\n65536\n", "{r:#?}");

    // dash parses (and runs) nested groups recursively on the C stack: 100000 levels need
    // more than 8 MiB of stack.
    let deep = |stack_kib| RunRequest {
        files: vec![file(
            "deep.sh",
            &format!("{}echo deep; {}", "{ ".repeat(100_000), "}; ".repeat(100_000)),
        )],
        run: vec!["sh".into(), "{file}".into()],
        limits: StageLimits { stack_kib, ..limits() },
        ..sh("")
    };
    let (r, _) = Sandbox::new().run(&deep(64 * 1024));
    let run = ran(&r);
    assert_eq!((run.exit_code, s(&run.stdout).as_str()), (Some(0), "deep\n"), "{run:?}");
    let (r, _) = Sandbox::new().run(&deep(8 * 1024));
    let run = ran(&r);
    assert_eq!(run.signal_name.as_deref(), Some("SIGSEGV"), "{run:?}");
}

#[test]
fn stderr_redirected_to_stdout_keeps_the_order_in_stdout() {
    let sb = Sandbox::new();
    let script = "echo a; echo b >&2; echo c; echo d >&2";
    let mut req = sh(script);
    req.redirect_stderr_to_stdout = true;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(s(&run.stdout), "a\nb\nc\nd\n", "{run:?}");
    assert_eq!(s(&run.stderr), "", "{run:?}");
    assert_eq!(run.arrival, vec![8], "{run:?}");
    // The cap applies to the one stream.
    req.limits.output_bytes = 5;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!((s(&run.stdout).as_str(), run.limit), ("a\nb\nc", Some(LimitHit::Output)), "{run:?}");
    // Without it, two streams.
    let (r, _) = sb.run(&sh(script));
    let run = ran(&r);
    assert_eq!((s(&run.stdout).as_str(), s(&run.stderr).as_str()), ("a\nc\n", "b\nd\n"), "{run:?}");
}

/// The compile stage always has one stream: the compiler's messages in the order written.
#[test]
fn compile_output_is_one_stream_in_order() {
    let sb = Sandbox::new();
    let mut req = sh("echo ran; echo err >&2");
    let mut script = String::new();
    for i in 0..200 {
        script.push_str(&format!("echo out{i}; echo err{i} >&2; "));
    }
    req.compile = Some(vec!["sh".into(), "-c".into(), script]);
    let (r, _) = sb.run(&req);
    let compile = r.compile.as_ref().expect("compile");
    let expected: String = (0..200).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(s(&compile.stdout), expected);
    assert_eq!(s(&compile.stderr), "");
    assert!(!compile.stdout_truncated);
    // The run stage keeps its two streams.
    let run = ran(&r);
    assert_eq!((s(&run.stdout).as_str(), s(&run.stderr).as_str()), ("ran\n", "err\n"));
}

/// `arrival` records the order of stdout and stderr as they came.
#[test]
fn arrival_records_the_order_of_stdout_and_stderr() {
    let sb = Sandbox::new();
    let (r, _) = sb.run(&sh("echo a; sleep 0.05; echo b >&2; sleep 0.05; echo c"));
    let run = ran(&r);
    assert_eq!(run.arrival, vec![2, -2, 2], "{run:?}");
    let (r, _) = sb.run(&sh("echo only"));
    assert_eq!(ran(&r).arrival, vec![5]);
    let (r, _) = sb.run(&sh("true"));
    assert_eq!(ran(&r).arrival, Vec::<i64>::new());

    // Only kept bytes count: past the cap, the sums are still the kept lengths.
    let mut req = sh("printf 1234567890; sleep 0.05; printf abc >&2; sleep 0.05; yes");
    req.limits.output_bytes = 5;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!(run.limit, Some(LimitHit::Output), "{run:?}");
    assert_eq!(s(&run.stdout), "12345");
    let sums =
        |a: &[i64]| (a.iter().filter(|n| **n > 0).sum::<i64>(), -a.iter().filter(|n| **n < 0).sum::<i64>());
    assert_eq!(sums(&run.arrival), (run.stdout.len() as i64, run.stderr.len() as i64), "{run:?}");

    // Many switches between the streams: at most MAX_ARRIVAL entries, the sums exact.
    let (r, _) = sb.run(&sh("i=0; while [ $i -lt 3000 ]; do echo o; echo e >&2; i=$((i+1)); done"));
    let run = ran(&r);
    assert_eq!((run.stdout.len(), run.stderr.len()), (6000, 6000));
    assert!(run.arrival.len() <= rce_runner::protocol::MAX_ARRIVAL, "{}", run.arrival.len());
    assert_eq!(sums(&run.arrival), (6000, 6000));
}

/// A request's `runs`: the compile stage once, the run stage up to `runs` times, each from
/// the work dir and /tmp as they were after compiling, nothing of the previous run running.
#[test]
fn repeated_runs_start_from_a_clean_slate() {
    let sb = Sandbox::new();
    // `../` is the test's sandbox root, outside the work dir: a log the runs share.
    let script = r#"echo "$(ls -A | tr '\n' ' ')| $(cat count 2>/dev/null) | $(ls -A "$TMPDIR" | tr '\n' ' ')" >> ../views
for p in $(cat ../pids 2>/dev/null); do kill -0 $p 2>/dev/null && echo "ALIVE $p" >> ../views; done
echo x >> count; rm main.sh; mkdir made; echo t > "$TMPDIR/t"; chmod 0 made
echo changed > a.out; setsid sleep 100 > /dev/null 2>&1 & echo $! >> ../pids
echo done"#;
    let mut req = sh("");
    req.files = vec![file("main.sh", script)];
    req.compile =
        Some(vec!["sh".into(), "-c".into(), "echo compiled >> ../compiles; echo bin > a.out".into()]);
    req.run = vec!["sh".into(), "{file}".into()];
    req.runs = 3;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!((r.runs, s(&run.stdout).as_str(), run.exit_code), (3, "done\n", Some(0)), "{r:#?}");
    let views = std::fs::read_to_string(sb.root.join("views")).expect("views");
    assert_eq!(views, "a.out main.sh |  | \n".repeat(3), "every run saw the dirs as after compiling");
    let compiles = std::fs::read_to_string(sb.root.join("compiles")).expect("compiles");
    assert_eq!(compiles, "compiled\n", "the compile stage ran once");
    assert_eq!(std::fs::read_to_string(sb.work().join("a.out")).expect("a.out"), "changed\n");
    let pids = std::fs::read_to_string(sb.root.join("pids")).expect("pids");
    assert_eq!(pids.lines().count(), 3);
    for pid in pids.lines() {
        assert!(!alive(pid.parse().expect("pid")), "{pid} survived");
    }
    // One run (the default) leaves the dirs as the program left them.
    let sb = Sandbox::new();
    let (r, _) = sb.run(&RunRequest { runs: 1, ..sh("echo x >> count; echo ok") });
    assert_eq!((r.runs, s(&ran(&r).stdout).as_str()), (1, "ok\n"));
    assert_eq!(std::fs::read_to_string(sb.work().join("count")).expect("count"), "x\n");
}

/// As in a sandbox: the work dir and /tmp are mount points the runner does not own (root's,
/// mode 1777), the runner and the program run under another uid.
#[test]
fn repeated_runs_in_dirs_the_runner_does_not_own() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    for d in [sb.work(), sb.root.join("tmp")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    }
    std::fs::set_permissions(&sb.root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut req = sh("cat count 2>/dev/null; echo x >> count; mkdir -p d/e; chmod 0 d; touch \"$TMPDIR/t\"; ls \"$TMPDIR\"");
    req.runs = 3;
    let uid = "54324";
    let out = sb
        .command(&req, &["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups"])
        .output()
        .expect("start setpriv");
    let r = parse_output(&out);
    let run = ran(&r);
    assert_eq!((r.runs, s(&run.stdout).as_str()), (3, "t\n"), "{r:#?}");
}

#[test]
fn repeated_runs_stop_at_the_first_failure_or_limit() {
    let count = "n=$(($(cat ../n 2>/dev/null || echo 0) + 1)); echo $n > ../n; echo run $n";
    let sb = Sandbox::new();
    let (r, _) = sb.run(&RunRequest { runs: 5, ..sh(&format!("{count}; [ $n -lt 2 ]")) });
    let run = ran(&r);
    assert_eq!((r.runs, run.exit_code, s(&run.stdout).as_str()), (2, Some(1), "run 2\n"), "{r:#?}");

    let sb = Sandbox::new();
    let mut req = RunRequest { runs: 5, ..sh(&format!("{count}; [ $n -lt 3 ] || yes")) };
    req.limits.output_bytes = 1000;
    let (r, _) = sb.run(&req);
    let run = ran(&r);
    assert_eq!((r.runs, run.limit), (3, Some(LimitHit::Output)), "{r:#?}");

    // All succeed: as many as asked; runs beyond 20 are 20.
    let sb = Sandbox::new();
    let (r, _) = sb.run(&RunRequest { runs: 4, ..sh(count) });
    assert_eq!((r.runs, s(&ran(&r).stdout).as_str()), (4, "run 4\n"), "{r:#?}");
    let sb = Sandbox::new();
    let (r, _) = sb.run(&RunRequest { runs: 25, ..sh(count) });
    assert_eq!(r.runs, 20, "{r:#?}");

    // A compile error: the program never ran.
    let sb = Sandbox::new();
    let mut req = RunRequest { runs: 3, ..sh(count) };
    req.compile = Some(vec!["false".into()]);
    let (r, _) = sb.run(&req);
    assert_eq!((r.outcome, r.runs), (Outcome::CompileError, 0), "{r:#?}");
}

fn case(name: &str, stdin: &str, expected: Option<&str>) -> TestRun {
    TestRun {
        name: name.into(),
        stdin: stdin.into(),
        expected: expected.map(Into::into),
        ..Default::default()
    }
}

/// Test cases: compiled once, then each case from the dirs as they were after compiling
/// (a file written by one case is gone in the next), with its own stdin, args and limits;
/// each case's result says whether its stdout matched.
#[test]
fn test_cases_compile_once_and_run_each_from_a_clean_work_dir() {
    let sb = Sandbox::new();
    let script = "cat compiled; ls left 2>/dev/null && echo SAW-LEFT; echo \"$@\" > left; read x; \
                  case $x in boom) exit 3;; spin) while :; do :; done;; big) yes;; esac; echo $((x * 2))";
    let mut req = sh(script);
    req.run = vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
    req.compile =
        Some(vec!["/bin/sh".into(), "-c".into(), "echo c >> ../compiles; echo once > compiled".into()]);
    req.limits.output_bytes = 1000;
    let mut spin = case("spin", "spin\n", Some("x"));
    spin.limits = Some(StageLimits { wall_time_ms: 500, cpu_time_ms: 300, ..limits() });
    let mut argued = case("args", "5\n", Some("once\n10"));
    argued.args = Some(vec!["a1".into()]);
    req.tests = vec![
        case("ok", "2\n", Some("once\n4\n")),
        case("wrong", "3\n", Some("once\n7\n")),
        case("trailing", "4\n", Some("once  \n8\n\n")),
        case("crash", "boom\n", Some("once\n")),
        spin,
        case("big", "big\n", None),
        case("no-expected", "1\n", None),
        argued,
    ];
    let (r, _) = sb.run(&req);
    assert_eq!(r.outcome, Outcome::Ran, "{r:#?}");
    assert_eq!(std::fs::read_to_string(sb.root.join("compiles")).expect("compiles"), "c\n", "one compile");
    type Seen<'a> = (&'a str, Option<i32>, Option<LimitHit>, Option<bool>);
    let by: Vec<Seen<'_>> = r
        .tests
        .iter()
        .map(|t| {
            let run = t.run.as_ref().expect("every case ran");
            (t.name.as_str(), run.exit_code, run.limit, t.matched)
        })
        .collect();
    assert_eq!(
        by,
        vec![
            ("ok", Some(0), None, Some(true)),
            ("wrong", Some(0), None, Some(false)),
            ("trailing", Some(0), None, Some(true)),
            ("crash", Some(3), None, None),
            ("spin", None, Some(LimitHit::CpuTime), None),
            ("big", None, Some(LimitHit::Output), None),
            ("no-expected", Some(0), None, None),
            ("args", Some(0), None, Some(true)),
        ],
        "{r:#?}"
    );
    for t in &r.tests {
        let out = s(&t.run.as_ref().expect("ran").stdout);
        assert!(!out.contains("SAW-LEFT"), "{}: a file of an earlier case was visible: {out}", t.name);
        assert!(out.len() <= rce_api::TEST_EXCERPT_BYTES, "{}: {} bytes", t.name, out.len());
    }
    // The deciding run is the first that did not pass.
    assert_eq!(s(&ran(&r).stdout), "once\n6\n", "{r:#?}");
    assert_eq!(r.runs, 8);
}

#[test]
fn stop_on_first_failure_skips_the_rest_and_exact_and_float_checkers() {
    let sb = Sandbox::new();
    let mut req = sh("read x; echo $x");
    req.stop_on_first_failure = true;
    req.tests = vec![case("1", "a\n", Some("a")), case("2", "b\n", Some("c")), case("3", "d\n", Some("d"))];
    let (r, _) = sb.run(&req);
    let got: Vec<(Option<bool>, bool)> = r.tests.iter().map(|t| (t.matched, t.run.is_some())).collect();
    assert_eq!(got, vec![(Some(true), true), (Some(false), true), (None, false)], "{r:#?}");
    assert_eq!(r.runs, 2);

    let sb = Sandbox::new();
    let mut req = sh("read x; printf '%s \\n' \"$x\"");
    req.checker = Some(rce_api::Checker { mode: rce_api::CheckerMode::Exact, epsilon: None });
    req.tests = vec![case("exact", "1\n", Some("1 \n")), case("trimmed", "1\n", Some("1\n"))];
    let (r, _) = sb.run(&req);
    assert_eq!(
        r.tests.iter().map(|t| t.matched).collect::<Vec<_>>(),
        vec![Some(true), Some(false)],
        "{r:#?}"
    );

    let sb = Sandbox::new();
    let mut req = sh("read x; echo $x");
    req.checker = Some(rce_api::Checker { mode: rce_api::CheckerMode::Float, epsilon: Some("1e-3".into()) });
    req.tests = vec![case("near", "3.1416\n", Some("3.14159")), case("far", "3.15\n", Some("3.14159"))];
    let (r, _) = sb.run(&req);
    assert_eq!(
        r.tests.iter().map(|t| t.matched).collect::<Vec<_>>(),
        vec![Some(true), Some(false)],
        "{r:#?}"
    );
}

/// The result's figures are the averages over the runs made; the rest is the last run's.
#[test]
fn repeated_runs_report_average_times() {
    let sb = Sandbox::new();
    // Run k sleeps 0.2·k s: 0.2, then 0.4: on average 0.3.
    let script = "n=$(($(cat ../n 2>/dev/null || echo 0) + 1)); echo $n > ../n; sleep 0.$((2 * n)); echo $n";
    let (r, _) = sb.run(&RunRequest { runs: 2, ..sh(script) });
    let run = ran(&r);
    assert_eq!((r.runs, s(&run.stdout).as_str()), (2, "2\n"), "{r:#?}");
    assert!((280..380).contains(&run.wall_time_ms), "the average of ~200 and ~400 ms: {run:?}");
}

/// The ceiling of the output limit: 4 MiB of stdout and 4 MiB of stderr are captured
/// whole and the result line (about 11 MiB) is sealed and opens.
#[test]
fn four_mib_of_stdout_and_of_stderr_fit_in_the_result() {
    let sb = Sandbox::new();
    let cap = rce_api::ResolvedLimits::CEILING.output_bytes;
    assert_eq!(cap, 4 * 1024 * 1024);
    let mut req = sh("head -c 4194304 /dev/zero | tr '\\0' o; head -c 4194304 /dev/zero | tr '\\0' e >&2");
    req.limits.output_bytes = cap;
    let out = sb.command(&req, &[]).output().expect("start rce-runner");
    let r = parse_output(&out);
    let run = ran(&r);
    assert_eq!((run.stdout.len(), run.stderr.len()), (4 << 20, 4 << 20));
    assert!(run.stdout.iter().all(|b| *b == b'o') && run.stderr.iter().all(|b| *b == b'e'));
    assert_eq!(
        (run.limit, run.stdout_truncated, run.stderr_truncated),
        (None, false, false),
        "{:?}",
        run.limit
    );
    // 8 MiB of base64 is 10.67 MiB: the line is above the kubelet's usual 10 MiB rotation
    // size (see the runner's README).
    assert!(out.stdout.len() > 10 << 20 && out.stdout.len() < 11 << 20, "{}", out.stdout.len());
    // One byte more is the output limit.
    let mut req = sh("head -c 4194305 /dev/zero");
    req.limits.output_bytes = cap;
    let (r, _) = sb.run(&req);
    assert_eq!(ran(&r).limit, Some(LimitHit::Output));
}

/// Output goes to pipes, which RLIMIT_FSIZE does not limit: more than 64 KiB of output with
/// a 1 MiB output cap is accepted whatever the file-size limit (no SIGXFSZ).
#[test]
fn output_above_64_kib_is_no_file_size_matter() {
    let sb = Sandbox::new();
    for file_size_kib in [1024, 64, 1] {
        let mut req = sh("head -c 300000 /dev/zero | tr '\\0' x; head -c 200000 /dev/zero | tr '\\0' y >&2");
        req.limits.output_bytes = 1024 * 1024;
        req.limits.file_size_kib = file_size_kib;
        let (r, _) = sb.run(&req);
        let run = ran(&r);
        assert_eq!(
            (run.exit_code, run.signal_name.as_deref(), run.limit),
            (Some(0), None, None),
            "{file_size_kib}"
        );
        assert_eq!((run.stdout.len(), run.stderr.len()), (300_000, 200_000));
    }
    // With the 64 KiB default output cap, the same program is over the output limit.
    let (r, _) = sb.run(&sh("head -c 300000 /dev/zero"));
    assert_eq!(ran(&r).limit, Some(LimitHit::Output));
}
