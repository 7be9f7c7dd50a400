//! Sandbox integrity, tried as a hostile contestant and a hostile tenant would, against the
//! real cluster and the engine's running operator (`make up`): a program must not forge its
//! result, reach the runner (PID 1 of its container), escape a limit, flood the node, reach
//! another sandbox or the node over any protocol, harm another Execution's sandbox, or wedge
//! the queue. Every attack here is one that worked on the engine before the integrity work
//! (the observed values are in the closing note of that work), unless it says "guard".
//!
//! Network probes only ever target listeners this test starts itself: inside a sandbox of its
//! own, or on the node bound to the pod bridge's own interface.
//!
//! Every test runs twice: `runc::*` on the cluster's default runtime through the engine's
//! operator, `gvisor::*` under the gvisor RuntimeClass through an operator of the test's own;
//! and all but one a third time, `warm::*`, on warm Pods with reuse (pools of the test's own,
//! see `rce_tests::warm::with_warm_pools`): later attacks run in Pods earlier ones ran in.

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{ListParams, LogParams, Patch, PatchParams, PostParams},
    ResourceExt,
};
use rce_api::{Execution, Phase, Verdict};
use rce_tests::exec::Engine;
use rce_tests::exec::{describe, epoch_secs, message, phase, sandbox_name, stderr, stdout, verdict};
use rce_tests::{on_runc_gvisor_and_warm, test_image};
use serde_json::json;

use Verdict::*;

/// How long a batch of attacks may take in all.
const WAIT: Duration = Duration::from_secs(240);
/// Pod start to recorded result, beyond the wall limits: Pod start-up, log read, status write.
const END_TO_END_MARGIN_S: i64 = 15;

type Check = fn(&Execution) -> Result<(), String>;

struct Attack {
    name: &'static str,
    spec: serde_json::Value,
    check: Check,
}

fn attack(
    name: &'static str,
    language: &str,
    source: &str,
    limits: serde_json::Value,
    check: Check,
) -> Attack {
    let mut spec = json!({"language": language, "source": source});
    if !limits.is_null() {
        spec["limits"] = limits;
    }
    Attack { name, spec, check }
}

impl Attack {
    fn expecting(mut self, expected: &str) -> Self {
        self.spec["expectedOutput"] = json!(expected);
        self
    }
}

fn st(e: &Execution) -> rce_api::ExecutionStatus {
    e.status.clone().unwrap_or_default()
}

fn completed_with(e: &Execution, v: Verdict) -> Result<(), String> {
    if phase(e) != Some(Phase::Completed) || verdict(e) != Some(v) {
        return Err(format!("expected Completed/{v:?}, got {:?}/{:?}", phase(e), verdict(e)));
    }
    Ok(())
}

/// The Execution reached its terminal phase within its wall limit plus the margin.
fn in_bounded_time(e: &Execution, wall_ms: u64) -> Result<(), String> {
    let s = st(e);
    let (Some(start), Some(end)) = (s.started_at.as_deref(), s.finished_at.as_deref()) else {
        return Err("no startedAt/finishedAt".into());
    };
    let span = epoch_secs(end).unwrap_or(i64::MAX) - epoch_secs(start).unwrap_or(0);
    let bound = wall_ms.div_ceil(1000) as i64 + END_TO_END_MARGIN_S;
    if span > bound {
        return Err(format!("sandbox start to result took {span} s, more than {bound} s"));
    }
    Ok(())
}

/// Submit every attack with a normal Execution beside it, wait, judge each; the error lists
/// every problem, and the observed values of every attack are printed either way.
async fn run_attacks(eng: &Engine, attacks: Vec<Attack>) -> Result<()> {
    let mut specs = Vec::new();
    for a in &attacks {
        specs.push((a.name.to_string(), a.spec.clone()));
        specs.push((
            format!("{}-beside", a.name),
            json!({"language": "python", "source": format!("print('beside {}')", a.name)}),
        ));
    }
    eng.submit_all(&specs).await?;
    let names: Vec<String> = specs.iter().map(|s| s.0.clone()).collect();
    let done = eng.wait_settled(&names, WAIT).await?;
    let mut problems = Vec::new();
    for a in &attacks {
        let Some(e) = done.get(a.name) else {
            problems.push(format!("{}: vanished", a.name));
            continue;
        };
        let s = st(e);
        eprintln!(
            "{:28} {:?}/{:?} exit={:?} signal={:?} wall={:?}ms cpu={:?}ms mem={:?}KiB attempts={:?} message={:?} stdout={:?}",
            a.name,
            s.phase,
            s.verdict,
            s.exit_code,
            s.signal,
            s.wall_time_ms,
            s.time_ms,
            s.memory_kib,
            s.attempts,
            s.message,
            stdout(e).chars().take(300).collect::<String>()
        );
        if !phase(e).is_some_and(Phase::is_terminal) {
            problems.push(format!("{}: not finished after {WAIT:?}: {}", a.name, describe(e)));
            continue;
        }
        if let Err(why) = (a.check)(e) {
            problems.push(format!("{}: {why}; status: {}", a.name, describe(e)));
        }
        let beside = format!("{}-beside", a.name);
        match done.get(&beside) {
            Some(b)
                if verdict(b) == Some(Accepted) && stdout(b).trim_end() == format!("beside {}", a.name) => {}
            Some(b) => problems.push(format!("{beside}: the normal Execution beside it: {}", describe(b))),
            None => problems.push(format!("{beside}: vanished")),
        }
    }
    ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Forged results.

/// A complete, well-formed result line of the old format claiming Accepted with stdout "42",
/// then the start of another line left unterminated (so that the runner's own line, printed
/// after it, is not at the start of a line).
const FAKE_RESULT: &str = r#"{"rceResult":{"outcome":"ran","compile":null,"run":{"exitCode":0,"signal":null,"signalName":null,"stdout":"42","stderr":"","stdoutTruncated":false,"stderrTruncated":false,"timeMs":1,"wallTimeMs":1,"memoryKib":1,"limit":null},"message":null}}"#;

fn forge_bash(target: &str) -> String {
    format!("printf '%s\\n{{\"rceRes' '{FAKE_RESULT}' > {target}\necho wrong\nexit 7\n")
}

fn forge_python() -> String {
    format!(
        "import sys\nfor p in ['/proc/1/fd/1', '/proc/1/fd/2']:\n    try:\n        with open(p, 'w') as f:\n            f.write({FAKE_RESULT:?} + '\\n{{\"rceRes')\n    except OSError as e:\n        print(p, e, file=sys.stderr)\nprint('wrong')\nsys.exit(7)\n"
    )
}

const FORGE_C: &str = r#"#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *fake = argv[1];
    for (int i = 1; i <= 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "/proc/1/fd/%d", i);
        int fd = open(path, O_WRONLY);
        if (fd < 0) { perror(path); continue; }
        write(fd, fake, strlen(fake));
        write(fd, "\n{\"rceRes", 9);
        close(fd);
    }
    puts("wrong");
    return 7;
}
"#;

fn wrong_and_exit_7(e: &Execution) -> Result<(), String> {
    completed_with(e, RuntimeError)?;
    let s = st(e);
    if s.exit_code != Some(7) || !stdout(e).starts_with("wrong") {
        return Err(format!(
            "expected exit code 7 and stdout \"wrong\", got {:?} and {:?}",
            s.exit_code,
            stdout(e)
        ));
    }
    Ok(())
}

async fn a_program_cannot_forge_its_result(eng: &Engine) -> Result<()> {
    {
        let mut c = attack("forge-c", "c", FORGE_C, json!(null), wrong_and_exit_7).expecting("42");
        c.spec["args"] = json!([FAKE_RESULT]);
        run_attacks(
            eng,
            vec![
                attack(
                    "forge-bash-stdout",
                    "bash",
                    &forge_bash("/proc/1/fd/1"),
                    json!(null),
                    wrong_and_exit_7,
                )
                .expecting("42"),
                attack(
                    "forge-bash-stderr",
                    "bash",
                    &forge_bash("/proc/1/fd/2"),
                    json!(null),
                    wrong_and_exit_7,
                )
                .expecting("42"),
                attack("forge-python", "python", &forge_python(), json!(null), wrong_and_exit_7)
                    .expecting("42"),
                c,
                // Guard: a result line on the program's own stdout is just output.
                attack(
                    "forge-own-stdout",
                    "bash",
                    &format!("printf '%s\\n' '{FAKE_RESULT}'\nexit 3\n"),
                    json!(null),
                    |e| {
                        completed_with(e, RuntimeError)?;
                        if st(e).exit_code != Some(3) || !stdout(e).contains("rceResult") {
                            return Err("expected exit code 3 with the fake line as plain stdout".into());
                        }
                        Ok(())
                    },
                )
                .expecting("42"),
            ],
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The runner (PID 1) out of the program's reach.

/// Tries every way of touching PID 1 that the same uid allows on plain Linux; prints one line
/// per attempt, `REACHED` when the kernel let it through.
const REACH_RUNNER: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
static void report(const char *what, int reached) {
    printf("%s: %s%s%s\n", what, reached ? "REACHED" : "denied", reached ? "" : " ", reached ? "" : strerror(errno));
}
int main(void) {
    char buf[256];
    static char env[65536];
    int fd = open("/proc/1/environ", O_RDONLY);
    ssize_t envn = fd >= 0 ? read(fd, env, sizeof env - 1) : -1;
    report("read environ", envn > 0);
    if (envn > 0) {
        /* What it shows of the key: the runner scrubs it before any stage starts. */
        env[envn] = 0;
        for (ssize_t i = 0; i < envn; i += strlen(env + i) + 1) {
            if (strncmp(env + i, "RCE_RESULT_KEY=", 15) == 0) {
                const char *v = env + i + 15;
                printf("key in environ: %s\n", strspn(v, "0") == strlen(v) ? "scrubbed" : "LEAKED");
            }
        }
    }
    fd = open("/proc/1/mem", O_RDONLY);
    report("open mem", fd >= 0);
    fd = open("/proc/1/maps", O_RDONLY);
    report("read maps", fd >= 0 && read(fd, buf, sizeof buf) > 0);
    DIR *d = opendir("/proc/1/fd");
    report("list fds", d != NULL && readdir(d) != NULL);
    report("readlink exe", readlink("/proc/1/exe", buf, sizeof buf) > 0);
    fd = open("/proc/1/fd/1", O_WRONLY);
    report("open runner stdout", fd >= 0);
    ssize_t len = readlink("/proc/1/fd/1", buf, sizeof buf - 1);
    if (len > 0) { buf[len] = 0; printf("runner stdout is: %s\n", buf); }
    fd = open("/proc/1/oom_score_adj", O_WRONLY);
    report("write oom_score_adj", fd >= 0 && write(fd, "900", 3) == 3);
    report("ptrace seize", ptrace(PTRACE_SEIZE, 1, 0, 0) == 0);
    struct iovec l = {buf, 16}, r = {(void *)0x10000, 16};
    long n = process_vm_readv(1, &l, 1, &r, 1, 0);
    report("process_vm_readv", n >= 0 || errno == EFAULT);
    report("setpriority runner", setpriority(PRIO_PROCESS, 1, 19) == 0);
    report("setpriority pgrp 1", setpriority(PRIO_PGRP, 1, 19) == 0);
    report("setpriority user", setpriority(PRIO_USER, getuid(), 19) == 0);
    struct sched_param sp = {0};
    report("sched_setscheduler runner", sched_setscheduler(1, SCHED_IDLE, &sp) == 0);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    report("sched_setaffinity runner", sched_setaffinity(1, sizeof set, &set) == 0);
    struct rlimit rl = {0, 0};
    report("prlimit runner", prlimit(1, RLIMIT_CORE, &rl, NULL) == 0);
    report("ioprio_set runner", syscall(SYS_ioprio_set, 1, 1, 3 << 13) == 0);
    report("ioprio_set user", syscall(SYS_ioprio_set, 3, getuid(), 3 << 13) == 0);
    report("kill runner", kill(1, SIGCONT) == 0);
    report("tgkill runner", syscall(SYS_tgkill, 1, 1, SIGCONT) == 0);
    int pfd = syscall(SYS_pidfd_open, 1, 0);
    report("pidfd_open runner", pfd >= 0);
    return 0;
}
"#;

const REACH_ATTEMPTS: &[&str] = &[
    "read environ",
    "open mem",
    "read maps",
    "list fds",
    "readlink exe",
    "open runner stdout",
    "write oom_score_adj",
    "ptrace seize",
    "process_vm_readv",
    "setpriority runner",
    "setpriority pgrp 1",
    "setpriority user",
    "sched_setscheduler runner",
    "sched_setaffinity runner",
    "prlimit runner",
    "ioprio_set runner",
    "ioprio_set user",
    "kill runner",
    "tgkill runner",
    "pidfd_open runner",
];

fn nothing_reached(e: &Execution) -> Result<(), String> {
    reached_only(e, &[])
}

/// gVisor's /proc does not honour non-dumpable for a process's environ, maps and fd list:
/// these may be read there, and nothing more. What they show is harmless: the key was
/// scrubbed, and stdout and stderr are parked off every file table (the runner's fd 1 is
/// /dev/null while the program runs).
fn nothing_harmful_reached_under_gvisor(e: &Execution) -> Result<(), String> {
    reached_only(e, &["read environ", "read maps", "list fds", "readlink exe", "open runner stdout"])?;
    let out = stdout(e);
    if out.contains("LEAKED") {
        return Err("the result key was readable in the runner's environ".into());
    }
    if let Some(l) = out.lines().find(|l| l.starts_with("runner stdout is:")) {
        if l != "runner stdout is: /dev/null" {
            return Err(format!("the runner's stdout was reachable: {l}"));
        }
    }
    Ok(())
}

fn reached_only(e: &Execution, allowed: &[&str]) -> Result<(), String> {
    completed_with(e, Accepted)?;
    let out = stdout(e);
    let reached: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("REACHED") && !allowed.iter().any(|a| l.starts_with(&format!("{a}: "))))
        .collect();
    if !reached.is_empty() {
        return Err(format!("the program reached the runner: {reached:?}"));
    }
    let missing: Vec<&&str> = REACH_ATTEMPTS
        .iter()
        .filter(|a| !allowed.contains(a) && !out.lines().any(|l| l.starts_with(&format!("{a}: denied"))))
        .collect();
    if !missing.is_empty() {
        return Err(format!("attempts without a \"denied\" line: {missing:?}"));
    }
    Ok(())
}

/// A helper process seizes and interrupts PID 1, and releases it only once the main process
/// has exited; meanwhile the main process `sleep`s or holds memory.
const FREEZE_RUNNER: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    pid_t parent = getpid();
    if (fork() == 0) {
        if (ptrace(PTRACE_SEIZE, 1, 0, 0) != 0) { perror("seize"); _exit(1); }
        ptrace(PTRACE_INTERRUPT, 1, 0, 0);
        while (getppid() == parent) usleep(10000);
        _exit(0);
    }
    usleep(200000);
    if (strcmp(argv[1], "sleep") == 0) {
        sleep(7);
    } else {
        pid_t workers[6];
        for (int i = 0; i < 6; i++) {
            if ((workers[i] = fork()) == 0) {
                size_t n = 60u << 20;
                volatile char *p = malloc(n);
                for (size_t j = 0; p && j < n; j += 4096) p[j] = 1;
                sleep(3);
                _exit(0);
            }
        }
        for (int i = 0; i < 6; i++) waitpid(workers[i], NULL, 0);
    }
    puts("done");
    return 0;
}
"#;

async fn the_runner_is_out_of_the_programs_reach(eng: &Engine) -> Result<()> {
    {
        let mut sleep = attack("freeze-then-sleep", "c", FREEZE_RUNNER, json!({"wallTimeMs": 2000}), |e| {
            completed_with(e, TimeLimitExceeded)?;
            match st(e).wall_time_ms {
                Some(w) if w <= 3000 => in_bounded_time(e, 2000),
                w => Err(format!("wall time {w:?} ms: the 2000 ms limit was not enforced")),
            }
        });
        sleep.spec["args"] = json!(["sleep"]);
        let mut hold = attack("freeze-then-hold-memory", "c", FREEZE_RUNNER, json!({"memoryMiB": 64}), |e| {
            completed_with(e, MemoryLimitExceeded)?;
            match st(e).memory_kib {
                Some(m) if m > 64 * 1024 => Ok(()),
                m => Err(format!("memoryKiB {m:?} is not above the 64 MiB limit")),
            }
        });
        hold.spec["args"] = json!(["memory"]);
        let reach: Check = if eng.gvisor() { nothing_harmful_reached_under_gvisor } else { nothing_reached };
        run_attacks(eng, vec![attack("reach-runner", "c", REACH_RUNNER, json!(null), reach), sleep, hold])
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Memory of every kind, CPU time across processes, the process limit.

fn mle_above(e: &Execution, limit_mib: u64) -> Result<(), String> {
    completed_with(e, MemoryLimitExceeded)?;
    match st(e).memory_kib {
        Some(m) if m > limit_mib * 1024 => Ok(()),
        m => Err(format!("memoryKiB {m:?} is not above the {limit_mib} MiB limit")),
    }
}

const MEMFD_C: &str = r#"#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    /* 100 memfds of 3 MiB: each under the file size limit, 300 MiB in all. */
    size_t n = 3u << 20;
    for (int i = 0; i < 100; i++) {
        int fd = memfd_create("hold", 0);
        if (fd < 0 || ftruncate(fd, n) != 0) { perror("memfd"); return 1; }
        char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        memset(p, 1, n);
        munmap(p, n);
    }
    sleep(1);
    puts("held 300 MiB in memfds");
    return 0;
}
"#;

async fn memory_of_every_kind_counts_and_limits_hold_across_processes(eng: &Engine) -> Result<()> {
    {
        run_attacks(
            eng,
            vec![
                attack(
                    "memfd-python",
                    "python",
                    "import os, time\n# Files of at most 3 MiB each: the file size limit (4 MiB) holds for memfds too.\nfds = []\nfor _ in range(17):\n    fd = os.memfd_create('hold')\n    os.write(fd, b'x' * (3 << 20))\n    fds.append(fd)\ntime.sleep(1)\nprint('held 51 MiB')\n",
                    json!({"memoryMiB": 32}),
                    |e| mle_above(e, 32),
                ),
                // The compile stage of C has 512 MiB; the run stage must be held to its own 64.
                attack("memfd-c-run-stage", "c", MEMFD_C, json!({"memoryMiB": 64}), |e| mle_above(e, 64)),
                attack(
                    "dev-shm",
                    "python",
                    "import time\nfor i in range(16):\n    with open(f'/dev/shm/hold{i}', 'wb') as f:\n        f.write(b'x' * (3 << 20))\ntime.sleep(1)\nprint('held 48 MiB in /dev/shm')\n",
                    json!({"memoryMiB": 32}),
                    |e| mle_above(e, 32),
                ),
                attack(
                    "tmpfs-files-and-heap",
                    "python",
                    "import time\nfor d in ['/tmp', '/work']:\n    for i in range(4):\n        with open(f'{d}/f{i}', 'wb') as f:\n            f.write(b'x' * (3 << 20))\nheap = bytearray(12 << 20)\nfor i in range(0, len(heap), 4096):\n    heap[i] = 1\ntime.sleep(1)\nprint('held 36 MiB')\n",
                    json!({"memoryMiB": 32}),
                    |e| mle_above(e, 32),
                ),
                // Four processes of 1.5 s CPU each: no single one reaches the 2 s limit, together
                // they do; the limit must stop them while they run.
                attack(
                    "cpu-across-processes",
                    "python",
                    "import os, time\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n        t = time.process_time()\n        while time.process_time() - t < 1.5:\n            pass\n        os._exit(0)\n    kids.append(pid)\nfor k in kids:\n    os.waitpid(k, 0)\nprint('spun 6 s of CPU')\n",
                    json!({"cpuTimeMs": 2000, "wallTimeMs": 15000}),
                    |e| {
                        completed_with(e, TimeLimitExceeded)?;
                        let s = st(e);
                        if s.time_ms.unwrap_or(0) < 2000 {
                            return Err(format!("timeMs {:?} is below the limit", s.time_ms));
                        }
                        // Stopped at the limit, not after all 6 s were spent (the wall time
                        // depends on what else runs on the node; the CPU time does not).
                        match s.time_ms {
                            Some(t) if t < 3000 => Ok(()),
                            t => Err(format!("timeMs {t:?}: the CPU limit was only judged afterwards")),
                        }
                    },
                ),
                attack(
                    "fork-bomb-bash",
                    "bash",
                    ":(){ :|:& };:",
                    json!({"processes": 32, "wallTimeMs": 5000}),
                    if eng.gvisor() {
                        // gVisor's forks are slow and CPU-heavy: the CPU limit may come first.
                        |e| {
                            if verdict(e) == Some(TimeLimitExceeded) && message(e).contains("CPU time") {
                                return Ok(());
                            }
                            completed_with(e, RuntimeError)?;
                            if !message(e).contains("process limit") {
                                return Err("the message does not say the process limit was reached".into());
                            }
                            Ok(())
                        }
                    } else {
                        |e| {
                            completed_with(e, RuntimeError)?;
                            if !message(e).contains("process limit") {
                                return Err("the message does not say the process limit was reached".into());
                            }
                            Ok(())
                        }
                    },
                ),
                // Guard: a program within its process limit is not flagged.
                attack(
                    "threads-within-limit",
                    "python",
                    "import threading, time\nts = [threading.Thread(target=time.sleep, args=(0.3,)) for _ in range(10)]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint('ok')\n",
                    json!({"processes": 32}),
                    |e| completed_with(e, Accepted),
                ),
            ],
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Wedges.

fn terminal_in_time(e: &Execution) -> Result<(), String> {
    if !phase(e).is_some_and(Phase::is_terminal) {
        return Err("not terminal".into());
    }
    in_bounded_time(e, 5000)
}

fn a_flood_of(what: char) -> fn(&Execution) -> Result<(), String> {
    match what {
        '<' => |e| {
            completed_with(e, Accepted)?;
            terminal_in_time(e)?;
            let out = stdout(e);
            if out.is_empty() || out.chars().any(|c| c != '<') {
                return Err(format!("stdout should be a run of '<', got {} bytes", out.len()));
            }
            Ok(())
        },
        _ => |e| {
            completed_with(e, Accepted)?;
            terminal_in_time(e)?;
            let out = stdout(e);
            if out.is_empty() || out.chars().any(|c| c != '\u{1}') {
                return Err(format!("stdout should be a run of U+0001, got {} bytes", out.len()));
            }
            Ok(())
        },
    }
}

async fn nothing_a_program_prints_wedges_the_queue(eng: &Engine) -> Result<()> {
    {
        let bad_byte = "printf '\\377\\n' > /proc/1/fd/1\nprintf '\\376\\377' > /proc/1/fd/2\necho done\n";
        let lt = "import sys\nsys.stdout.write('<' * 131072)\nsys.stderr.write('<' * 131072)\n";
        let ctl = "import sys\nsys.stdout.write('\\x01' * 131072)\nsys.stderr.write('\\x01' * 131072)\n";
        let limits = json!({"outputBytes": 131072, "wallTimeMs": 5000});
        let bad_byte_check: Check = |e| {
            terminal_in_time(e)?;
            if phase(e) == Some(Phase::Completed) && stdout(e).contains("done") {
                Ok(())
            } else {
                Err("expected Completed with \"done\"".into())
            }
        };
        // Six at once: as many as the engine runs together, so a wedge would hold every slot.
        run_attacks(
            eng,
            vec![
                attack("bad-byte-1", "bash", bad_byte, limits.clone(), bad_byte_check),
                attack("bad-byte-2", "bash", bad_byte, limits.clone(), bad_byte_check),
                attack("lt-flood-1", "python", lt, limits.clone(), a_flood_of('<')),
                attack("lt-flood-2", "python", lt, limits.clone(), a_flood_of('<')),
                attack("ctl-flood-1", "python", ctl, limits.clone(), a_flood_of('\u{1}')),
                attack("ctl-flood-2", "python", ctl, limits.clone(), a_flood_of('\u{1}')),
                // Guard: raw non-UTF-8 bytes on the program's own stdout.
                attack("raw-bytes-own-stdout", "bash", "printf '\\376\\377\\000A\\n'", limits.clone(), |e| {
                    completed_with(e, Accepted)?;
                    terminal_in_time(e)
                }),
            ],
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The node's disk.

/// The sandbox Pod of `name`, once it exists: its cold sandbox, or the warm Pod claimed for it.
async fn sandbox_pod(eng: &Engine, name: &str, timeout: Duration) -> Result<Pod> {
    let deadline = Instant::now() + timeout;
    let uid = eng.executions().get(name).await?.uid().unwrap_or_default();
    loop {
        let lp = ListParams::default().labels(&format!("{}={name}", rce_api::EXECUTION_LABEL));
        if let Some(p) = eng.pods().list(&lp).await?.items.into_iter().next() {
            return Ok(p);
        }
        let lp = ListParams::default().labels(&format!("{}={uid}", rce_api::warmpool::CLAIMED_BY_LABEL));
        if let Some(p) = eng.pods().list(&lp).await?.items.into_iter().next() {
            return Ok(p);
        }
        // A warm run over before the claim was seen: its Pod stays (reuse).
        let e = eng.executions().get(name).await?;
        if let (Some(_), Some(pod)) = (st(&e).warm_pool, st(&e).pod_name) {
            if let Some(p) = eng.pods().get_opt(&pod).await? {
                return Ok(p);
            }
        }
        ensure!(Instant::now() < deadline, "no sandbox Pod for {name} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_container_log_holds_only_what_the_runner_writes(eng: &Engine) -> Result<()> {
    {
        let flood = "timeout 3 sh -c 'yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA > /proc/1/fd/2'\necho done\n";
        eng.submit(
            "flood",
            json!({"language": "bash", "source": flood, "limits": {"outputBytes": 1024, "wallTimeMs": 6000}}),
        )
        .await?;
        let pod = sandbox_pod(eng, "flood", Duration::from_secs(60)).await?.name_any();
        // The container log as the API serves it, sampled while the program runs.
        let cap = 4 << 20;
        let lp = LogParams { limit_bytes: Some(cap), ..Default::default() };
        let mut largest = 0usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(bytes) = eng.pods().logs(&pod, &lp).await.map(|l| l.len()) {
                largest = largest.max(bytes);
            }
            let e = eng.executions().get("flood").await?;
            if phase(&e).is_some_and(Phase::is_terminal) || Instant::now() > deadline {
                eprintln!("flood: largest container log seen {largest} bytes; {}", describe(&e));
                ensure!(
                    phase(&e).is_some_and(Phase::is_terminal),
                    "the flood did not finish: {}",
                    describe(&e)
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        ensure!(
            largest < 256 * 1024,
            "the program wrote into the container log on the node: {largest} bytes seen (of at most {cap} read)"
        );
        // Every file the kubelet mounts into the container from the node's disk (the
        // termination-message file, /etc/hosts, ...): written to, and grown with
        // fallocate(KEEP_SIZE), which RLIMIT_FSIZE does not see.
        let probe = r#"import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
virtual = {'tmpfs', 'proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue', 'overlay', 'devtmpfs', 'shm'}
report = {}
for line in open('/proc/self/mountinfo'):
    left, right = line.split(' - ')
    point, fstype = left.split()[4], right.split()[0]
    if fstype in virtual or not os.path.isfile(point):
        continue
    r = {}
    try:
        with open(point, 'ab') as f:
            for _ in range(8):
                f.write(b'x' * (1 << 20))
        r['write'] = 'WROTE'
    except OSError as e:
        r['write'] = e.strerror
    try:
        fd = os.open(point, os.O_WRONLY)
        rc = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(300 << 20))
        r['fallocate'] = 'ALLOCATED' if rc == 0 else os.strerror(ctypes.get_errno())
        os.close(fd)
    except OSError as e:
        r['fallocate'] = e.strerror
    try:
        st = os.stat(point)
        r['size'], r['blocks'] = st.st_size, st.st_blocks * 512
    except OSError as e:
        r['size'] = e.strerror
    report[point] = r
for p in ['/dev/termination-log']:
    report.setdefault(p, {'exists': os.path.exists(p)})
print(json.dumps(report))
"#;
        let e = eng
            .run(
                "node-files",
                json!({"language": "python", "source": probe, "limits": {"fileSizeKiB": 1024}}),
                WAIT,
            )
            .await?;
        ensure!(verdict(&e) == Some(Accepted), "the probe did not run: {}", describe(&e));
        let r: serde_json::Value = serde_json::from_str(stdout(&e).trim()).context("the probe's JSON")?;
        eprintln!("files from the node's disk: {r}");
        let files = r.as_object().context("a JSON object")?;
        ensure!(files.keys().any(|k| k == "/etc/hosts"), "the probe did not find /etc/hosts: {r}");
        for (path, f) in files {
            ensure!(f["fallocate"] != json!("ALLOCATED"), "{path}: fallocate(KEEP_SIZE) took node disk: {r}");
            let used = f["blocks"].as_u64().unwrap_or(0).max(f["size"].as_u64().unwrap_or(0));
            ensure!(used <= 1 << 20, "{path}: {used} bytes on the node's disk, past fileSizeKiB: {r}");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The result key.

async fn the_result_key_never_reaches_the_program(eng: &Engine) -> Result<()> {
    {
        let probe = "sleep 3\nenv\nfor f in /etc/rce/* /proc/1/environ /proc/1/cmdline; do echo \"== $f\"; cat \"$f\"; echo; done 2>&1\ngrep -rs . /etc/rce /tmp /work /dev/shm 2>/dev/null | head -c 20000\n";
        eng.submit("key", json!({"language": "bash", "source": probe, "limits": {"wallTimeMs": 8000}}))
            .await?;
        let pod = sandbox_pod(eng, "key", Duration::from_secs(60)).await?;
        let env = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        let key = env
            .iter()
            .find(|v| v.name == rce_operator::sandbox::RESULT_KEY_ENV)
            .and_then(|v| v.value.clone())
            .context("the sandbox Pod has no result key")?;
        ensure!(key.len() >= 32, "the result key is too short: {} characters", key.len());
        let done = eng.wait_all(&["key".to_string()], WAIT).await?;
        let e = &done["key"];
        ensure!(verdict(e) == Some(Accepted), "the probe did not run: {}", describe(e));
        ensure!(!stdout(e).contains(&key) && !stderr(e).contains(&key), "the program read the result key");
        ensure!(stdout(e).contains("HOME="), "the probe printed no environment: {}", describe(e));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Other Executions' sandboxes.

/// FNV-1a, 32 bits of the 64-bit hash: what sandbox names were shortened with.
fn fnv32(data: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as u32
}

/// Two distinct valid Execution names, longer than a Pod name may be, with the same first 60
/// characters and the same 32-bit hash: under name-derived sandbox names they would share a
/// sandbox Pod. A birthday search finds them in about 2^16 tries.
fn colliding_names() -> (String, String) {
    let prefix = format!("collide-{}-", rce_tests::random_suffix());
    let prefix = format!("{prefix}{}", "x".repeat(60 - prefix.len()));
    let mut seen = std::collections::HashMap::new();
    for i in 0u64.. {
        let name = format!("{prefix}{i:x}");
        if let Some(other) = seen.insert(fnv32(name.as_bytes()), name.clone()) {
            return (other, name);
        }
    }
    unreachable!()
}

async fn sandbox_names_cannot_collide(eng: &Engine) -> Result<()> {
    {
        // Two Executions whose names collide under a 32-bit hash, running at the same time.
        let (victim, attacker) = colliding_names();
        let slow = json!({"language": "bash", "source": "sleep 4; echo ran", "limits": {"wallTimeMs": 8000}});
        eng.submit(&victim, slow.clone()).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        eng.submit(&attacker, slow).await?;
        let done = eng.wait_all(&[victim.clone(), attacker.clone()], WAIT).await?;
        for n in [&victim, &attacker] {
            let e = &done[n];
            ensure!(
                verdict(e) == Some(Accepted) && st(e).attempts == Some(1) && stdout(e).trim() == "ran",
                "{n}: expected Accepted in one attempt: {}",
                describe(e)
            );
        }
        let (v, a) = (&done[&victim], &done[&attacker]);
        ensure!(
            st(v).pod_name != st(a).pod_name,
            "two Executions shared the sandbox name {:?}",
            st(v).pod_name
        );
        Ok(())
    }
}

async fn a_foreign_pod_holding_a_sandbox_name_is_never_deleted(eng: &Engine) -> Result<()> {
    {
        // A Pod nobody owns already holds the name of an Execution's sandbox.
        let held = format!("held-{}", rce_tests::random_suffix());
        let e: Execution = serde_json::from_value(json!({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
            // No operator serves this label: the Execution waits until it is removed.
            "metadata": {"name": "squatted", "labels": {"rce.dev/operator": held}},
            "spec": {"language": "bash", "source": "echo should-not-run"},
        }))?;
        let e = eng.executions().create(&PostParams::default(), &e).await?;
        let name = sandbox_name(&e, 1);
        let foreign: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"purpose": "foreign"}},
            "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": false, "enableServiceLinks": false,
                "terminationGracePeriodSeconds": 1, "activeDeadlineSeconds": 120,
                "securityContext": {"runAsNonRoot": true, "runAsUser": 123458, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": test_image()?, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sleep", "120"],
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "100m", "memory": "16Mi"}}}]
            }
        }))?;
        let foreign = eng.pods().create(&PostParams::default(), &foreign).await?;
        let patch = json!({"metadata": {"labels": {"rce.dev/operator": null}}});
        eng.executions().patch("squatted", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let done = eng.wait_all(&["squatted".to_string()], WAIT).await?;
        let e = &done["squatted"];
        let now = eng.pods().get_opt(&name).await?;
        ensure!(
            now.as_ref().is_some_and(|p| p.uid() == foreign.uid() && p.metadata.deletion_timestamp.is_none()),
            "the foreign Pod {name} was deleted or replaced; the Execution: {}",
            describe(e)
        );
        ensure!(
            phase(e) == Some(Phase::Failed) && message(e).contains(&name),
            "expected Failed naming the foreign Pod {name}: {}",
            describe(e)
        );
        ensure!(!stdout(e).contains("should-not-run"), "the program ran in spite of the foreign Pod");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The network, IPv4 and IPv6.

/// One sandbox on the pod network, for `argv[2]` seconds: listens on UDP and TCP over IPv4
/// and IPv6; announces itself to IPv6 all-nodes multicast on its link, IPv4 broadcast and (if
/// given) the other sandbox's IPv4 address; answers whatever it hears and connects back over
/// TCP to whoever announced itself. Prints `REACHED` with the peers, or `reached nothing`.
const PEER: &str = r#"import select, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
other4 = sys.argv[3] if len(sys.argv) > 3 else None
own = {'127.0.0.1', '::1'}
for line in open('/proc/net/if_inet6'):
    h = line.split()[0]
    own.add(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(h)))
try:
    me4 = socket.gethostbyname(socket.gethostname())
except OSError:
    me4 = '0.0.0.0'
own.add(me4)
bcast = '.'.join(me4.split('.')[:3] + ['255'])
try:
    ifindex = socket.if_nametoindex('eth0')
except OSError:
    ifindex = 0
socks, errors, reached = [], set(), []
def attempt(f):
    try:
        f()
    except OSError as e:
        errors.add(str(e))
for fam, addr in ((socket.AF_INET6, '::'), (socket.AF_INET, '0.0.0.0')):
    for typ in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(fam, typ)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if typ == socket.SOCK_DGRAM and fam == socket.AF_INET:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind((addr, port))
        if typ == socket.SOCK_STREAM:
            s.listen(8)
        socks.append(s)
u6, t6, u4, t4 = socks
def connect_back(host):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.settimeout(0.3)
    t.connect((host, port, 0, ifindex) if fam == socket.AF_INET6 else (host, port))
    t.close()
    reached.append(('tcp to', host))
until, beacon = time.time() + seconds, 0
while time.time() < until:
    if time.time() >= beacon:
        beacon = time.time() + 0.3
        attempt(lambda: u6.sendto(b'hello', ('ff02::1', port, 0, ifindex)))
        for dst in ['255.255.255.255', bcast] + ([other4] if other4 else []):
            attempt(lambda: u4.sendto(b'hello', (dst, port)))
        if other4:
            attempt(lambda: connect_back(other4))
    r, _, _ = select.select(socks, [], [], 0.1)
    for s in r:
        if s.type == socket.SOCK_STREAM:
            c, a = s.accept()
            reached.append(('tcp from', a[0]))
            c.close()
            continue
        data, a = s.recvfrom(100)
        host = a[0].split('%')[0]
        if host in own:
            continue
        reached.append(('udp from', host, data.decode(errors='replace')))
        if data == b'hello':
            attempt(lambda: s.sendto(b'answer', a))
            attempt(lambda: connect_back(host))
print('REACHED' if reached else 'reached nothing', reached[:12], sorted(errors))
"#;

/// `ip -j` on the node.
fn ip_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = std::process::Command::new("ip").arg("-j").args(args).output().context("running ip")?;
    ensure!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Listeners on the node, bound to the pod bridge's interface only (so nothing but the pod
/// network can reach them): UDP and TCP, IPv4 and IPv6. Counts what arrives.
struct NodeListeners {
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl NodeListeners {
    fn start(bridge: &str, port: u16) -> Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for addr in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
            let addr: SocketAddr = addr.parse()?;
            for (ty, proto) in [(Type::DGRAM, Protocol::UDP), (Type::STREAM, Protocol::TCP)] {
                let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
                if addr.is_ipv6() {
                    s.set_only_v6(true)?;
                }
                s.set_reuse_address(true)?;
                s.bind_device(Some(bridge.as_bytes())).context("SO_BINDTODEVICE (the test runs as root)")?;
                s.bind(&addr.into())?;
                s.set_nonblocking(true)?;
                let (hits, stop) = (hits.clone(), stop.clone());
                if ty == Type::STREAM {
                    s.listen(8)?;
                    let l: TcpListener = s.into();
                    threads.push(std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            if l.accept().is_ok() {
                                hits.fetch_add(1, Ordering::Relaxed);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }));
                } else {
                    let u: UdpSocket = s.into();
                    threads.push(std::thread::spawn(move || {
                        let mut buf = [0u8; 64];
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok((_, from)) = u.recv_from(&mut buf) {
                                hits.fetch_add(1, Ordering::Relaxed);
                                let _ = u.send_to(b"node", from);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }));
                }
            }
        }
        Ok(Self { hits, stop, threads })
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.hits.load(Ordering::Relaxed)
    }
}

async fn no_traffic_between_sandboxes_or_to_the_node_over_ipv4_or_ipv6(eng: &Engine) -> Result<()> {
    // Safety first: the pod bridge must connect only Pods (veth pairs), so that nothing sent
    // on it can leave the machine.
    // Every node's pod bridge (rce0 for node 1, rce1, rce2 ... for the others): the peers
    // below may be scheduled on any node.
    let bridges: Vec<String> = ip_json(&["link", "show", "type", "bridge"])?
        .as_array()
        .context("ip -j output")?
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .filter(|n| {
            n.strip_prefix("rce").is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    ensure!(
        bridges.iter().any(|b| b == "rce0"),
        "the local cluster's pod bridge rce0 is missing: {bridges:?}"
    );
    for bridge in &bridges {
        let ports = ip_json(&["-d", "link", "show", "master", bridge])
            .with_context(|| format!("the local cluster's pod bridge {bridge}"))?;
        for p in ports.as_array().context("ip -j output")? {
            let kind = p["linkinfo"]["info_kind"].as_str().unwrap_or("");
            ensure!(kind == "veth", "the pod bridge {bridge} has a port that is not a Pod's veth: {p}");
        }
        let addrs = ip_json(&["addr", "show", "dev", bridge])?;
        eprintln!("{bridge} addresses: {}", addrs[0]["addr_info"]);
    }
    let bridge = bridges.join(", ");
    // A port of this test's own (the runc and gvisor variants run at once).
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let port: u16 = 20000 + (std::process::id() % 10000) as u16 * 2 + NEXT.fetch_add(1, Ordering::Relaxed);
    let nodes = bridges.iter().map(|b| NodeListeners::start(b, port)).collect::<Result<Vec<_>>>()?;
    let result: Result<()> = async {
        {
            // 1. Programs get no network sockets at all (the runner's filter).
            let probe = "import socket\nfor fam in (socket.AF_INET, socket.AF_INET6):\n    try:\n        socket.socket(fam, socket.SOCK_DGRAM)\n        print(fam.name, 'OPENED')\n    except OSError as e:\n        print(fam.name, 'refused', e.errno)\nsocket.socketpair()\nprint('unix ok')\n";
            let e = eng.run("sockets", json!({"language": "python", "source": probe}), WAIT).await?;
            ensure!(verdict(&e) == Some(Accepted), "the socket probe did not run: {}", describe(&e));
            ensure!(
                !stdout(&e).contains("OPENED") && stdout(&e).matches("refused 97").count() == 2 && stdout(&e).contains("unix ok"),
                "a program opened a network socket: {}",
                stdout(&e)
            );
            // 2. The pod network itself, below that filter: two Pods of the python image on
            // the pod network, running the peer program directly (no runner, no filter).
            let image = eng
                .runtimes()
                .await?
                .into_iter()
                .find(|r| r.name_any() == "python")
                .map(|r| r.spec.image)
                .context("the python Runtime")?;
            let seconds = 20u64;
            let peer = |name: &str, args: Vec<String>| -> Result<Pod> {
                let mut command = vec!["python3".to_string(), "-c".to_string(), PEER.to_string()];
                command.extend(args);
                Ok(serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"rce.dev/sandbox": "true", "purpose": "network-probe"}},
                    "spec": {
                        "runtimeClassName": eng.runtime_class,
                        "restartPolicy": "Never", "automountServiceAccountToken": false, "enableServiceLinks": false,
                        "terminationGracePeriodSeconds": 1, "activeDeadlineSeconds": 120,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 123459, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "peer", "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                            "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}]
                    }
                }))?)
            };
            let pods = eng.pods();
            pods.create(&PostParams::default(), &peer("peer-a", vec![port.to_string(), seconds.to_string()])?).await?;
            // Peer A's IPv4 address, once it has one, for B to try directly.
            let deadline = Instant::now() + Duration::from_secs(60);
            let a4 = loop {
                let p = pods.get("peer-a").await?;
                if let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                    break ip;
                }
                ensure!(Instant::now() < deadline, "peer A's Pod got no IP");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            pods.create(&PostParams::default(), &peer("peer-b", vec![port.to_string(), (seconds - 6).to_string(), a4])?)
                .await?;
            let mut problems = Vec::new();
            for n in ["peer-a", "peer-b"] {
                let (code, _) = rce_tests::wait_terminated(&pods, n, WAIT).await?;
                let log = rce_tests::pod_log(&pods, n).await?;
                eprintln!("{n}: {}", log.trim());
                if code != 0 {
                    problems.push(format!("{n} did not run (exit code {code}): {log}"));
                } else if !log.starts_with("reached nothing") {
                    problems.push(format!("{n} reached something: {}", log.trim()));
                }
            }
            ensure!(problems.is_empty(), "{}", problems.join("\n"));
            Ok(())
        }
    }
    .await;
    let hits: usize = nodes.into_iter().map(NodeListeners::finish).sum();
    result?;
    if hits > 0 {
        bail!("a sandbox reached a listener on the node's {bridge} ({hits} packets or connections)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Further attacks found by red-teaming the first fixes (numbers are the findings').

/// Memory parked where the runner's RSS sampling never looked (F5): SysV shared memory
/// detached after touching, pipe buffers, AF_UNIX datagram buffers.
const PARKED_MEMORY: &str = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#define MIB (1L << 20)
/* Parks `want` bytes in one process (at most 1024 files each). */
static long park(const char *mode, long want) {
    long done = 0;
    static char buf[65536];
    memset(buf, 7, sizeof buf);
    while (done < want) {
        if (!strcmp(mode, "sysv")) {
            int id = shmget(IPC_PRIVATE, 16 * MIB, IPC_CREAT | 0600);
            if (id < 0) break;
            volatile char *p = shmat(id, 0, 0);
            for (long i = 0; i < 16 * MIB; i += 4096) p[i] = 1;
            shmdt((void *)p);
            done += 16 * MIB;
        } else if (!strcmp(mode, "pipes")) {
            int p[2];
            if (pipe(p) < 0) break;
            fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* refused by the runner's filter: 64 KiB each */
            fcntl(p[1], F_SETFL, O_NONBLOCK);
            long n, got = 0;
            while ((n = write(p[1], buf, sizeof buf)) > 0) got += n;
            if (got == 0) break;
            done += got;
        } else {
            int sv[2], sz = 64 << 20;
            if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0) break;
            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
            fcntl(sv[0], F_SETFL, O_NONBLOCK);
            long n, got = 0;
            while ((n = write(sv[0], buf, sizeof buf)) > 0) got += n;
            if (got == 0) break;
            done += got;
        }
    }
    return done;
}
int main(int argc, char **argv) {
    /* argv[2] MiB in all, 20 MiB per worker process. */
    long want = atol(argv[2]) * MIB, each = 20 * MIB;
    for (long w = 0; w * each < want; w++) {
        if (fork() == 0) {
            long done = park(argv[1], each);
            fprintf(stderr, "%s: worker parked %ld MiB\n", argv[1], done >> 20);
            sleep(3);
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {}
    puts("ok");
    return 0;
}
"#;

/// CPU of children reaped by the kernel (SIGCHLD ignored) never reaches the parent's
/// rusage (F2).
const AUTO_REAPED_CPU: &str = r#"#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(void) {
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 6; i++) {
        pid_t p = fork();
        if (p == 0) { volatile unsigned long x = 0; while (cpu() < 0.8) x++; _exit(0); }
        while (kill(p, 0) == 0) usleep(20000);
    }
    puts("ok");
    return 0;
}
"#;

/// The rest of the kernel surface a program could use against the node or the runner
/// (F6, F7, F12, F15): each line says whether the call was refused.
const KERNEL_SURFACE: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/vm_sockets.h>
static void report(const char *what, long rc) {
    printf("%s: %s\n", what, rc < 0 ? strerror(errno) : "ALLOWED");
}
int main(void) {
    report("socket inet", socket(AF_INET, SOCK_STREAM, 0));
    report("socket inet6", socket(AF_INET6, SOCK_DGRAM, 0));
    report("socket netlink", socket(AF_NETLINK, SOCK_RAW, 0));
    report("socket vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
    char params[120] = {0};
    report("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
    int fd = open("/work/f", O_CREAT | O_RDWR, 0600);
    report("fallocate keep-size", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20));
    int p[2];
    pipe(p);
    report("fcntl setown 1", fcntl(p[0], F_SETOWN, 1));
    report("fcntl setown -1", fcntl(p[0], F_SETOWN, -1));
    return 0;
}
"#;

async fn further_attacks_found_by_red_teaming_stay_closed(eng: &Engine) -> Result<()> {
    {
        // Under gVisor these buffers live in gVisor's own kernel, outside what it accounts
        // to the sandbox's cgroup: there the bound is the Pod's memory limit (its sentry is
        // killed past it), so ask for more than that.
        let gvisor = eng.gvisor();
        let parked = |name: &'static str, mode: &str| {
            // (gVisor counts a task's runnable time as CPU time: with many workers the CPU
            // limit may come first. Either way the program is stopped, not Accepted.)
            let check: Check = if gvisor {
                |e| match verdict(e) {
                    Some(MemoryLimitExceeded | TimeLimitExceeded) if phase(e) == Some(Phase::Completed) => {
                        Ok(())
                    }
                    v => Err(format!("expected to be stopped by a limit, got {v:?}")),
                }
            } else {
                |e| mle_above(e, 64)
            };
            // (Time enough under gVisor for memory, not CPU, to be the limit reached.)
            let limits = if gvisor {
                json!({"memoryMiB": 64, "cpuTimeMs": 20000, "wallTimeMs": 20000})
            } else {
                json!({"memoryMiB": 64})
            };
            let mut a = attack(name, "c", PARKED_MEMORY, limits, check);
            a.spec["args"] = json!([mode, if gvisor { "900" } else { "200" }]);
            a
        };
        let mut bad_names =
            attack("name-response-file", "c", "int main(void){return 0;}", json!(null), |e| {
                if phase(e) == Some(Phase::Failed) && message(e).contains("'@'") {
                    Ok(())
                } else {
                    Err("a file name starting with '@' was accepted".into())
                }
            });
        bad_names.spec = json!({"language": "c", "files": [
            {"name": "@opts", "content": "int main(void){return 0;}"},
            {"name": "opts", "content": "-wrapper /bin/sh,-c,true"}]});
        let mut stdin_hidden = attack(
            "stdin-not-in-the-request",
            "bash",
            // (The pattern is put together at run time: the source is in the request too.)
            "grep -c \"$(printf '%s-%s' SECRET STDIN)\" /etc/rce/request.json; cat",
            json!(null),
            |e| {
                completed_with(e, Accepted)?;
                // A warm Pod gets its request over the attach stream: there is no file.
                let warm_no_file = st(e).warm_pool.is_some()
                    && stdout(e) == "SECRET-STDIN-1234\n"
                    && stderr(e).contains("request.json: No such file");
                if stdout(e) != "0\nSECRET-STDIN-1234\n" && !warm_no_file {
                    return Err(format!(
                        "the request file showed the stdin, or stdin was lost: {:?}",
                        stdout(e)
                    ));
                }
                Ok(())
            },
        );
        stdin_hidden.spec["stdin"] = json!("SECRET-STDIN-1234\n");
        run_attacks(
            eng,
            vec![
                parked("sysv-shm", "sysv"),
                parked("pipe-buffers", "pipes"),
                parked("unix-socket-buffers", "unix"),
                attack("auto-reaped-children-cpu", "c", AUTO_REAPED_CPU, json!({"cpuTimeMs": 1000, "wallTimeMs": 10000}), |e| {
                    completed_with(e, TimeLimitExceeded)?;
                    match st(e).time_ms {
                        Some(t) if (1000..2000).contains(&t) => Ok(()),
                        t => Err(format!("timeMs {t:?}: not stopped at the 1000 ms limit")),
                    }
                }),
                attack("kernel-surface", "c", KERNEL_SURFACE, json!(null), |e| {
                    completed_with(e, Accepted)?;
                    let out = stdout(e);
                    if out.contains("ALLOWED") || out.lines().count() != 8 {
                        return Err(format!("a call was allowed: {out}"));
                    }
                    Ok(())
                }),
                attack(
                    "open-files",
                    "python",
                    "import os\nfds = []\ntry:\n    while len(fds) < 100000:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e:\n    print(len(fds), e.errno)\n",
                    json!(null),
                    |e| {
                        completed_with(e, Accepted)?;
                        let n: usize = stdout(e).split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
                        if n > 1024 || !stdout(e).contains(" 24") {
                            return Err(format!("{n} files opened: no per-process limit"));
                        }
                        Ok(())
                    },
                ),
                // A program that sends itself SIGXCPU at once (F13) did not exceed its CPU time.
                attack("self-sigxcpu", "bash", "kill -XCPU $$", json!(null), |e| {
                    completed_with(e, RuntimeError)?;
                    if st(e).signal.as_deref() != Some("SIGXCPU") {
                        return Err("expected a plain kill by SIGXCPU".into());
                    }
                    Ok(())
                }),
                // DEL and C1 controls on stdout (F9): the API server's YAML reader refused them raw.
                attack("del-and-c1-on-stdout", "python", "print('answer\\x7f\\x80\\x9f\\ufffe')", json!(null), |e| {
                    completed_with(e, Accepted)?;
                    if stdout(e) != "answer\u{7f}\u{80}\u{9f}\u{fffe}\n" {
                        return Err(format!("stdout changed: {:?}", stdout(e)));
                    }
                    Ok(())
                }),
                bad_names,
                stdin_hidden,
            ],
        )
        .await
    }
}

on_runc_gvisor_and_warm!(
    a_program_cannot_forge_its_result,
    the_runner_is_out_of_the_programs_reach,
    memory_of_every_kind_counts_and_limits_hold_across_processes,
    nothing_a_program_prints_wedges_the_queue,
    the_container_log_holds_only_what_the_runner_writes,
    the_result_key_never_reaches_the_program,
    sandbox_names_cannot_collide,
    no_traffic_between_sandboxes_or_to_the_node_over_ipv4_or_ipv6,
    further_attacks_found_by_red_teaming_stay_closed;
    // The squatted Execution is handed to the engine's operator (its label removed): about
    // a cold sandbox's name, never on a warm Pod.
    cold only: a_foreign_pod_holding_a_sandbox_name_is_never_deleted,
);
