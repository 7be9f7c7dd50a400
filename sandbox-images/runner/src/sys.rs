//! Thin wrappers over the system calls the runner needs: resource limits, the SIGCHLD
//! self-pipe, killing and reaping, rusage, the cgroup's OOM-kill counter.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::protocol::StageLimits;

/// Tasks of the runner itself that share the sandbox uid with the program: the runner is
/// single-threaded, so one. `RLIMIT_NPROC` counts every task of the uid, so the program's
/// limit is raised by this much to mean "the program may have `processes` tasks".
pub const RUNNER_TASKS: u64 = 1;
/// `RLIMIT_NPROC` counts every task of the uid on the node, and a Pod's pause process may
/// run under the sandbox's uid too (the kubelet gives it the Pod's `runAsUser`); beyond that,
/// one task more than the limit may exist, so that going past the limit is seen (the stage
/// is then stopped with the `processes` limit, counted in the container's own cgroup) rather
/// than only failing inside the program.
pub const NPROC_HEADROOM: u64 = 2;

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// The resource limits of one stage's child, computed (and clamped to the runner's own hard
/// limits) before `fork`, applied in the child by [`ChildSetup::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSetup {
    pub cpu: (u64, u64),
    pub nproc: (u64, u64),
    pub fsize: (u64, u64),
    pub nofile: (u64, u64),
    /// RLIMIT_STACK, soft = hard: the program's main-thread stack (and the default of its
    /// threads' stacks in most runtimes).
    pub stack: (u64, u64),
    /// RLIMIT_MSGQUEUE, only for a serving runner's stages (`Some((0, 0))`): no POSIX message
    /// queue can be created, so none can outlive a run (see `clean`). `None` leaves it alone.
    pub msgqueue: Option<(u64, u64)>,
}

/// Open files per process of a stage. Files are a node-wide resource (`fs.file-max`), so a
/// sandbox may not take an unbounded share of them.
pub const OPEN_FILES: u64 = 1024;

impl ChildSetup {
    pub fn for_limits(l: &StageLimits) -> Self {
        Self::clamped(l, current_hard_limit)
    }

    /// `hard_of` gives the current hard limit of a resource: a child cannot raise it.
    pub fn clamped(l: &StageLimits, hard_of: impl Fn(Resource) -> u64) -> Self {
        // The CPU-time limit is the runner's: it kills the stage once the CPU time it measures
        // (and reports) passes `cpuTimeMs` (see `stage::run_stage`). RLIMIT_CPU is only a
        // backstop, with whole seconds of the kernel's own measure of one process: set at
        // the limit, it fired first whenever the limit was a multiple of a second, and the
        // verdict then came with a reported time below the limit (gVisor's cgroup CPU time
        // trails its rlimit's). So SIGXCPU at the first whole second at least one second past
        // the limit, SIGKILL one second later for programs that catch or ignore SIGXCPU.
        let cpu_soft = l.cpu_time_ms.saturating_add(1000).div_ceil(1000);
        let clamp = |r: Resource, soft: u64, hard: u64| {
            let hard = hard.min(hard_of(r));
            (soft.min(hard), hard)
        };
        let nproc = l.processes.saturating_add(RUNNER_TASKS + NPROC_HEADROOM);
        let fsize = l.file_size_kib.saturating_mul(1024);
        let stack = l.stack_kib.saturating_mul(1024);
        ChildSetup {
            cpu: clamp(libc::RLIMIT_CPU, cpu_soft, cpu_soft.saturating_add(1)),
            nproc: clamp(libc::RLIMIT_NPROC, nproc, nproc),
            fsize: clamp(libc::RLIMIT_FSIZE, fsize, fsize),
            nofile: clamp(libc::RLIMIT_NOFILE, OPEN_FILES, OPEN_FILES),
            stack: clamp(libc::RLIMIT_STACK, stack, stack),
            msgqueue: None,
        }
    }

    /// Runs in the forked child before `exec`: only async-signal-safe system calls, no
    /// allocation. New session (so the program has its own process group), rlimits, no
    /// core dumps, and `oom_score_adj` 1000 so that the cgroup's OOM killer picks the
    /// program rather than the runner. (The child is a copy of the non-dumpable runner: it
    /// becomes dumpable first, or its own `/proc/self` files would be root's; nothing of the
    /// program runs yet, and `exec` replaces the copied memory.)
    pub fn apply(&self) -> io::Result<()> {
        // SAFETY: async-signal-safe system calls with valid arguments.
        unsafe {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            set_rlimit(libc::RLIMIT_CORE, (0, 0))?;
            set_rlimit(libc::RLIMIT_CPU, self.cpu)?;
            set_rlimit(libc::RLIMIT_FSIZE, self.fsize)?;
            set_rlimit(libc::RLIMIT_NPROC, self.nproc)?;
            set_rlimit(libc::RLIMIT_NOFILE, self.nofile)?;
            // Set before exec: the kernel lays out the new program's stack under it.
            set_rlimit(libc::RLIMIT_STACK, self.stack)?;
            if let Some(m) = self.msgqueue {
                set_rlimit(libc::RLIMIT_MSGQUEUE, m)?;
            }
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
        }
        Ok(())
    }
}

fn set_rlimit(r: Resource, (soft, hard): (u64, u64)) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: valid pointer to an initialised struct.
    if unsafe { libc::setrlimit(r, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn current_hard_limit(r: Resource) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid pointer to a struct getrlimit fills.
    if unsafe { libc::getrlimit(r, &mut lim) } < 0 {
        return u64::MAX;
    }
    lim.rlim_max
}

/// Makes the runner non-dumpable: its `/proc/<pid>` files (fd, mem, environ, maps, ...)
/// become root's, and ptrace or `process_vm_*` on it need `CAP_SYS_PTRACE`, which nothing in
/// a sandbox has, though the program runs under the same uid.
pub fn make_nondumpable() -> io::Result<()> {
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The runner's stdout and stderr (the container log, where the result goes), parked while
/// stages run as file descriptors in flight on a unix socket of the runner's own: in no
/// process's file table, so not reachable through `/proc/<pid>/fd` even where a runtime
/// does not honour non-dumpable for it (gVisor), and a socket cannot be opened through
/// `/proc` either. Stdout and stderr are `/dev/null` meanwhile.
pub struct StdioStash {
    receiver: OwnedFd,
}

/// Parks fds 1 and 2 (see [`StdioStash`]).
pub fn stash_stdio() -> io::Result<StdioStash> {
    let mut pair = [0; 2];
    // SAFETY: plain system calls on fds the runner owns; the message buffers are local.
    unsafe {
        if libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) < 0 {
            return Err(io::Error::last_os_error());
        }
        let (sender, receiver) = (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1]));
        let fds: [libc::c_int; 2] = [1, 2];
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let space = libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), 2);
        if libc::sendmsg(sender.as_raw_fd(), &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(sender);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 || libc::dup2(null, 1) < 0 || libc::dup2(null, 2) < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::close(null);
        Ok(StdioStash { receiver })
    }
}

impl StdioStash {
    /// Takes stdout and stderr back, for the result.
    pub fn restore(self) -> io::Result<()> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: receiving into local buffers sized for two descriptors.
        unsafe {
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
            let space = libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) as usize;
            let mut control = vec![0u8; space];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            if libc::recvmsg(self.receiver.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT)
                < 0
            {
                return Err(io::Error::last_os_error());
            }
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
                return Err(io::Error::other("the parked stdout and stderr did not come back"));
            }
            std::ptr::copy_nonoverlapping(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fds.as_mut_ptr(), 2);
            let ok = libc::dup2(fds[0], 1) >= 0 && libc::dup2(fds[1], 2) >= 0;
            libc::close(fds[0]);
            libc::close(fds[1]);
            if !ok {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// True when the runner is the init process of its PID namespace (as in a container).
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Once per process: outside a container, become a child subreaper so that orphans of the
/// program are re-parented to the runner (and reaped and killed by it) as they would be
/// when it is PID 1; install the SIGCHLD handler that wakes the poll loop.
/// Returns the read end of the self-pipe, or an error message.
pub fn init() -> Result<RawFd, String> {
    static PIPE: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    let r = PIPE.get_or_init(|| {
        if !is_init() {
            // SAFETY: plain prctl; failure only makes cleanup less thorough.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        let mut fds = [0; 2];
        // SAFETY: valid pointer to two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(format!("pipe2: {}", io::Error::last_os_error()));
        }
        // SAFETY: both fds were just created; the write end is deliberately leaked to the
        // signal handler for the life of the process.
        let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        SIGCHLD_WRITE_FD.store(fds[1], Ordering::SeqCst);
        // SAFETY: installing a handler that only calls write(2) and touches errno.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigchld as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()) < 0 {
                return Err(format!("sigaction: {}", io::Error::last_os_error()));
            }
        }
        Ok(read)
    });
    r.as_ref().map(|fd| fd.as_raw_fd()).map_err(Clone::clone)
}

static SIGCHLD_WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = SIGCHLD_WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) and errno access are async-signal-safe.
        unsafe {
            let saved = *libc::__errno_location();
            libc::write(fd, b"c".as_ptr().cast(), 1);
            *libc::__errno_location() = saved;
        }
    }
}

/// Empties the (non-blocking) self-pipe.
pub fn drain_pipe(fd: RawFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a local buffer of the given size.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Kills the program: as PID 1, every other process of the PID namespace (`kill(-1)`, which
/// nothing in the sandbox can escape); otherwise its process group and every direct child of
/// the runner (orphans that left the group with `setsid` are re-parented to the runner, a
/// subreaper).
pub fn kill_program(pgid: libc::pid_t) {
    // SAFETY: sending signals; pids are our own children or the program's process group.
    unsafe {
        if is_init() {
            libc::kill(-1, libc::SIGKILL);
            return;
        }
        if pgid > 1 {
            libc::killpg(pgid, libc::SIGKILL);
        }
        for pid in own_children() {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to every process of the running stage: as PID 1 every other process of
/// the PID namespace, otherwise the stage's process group and the runner's direct children
/// (as [`kill_program`] does with SIGKILL).
pub fn signal_program(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: sending signals; pids are our own children or the program's process group.
    unsafe {
        if is_init() {
            libc::kill(-1, signal);
            return;
        }
        if pgid > 1 {
            libc::killpg(pgid, signal);
        }
        for pid in own_children() {
            libc::kill(pid, signal);
        }
    }
}

/// The serving runner's stdin and stdout as private descriptors (close-on-exec, at 10 or
/// above), both made non-blocking. Returns (stdin, stdout).
///
/// Descriptors 0, 1 and 2 stay what the container runtime gave them: replacing them (with
/// `/dev/null`) breaks `pods/attach` on containerd — measured on the local cluster: a
/// process that moved its stdout to another descriptor and put `/dev/null` in its place is
/// never reached by an attach session, one that kept them is. No stage inherits them all the
/// same: every stage's 0, 1 and 2 are its own pipes (set up by `Command` at spawn), and
/// every other descriptor of the runner is close-on-exec.
pub fn park_serve_stdio() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain system calls on descriptors the runner owns.
    unsafe {
        let input = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 10);
        if input < 0 {
            return Err(io::Error::last_os_error());
        }
        let input = OwnedFd::from_raw_fd(input);
        let output = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 10);
        if output < 0 {
            return Err(io::Error::last_os_error());
        }
        let output = OwnedFd::from_raw_fd(output);
        for fd in 0..3 {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        set_nonblocking(input.as_raw_fd())?;
        set_nonblocking(output.as_raw_fd())?;
        Ok((input, output))
    }
}

/// The runner's direct children (Linux `/proc/<pid>/task/<tid>/children`; the runner has a
/// single thread). Unreaped children keep their pid, so signalling them is safe.
pub fn own_children() -> Vec<libc::pid_t> {
    std::fs::read_to_string("/proc/thread-self/children")
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|s| s.parse().ok())
        .filter(|&p: &libc::pid_t| p > 1)
        .collect()
}

pub enum Waited {
    Reaped { pid: libc::pid_t, status: libc::c_int, rusage: libc::rusage },
    NoneReady,
    NoChildren,
}

/// `wait4(-1, WNOHANG)`: reaps any child (the program or an orphan re-parented to the runner).
pub fn wait_any_nohang() -> Waited {
    loop {
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid value; pointers are valid.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut rusage) };
        if pid > 0 {
            return Waited::Reaped { pid, status, rusage };
        }
        if pid == 0 {
            return Waited::NoneReady;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => return Waited::NoChildren,
        }
    }
}

/// User + system CPU time of all reaped children so far, in microseconds.
pub fn children_cpu_us() -> u64 {
    // SAFETY: zeroed rusage is a valid value; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    cpu_us(&ru)
}

pub fn cpu_us(ru: &libc::rusage) -> u64 {
    let tv = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The container cgroup's OOM-kill counter (cgroup v2 `memory.events`, else v1
/// `memory.oom_control`), if readable.
pub fn oom_kill_count() -> Option<u64> {
    ["/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().and_then(|text| parse_oom_kill(&text)))
}

pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid pointer to two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets `O_NONBLOCK` on a pipe end.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What the program's processes hold and have used, from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Procs {
    /// Sum of the resident set sizes (shared pages count once per process: errs high).
    pub rss_kib: u64,
    /// User + system CPU time of the live processes (not of the reaped ones).
    pub cpu_us: u64,
    /// Threads of the live processes.
    pub tasks: u64,
}

/// The program's processes right now: every process in its process group (as PID 1: every
/// process in the container but the runner). A cheap `/proc/<pid>/stat` read per process.
pub fn program_procs(pgid: libc::pid_t) -> Procs {
    let init = is_init();
    let me = std::process::id() as i64;
    // SAFETY: sysconf has no preconditions.
    let (page_kib, tick_us) = unsafe {
        (
            (libc::sysconf(libc::_SC_PAGESIZE).max(4096) / 1024) as u64,
            1_000_000 / libc::sysconf(libc::_SC_CLK_TCK).max(1) as u64,
        )
    };
    let Ok(dir) = std::fs::read_dir("/proc") else { return Procs::default() };
    let mut total = Procs::default();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the parenthesised command name: state(3) ppid pgrp ... utime(14)
        // stime(15) ... num_threads(20) ... rss(24).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if init || f.get(2).and_then(|v| v.parse::<i64>().ok()) == Some(i64::from(pgid)) {
            total.rss_kib += num(21) * page_kib;
            total.cpu_us += (num(11) + num(12)) * tick_us;
            total.tasks += num(17).max(1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(cpu_time_ms: u64) -> StageLimits {
        StageLimits {
            wall_time_ms: 5000,
            cpu_time_ms,
            memory_kib: 65536,
            processes: 10,
            output_bytes: 1024,
            file_size_kib: 1024,
            stack_kib: 8 * 1024,
        }
    }

    #[test]
    fn rlimits_from_stage_limits() {
        let s = ChildSetup::clamped(&limits(1000), |_| u64::MAX);
        assert_eq!(s.cpu, (2, 3), "a backstop a whole second past the runner's own limit");
        assert_eq!(s.nproc, (13, 13), "the runner's own task, a pause's and one of headroom are added");
        assert_eq!(s.fsize, (1024 * 1024, 1024 * 1024));
        assert_eq!(s.nofile, (OPEN_FILES, OPEN_FILES));
        assert_eq!(s.stack, (8 * 1024 * 1024, 8 * 1024 * 1024), "the stage's stackKiB, soft and hard");
        let big = StageLimits { stack_kib: 256 * 1024, ..limits(1000) };
        assert_eq!(ChildSetup::clamped(&big, |_| u64::MAX).stack, (256 << 20, 256 << 20));
        let unlimited = StageLimits { stack_kib: u64::MAX, ..limits(1000) };
        assert_eq!(ChildSetup::clamped(&unlimited, |_| u64::MAX).stack, (u64::MAX, u64::MAX));
        assert_eq!(ChildSetup::clamped(&limits(1500), |_| u64::MAX).cpu, (3, 4));
        assert_eq!(ChildSetup::clamped(&limits(999), |_| u64::MAX).cpu, (2, 3));
        assert_eq!(ChildSetup::clamped(&limits(0), |_| u64::MAX).cpu, (1, 2));
        assert_eq!(
            ChildSetup::clamped(&limits(u64::MAX), |_| u64::MAX).cpu,
            (u64::MAX.div_ceil(1000), u64::MAX.div_ceil(1000) + 1)
        );
    }

    #[test]
    fn rlimits_never_exceed_the_current_hard_limit() {
        let s = ChildSetup::clamped(&limits(10_000), |r| if r == libc::RLIMIT_CPU { 5 } else { 4 });
        assert_eq!(s.cpu, (5, 5));
        assert_eq!(s.nproc, (4, 4));
        assert_eq!(s.fsize, (4, 4));
        assert_eq!(s.stack, (4, 4));
    }

    #[test]
    fn parses_oom_kill_counters() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
        assert_eq!(parse_oom_kill(v1), Some(7));
        assert_eq!(parse_oom_kill("oom 1\n"), None);
    }
}
