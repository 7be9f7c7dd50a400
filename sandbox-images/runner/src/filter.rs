//! The seccomp filter the runner installs on every stage it starts (compiler and program),
//! on top of the container's own profile (`RuntimeDefault`).
//!
//! The program runs under the runner's uid, so plain Linux would let it touch the runner
//! through every system call that checks only the uid. The runner is non-dumpable, which
//! closes the ones that check ptrace access (`/proc/1/mem`, `/proc/1/fd`, `/proc/1/environ`,
//! ptrace, `process_vm_*`, `pidfd_getfd`, ...), and it is PID 1, which the kernel protects
//! from signals it does not handle. This filter closes the rest, and denies the ptrace
//! family outright as a second layer:
//!
//! - denied whatever the arguments: `ptrace`, `process_vm_readv`/`writev`, `pidfd_getfd`,
//!   `pidfd_send_signal` (its target cannot be seen in the arguments), `kcmp`,
//!   `process_madvise`, `perf_event_open`, and the keyring calls (`add_key`, `request_key`,
//!   `keyctl`: the user keyring is shared by everything of one uid);
//! - denied when they name PID 1 (compared on the low 32 bits, as the kernel reads a pid):
//!   `kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`, `rt_tgsigqueueinfo`, `pidfd_open`,
//!   `sched_setscheduler`, `sched_setparam`, `sched_setattr`, `sched_setaffinity`,
//!   `prlimit64`, `migrate_pages`, `move_pages`, `get_robust_list`;
//! - `setpriority` and `ioprio_set` for a whole user (which would include the runner), or
//!   naming process (group) 1;
//! - `fcntl(F_SETOWN)` naming PID 1 or process group 1, `F_SETOWN_EX`, and the `FIOSETOWN`
//!   and `SIOCSPGRP` ioctls (signals to the owner of a file reach whoever is named);
//! - `fcntl(F_SETPIPE_SZ)`: pipes keep their 64 KiB (pipe buffers are kernel memory, which
//!   gVisor does not account to the sandbox);
//! - sockets of any family but `AF_UNIX` (`EAFNOSUPPORT`): a sandbox has no network, and
//!   the kernel charges TCP buffers on loopback to no cgroup on cgroup v1;
//! - `io_uring_*` (its operations would not pass through this filter);
//! - `fallocate` with `FALLOC_FL_KEEP_SIZE` (it allocates disk without growing the file, so
//!   `RLIMIT_FSIZE` never sees it);
//! - `clone3` with `ENOSYS`, so that the C library falls back to `clone`, whose flags
//!   seccomp profiles can see (as containerd's default profile does; gVisor applies that
//!   profile with `EPERM` instead, and threads could not be made at all).
//!
//! Every denial is `EPERM` unless said otherwise, which programs handle as they would any
//! refusal. A call from another architecture (the i386 `int 0x80` entry, x32) is denied
//! too: its numbers differ, so the rules above would not see it.

/// One BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
const RET_EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// x32 system calls carry this bit in their number on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_BIT: u32 = 0x4000_0000;

/// A condition on one argument's low 32 bits.
#[derive(Debug, Clone, Copy)]
enum Cond {
    /// Equal to a value.
    Eq(u32, u32),
    /// Not equal to a value.
    Ne(u32, u32),
    /// Any of these bits set.
    Bits(u32, u32),
}
use Cond::*;

/// A system call and the argument conditions under which it is denied with `errno`: denied
/// when every condition of any one of the lists holds (an empty list: always).
struct Rule {
    nr: u32,
    when: Vec<Vec<Cond>>,
    errno: u32,
}

fn nr(n: libc::c_long) -> u32 {
    n as u32
}

/// `fcntl` and `ioctl` commands that name a file's signal owner (not all in `libc`).
const F_SETOWN_EX: u32 = 15;
const FIOSETOWN: u32 = 0x8901;
const SIOCSPGRP: u32 = 0x8902;

fn rules() -> Vec<Rule> {
    let eperm = libc::EPERM as u32;
    let always = |n| Rule { nr: nr(n), when: vec![vec![]], errno: eperm };
    let arg_is_1 = |n, args: &[u32]| Rule {
        nr: nr(n),
        when: args.iter().map(|&a| vec![Eq(a, 1)]).collect(),
        errno: eperm,
    };
    const PRIO_USER: u32 = 2;
    const IOPRIO_WHO_USER: u32 = 3;
    const AF_UNIX: u32 = libc::AF_UNIX as u32;
    const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
    const MINUS_ONE: u32 = u32::MAX;
    let unix_only =
        |n| Rule { nr: nr(n), when: vec![vec![Ne(0, AF_UNIX)]], errno: libc::EAFNOSUPPORT as u32 };
    vec![
        always(libc::SYS_ptrace),
        always(libc::SYS_process_vm_readv),
        always(libc::SYS_process_vm_writev),
        always(libc::SYS_pidfd_getfd),
        always(libc::SYS_pidfd_send_signal),
        always(libc::SYS_kcmp),
        always(libc::SYS_process_madvise),
        always(libc::SYS_perf_event_open),
        always(libc::SYS_add_key),
        always(libc::SYS_request_key),
        always(libc::SYS_keyctl),
        arg_is_1(libc::SYS_kill, &[0]),
        arg_is_1(libc::SYS_tkill, &[0]),
        arg_is_1(libc::SYS_tgkill, &[0, 1]),
        arg_is_1(libc::SYS_rt_sigqueueinfo, &[0]),
        arg_is_1(libc::SYS_rt_tgsigqueueinfo, &[0, 1]),
        arg_is_1(libc::SYS_pidfd_open, &[0]),
        arg_is_1(libc::SYS_sched_setscheduler, &[0]),
        arg_is_1(libc::SYS_sched_setparam, &[0]),
        arg_is_1(libc::SYS_sched_setattr, &[0]),
        arg_is_1(libc::SYS_sched_setaffinity, &[0]),
        arg_is_1(libc::SYS_prlimit64, &[0]),
        arg_is_1(libc::SYS_migrate_pages, &[0]),
        arg_is_1(libc::SYS_move_pages, &[0]),
        arg_is_1(libc::SYS_get_robust_list, &[0]),
        Rule {
            nr: nr(libc::SYS_setpriority),
            when: vec![vec![Eq(0, PRIO_USER)], vec![Eq(1, 1)]],
            errno: eperm,
        },
        Rule {
            nr: nr(libc::SYS_ioprio_set),
            when: vec![vec![Eq(0, IOPRIO_WHO_USER)], vec![Eq(1, 1)]],
            errno: eperm,
        },
        Rule {
            nr: nr(libc::SYS_fcntl),
            when: vec![
                vec![Eq(1, libc::F_SETOWN as u32), Eq(2, 1)],
                vec![Eq(1, libc::F_SETOWN as u32), Eq(2, MINUS_ONE)],
                vec![Eq(1, F_SETOWN_EX)],
                vec![Eq(1, libc::F_SETPIPE_SZ as u32)],
            ],
            errno: eperm,
        },
        Rule {
            nr: nr(libc::SYS_ioctl),
            when: vec![vec![Eq(1, FIOSETOWN)], vec![Eq(1, SIOCSPGRP)]],
            errno: eperm,
        },
        unix_only(libc::SYS_socket),
        unix_only(libc::SYS_socketpair),
        always(libc::SYS_io_uring_setup),
        always(libc::SYS_io_uring_enter),
        always(libc::SYS_io_uring_register),
        Rule { nr: nr(libc::SYS_fallocate), when: vec![vec![Bits(1, FALLOC_FL_KEEP_SIZE)]], errno: eperm },
        Rule { nr: nr(libc::SYS_clone3), when: vec![vec![]], errno: libc::ENOSYS as u32 },
    ]
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The filter program. Built before `fork` (it allocates); installed in the child by
/// [`install`].
pub fn program() -> Vec<Insn> {
    let mut p = vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, ARCH),
        insn(RET_K, 0, 0, RET_EPERM),
        insn(LD_W_ABS, 0, 0, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(insn(JGE_K, 0, 1, X32_BIT));
        p.push(insn(RET_K, 0, 0, RET_EPERM));
    }
    for rule in rules() {
        // Each conjunction: load and compare each argument, skipping to the next conjunction
        // on the first mismatch; all matched: deny. After the last: allow (the number matched).
        let mut block = Vec::new();
        for conj in &rule.when {
            let len = conj.len() * 2 + 1;
            for (i, cond) in conj.iter().enumerate() {
                let rest = (len - (i * 2 + 2)) as u8; // instructions after this comparison
                let (arg, jump) = match *cond {
                    // Holds: fall through to the next comparison; else skip the conjunction.
                    Eq(arg, v) => (arg, insn(JEQ_K, 0, rest, v)),
                    Ne(arg, v) => (arg, insn(JEQ_K, rest, 0, v)),
                    Bits(arg, bits) => (arg, insn(JSET_K, 0, rest, bits)),
                };
                block.push(insn(LD_W_ABS, 0, 0, off_arg(arg)));
                block.push(jump);
            }
            block.push(insn(RET_K, 0, 0, RET_ERRNO | rule.errno));
        }
        block.push(insn(RET_K, 0, 0, RET_ALLOW));
        // The accumulator still holds the number: argument loads happen only inside a block,
        // which always returns.
        p.push(insn(JEQ_K, 0, u8::try_from(block.len()).unwrap_or(u8::MAX), rule.nr));
        p.extend(block);
    }
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p
}

/// Installs `program` on the calling thread (and what it `exec`s). Only system calls; safe
/// between `fork` and `exec`.
pub fn install(program: &[Insn]) -> std::io::Result<()> {
    let prog = libc::sock_fprog { len: program.len() as libc::c_ushort, filter: program.as_ptr().cast_mut() };
    // SAFETY: plain prctl/seccomp calls; `prog` points into `program`, alive for the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
        if libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child under the filter; the child's exit status is `f`'s result.
    fn under_filter(f: fn() -> bool) -> bool {
        let prog = program();
        // SAFETY: the child only makes system calls and exits.
        unsafe {
            match libc::fork() {
                0 => {
                    let ok = install(&prog).is_ok() && f();
                    libc::_exit(if ok { 0 } else { 1 });
                }
                pid if pid > 0 => {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
                }
                _ => panic!("fork failed"),
            }
        }
    }

    fn eperm(r: libc::c_long) -> bool {
        r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    #[test]
    fn calls_naming_pid_1_are_denied() {
        // Signal 0 only checks permission: nothing is sent anywhere, with or without the filter.
        assert!(under_filter(|| unsafe { eperm(libc::syscall(libc::SYS_kill, 1, 0)) }));
        assert!(under_filter(|| unsafe { eperm(libc::syscall(libc::SYS_tgkill, 1, 1, 0)) }));
        // The upper half of the register does not hide the pid from the filter.
        assert!(under_filter(|| unsafe { eperm(libc::syscall(libc::SYS_kill, 0x1_0000_0001_i64, 0)) }));
        assert!(under_filter(|| unsafe { eperm(libc::syscall(libc::SYS_pidfd_open, 1, 0)) }));
        assert!(under_filter(|| unsafe {
            let mut old: libc::rlimit = std::mem::zeroed();
            eperm(libc::syscall(
                libc::SYS_prlimit64,
                1,
                libc::RLIMIT_CORE,
                std::ptr::null::<libc::rlimit>(),
                &mut old,
            ))
        }));
        assert!(under_filter(|| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            eperm(libc::syscall(libc::SYS_sched_setaffinity, 1, std::mem::size_of::<libc::cpu_set_t>(), &set))
        }));
        assert!(under_filter(|| unsafe {
            eperm(libc::setpriority(libc::PRIO_PROCESS, 1, 0) as libc::c_long)
        }));
        assert!(under_filter(|| unsafe {
            eperm(libc::setpriority(libc::PRIO_USER, libc::getuid(), 0) as libc::c_long)
        }));
        assert!(under_filter(|| unsafe { eperm(libc::syscall(libc::SYS_ioprio_set, 3, libc::getuid(), 0)) }));
        assert!(under_filter(|| unsafe { eperm(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)) }));
    }

    fn errno_is(r: libc::c_long, errno: i32) -> bool {
        r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(errno)
    }

    #[test]
    fn no_network_sockets_no_io_uring_no_hidden_disk() {
        assert!(under_filter(|| unsafe {
            errno_is(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as libc::c_long, libc::EAFNOSUPPORT)
                && errno_is(
                    libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) as libc::c_long,
                    libc::EAFNOSUPPORT,
                )
                && errno_is(
                    libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) as libc::c_long,
                    libc::EAFNOSUPPORT,
                )
                && errno_is(
                    libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) as libc::c_long,
                    libc::EAFNOSUPPORT,
                )
        }));
        assert!(under_filter(|| unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let mut pair = [0; 2];
            fd >= 0 && libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) == 0
        }));
        assert!(under_filter(|| unsafe {
            let mut params = [0u8; 120];
            eperm(libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()))
        }));
        assert!(under_filter(|| unsafe {
            let path = c"/tmp/rce-filter-fallocate";
            let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600);
            let keep = eperm(libc::fallocate(fd, 0x01, 0, 4096) as libc::c_long);
            let plain = libc::fallocate(fd, 0, 0, 4096) == 0;
            libc::unlink(path.as_ptr());
            fd >= 0 && keep && plain
        }));
    }

    #[test]
    fn file_owners_cannot_name_the_runner() {
        assert!(under_filter(|| unsafe {
            let mut p = [0; 2];
            libc::pipe(p.as_mut_ptr());
            eperm(libc::fcntl(p[0], libc::F_SETOWN, 1) as libc::c_long)
                && eperm(libc::fcntl(p[0], libc::F_SETOWN, -1) as libc::c_long)
                && libc::fcntl(p[0], libc::F_SETOWN, libc::getpid()) == 0
                && eperm(libc::ioctl(p[0], FIOSETOWN as _, &1i32) as libc::c_long)
                && libc::fcntl(p[0], libc::F_GETFL) >= 0
                && eperm(libc::fcntl(p[1], libc::F_SETPIPE_SZ, 1 << 20) as libc::c_long)
        }));
    }

    #[test]
    fn the_program_keeps_what_it_needs_for_itself() {
        assert!(under_filter(|| unsafe { libc::syscall(libc::SYS_kill, libc::getpid(), 0) == 0 }));
        assert!(under_filter(|| unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 1) == 0 }));
        assert!(under_filter(|| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0
                && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }));
        assert!(under_filter(|| unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            libc::prlimit(0, libc::RLIMIT_NOFILE, std::ptr::null(), &mut lim) == 0
        }));
        // clone3 is "not implemented", so that threads and processes come from clone.
        assert!(under_filter(|| unsafe { errno_is(libc::syscall(libc::SYS_clone3, 0, 0), libc::ENOSYS) }));
        assert!(under_filter(|| {
            let t = std::thread::spawn(|| 7);
            t.join().ok() == Some(7)
        }));
        // fork, wait, exec-like work and signals to its own children still work.
        assert!(under_filter(|| unsafe {
            let child = libc::fork();
            if child == 0 {
                libc::_exit(7);
            }
            let mut st = 0;
            libc::kill(child, 0);
            libc::waitpid(child, &mut st, 0) == child && libc::WEXITSTATUS(st) == 7
        }));
    }

    #[test]
    fn jump_offsets_fit_and_every_path_returns() {
        let p = program();
        assert!(p.len() < 256, "{} instructions", p.len());
        assert_eq!(p.last().map(|i| (i.code, i.k)), Some((RET_K, RET_ALLOW)));
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JEQ_K || ins.code == JGE_K || ins.code == JSET_K {
                assert!(i + 1 + (ins.jt.max(ins.jf) as usize) < p.len(), "jump out of the program at {i}");
            }
        }
    }
}
