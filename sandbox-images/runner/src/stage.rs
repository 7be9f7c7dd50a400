//! Running one stage (compile or run): spawn under limits, feed stdin, capture output, enforce
//! the wall clock, kill and reap everything, measure, and decide which limit (if any) hit.
//!
//! The runner is single-threaded: one `poll(2)` loop moves stdin, stdout and stderr and wakes
//! up on SIGCHLD (through a self-pipe), at the wall-clock deadline and to sample the stage's
//! usage ([`crate::meter`]): memory, CPU time and tasks are limits enforced while the stage
//! runs, across all its processes. No helper threads also means the runner is exactly one
//! task of the sandbox uid, which `RLIMIT_NPROC` accounts for.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::filter;
use crate::meter::{Meter, Source};
use crate::output::{Arrival, CappedBuf};
use crate::protocol::{LimitHit, StageLimits, StageResult};
use crate::serve::{Channel, Stream};
use crate::sys;

/// The environment every stage starts from (the request's `env` is added on top).
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Bytes read from a pipe per `read(2)`.
const CHUNK: usize = 64 * 1024;
/// Upper bound on one poll sleep (a backstop; SIGCHLD and the deadline wake the loop).
const MAX_POLL: Duration = Duration::from_millis(100);
/// How often the program's usage is sampled while it runs, at most (memory, CPU time and
/// tasks are enforced live, not only judged afterwards: the Pod's cgroup limit is larger,
/// since it also holds the runner and the compile stage). The first samples come sooner
/// (1, 2, 4, 8 ms after the start), so that short programs are measured too.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// When the main process has exited but left processes running (a background job, a fork
/// bomb whose first shell is done), they run on for at most this long, under every limit,
/// before they are killed: what they do in that time still counts (a fork bomb reaches the
/// process limit, a late `echo` is captured).
const LEFTOVER_GRACE: Duration = Duration::from_millis(500);
/// After SIGKILL, how long to wait for the program's main process before giving up on it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// After the main process is gone and the rest killed: how long to wait for everything to
/// be reaped, and for the pipes to reach end-of-file.
const CLEANUP_TIME: Duration = Duration::from_secs(2);
/// At most this many directory entries are looked at when searching for a file that hit
/// the file-size limit.
const SCAN_ENTRIES: usize = 10_000;

pub struct StageSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub work_dir: &'a Path,
    pub tmp_dir: &'a Path,
    pub stdin: &'a [u8],
    pub limits: &'a StageLimits,
    /// How the stage is measured.
    pub source: &'a Source,
    /// Let what the main process leaves behind run on for [`LEFTOVER_GRACE`] (the run
    /// stage); a compiler's leftovers are killed at once.
    pub leftover_grace: bool,
    /// The program's stderr is its stdout: one pipe, so the order of their writes is kept,
    /// and the result's stderr is empty (the compile stage, and a run stage asked to).
    pub merge_stderr: bool,
    /// The program's stdin comes from the serving runner's [`Channel`] (`Stdin` frames until
    /// `Eof`), after `stdin`; only with a channel.
    pub interactive: bool,
}

/// Runs one stage. `Err` means the stage could not be started (not a property of the
/// program: a bad command, an I/O error); the message says why.
pub fn run_stage(spec: &StageSpec<'_>) -> Result<StageResult, String> {
    run_stage_live(spec, None)
}

/// [`run_stage`] for a serving runner: the stage's output is also sent on `live` as `Data`
/// frames as it is read, and the operator's frames (`Stdin`, `Eof`, `Signal`) are handled in
/// the same poll loop while the stage runs.
pub fn run_stage_live(spec: &StageSpec<'_>, live: Option<&mut Channel>) -> Result<StageResult, String> {
    let sigchld = sys::init()?;
    let (program, args) = spec.argv.split_first().ok_or_else(|| "empty command".to_string())?;
    let limits = spec.limits;
    let mut setup = sys::ChildSetup::for_limits(limits);
    if live.is_some() {
        // In a Pod that serves again, no POSIX message queue may be made (see `clean`).
        setup.msgqueue = Some((0, 0));
    }
    let interactive = spec.interactive && live.is_some();
    let seccomp = filter::program();

    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(spec.work_dir)
        .env_clear()
        .env("PATH", BASE_PATH)
        .env("HOME", spec.work_dir)
        .env("LANG", "C.UTF-8")
        .env("TMPDIR", spec.tmp_dir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    // One pipe for both streams when they are merged: the read end is the runner's, the
    // write end the program's fd 1 and 2 (the command's copies are closed after the spawn,
    // so that end-of-file comes when the program's copies are gone).
    let merged_read = if spec.merge_stderr {
        let (read, write) = sys::pipe().map_err(|e| format!("cannot create the output pipe: {e}"))?;
        let write2 = write.try_clone().map_err(|e| format!("cannot create the output pipe: {e}"))?;
        cmd.stdout(Stdio::from(write)).stderr(Stdio::from(write2));
        Some(read)
    } else {
        cmd.stderr(Stdio::piped());
        None
    };
    // SAFETY: `apply` and `install` only make async-signal-safe system calls and do not
    // allocate (the filter program was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            setup.apply()?;
            filter::install(&seccomp)
        })
    };

    let oom_before = sys::oom_kill_count();
    sys::drain_pipe(sigchld);
    let meter = Meter::start(spec.source, &[spec.work_dir, spec.tmp_dir])?;
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {program:?}: {e}"))?;
    drop(cmd); // (closes the runner's copies of a merged pipe's write end)
    let pid = child.id() as libc::pid_t;
    let pipes = (child.stdin.take(), child.stdout.take().map(OwnedFd::from), child.stderr.take());
    drop(child); // std's handle neither waits nor kills; the runner reaps with wait4 below
    let (Some(stdin), Some(stdout)) = (pipes.0, pipes.1.or(merged_read)) else {
        sys::kill_program(pid);
        return Err("child pipes missing".into());
    };
    let stderr = match pipes.2 {
        Some(fd) => Some(Capture::new(OwnedFd::from(fd), limits.output_bytes)),
        None if spec.merge_stderr => None,
        None => {
            sys::kill_program(pid);
            return Err("child pipes missing".into());
        }
    };

    let mut io = Pipes {
        stdin: Some(StdinFeed {
            fd: OwnedFd::from(stdin),
            data: std::borrow::Cow::Borrowed(spec.stdin),
            written: 0,
            more: interactive,
        }),
        out: Capture::new(stdout, limits.output_bytes),
        err: stderr,
        arrival: Arrival::default(),
        live,
        pid,
        merged: spec.merge_stderr,
        interactive,
    };
    if let Err(e) = io.set_nonblocking() {
        sys::kill_program(pid);
        cleanup(pid, &mut 0);
        return Err(format!("cannot set up pipes: {e}"));
    }
    if spec.stdin.is_empty() && !interactive {
        io.stdin = None; // closing it gives the program EOF at once
    }
    if let Some(l) = io.live.as_deref_mut() {
        l.set_in_stage(true);
    }
    io.sync_live();

    // (Capped at ~49 days so that the deadline cannot overflow.)
    let deadline = start + Duration::from_millis(limits.wall_time_ms.min(u64::from(u32::MAX)));
    let mut killed: Option<(LimitHit, Instant)> = None;
    // The CPU time (ms) of the sample that stopped the stage for its CPU-time limit: the
    // reported time is never less than the measure the verdict was based on.
    let mut killed_at_cpu_ms: u64 = 0;
    let mut main_status: Option<libc::c_int> = None;
    let mut peak_kib: u64 = 0;
    let mut peak_tasks: u64 = 0;
    let mut samples: u32 = 0;
    let mut next_sample = start;
    let mut main_done: Option<Instant> = None;
    let mut wall = None;
    loop {
        // Reap whatever exited: the main process or orphans re-parented to the runner.
        let mut none_left = false;
        loop {
            match sys::wait_any_nohang() {
                sys::Waited::Reaped { pid: p, status, rusage } => {
                    peak_kib = peak_kib.max(rusage.ru_maxrss.max(0) as u64);
                    if p == pid {
                        main_status = Some(status);
                    }
                }
                sys::Waited::NoneReady => break,
                sys::Waited::NoChildren => {
                    none_left = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        if main_status.is_some() && main_done.is_none() {
            main_done = Some(now);
            wall = Some(start.elapsed());
        }
        if let Some(done) = main_done {
            // Leftovers run on briefly (see LEFTOVER_GRACE), unless a limit stopped them.
            let grace = if spec.leftover_grace { LEFTOVER_GRACE } else { Duration::ZERO };
            // No child left to reap is not enough: under gVisor the orphans of a fork bomb
            // need not be the runner's to reap, and they still count until the cgroup says
            // they are gone.
            let gone = none_left && meter.sample(pid).is_none_or(|u| u.tasks == 0);
            if gone || killed.is_some() || now >= done + grace || now >= deadline {
                break;
            }
        }
        if killed.is_none() {
            let mut hit = None;
            if now >= next_sample {
                let Some(u) = meter.sample(pid) else {
                    sys::kill_program(pid);
                    cleanup(pid, &mut 0);
                    return Err("the stage could not be measured: its cgroup could not be read".into());
                };
                peak_kib = peak_kib.max(u.memory_kib);
                peak_tasks = peak_tasks.max(u.tasks);
                samples += 1;
                next_sample = now + Duration::from_millis(1 << samples.min(4)).min(SAMPLE_EVERY);
                // (Processes first: a fork bomb is over its memory and CPU too, because of
                // its processes.)
                hit = if u.tasks > limits.processes {
                    Some(LimitHit::Processes)
                } else if limits.memory_kib > 0 && u.memory_kib > limits.memory_kib {
                    Some(LimitHit::Memory)
                } else if u.cpu_us / 1000 > limits.cpu_time_ms {
                    killed_at_cpu_ms = u.cpu_us / 1000;
                    Some(LimitHit::CpuTime)
                } else {
                    None
                };
            }
            if io.truncated() {
                hit = Some(LimitHit::Output);
            } else if hit.is_none() && now >= deadline && main_done.is_none() {
                hit = Some(LimitHit::WallTime);
            }
            if let Some(hit) = hit {
                sys::kill_program(pid);
                killed = Some((hit, now));
            }
        }
        let timeout = match killed {
            // Unkillable (stuck in the kernel): report no exit code and no signal.
            Some((_, at)) if now >= at + KILL_GRACE => break,
            Some(_) => Duration::from_millis(10),
            None => deadline
                .saturating_duration_since(now)
                .min(next_sample.saturating_duration_since(now))
                .min(MAX_POLL),
        };
        io.poll_once(sigchld, timeout);
    }
    // The program's wall time is its main process's.
    let wall = wall.unwrap_or_else(|| start.elapsed());
    if killed.is_none() {
        // What the main process left running counts too (a fork bomb whose first shell has
        // already exited).
        if let Some(u) = meter.sample(pid) {
            peak_kib = peak_kib.max(u.memory_kib);
            peak_tasks = peak_tasks.max(u.tasks);
        }
    }

    // The stage is over when its main process is: kill whatever it left behind, reap it all,
    // then collect what is still in the pipes.
    if let Some(l) = io.live.as_deref_mut() {
        l.set_in_stage(false);
    }
    cleanup(pid, &mut peak_kib);
    io.stdin = None;
    let drain_deadline = Instant::now() + CLEANUP_TIME;
    while io.reading() {
        let now = Instant::now();
        if now >= drain_deadline {
            break;
        }
        io.poll_once(sigchld, (drain_deadline - now).min(MAX_POLL));
    }

    // (The same measure as the live check; a later sample is not less in truth, but the
    // runner's own CPU time since, taken out, may be counted sooner than the cgroup's.)
    let cpu_ms = match meter.sample(pid) {
        Some(u) => (u.cpu_us / 1000).max(killed_at_cpu_ms),
        None => return Err("the stage could not be measured: its cgroup could not be read".into()),
    };
    if let Some(p) = meter.tasks_peak() {
        peak_tasks = peak_tasks.max(p);
    }
    let oom_killed = match (oom_before, sys::oom_kill_count()) {
        (Some(before), Some(after)) => after > before,
        _ => false,
    };
    let (exit_code, signal) = match main_status {
        Some(st) if libc::WIFEXITED(st) => (Some(libc::WEXITSTATUS(st)), None),
        Some(st) if libc::WIFSIGNALED(st) => (None, Some(libc::WTERMSIG(st))),
        _ => (None, None),
    };
    let file_size_limit = limits.file_size_kib.saturating_mul(1024);
    let truncated = io.truncated();
    let limit = classify(&Facts {
        // A program that wrote too much and exited before the runner could kill it still
        // exceeded the output limit.
        killed_for: killed.map(|(hit, _)| hit).or(truncated.then_some(LimitHit::Output)),
        exit_code,
        signal,
        cpu_ms,
        wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        peak_kib,
        peak_tasks,
        oom_killed,
        limits,
        file_at_size_limit: &|| {
            any_file_at_least(&[spec.work_dir.to_path_buf(), spec.tmp_dir.to_path_buf()], file_size_limit)
        },
    });
    let (stdout, stdout_truncated) = io.out.buf.into_bytes();
    let (stderr, stderr_truncated) = io.err.map_or((Vec::new(), false), |c| c.buf.into_bytes());
    let arrival = io.arrival.finish(stdout.len(), stderr.len());
    Ok(StageResult {
        exit_code,
        signal,
        signal_name: signal.map(|n| rce_api::Signal(n).name().into_owned()),
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        time_ms: cpu_ms,
        wall_time_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        memory_kib: peak_kib,
        peak_tasks,
        limit,
        arrival,
    })
}

/// Kills everything the stage left and reaps it all (bounded by [`CLEANUP_TIME`]).
fn cleanup(pgid: libc::pid_t, peak_kib: &mut u64) {
    let until = Instant::now() + CLEANUP_TIME;
    loop {
        sys::kill_program(pgid);
        loop {
            match sys::wait_any_nohang() {
                sys::Waited::Reaped { rusage, .. } => {
                    *peak_kib = (*peak_kib).max(rusage.ru_maxrss.max(0) as u64);
                }
                sys::Waited::NoneReady => break,
                sys::Waited::NoChildren => return,
            }
        }
        if Instant::now() >= until {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Before a stage that repeats the previous one: kills and reaps whatever is left of
/// earlier stages (each stage already did; this makes sure), and says whether nothing is
/// left, by the same count of tasks the stages are measured with (bounded by
/// [`CLEANUP_TIME`]).
pub fn settle(source: &Source) -> bool {
    let until = Instant::now() + CLEANUP_TIME;
    loop {
        sys::kill_program(0);
        let mut children = true;
        loop {
            match sys::wait_any_nohang() {
                sys::Waited::Reaped { .. } => {}
                sys::Waited::NoneReady => break,
                sys::Waited::NoChildren => {
                    children = false;
                    break;
                }
            }
        }
        // (Process group -1 is nobody's: outside a container of its own, the runner's
        // children are all there is to look for.)
        let tasks = Meter::start(source, &[]).ok().and_then(|m| m.sample(-1)).map(|u| u.tasks);
        if !children && tasks == Some(0) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What is known about a finished stage, for [`classify`].
pub struct Facts<'a> {
    /// The runner killed the program because of this limit.
    pub killed_for: Option<LimitHit>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_ms: u64,
    /// Wall time of the main process.
    pub wall_ms: u64,
    pub peak_kib: u64,
    /// Most tasks the program was seen to have at once.
    pub peak_tasks: u64,
    /// The cgroup's OOM-kill counter went up during the stage.
    pub oom_killed: bool,
    pub limits: &'a StageLimits,
    /// Whether some file in the work dir or /tmp reached the file-size limit (asked only for
    /// a program that failed without another explanation).
    pub file_at_size_limit: &'a dyn Fn() -> bool,
}

/// Which limit stopped the stage, if any. The runner's own kills come first (they happened
/// first), then the kernel's signals, then measurements above the limits.
pub fn classify(f: &Facts<'_>) -> Option<LimitHit> {
    if f.killed_for.is_some() {
        return f.killed_for;
    }
    let failed = f.signal.is_some() || f.exit_code.is_some_and(|c| c != 0);
    let cpu_over = f.cpu_ms >= f.limits.cpu_time_ms;
    match f.signal {
        // The kernel sends SIGXCPU a second or more past the limit (RLIMIT_CPU is a backstop
        // of the runner's own check): a CPU-time verdict only with a measured time at or over
        // the limit; a program that sends it to itself early is just killed by a signal.
        Some(libc::SIGXCPU) if cpu_over => {
            return Some(LimitHit::CpuTime);
        }
        Some(libc::SIGXFSZ) => return Some(LimitHit::FileSize),
        Some(libc::SIGKILL) if f.oom_killed => return Some(LimitHit::Memory),
        Some(libc::SIGKILL) if cpu_over => return Some(LimitHit::CpuTime),
        _ => {}
    }
    if f.peak_kib > f.limits.memory_kib || (failed && f.oom_killed) {
        return Some(LimitHit::Memory);
    }
    if f.cpu_ms > f.limits.cpu_time_ms {
        return Some(LimitHit::CpuTime);
    }
    if f.peak_tasks > f.limits.processes {
        return Some(LimitHit::Processes);
    }
    if failed && (f.file_at_size_limit)() {
        return Some(LimitHit::FileSize);
    }
    // The main process ended after its deadline (the runner saw it late): it ran too long.
    if f.wall_ms > f.limits.wall_time_ms {
        return Some(LimitHit::WallTime);
    }
    None
}

/// Whether a regular file of at least `bytes` (> 0) exists under one of `dirs` (symlinks are
/// not followed; at most [`SCAN_ENTRIES`] entries are examined).
pub fn any_file_at_least(dirs: &[PathBuf], bytes: u64) -> bool {
    if bytes == 0 {
        return false; // with a zero limit, an empty file proves nothing
    }
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > SCAN_ENTRIES {
                return false;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && entry.metadata().is_ok_and(|m| m.len() >= bytes) {
                return true;
            }
        }
    }
    false
}

struct StdinFeed<'a> {
    fd: OwnedFd,
    data: std::borrow::Cow<'a, [u8]>,
    written: usize,
    /// More may come (an interactive stage before its `Eof`): an empty feed stays open.
    more: bool,
}

struct Capture {
    fd: OwnedFd,
    buf: CappedBuf,
    eof: bool,
}

impl Capture {
    fn new(fd: OwnedFd, cap: u64) -> Self {
        Capture { fd, buf: CappedBuf::new(cap), eof: false }
    }

    /// Still worth polling: not at EOF and under the cap. Past the cap the pipe is left
    /// open but unread, so the writer blocks until it is killed.
    fn reading(&self) -> bool {
        !self.eof && !self.buf.truncated()
    }

    /// Reads what is available without blocking, never more than one byte past the cap;
    /// records the kept bytes in `arrival` as stderr's or stdout's.
    fn read_available(
        &mut self,
        arrival: &mut Arrival,
        stderr: bool,
        mut live: Option<&mut Channel>,
        stream: Stream,
    ) {
        let mut chunk = [0u8; CHUNK];
        while self.reading() {
            let want = self.buf.read_size(CHUNK);
            // SAFETY: reading at most `want` <= CHUNK bytes into a local buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), want) };
            match n {
                0 => self.eof = true,
                n if n > 0 => {
                    let kept = self.buf.push_kept(&chunk[..n as usize]);
                    arrival.record(stderr, kept);
                    if let Some(l) = live.as_deref_mut() {
                        l.data(stream, &chunk[..kept]);
                    }
                }
                _ => match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => return,
                    _ => self.eof = true,
                },
            }
        }
    }
}

struct Pipes<'a> {
    stdin: Option<StdinFeed<'a>>,
    out: Capture,
    /// `None` when stderr is merged into stdout.
    err: Option<Capture>,
    arrival: Arrival,
    /// The serving runner's channel to the operator, if any.
    live: Option<&'a mut Channel>,
    /// The stage's main process (and process group), for `Signal` frames.
    pid: libc::pid_t,
    /// stderr is stdout: its `Data` frames are stdout's.
    merged: bool,
    /// The program's stdin comes from the channel.
    interactive: bool,
}

impl Pipes<'_> {
    fn set_nonblocking(&self) -> std::io::Result<()> {
        if let Some(s) = &self.stdin {
            sys::set_nonblocking(s.fd.as_raw_fd())?;
        }
        sys::set_nonblocking(self.out.fd.as_raw_fd())?;
        match &self.err {
            Some(e) => sys::set_nonblocking(e.fd.as_raw_fd()),
            None => Ok(()),
        }
    }

    /// Some output is still worth reading.
    fn reading(&self) -> bool {
        self.out.reading() || self.err.as_ref().is_some_and(Capture::reading)
    }

    /// stdout or stderr went past the cap.
    fn truncated(&self) -> bool {
        self.out.buf.truncated() || self.err.as_ref().is_some_and(|e| e.buf.truncated())
    }

    /// One `poll(2)` round over the self-pipe and the open pipes, then moves data.
    fn poll_once(&mut self, sigchld: RawFd, timeout: Duration) {
        let mut fds = vec![libc::pollfd { fd: sigchld, events: libc::POLLIN, revents: 0 }];
        let mut idx = [None::<usize>; 5];
        if let Some(s) = &self.stdin {
            // (An open-ended feed with nothing to write waits for the operator, not the pipe.)
            if s.written < s.data.len() || !s.more {
                idx[0] = Some(fds.len());
                fds.push(libc::pollfd { fd: s.fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 });
            }
        }
        if let Some(l) = &self.live {
            if let Some(fd) = l.input_fd() {
                idx[3] = Some(fds.len());
                fds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
            }
            if let Some(fd) = l.output_fd_if_pending() {
                idx[4] = Some(fds.len());
                fds.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
            }
        }
        for (i, c) in [(1, Some(&self.out)), (2, self.err.as_ref())] {
            let Some(c) = c else { continue };
            if c.reading() {
                idx[i] = Some(fds.len());
                fds.push(libc::pollfd { fd: c.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
        }
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            return; // timeout or EINTR (SIGCHLD): the caller looks at the clock and reaps
        }
        if fds[0].revents != 0 {
            sys::drain_pipe(sigchld);
        }
        let ready = |i: usize| idx[i].is_some_and(|j| fds[j].revents != 0);
        if ready(3) {
            if let Some(l) = self.live.as_deref_mut() {
                l.read_input();
            }
        }
        if ready(3) || ready(4) {
            self.sync_live();
        }
        if ready(0) {
            self.feed_stdin();
        }
        if ready(1) {
            self.out.read_available(&mut self.arrival, false, self.live.as_deref_mut(), Stream::Stdout);
        }
        if ready(2) {
            if let Some(err) = &mut self.err {
                let stream = if self.merged { Stream::Stdout } else { Stream::Stderr };
                err.read_available(&mut self.arrival, true, self.live.as_deref_mut(), stream);
            }
        }
        if let Some(l) = self.live.as_deref_mut() {
            l.flush();
        }
    }

    /// Moves what the operator sent into the stage: signals to every process of the stage,
    /// stdin to the program's pipe (an interactive stage), `Eof` as the pipe's end.
    fn sync_live(&mut self) {
        let Some(l) = self.live.as_deref_mut() else { return };
        for signal in l.take_signals() {
            sys::signal_program(self.pid, signal);
        }
        if !self.interactive {
            return; // (kept by the channel for the run stage)
        }
        if !self.stdin.as_ref().is_some_and(|s| s.more) {
            l.take_stdin(); // the program closed its stdin, or it was closed: nowhere to go
            return;
        }
        let data = l.take_stdin();
        let eof = l.stdin_eof();
        if let Some(s) = &mut self.stdin {
            if !data.is_empty() {
                // (What was written is dropped: the feed holds only what is still to go.)
                let rest = s.data[s.written..].to_vec();
                let mut v = rest;
                v.extend_from_slice(&data);
                s.data = std::borrow::Cow::Owned(v);
                s.written = 0;
            }
            if eof {
                s.more = false;
            }
        }
        self.feed_stdin();
    }

    /// Writes what the pipe takes; closes it when everything is written or the program
    /// closed its end (EPIPE: the program does not want more input, which is fine).
    fn feed_stdin(&mut self) {
        let Some(s) = &mut self.stdin else { return };
        loop {
            let rest = &s.data[s.written..];
            if rest.is_empty() {
                if !s.more {
                    self.stdin = None;
                }
                return;
            }
            let len = rest.len().min(CHUNK);
            // SAFETY: writing from a valid slice of at least `len` bytes.
            let n = unsafe { libc::write(s.fd.as_raw_fd(), rest.as_ptr().cast(), len) };
            if n > 0 {
                s.written += n as usize;
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => return,
                _ => {
                    self.stdin = None; // EPIPE or anything else: stop feeding
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StageLimits = StageLimits {
        wall_time_ms: 5000,
        cpu_time_ms: 1000,
        memory_kib: 65536,
        processes: 10,
        output_bytes: 1024,
        file_size_kib: 1024,
        stack_kib: 8 * 1024,
    };

    fn facts() -> Facts<'static> {
        Facts {
            killed_for: None,
            exit_code: Some(0),
            signal: None,
            cpu_ms: 10,
            wall_ms: 20,
            peak_kib: 1000,
            peak_tasks: 1,
            oom_killed: false,
            limits: &LIMITS,
            file_at_size_limit: &|| false,
        }
    }

    fn killed(sig: i32) -> Facts<'static> {
        Facts { exit_code: None, signal: Some(sig), ..facts() }
    }

    #[test]
    fn a_normal_run_hits_no_limit() {
        assert_eq!(classify(&facts()), None);
        assert_eq!(classify(&Facts { exit_code: Some(3), ..facts() }), None);
        assert_eq!(classify(&killed(libc::SIGSEGV)), None);
    }

    #[test]
    fn the_runners_own_kill_wins() {
        let f = Facts { killed_for: Some(LimitHit::Output), cpu_ms: 5000, ..killed(libc::SIGKILL) };
        assert_eq!(classify(&f), Some(LimitHit::Output));
        let f = Facts { killed_for: Some(LimitHit::WallTime), ..killed(libc::SIGKILL) };
        assert_eq!(classify(&f), Some(LimitHit::WallTime));
    }

    #[test]
    fn kernel_signals_map_to_limits() {
        let at_cpu_limit = Facts { cpu_ms: 1000, ..killed(libc::SIGXCPU) };
        assert_eq!(classify(&at_cpu_limit), Some(LimitHit::CpuTime));
        // A CPU-time verdict is never reported with a time under the limit.
        let under = Facts { cpu_ms: 999, ..killed(libc::SIGXCPU) };
        assert_eq!(classify(&under), None);
        // SIGXCPU sent by the program to itself, far below the limit: just a signal.
        assert_eq!(classify(&killed(libc::SIGXCPU)), None);
        assert_eq!(classify(&killed(libc::SIGXFSZ)), Some(LimitHit::FileSize));
        let oom = Facts { oom_killed: true, ..killed(libc::SIGKILL) };
        assert_eq!(classify(&oom), Some(LimitHit::Memory));
        // SIGKILL at the hard CPU limit (SIGXCPU ignored).
        let hard = Facts { cpu_ms: 2000, ..killed(libc::SIGKILL) };
        assert_eq!(classify(&hard), Some(LimitHit::CpuTime));
        // A SIGKILL from elsewhere, below every limit, is just a signal.
        assert_eq!(classify(&killed(libc::SIGKILL)), None);
    }

    #[test]
    fn measurements_over_the_limits() {
        assert_eq!(classify(&Facts { peak_kib: 65537, ..facts() }), Some(LimitHit::Memory));
        assert_eq!(classify(&Facts { peak_kib: 65536, ..facts() }), None);
        assert_eq!(classify(&Facts { cpu_ms: 1001, ..facts() }), Some(LimitHit::CpuTime));
        assert_eq!(classify(&Facts { cpu_ms: 1000, ..facts() }), None);
        // An OOM kill of some process of the program, which then failed.
        let f = Facts { exit_code: Some(137), oom_killed: true, ..facts() };
        assert_eq!(classify(&f), Some(LimitHit::Memory));
        // The counter moving while the program succeeded is someone else's business.
        assert_eq!(classify(&Facts { oom_killed: true, ..facts() }), None);
        // More tasks at once than the limit allows (the rlimit leaves one of headroom).
        assert_eq!(classify(&Facts { peak_tasks: 11, ..facts() }), Some(LimitHit::Processes));
        assert_eq!(classify(&Facts { peak_tasks: 10, ..facts() }), None);
        let bomb = Facts { killed_for: Some(LimitHit::Processes), ..killed(libc::SIGKILL) };
        assert_eq!(classify(&bomb), Some(LimitHit::Processes));
        // Exited 0, but only after its wall limit (the runner was late to see it).
        assert_eq!(classify(&Facts { wall_ms: 5001, ..facts() }), Some(LimitHit::WallTime));
        assert_eq!(classify(&Facts { wall_ms: 5000, ..facts() }), None);
    }

    #[test]
    fn a_failed_program_with_a_file_at_the_size_limit() {
        let f = Facts { exit_code: Some(153), file_at_size_limit: &|| true, ..facts() };
        assert_eq!(classify(&f), Some(LimitHit::FileSize));
        // A successful program may write a file of exactly the limit.
        let f = Facts { file_at_size_limit: &|| true, ..facts() };
        assert_eq!(classify(&f), None);
    }

    #[test]
    fn finds_big_files_without_following_symlinks() {
        let dir = std::env::temp_dir().join(format!("rce-runner-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(dir.join("elsewhere")).expect("mkdir");
        std::fs::write(dir.join("a/small"), [0u8; 10]).expect("write");
        std::fs::write(dir.join("elsewhere/big"), [0u8; 100]).expect("write");
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("a/link")).expect("symlink");
        let roots = [dir.join("a")];
        assert!(!any_file_at_least(&roots, 100), "the symlinked directory must not be searched");
        assert!(any_file_at_least(&roots, 10));
        std::fs::write(dir.join("a/b/big"), [0u8; 100]).expect("write");
        assert!(any_file_at_least(&roots, 100));
        assert!(!any_file_at_least(&roots, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
