//! `rce-runner`: the entrypoint of every sandbox container.
//!
//! It reads a [`protocol::RunRequest`], writes the submission's files into the work dir,
//! runs the optional compile stage and then the program under limits, and prints exactly one
//! sealed [`protocol::ResultLine`] on its stdout. See `DESIGN.md`, "The sandbox", and the
//! threat model in `operator/README.md`.
//!
//! The program runs under the runner's uid (a Pod that passes PSS `restricted` cannot switch
//! uids), so the runner protects itself in layers: it is non-dumpable
//! ([`sys::make_nondumpable`]), it is PID 1 (signals it does not handle never reach it, and it
//! handles only SIGCHLD), every stage runs under a seccomp filter of the runner's own
//! ([`filter`]), and its result is sealed with a key that only it holds (taken from its
//! environment and scrubbed from its memory before any stage starts; stages get a fresh
//! environment).
//!
//! With [`serve::SERVE_ARG`] (`--serve`) the runner is a warm sandbox's serving runner
//! instead: idle until the operator sends a request over its stdin, then the same stages with
//! live frames, a clean-slate proof ([`clean`]) and the next request (see [`serve`]).
//!
//! Configuration (for tests and local use; a sandbox uses the defaults):
//! - the request: argv[1], else `RCE_REQUEST`, else [`protocol::REQUEST_PATH`];
//! - the work dir: `RCE_WORK_DIR`, else [`protocol::WORK_DIR`];
//! - the temporary dir given to programs as `TMPDIR`: `RCE_TMP_DIR`, else `/tmp`;
//! - how stages are measured: [`protocol::ACCOUNTING_ENV`] (see [`meter`]);
//! - the result key: [`protocol::RESULT_KEY_ENV`] (hex).
//!
//! How a stage's [`protocol::StageResult::limit`] is decided (first match wins):
//! 1. the runner killed the program: `output` (stdout or stderr passed `outputBytes`; also
//!    when the program exited on its own after writing too much) or `wallTime`;
//! 2. killed by SIGXCPU or SIGKILL with CPU time ≥ the limit → `cpuTime`, by SIGXFSZ →
//!    `fileSize`; by SIGKILL when the cgroup's OOM-kill counter went up → `memory`;
//! 3. peak memory above `memoryKib`, or the program failed while the OOM-kill counter went
//!    up → `memory`; CPU time above `cpuTimeMs` → `cpuTime`; more tasks at once than
//!    `processes` → `processes`;
//! 4. the program failed and a file in the work dir or the temporary dir reached
//!    `fileSizeKib` (a shell reporting its child's SIGXFSZ as exit status 153) → `fileSize`.
//!
//! The stages:
//! - each stage's program gets its stage's limits as rlimits too: `RLIMIT_STACK` (soft and
//!   hard) is `stackKib`, `RLIMIT_FSIZE` `fileSizeKib`, `RLIMIT_NPROC` from `processes`,
//!   `RLIMIT_CPU` a backstop a whole second or more past `cpuTimeMs` (the CPU-time limit is
//!   the runner's own, on the CPU time it measures and reports: `timeMs` of a `cpuTime`
//!   stage is at least `cpuTimeMs`);
//! - the compile stage's stderr is its stdout (one pipe, as Judge0's `--stderr-to-stdout`):
//!   the compiler's messages are in `compile.stdout` in the order written, `compile.stderr`
//!   is empty. The run stage has the same with `redirectStderrToStdout`;
//! - `arrival` records the order in which the runner read stdout and stderr (see
//!   [`output::Arrival`]: writes to both streams between two of the runner's wake-ups are
//!   read stdout first);
//! - `runs` (Judge0's `number_of_runs`): the compile stage runs once, the run stage up to
//!   `runs` times (at most [`MAX_RUNS`]), each from the work dir and the temporary dir (and
//!   in a sandbox [`SHM_DIR`]) as they were after compiling ([`snapshot`]), with nothing of
//!   the previous run left running; it stops after the first run that did not exit 0 or hit
//!   a limit. The result's `run` is the last run's, its CPU time, wall time and memory the
//!   averages over the runs made ([`average`]); `runs` in the result is how many ran (0
//!   after a compile error). When the dirs are too large to keep ([`snapshot::MAX_BYTES`]),
//!   or something of a run could not be stopped, the program runs fewer times and the
//!   result's `runs` says so.
//!
//! Memory, CPU time (of all the stage's processes together) and tasks are sampled while the
//! stage runs and enforced then: the stage is killed as soon as one is over its limit.
//! `processes` is the number of tasks (processes and threads) the program may have at once:
//! `RLIMIT_NPROC` leaves room for one more, and having it is the `processes` limit (a fork
//! bomb is stopped and says so, rather than only seeing EAGAIN).

pub mod clean;
pub mod files;
/// The wire protocol and its MAC live in the domain core, shared with the operator.
pub use rce_api::{mac, protocol};
pub mod filter;
pub mod meter;
pub mod output;
pub mod serve;
pub mod snapshot;
pub mod stage;
pub mod sys;

use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::{Outcome, RunRequest, RunResult, StageResult};

/// The placeholder in commands replaced by the entry file's name.
pub const FILE_PLACEHOLDER: &str = "{file}";

/// Where the runner finds its request and does its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub request_path: PathBuf,
    pub work_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub source: meter::Source,
}

impl Config {
    /// From the command line (`args[1]`) and the environment (see the crate docs).
    pub fn from_args_and_env(args: &[String], env: impl Fn(&str) -> Option<String>) -> Config {
        let request_path = args
            .get(1)
            .cloned()
            .or_else(|| env("RCE_REQUEST"))
            .unwrap_or_else(|| protocol::REQUEST_PATH.to_string());
        Config {
            request_path: request_path.into(),
            work_dir: env("RCE_WORK_DIR").unwrap_or_else(|| protocol::WORK_DIR.to_string()).into(),
            tmp_dir: env("RCE_TMP_DIR").unwrap_or_else(|| "/tmp".to_string()).into(),
            source: meter::Source::from_env(env(protocol::ACCOUNTING_ENV).as_deref()),
        }
    }
}

/// Reads the request and executes it; every failure is a result, never a panic or an exit.
pub fn run(config: &Config, key: Option<&[u8]>) -> RunResult {
    let req = match load_request(&config.request_path) {
        Ok(req) => req,
        Err(message) => return internal_error(message, None),
    };
    run_request(req, config, key, None)
}

/// Executes a request (its sealed stdin opened with `key`), the result with its run id;
/// `live`: a serving runner's channel (see [`execute_live`]).
pub fn run_request(
    mut req: RunRequest,
    config: &Config,
    key: Option<&[u8]>,
    live: Option<&mut serve::Channel>,
) -> RunResult {
    if let Some(sealed) = req.stdin_sealed.take() {
        match key
            .ok_or_else(|| "the stdin is sealed but the runner has no key".to_string())
            .and_then(|k| sealed.open(k))
        {
            Ok(text) => req.stdin = text,
            Err(message) => return RunResult { run_id: req.run_id.clone(), ..internal_error(message, None) },
        }
    }
    RunResult { run_id: req.run_id.clone(), ..execute_live(&req, config, live) }
}

/// Runs a closure, turning a panic into an `InternalError` result. (The panic hook still
/// prints the panic to stderr, which is not where the result is looked for.)
pub fn catch_panics(f: impl FnOnce() -> RunResult + std::panic::UnwindSafe) -> RunResult {
    match std::panic::catch_unwind(f) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            internal_error(format!("runner panicked: {what}"), None)
        }
    }
}

/// Prints the sealed result line on stdout (ignoring a closed stdout: there is nobody to
/// tell).
pub fn print_result(result: &RunResult, key: Option<&[u8]>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", protocol::seal(result, key));
    let _ = out.flush();
}

/// Takes the result key from the environment: decodes it, then overwrites its text in the
/// process's environment block (what `/proc/self/environ` shows) and removes the variable.
/// `None` without a (valid) key.
pub fn take_result_key() -> Option<Vec<u8>> {
    let name = protocol::RESULT_KEY_ENV;
    let value = std::env::var(name).ok();
    // SAFETY: single-threaded at this point; `environ` entries are NUL-terminated strings
    // owned by the process, overwritten in place without changing their length.
    unsafe {
        extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes();
            if entry.len() > name.len() && entry.starts_with(name.as_bytes()) && entry[name.len()] == b'=' {
                std::ptr::write_bytes((*p).add(name.len() + 1), b'0', entry.len() - name.len() - 1);
            }
            p = p.add(1);
        }
        std::env::remove_var(name);
    }
    value.and_then(|v| mac::unhex(v.trim())).filter(|k| !k.is_empty())
}

pub fn load_request(path: &Path) -> Result<RunRequest, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read the request {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("invalid request {}: {e}", path.display()))
}

/// Replaces [`FILE_PLACEHOLDER`] in every argument by the entry file's name.
pub fn expand_command(argv: &[String], entry: Option<&str>) -> Result<Vec<String>, String> {
    if argv.is_empty() {
        return Err("empty command".to_string());
    }
    argv.iter()
        .map(|a| match (a.contains(FILE_PLACEHOLDER), entry) {
            (false, _) => Ok(a.clone()),
            (true, Some(name)) => Ok(a.replace(FILE_PLACEHOLDER, name)),
            (true, None) => {
                Err(format!("command argument {a:?} uses {FILE_PLACEHOLDER} but there are no files"))
            }
        })
        .collect()
}

fn validate_env(env: &[(String, String)]) -> Result<(), String> {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return Err(format!("environment variable {k:?} contains a NUL byte"));
        }
    }
    Ok(())
}

/// Writes the files, compiles if asked, runs the program.
pub fn execute(req: &RunRequest, config: &Config) -> RunResult {
    execute_live(req, config, None)
}

/// [`execute`] for a serving runner: a `Stage` frame as each stage begins, the stages' output
/// as `Data` frames, and the operator's frames handled while they run (see
/// [`stage::run_stage_live`]); an interactive request's stdin comes from the channel.
pub fn execute_live(req: &RunRequest, config: &Config, mut live: Option<&mut serve::Channel>) -> RunResult {
    let entry = req.files.first().map(|f| f.name.as_str());
    let prepared = (|| {
        validate_env(&req.env)?;
        let compile = req.compile.as_deref().map(|c| expand_command(c, entry)).transpose()?;
        // The run command without arguments: the request's `args` or a test case's follow.
        let run = expand_command(&req.run, entry)?;
        files::write_files(&config.work_dir, &req.files)?;
        Ok::<_, String>((compile, run))
    })();
    let (compile, run) = match prepared {
        Ok(p) => p,
        Err(message) => return internal_error(message, None),
    };

    let interactive = req.interactive && live.is_some();
    let spec = |argv, stdin, limits, leftover_grace, merge_stderr, interactive| stage::StageSpec {
        argv,
        env: &req.env,
        work_dir: &config.work_dir,
        tmp_dir: &config.tmp_dir,
        stdin,
        limits,
        source: &config.source,
        leftover_grace,
        merge_stderr,
        interactive,
    };
    let mut compile_result = None;
    if let Some(argv) = &compile {
        let limits = req.compile_limits.as_ref().unwrap_or(&req.limits);
        // The compiler's stderr is its stdout (as Judge0's `--stderr-to-stdout`): its
        // messages in the order it wrote them, in `compile.stdout`.
        if let Some(l) = live.as_deref_mut() {
            l.stage("compile");
        }
        match stage::run_stage_live(&spec(argv, b"", limits, false, true, false), live.as_deref_mut()) {
            Ok(r) => {
                let failed = r.exit_code != Some(0) || r.limit.is_some();
                if failed {
                    return RunResult {
                        run_id: String::new(),
                        outcome: Outcome::CompileError,
                        compile: Some(r),
                        run: None,
                        message: None,
                        runs: 0,
                        tests: Vec::new(),
                    };
                }
                compile_result = Some(r);
            }
            Err(e) => return internal_error(format!("compile stage: {e}"), None),
        }
    }
    // The runs: `runs` times the same run (Judge0's number_of_runs), or one per test case.
    let tests = !req.tests.is_empty();
    let turns: Vec<Turn<'_>> = if tests {
        req.tests
            .iter()
            .map(|t| Turn {
                stdin: t.stdin.as_bytes(),
                argv: run.iter().chain(t.args.as_ref().unwrap_or(&req.args)).cloned().collect(),
                limits: t.limits.as_ref().unwrap_or(&req.limits),
            })
            .collect()
    } else {
        let argv = run.iter().chain(&req.args).cloned().collect();
        let one = Turn { stdin: req.stdin.as_bytes(), argv, limits: &req.limits };
        vec![one; req.runs.clamp(1, MAX_RUNS) as usize]
    };
    // Every run after the first starts from the dirs as they are now (see `snapshot`). When
    // they cannot be kept, repeated runs run once (`runs` says so); test cases cannot run.
    let mut dirs = vec![config.work_dir.as_path(), config.tmp_dir.as_path()];
    // In a sandbox (PID 1, measured through its own cgroup) /dev/shm is the container's own
    // tmpfs, writable by the program: it is restored too. (Elsewhere it is the host's.)
    let shm = Path::new(SHM_DIR);
    if sys::is_init() && matches!(config.source, meter::Source::Cgroup(_)) && shm.is_dir() {
        dirs.push(shm);
    }
    let snapshot = match (turns.len() > 1).then(|| snapshot::Snapshot::take(&dirs)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) if tests => {
            return internal_error(
                format!("cannot keep the work dir to run each test case from a clean one: {e}"),
                compile_result,
            )
        }
        Some(Err(_)) => None,
    };
    let wanted = if snapshot.is_some() { turns.len() } else { 1 };
    let checker = req.checker.clone().unwrap_or_default();
    let mut results: Vec<StageResult> = Vec::new();
    let mut cases: Vec<protocol::TestResult> = Vec::new();
    // With tests, only the deciding case's run is kept whole (its outputs are the result's):
    // the first that did not pass, else the last.
    let mut deciding: Option<(StageResult, bool)> = None;
    for (i, turn) in turns.iter().enumerate().take(wanted) {
        if i > 0 {
            // Nothing of the previous run may be left running, and its files are undone.
            if !stage::settle(&config.source) {
                if tests {
                    return internal_error(
                        format!("something of test case {i} could not be stopped before the next"),
                        compile_result,
                    );
                }
                break;
            }
            if let Some(Err(e)) = snapshot.as_ref().map(snapshot::Snapshot::restore) {
                return internal_error(
                    format!("cannot restore the work dir for run {}: {e}", i + 1),
                    compile_result,
                );
            }
        }
        if let Some(l) = live.as_deref_mut() {
            l.stage(if tests { "test" } else { "run" });
        }
        let spec =
            spec(&turn.argv, turn.stdin, turn.limits, true, req.redirect_stderr_to_stdout, interactive);
        let r = match stage::run_stage_live(&spec, live.as_deref_mut()) {
            Ok(r) => r,
            Err(e) => return internal_error(format!("run stage: {e}"), compile_result),
        };
        let ran_clean = r.exit_code == Some(0) && r.limit.is_none();
        if tests {
            let case = &req.tests[i];
            let matched =
                case.expected.as_deref().filter(|_| ran_clean).map(|exp| {
                    !r.stdout_truncated && checker.matches(&String::from_utf8_lossy(&r.stdout), exp)
                });
            let passed = ran_clean && matched != Some(false);
            cases.push(protocol::TestResult {
                name: case.name.clone(),
                run: Some(excerpt(r.clone())),
                matched,
            });
            if deciding.as_ref().is_none_or(|(_, passed)| *passed) {
                deciding = Some((r, passed));
            }
            if !passed && req.stop_on_first_failure {
                break;
            }
        } else {
            results.push(r);
            if !ran_clean {
                break;
            }
        }
    }
    if tests {
        let runs = cases.len() as u32;
        // The skipped cases.
        for case in req.tests.iter().skip(cases.len()) {
            cases.push(protocol::TestResult { name: case.name.clone(), run: None, matched: None });
        }
        return RunResult {
            run_id: String::new(),
            outcome: Outcome::Ran,
            compile: compile_result,
            run: deciding.map(|(r, _)| r),
            message: None,
            runs,
            tests: cases,
        };
    }
    let runs = results.len() as u32;
    RunResult {
        run_id: String::new(),
        outcome: Outcome::Ran,
        compile: compile_result,
        run: average(results),
        message: None,
        runs,
        tests: Vec::new(),
    }
}

/// One run of the run stage: its stdin, command and limits.
#[derive(Clone)]
struct Turn<'a> {
    stdin: &'a [u8],
    argv: Vec<String>,
    limits: &'a protocol::StageLimits,
}

/// A test case's run as its result carries it: stdout and stderr cut to
/// [`rce_api::TEST_EXCERPT_BYTES`] (`*Truncated` set when cut), the arrival order dropped.
fn excerpt(mut r: StageResult) -> StageResult {
    let cap = rce_api::TEST_EXCERPT_BYTES;
    if r.stdout.len() > cap {
        r.stdout.truncate(cap);
        r.stdout_truncated = true;
    }
    if r.stderr.len() > cap {
        r.stderr.truncate(cap);
        r.stderr_truncated = true;
    }
    r.arrival.clear();
    r
}

/// The shared-memory tmpfs of a container, restored between repeated runs in a sandbox.
pub const SHM_DIR: &str = "/dev/shm";

/// Most runs of the run stage in one request (Judge0's `number_of_runs` is at most 20).
pub const MAX_RUNS: u32 = 20;

/// The last run's result, with its CPU time, wall time and memory replaced by their
/// averages over all runs (rounded to the nearest integer), as Judge0 reports them.
pub fn average(mut runs: Vec<StageResult>) -> Option<StageResult> {
    let n = runs.len() as u64;
    let mean = |f: fn(&StageResult) -> u64| {
        let sum: u128 = runs.iter().map(|r| u128::from(f(r))).sum();
        u64::try_from((sum + u128::from(n) / 2) / u128::from(n.max(1))).unwrap_or(u64::MAX)
    };
    let (time_ms, wall_time_ms, memory_kib) =
        (mean(|r| r.time_ms), mean(|r| r.wall_time_ms), mean(|r| r.memory_kib));
    let mut last = runs.pop()?;
    last.time_ms = time_ms;
    last.wall_time_ms = wall_time_ms;
    last.memory_kib = memory_kib;
    Some(last)
}

/// A result saying the runner could not do its job.
pub fn internal_error_result(message: String) -> RunResult {
    internal_error(message, None)
}

fn internal_error(message: String, compile: Option<StageResult>) -> RunResult {
    RunResult {
        run_id: String::new(),
        outcome: Outcome::InternalError,
        compile,
        run: None,
        message: Some(message),
        runs: 0,
        tests: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn placeholder_is_replaced_everywhere() {
        let argv = s(&["gcc", "-o", "main", "{file}", "-DNAME={file}.x"]);
        assert_eq!(
            expand_command(&argv, Some("src/main.c")).expect("expanded"),
            s(&["gcc", "-o", "main", "src/main.c", "-DNAME=src/main.c.x"])
        );
        assert_eq!(
            expand_command(&s(&["python3", "{file}{file}"]), Some("a")).expect("ok"),
            s(&["python3", "aa"])
        );
        // Without a placeholder, no files are needed.
        assert_eq!(
            expand_command(&s(&["sh", "-c", "echo hi"]), None).expect("ok"),
            s(&["sh", "-c", "echo hi"])
        );
    }

    #[test]
    fn placeholder_without_files_and_empty_commands_are_errors() {
        assert!(expand_command(&s(&["python3", "{file}"]), None).expect_err("no file").contains("{file}"));
        assert_eq!(expand_command(&[], Some("a")).expect_err("empty"), "empty command");
    }

    #[test]
    fn config_precedence() {
        let env = |k: &str| match k {
            "RCE_REQUEST" => Some("/env/req.json".to_string()),
            "RCE_WORK_DIR" => Some("/w".to_string()),
            _ => None,
        };
        let c = Config::from_args_and_env(&s(&["rce-runner", "/arg/req.json"]), env);
        assert_eq!(c.request_path, PathBuf::from("/arg/req.json"));
        assert_eq!(c.work_dir, PathBuf::from("/w"));
        assert_eq!(c.tmp_dir, PathBuf::from("/tmp"));
        assert_eq!(c.source, meter::Source::Proc);
        let c = Config::from_args_and_env(&s(&["rce-runner"]), env);
        assert_eq!(c.request_path, PathBuf::from("/env/req.json"));
        let c = Config::from_args_and_env(&s(&["rce-runner"]), |_| None);
        assert_eq!(c.request_path, PathBuf::from(protocol::REQUEST_PATH));
        assert_eq!(c.work_dir, PathBuf::from(protocol::WORK_DIR));
    }

    #[test]
    fn bad_environment_names_are_rejected() {
        assert!(validate_env(&[("A".into(), "1".into())]).is_ok());
        assert!(validate_env(&[("A=B".into(), "1".into())]).is_err());
        assert!(validate_env(&[("".into(), "1".into())]).is_err());
        assert!(validate_env(&[("A".into(), "x\0y".into())]).is_err());
    }

    #[test]
    fn the_last_run_with_averaged_figures() {
        let r = |t, w, m, code| StageResult {
            time_ms: t,
            wall_time_ms: w,
            memory_kib: m,
            exit_code: Some(code),
            stdout: vec![code as u8],
            ..Default::default()
        };
        assert_eq!(average(vec![]), None);
        assert_eq!(average(vec![r(5, 7, 100, 0)]), Some(r(5, 7, 100, 0)));
        // (1+2)/2 = 1.5 → 2, (10+13)/2 = 11.5 → 12, (100+101+103)/3 = 101.33 → 101.
        assert_eq!(average(vec![r(1, 10, 100, 0), r(2, 13, 101, 3)]), Some(r(2, 12, 101, 3)));
        assert_eq!(average(vec![r(0, 0, 100, 0), r(0, 0, 101, 0), r(0, 0, 103, 1)]), Some(r(0, 0, 101, 1)));
        assert_eq!(
            average(vec![r(u64::MAX, 0, 0, 0), r(u64::MAX, 0, 0, 0)]).map(|x| x.time_ms),
            Some(u64::MAX)
        );
    }

    #[test]
    fn panics_become_internal_errors() {
        let r = catch_panics(|| panic!("boom {}", 42));
        assert_eq!(r.outcome, Outcome::InternalError);
        assert_eq!(r.message.as_deref(), Some("runner panicked: boom 42"));
    }

    #[test]
    fn the_result_line_has_the_prefix_and_opens_with_the_key() {
        let r = internal_error("x".into(), None);
        let line = protocol::seal(&r, Some(b"k"));
        assert!(line.starts_with(protocol::RESULT_PREFIX));
        assert!(!line.contains('\n'));
        assert_eq!(protocol::ResultLine::open(line.as_bytes(), b"k", ""), Ok(r));
    }
}
