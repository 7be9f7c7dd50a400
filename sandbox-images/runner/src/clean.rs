//! The clean-slate proof of a serving runner: before a warm sandbox serves another run, the
//! runner proves that nothing of the previous program is left, against a [`Baseline`] it
//! recorded at start, before any program ran. Anything it cannot prove is a reason to
//! discard the Pod ([`Baseline::prove`] returns it; the runner prints `Spoiled` and exits).
//!
//! The checks, in order, and why:
//! 1. **Processes.** Everything of the stage is killed (SIGKILL) and reaped
//!    ([`crate::stage::settle`]: as PID 1 `kill(-1)`, which no process of the sandbox can
//!    escape; elsewhere the stage's group and the runner's children, orphans being
//!    re-parented to the runner, a subreaper). Then, independently: the runner has no child
//!    left (`/proc/thread-self/children`); as PID 1, `/proc` lists no process but the runner
//!    (a process that left the group, double-forked or `setsid`ed is still in the PID
//!    namespace); with cgroup accounting, the container's `pids.current` is the runner's one
//!    task and `cgroup.procs` holds the runner alone. A process that survived could read the
//!    next submission's files or stdin, or write into its output.
//! 2. **The work dir, the temporary dir and `/dev/shm`** (the dirs a program writes):
//!    each root gets its mode back (a program may `chmod` the mount point), must still be
//!    the same inode, is emptied (directories the program made unreadable or unwritable are
//!    made so again first: same uid) and is then read again and must be empty. Where the dir
//!    is a tmpfs mount of its own, its used blocks must be back to their baseline too (no
//!    file held by something out of sight).
//! 3. **SysV IPC** (`/proc/sysvipc/{shm,msg,sem}`: shared memory, message queues,
//!    semaphores): the runner's seccomp filter does not deny `shmget`/`msgget`/`semget`, so
//!    a program can make objects that outlive it. In a sandbox (PID 1: its own IPC
//!    namespace) objects made since the baseline are removed (`IPC_RMID`); then the counts the
//!    kernel gives (`SHM_INFO`, `MSG_INFO`, `SEM_INFO`) and the ids listed must be the
//!    baseline's.
//! 4. **POSIX message queues**: a serving runner's stages get `RLIMIT_MSGQUEUE` 0, so
//!    `mq_open` cannot create a queue; where an `mqueue` file system is mounted (as
//!    `/dev/mqueue` in a container) its entries must be the baseline's (new ones are removed
//!    in a sandbox first).
//! 5. **The mounts** (`/proc/self/mountinfo`) must be exactly the baseline's, and every other
//!    writable mount (not `proc`, `sysfs`, `cgroup*`, `devpts`, `mqueue`, and not the dirs of
//!    check 2) must be unchanged against a manifest taken at start: each entry's path, type,
//!    mode, owner, size, mtime and ctime (ctime cannot be set back by a program), device
//!    nodes by their type, mode, owner and device number, another mount's root inside one by
//!    its name only (it is a mount of its own, listed on its own if writable). At most [`MAX_MANIFEST_ENTRIES`]
//!    entries in all: a mount too large to list cannot be vouched for, so the runner serves
//!    its first run and then spoils. (In a sandbox with a read-only root file system these
//!    are a few files: `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`,
//!    `/dev/termination-log`, `/dev`.) Outside a sandbox (not PID 1) the host's mounts are
//!    not the runner's to vouch for and are not listed; `RCE_SERVE_WATCH` (colon-separated
//!    paths, for tests) adds roots to the manifest anywhere.
//! 6. **The runner's own descriptors** must be its baseline set, each to the same object
//!    (`/proc/self/fd` and their links): a stage must not have left the runner holding a
//!    pipe or file of a previous run.
//!
//! What is NOT covered:
//! - state outside the sandbox's own namespaces and file systems that a program could reach
//!   in principle but a restricted Pod does not give it: the network (none), the node's
//!   kernel (keyrings are denied by the filter), other containers;
//! - the page cache and kernel caches (dentries of deleted names), which hold no content a
//!   program can read back;
//! - POSIX message queues where no `mqueue` file system is mounted (they are prevented by
//!   `RLIMIT_MSGQUEUE`, not found), and a runtime that does not enforce that rlimit;
//! - the atime of files on other mounts (reading a file changes it), and the times of
//!   device nodes (a tty updates them);
//! - what a program does to the runner's memory: the runner is non-dumpable and the filter
//!   denies the calls that would reach it; nothing here checks the runner itself;
//! - outside a sandbox, processes of the host that are not the runner's children, the
//!   host's IPC namespace beyond its counts and ids, and the host's mounts.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::meter::Source;
use crate::{snapshot, stage, sys, Config};

/// Most entries the manifest of the other writable mounts holds, over all of them.
pub const MAX_MANIFEST_ENTRIES: usize = 20_000;

/// File system types whose mounts are not listed in the manifest (see the module docs).
const UNLISTED_FS: &[&str] =
    &["proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs"];

/// The shared-memory dir a serving runner empties: `RCE_SHM_DIR` (for tests), else in a
/// sandbox (PID 1) [`crate::SHM_DIR`] when it exists; outside a sandbox it is the host's.
pub fn shm_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = env("RCE_SHM_DIR").filter(|d| !d.is_empty()) {
        return Some(d.into());
    }
    let shm = Path::new(crate::SHM_DIR);
    (sys::is_init() && shm.is_dir()).then(|| shm.to_path_buf())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DirState {
    path: PathBuf,
    mode: u32,
    dev: u64,
    ino: u64,
    /// Used bytes, where the dir is a tmpfs mount of its own.
    tmpfs_used: Option<u64>,
}

/// One mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    line: String,
    point: PathBuf,
    fstype: String,
    writable: bool,
}

/// SysV IPC objects: ids listed in `/proc/sysvipc/<kind>` (if readable) and the kernel's count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Ipc {
    ids: [Option<Vec<i64>>; 3],
    counts: [Option<i64>; 3],
}

const IPC_KINDS: [&str; 3] = ["shm", "msg", "sem"];

/// What a serving runner's sandbox was before any program ran.
#[derive(Debug)]
pub struct Baseline {
    source: Source,
    dirs: Vec<DirState>,
    mounts: Vec<Mount>,
    /// Each listed root and its manifest (or why it could not be made).
    manifests: Vec<(PathBuf, Result<Vec<String>, String>)>,
    ipc: Ipc,
    mqueue: Option<(PathBuf, Vec<String>)>,
    fds: BTreeMap<i32, String>,
}

impl Baseline {
    /// Records the baseline (after the runner's own set-up: parked streams, SIGCHLD pipe).
    pub fn record(config: &Config, shm: Option<PathBuf>) -> Result<Baseline, String> {
        let mounts = read_mounts()?;
        let mut dirs = Vec::new();
        for path in [Some(config.work_dir.clone()), Some(config.tmp_dir.clone()), shm].into_iter().flatten() {
            let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if !meta.is_dir() {
                return Err(format!("{} is not a directory", path.display()));
            }
            let tmpfs_used = own_tmpfs(&mounts, &path).then(|| fs_used(&path)).flatten();
            dirs.push(DirState {
                path,
                mode: meta.mode() & 0o7777,
                dev: meta.dev(),
                ino: meta.ino(),
                tmpfs_used,
            });
        }
        let mut roots: Vec<PathBuf> = Vec::new();
        if sys::is_init() {
            for m in &mounts {
                let under_dirs = dirs.iter().any(|d| m.point.starts_with(&d.path));
                let skipped = m.point.starts_with("/proc") || m.point.starts_with("/sys");
                if m.writable && !UNLISTED_FS.contains(&m.fstype.as_str()) && !under_dirs && !skipped {
                    roots.push(m.point.clone());
                }
            }
        }
        if let Ok(extra) = std::env::var("RCE_SERVE_WATCH") {
            roots.extend(extra.split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
        }
        let mut budget = MAX_MANIFEST_ENTRIES;
        let manifests = roots
            .into_iter()
            .map(|r| {
                let m = manifest(&r, &mut budget);
                (r, m)
            })
            .collect();
        let mqueue = mounts.iter().find(|m| m.fstype == "mqueue").map(|m| m.point.clone());
        let mqueue = match mqueue {
            Some(p) => Some((p.clone(), list_names(&p).map_err(|e| format!("{}: {e}", p.display()))?)),
            None => None,
        };
        Ok(Baseline {
            source: config.source.clone(),
            dirs,
            mounts,
            manifests,
            ipc: read_ipc(),
            mqueue,
            fds: read_fds()?,
        })
    }

    /// Cleans up after a run and proves the clean slate, or says precisely what is not.
    pub fn prove(&self, _chan: &crate::serve::Channel) -> Result<(), String> {
        self.processes()?;
        for d in &self.dirs {
            clean_dir(d)?;
        }
        self.sysv_ipc()?;
        self.message_queues()?;
        let mounts = read_mounts()?;
        if mounts != self.mounts {
            let changed =
                mounts.iter().map(|m| &m.line).find(|l| !self.mounts.iter().any(|b| &b.line == *l)).or_else(
                    || self.mounts.iter().map(|m| &m.line).find(|l| !mounts.iter().any(|m| &m.line == *l)),
                );
            return Err(format!("the mounts changed: {}", changed.map_or("(their order)", |l| l.as_str())));
        }
        for (root, before) in &self.manifests {
            let before = before.as_ref().map_err(|e| format!("no manifest of {}: {e}", root.display()))?;
            let mut budget = MAX_MANIFEST_ENTRIES;
            let now = manifest(root, &mut budget).map_err(|e| format!("{}: {e}", root.display()))?;
            if let Some(diff) = first_difference(before, &now) {
                return Err(format!("{} changed: {diff}", root.display()));
            }
        }
        let fds = read_fds()?;
        if fds != self.fds {
            let extra = fds.iter().find(|(k, v)| self.fds.get(k) != Some(v));
            let gone = self.fds.iter().find(|(k, _)| !fds.contains_key(k));
            return Err(format!("the runner's descriptors changed: new {extra:?}, gone {gone:?}"));
        }
        Ok(())
    }

    fn processes(&self) -> Result<(), String> {
        if !stage::settle(&self.source) {
            return Err("processes of the previous run are still there after SIGKILL".into());
        }
        if let Some(p) = sys::own_children().first() {
            return Err(format!("process {p} ({}) is still a child of the runner", comm(*p)));
        }
        let me = std::process::id() as i64;
        if sys::is_init() {
            let dir = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
            for e in dir.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) {
                    if pid != me {
                        return Err(format!("process {pid} ({}) is still running", comm(pid as i32)));
                    }
                }
            }
        }
        if let Source::Cgroup(c) = &self.source {
            if let Some(path) = &c.pids_current {
                let tasks = c.tasks().ok_or_else(|| format!("cannot read {}", path.display()))?;
                if tasks != sys::RUNNER_TASKS {
                    return Err(format!(
                        "the cgroup has {tasks} tasks ({}), not the runner's one",
                        path.display()
                    ));
                }
                let procs = path.with_file_name("cgroup.procs");
                if let Ok(text) = std::fs::read_to_string(&procs) {
                    let others: Vec<&str> =
                        text.split_ascii_whitespace().filter(|p| p.parse::<i64>().ok() != Some(me)).collect();
                    if !others.is_empty() {
                        return Err(format!("{} still lists {}", procs.display(), others.join(" ")));
                    }
                }
            }
        }
        Ok(())
    }

    fn sysv_ipc(&self) -> Result<(), String> {
        if sys::is_init() {
            // The sandbox's own IPC namespace: whatever is new is the program's.
            let now = read_ipc();
            for (k, ids) in now.ids.iter().enumerate() {
                for id in ids.iter().flatten() {
                    if !self.ipc.ids[k].as_ref().is_some_and(|b| b.contains(id)) {
                        remove_ipc(k, *id);
                    }
                }
            }
        }
        let now = read_ipc();
        for (k, kind) in IPC_KINDS.iter().enumerate() {
            if let (Some(before), Some(now)) = (&self.ipc.ids[k], &now.ids[k]) {
                if let Some(id) = now.iter().find(|id| !before.contains(id)) {
                    return Err(format!("a SysV IPC object is left: {kind} id {id}"));
                }
            }
            match (self.ipc.counts[k], now.counts[k]) {
                (Some(b), Some(n)) if n > b => {
                    return Err(format!("{n} SysV IPC {kind} objects, {b} before any program ran"))
                }
                (Some(_), None) => return Err(format!("cannot count the SysV IPC {kind} objects")),
                _ => {}
            }
        }
        Ok(())
    }

    fn message_queues(&self) -> Result<(), String> {
        let Some((dir, before)) = &self.mqueue else { return Ok(()) };
        let now = list_names(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for name in now.iter().filter(|n| !before.contains(n)) {
            if sys::is_init() {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        let now = list_names(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match now.iter().find(|n| !before.contains(n)) {
            Some(n) => Err(format!("a POSIX message queue is left: {}", dir.join(n).display())),
            None => Ok(()),
        }
    }
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Check 2 on one dir.
fn clean_dir(d: &DirState) -> Result<(), String> {
    let p = &d.path;
    let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !meta.is_dir() || meta.dev() != d.dev || meta.ino() != d.ino {
        return Err(format!("{} is no longer the directory it was", p.display()));
    }
    if meta.mode() & 0o7777 != d.mode {
        snapshot::set_mode(p, d.mode)
            .map_err(|e| format!("cannot restore the mode of {}: {e}", p.display()))?;
    }
    snapshot::empty_dir(p).map_err(|e| format!("cannot empty {}: {e}", p.display()))?;
    let left = list_names(p).map_err(|e| format!("cannot list {}: {e}", p.display()))?;
    if let Some(name) = left.first() {
        return Err(format!("{} is not empty after cleaning: {name}", p.display()));
    }
    if let Some(before) = d.tmpfs_used {
        let now = fs_used(p).ok_or_else(|| format!("cannot statvfs {}", p.display()))?;
        if now > before {
            return Err(format!("{} still uses {now} bytes, {before} before any program ran", p.display()));
        }
    }
    Ok(())
}

fn list_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

/// Bytes used on the file system of `dir`.
fn fs_used(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some((st.f_blocks.saturating_sub(st.f_bfree) as u64).saturating_mul(st.f_frsize as u64))
    }
}

/// Whether `dir` is the root of a tmpfs mount.
fn own_tmpfs(mounts: &[Mount], dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    mounts.iter().rev().find(|m| m.point == dir).is_some_and(|m| m.fstype == "tmpfs")
}

/// `/proc/self/mountinfo`: `id parent maj:min root point options [optional...] - fstype source super`.
fn read_mounts() -> Result<Vec<Mount>, String> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("cannot read mountinfo: {e}"))?;
    Ok(parse_mounts(&text))
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let point = unescape(f.get(4)?);
            let writable = f.get(5)?.split(',').any(|o| o == "rw");
            let fstype = f.get(dash + 1)?.to_string();
            Some(Mount { line: line.to_string(), point: point.into(), fstype, writable })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The manifest of one root: one line per entry, sorted by path, not crossing into other
/// mounts, never following a symlink.
fn manifest(root: &Path, budget: &mut usize) -> Result<Vec<String>, String> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        // Out of the runner's reach (the kubelet's termination-message file under root's
        // 0700 /root): out of the program's too, which runs as the same uid. It stays so as
        // long as it cannot be reached.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok(vec![". unreachable".into()])
        }
        Err(e) => return Err(e.to_string()),
    };
    let dev = meta.dev();
    let mut out = vec![describe(Path::new("."), &meta, root)];
    let mut stack = if meta.is_dir() { vec![PathBuf::new()] } else { vec![] };
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let Ok(names) = list_names(&dir) else {
            out.push(format!("{} unlistable", rel.display()));
            continue;
        };
        for name in names {
            *budget =
                budget.checked_sub(1).ok_or_else(|| format!("more than {MAX_MANIFEST_ENTRIES} entries"))?;
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                out.push(format!("{} unreadable", rel.display()));
                continue;
            };
            if m.dev() != dev {
                // Another mount's root (`/dev/pts`, `/dev/shm`, a bind-mounted file): only its
                // name here; the mount itself is in the mount table and listed on its own.
                out.push(format!("{} mount", rel.display()));
                continue;
            }
            out.push(describe(&rel, &m, &path));
            if m.is_dir() {
                stack.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn describe(rel: &Path, m: &std::fs::Metadata, path: &Path) -> String {
    use std::os::unix::fs::FileTypeExt;
    let ft = m.file_type();
    let owner = format!("{:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid());
    let times = format!("m{}.{} c{}.{}", m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
    if ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_char_device() { 'c' } else { 'b' };
        return format!("{} {kind} {owner} {}", rel.display(), m.rdev());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        return format!("{} l {owner} {times} -> {target}", rel.display());
    }
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    format!("{} {kind} {owner} {} {times} i{}", rel.display(), m.len(), m.ino())
}

/// The first entry that is new or gone, entries below the root first (a root's own entry
/// changes with anything added or removed in it).
fn first_difference(before: &[String], now: &[String]) -> Option<String> {
    let new = now.iter().filter(|l| before.binary_search(l).is_err());
    let gone = before.iter().filter(|l| now.binary_search(l).is_err());
    let mut all: Vec<String> =
        new.map(|l| format!("now {l}")).chain(gone.map(|l| format!("was {l}"))).collect();
    all.sort_by_key(|l| l.starts_with("now . ") || l.starts_with("was . "));
    all.into_iter().next()
}

fn read_fds() -> Result<BTreeMap<i32, String>, String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("cannot list /proc/self/fd: {e}"))?;
    let mut fds = BTreeMap::new();
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
        // (The listing's own descriptor is a new one each time.)
        if target.starts_with("/proc/") && target.ends_with("/fd") {
            continue;
        }
        fds.insert(fd, target);
    }
    Ok(fds)
}

/// `struct shm_info`, `struct msginfo`, `struct seminfo` (only the counts are read).
#[repr(C)]
#[derive(Default)]
struct ShmInfo {
    used_ids: libc::c_int,
    shm_tot: libc::c_ulong,
    shm_rss: libc::c_ulong,
    shm_swp: libc::c_ulong,
    swap_attempts: libc::c_ulong,
    swap_successes: libc::c_ulong,
}
#[repr(C)]
#[derive(Default)]
struct MsgInfo {
    msgpool: libc::c_int,
    msgmap: libc::c_int,
    msgmax: libc::c_int,
    msgmnb: libc::c_int,
    msgmni: libc::c_int,
    msgssz: libc::c_int,
    msgtql: libc::c_int,
    msgseg: libc::c_ushort,
}
#[repr(C)]
#[derive(Default)]
struct SemInfo {
    semmap: libc::c_int,
    semmni: libc::c_int,
    semmns: libc::c_int,
    semmnu: libc::c_int,
    semmsl: libc::c_int,
    semopm: libc::c_int,
    semume: libc::c_int,
    semusz: libc::c_int,
    semvmx: libc::c_int,
    semaem: libc::c_int,
}

const SHM_INFO: libc::c_int = 14;
const MSG_INFO: libc::c_int = 12;
const SEM_INFO: libc::c_int = 19;

fn read_ipc() -> Ipc {
    let ids = IPC_KINDS.map(|kind| {
        std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).ok().map(|text| {
            let mut v: Vec<i64> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_ascii_whitespace().nth(1).and_then(|id| id.parse().ok()))
                .collect();
            v.sort();
            v
        })
    });
    // SAFETY: the *_INFO commands fill a struct of the given layout; id 0 is ignored.
    let counts = unsafe {
        let mut shm = ShmInfo::default();
        let mut msg = MsgInfo::default();
        let mut sem = SemInfo::default();
        let s = libc::shmctl(0, SHM_INFO, (&mut shm as *mut ShmInfo).cast());
        let m = libc::msgctl(0, MSG_INFO, (&mut msg as *mut MsgInfo).cast());
        let e = libc::semctl(0, 0, SEM_INFO, &mut sem as *mut SemInfo);
        [
            (s >= 0).then_some(i64::from(shm.used_ids)),
            (m >= 0).then_some(i64::from(msg.msgpool)),
            (e >= 0).then_some(i64::from(sem.semusz)),
        ]
    };
    Ipc { ids, counts }
}

fn remove_ipc(kind: usize, id: i64) {
    let Ok(id) = libc::c_int::try_from(id) else { return };
    // SAFETY: IPC_RMID takes no buffer (null is allowed).
    unsafe {
        match kind {
            0 => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            1 => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            _ => libc::semctl(id, 0, libc::IPC_RMID),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
                    30 28 0:26 / /work rw,relatime - tmpfs tmpfs rw,size=65536k\n\
                    31 28 8:1 /x /etc/host\\040name ro,relatime - ext4 /dev/sda1 rw\n";
        let m = parse_mounts(text);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].fstype.as_str(), m[0].writable), ("proc", true));
        assert_eq!((m[1].point.as_path(), m[1].writable), (Path::new("/work"), true));
        assert_eq!(m[2].point, PathBuf::from("/etc/host name"));
        assert!(!m[2].writable, "the mount's own options decide, not the super block's");
    }

    #[test]
    fn a_manifest_sees_content_mode_and_new_files() {
        let dir = std::env::temp_dir().join(format!("rce-clean-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/f"), "a").expect("write");
        let mut budget = MAX_MANIFEST_ENTRIES;
        let before = manifest(&dir, &mut budget).expect("manifest");
        assert_eq!(
            first_difference(&before, &manifest(&dir, &mut MAX_MANIFEST_ENTRIES.clone()).expect("m")),
            None
        );
        std::fs::write(dir.join("sub/f"), "b").expect("write");
        let after = manifest(&dir, &mut MAX_MANIFEST_ENTRIES.clone()).expect("manifest");
        assert!(
            first_difference(&before, &after).is_some_and(|d| d.contains("sub/f")),
            "same size, new ctime"
        );
        let mut tiny = 1;
        assert!(manifest(&dir, &mut tiny).is_err(), "past the cap");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
