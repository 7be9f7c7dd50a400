//! Measuring a running stage: its memory, CPU time and number of tasks, while it runs.
//!
//! Two ways, chosen by [`crate::protocol::ACCOUNTING_ENV`]:
//!
//! - **cgroup** (what the operator sets): the sandbox container's own cgroup, read-only
//!   inside the container, holds the runner and the stage and nothing else. Memory is
//!   anonymous memory plus shmem (tmpfs files in the work dir and /tmp, memfd, /dev/shm, SysV
//!   shared memory) plus kernel memory (page tables, pipe and socket buffers) charged to the
//!   cgroup; page cache of files read is not counted. CPU time is the cgroup's, so every
//!   process counts, reaped or not. Tasks are the cgroup's pids. The runner's own share is
//!   taken out: what the cgroup held when the stage started, and the runner's own growth and
//!   CPU time since.
//! - **proc** (the default: the runner outside a container of its own, as in tests): the
//!   stage's processes found in `/proc` (its process group, or as PID 1 every process but
//!   the runner): their resident memory, their CPU time plus that of reaped children, their
//!   threads.

use std::path::{Path, PathBuf};

use crate::sys;

/// What the program holds or has used, as far as a sample can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub memory_kib: u64,
    pub cpu_us: u64,
    pub tasks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Cgroup(CgroupFiles),
    Proc,
    /// cgroup accounting was asked for but the cgroup cannot be read: every stage fails
    /// (never a silent fallback to weaker accounting).
    Unavailable(String),
}

/// The files of the container's cgroup (v1 or v2) that the meter reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFiles {
    pub v2: bool,
    /// `memory.stat`, or (`usage_only`) `memory.usage_in_bytes` where a cgroup has no
    /// memory.stat: gVisor's, whose usage is its own accounting of the sandbox's memory.
    pub memory_stat: PathBuf,
    pub usage_only: bool,
    /// v1 only: `memory.kmem.usage_in_bytes` (v2 has `kernel` in memory.stat).
    pub kmem: Option<PathBuf>,
    pub cpu: PathBuf,
    pub pids_current: Option<PathBuf>,
    pub pids_peak: Option<PathBuf>,
}

impl CgroupFiles {
    /// The cgroup mounted at `root` (normally `/sys/fs/cgroup`), if its files are readable.
    pub fn find(root: &Path) -> Option<CgroupFiles> {
        let readable = |p: PathBuf| std::fs::read(&p).is_ok().then_some(p);
        if root.join("cgroup.controllers").exists() {
            return Some(CgroupFiles {
                v2: true,
                memory_stat: readable(root.join("memory.stat"))?,
                usage_only: false,
                kmem: None,
                cpu: readable(root.join("cpu.stat"))?,
                pids_current: readable(root.join("pids.current")),
                pids_peak: readable(root.join("pids.peak")),
            });
        }
        let cpu = ["cpuacct/cpuacct.usage", "cpu,cpuacct/cpuacct.usage", "cpu/cpuacct.usage"]
            .iter()
            .find_map(|p| readable(root.join(p)))?;
        let (memory_stat, usage_only) = match readable(root.join("memory/memory.stat")) {
            Some(p) => (p, false),
            None => (readable(root.join("memory/memory.usage_in_bytes"))?, true),
        };
        Some(CgroupFiles {
            v2: false,
            memory_stat,
            usage_only,
            kmem: readable(root.join("memory/memory.kmem.usage_in_bytes")),
            cpu,
            pids_current: readable(root.join("pids/pids.current")),
            pids_peak: readable(root.join("pids/pids.peak")),
        })
    }

    /// Memory charged to the cgroup that is not page cache, in bytes.
    #[cfg(test)]
    fn memory_bytes(&self) -> Option<u64> {
        self.open().ok()?.memory_bytes()
    }

    #[cfg(test)]
    fn cpu_us(&self) -> Option<u64> {
        self.open().ok()?.cpu_us()
    }

    pub fn tasks(&self) -> Option<u64> {
        self.open().ok()?.tasks()
    }

    pub fn tasks_peak(&self) -> Option<u64> {
        self.open().ok()?.tasks_peak()
    }

    /// Opens the files once (for a stage): a program that lowers the runner's limits or
    /// fills the file table cannot make a later sample fail.
    pub fn open(&self) -> std::io::Result<Opened> {
        let opt = |p: &Option<PathBuf>| p.as_ref().map(std::fs::File::open).transpose();
        Ok(Opened {
            v2: self.v2,
            usage_only: self.usage_only,
            memory_stat: std::fs::File::open(&self.memory_stat)?,
            kmem: opt(&self.kmem)?,
            cpu: std::fs::File::open(&self.cpu)?,
            pids_current: opt(&self.pids_current)?,
            pids_peak: opt(&self.pids_peak)?,
        })
    }
}

/// A cgroup's files, open.
#[derive(Debug)]
pub struct Opened {
    v2: bool,
    usage_only: bool,
    memory_stat: std::fs::File,
    kmem: Option<std::fs::File>,
    cpu: std::fs::File,
    pids_current: Option<std::fs::File>,
    pids_peak: Option<std::fs::File>,
}

/// The whole content of a (small) file from its start.
fn read_all(f: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 8192];
    let n = f.read_at(&mut buf, 0).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

fn read_u64_at(f: &std::fs::File) -> Option<u64> {
    read_all(f)?.trim().parse().ok()
}

impl Opened {
    fn memory_bytes(&self) -> Option<u64> {
        if self.usage_only {
            return read_u64_at(&self.memory_stat);
        }
        let stat = read_all(&self.memory_stat)?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if self.v2 {
            Some(field("anon")? + field("shmem")? + field("kernel").unwrap_or(0))
        } else {
            let kmem = match &self.kmem {
                Some(f) => read_u64_at(f)?,
                None => 0,
            };
            Some(field("total_rss")? + field("total_shmem")? + kmem)
        }
    }

    fn cpu_us(&self) -> Option<u64> {
        if self.v2 {
            let stat = read_all(&self.cpu)?;
            stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok())
        } else {
            read_u64_at(&self.cpu).map(|ns| ns / 1000)
        }
    }

    fn tasks(&self) -> Option<u64> {
        self.pids_current.as_ref().and_then(read_u64_at)
    }

    fn tasks_peak(&self) -> Option<u64> {
        self.pids_peak.as_ref().and_then(read_u64_at)
    }
}

/// The runner's own anonymous resident memory (KiB) and CPU time (µs).
fn runner_self() -> (u64, u64) {
    let anon = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (anon, sys::cpu_us(&ru))
}

impl Source {
    /// From the runner's environment: `cgroup` when asked for (and then the cgroup must be
    /// readable: never a silent fallback), else `proc`.
    pub fn from_env(value: Option<&str>) -> Source {
        match value {
            Some("cgroup") => CgroupFiles::find(Path::new("/sys/fs/cgroup")).map_or_else(
                || {
                    Source::Unavailable(
                        "cgroup accounting was asked for, but the container's cgroup files under /sys/fs/cgroup \
                         cannot be read"
                            .into(),
                    )
                },
                Source::Cgroup,
            ),
            _ => Source::Proc,
        }
    }
}

/// Bytes used on the filesystem holding `dir` (a tmpfs: its pages are memory).
fn fs_used(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return 0 };
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        (st.f_blocks.saturating_sub(st.f_bfree) as u64).saturating_mul(st.f_frsize as u64)
    }
}

/// Measures one stage, from just before its start.
pub struct Meter {
    cgroup: Option<Opened>,
    /// Where the cgroup's memory does not include the work dir and /tmp (gVisor: they are
    /// the host's tmpfs, outside the sandbox's own accounting), their use is added.
    tmpfs: Vec<PathBuf>,
    tmpfs_base: u64,
    /// cgroup: memory (bytes) and CPU (µs) of the cgroup, and the runner's own anonymous
    /// memory (KiB) and CPU (µs), when the stage started.
    base: (u64, u64, u64, u64),
    /// proc: CPU of reaped children when the stage started.
    children_base_us: u64,
    /// The cgroup's pids.peak when the stage started.
    tasks_peak_base: Option<u64>,
}

impl Meter {
    /// Starts measuring; an error when the stage could not be measured honestly.
    /// `dirs`: the stage's work dir and /tmp.
    pub fn start(source: &Source, dirs: &[&Path]) -> Result<Meter, String> {
        let (anon, cpu) = runner_self();
        let tmpfs: Vec<PathBuf> = match source {
            Source::Cgroup(c) if c.usage_only => dirs.iter().map(|d| d.to_path_buf()).collect(),
            _ => vec![],
        };
        let tmpfs_base = tmpfs.iter().map(|d| fs_used(d)).sum();
        let cgroup = match source {
            Source::Cgroup(c) => {
                Some(c.open().map_err(|e| format!("cannot open the container's cgroup files: {e}"))?)
            }
            Source::Proc => None,
            Source::Unavailable(why) => return Err(why.clone()),
        };
        let (base, tasks_peak_base) = match &cgroup {
            Some(c) => {
                let (mem, cg_cpu) = c
                    .memory_bytes()
                    .zip(c.cpu_us())
                    .ok_or_else(|| "cannot read the container's cgroup memory and CPU usage".to_string())?;
                ((mem, cg_cpu, anon, cpu), c.tasks_peak())
            }
            None => ((0, 0, anon, cpu), None),
        };
        Ok(Meter {
            cgroup,
            tmpfs,
            tmpfs_base,
            base,
            children_base_us: sys::children_cpu_us(),
            tasks_peak_base,
        })
    }

    pub fn is_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// The program's usage now, or `None` if the cgroup could not be read (the stage must
    /// then be stopped: it cannot be measured). `pgid` is the stage's process group (for
    /// `proc`).
    pub fn sample(&self, pgid: libc::pid_t) -> Option<Usage> {
        match &self.cgroup {
            Some(c) => {
                let (mem0, cpu0, anon0, self_cpu0) = self.base;
                let (anon, self_cpu) = runner_self();
                let runner_growth = anon.saturating_sub(anon0) * 1024;
                let files =
                    self.tmpfs.iter().map(|d| fs_used(d)).sum::<u64>().saturating_sub(self.tmpfs_base);
                let memory = (c.memory_bytes()? + files).saturating_sub(mem0).saturating_sub(runner_growth);
                let cpu = c.cpu_us()?.saturating_sub(cpu0).saturating_sub(self_cpu.saturating_sub(self_cpu0));
                let tasks = match &c.pids_current {
                    Some(_) => c.tasks()?.saturating_sub(sys::RUNNER_TASKS),
                    None => sys::program_procs(pgid).tasks,
                };
                Some(Usage { memory_kib: memory / 1024, cpu_us: cpu, tasks })
            }
            None => {
                let p = sys::program_procs(pgid);
                let reaped = sys::children_cpu_us().saturating_sub(self.children_base_us);
                Some(Usage { memory_kib: p.rss_kib, cpu_us: reaped + p.cpu_us, tasks: p.tasks })
            }
        }
    }

    /// The most tasks the stage had at once, if the cgroup's high-water mark shows it: only
    /// when the mark rose during the stage (it cannot be reset).
    pub fn tasks_peak(&self) -> Option<u64> {
        let c = self.cgroup.as_ref()?;
        let (before, after) = (self.tasks_peak_base?, c.tasks_peak()?);
        (after > before).then(|| after.saturating_sub(sys::RUNNER_TASKS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_cgroup_v1(dir: &Path, rss: u64, shmem: u64, kmem: u64, cpu_ns: u64, pids: u64) {
        std::fs::create_dir_all(dir.join("memory")).expect("mkdir");
        std::fs::create_dir_all(dir.join("cpuacct")).expect("mkdir");
        std::fs::create_dir_all(dir.join("pids")).expect("mkdir");
        std::fs::write(
            dir.join("memory/memory.stat"),
            format!("cache 999\nrss 5\nshmem 7\ntotal_cache 999999\ntotal_rss {rss}\ntotal_rss_huge 0\ntotal_shmem {shmem}\n"),
        )
        .expect("write");
        std::fs::write(dir.join("memory/memory.kmem.usage_in_bytes"), format!("{kmem}\n")).expect("write");
        std::fs::write(dir.join("cpuacct/cpuacct.usage"), format!("{cpu_ns}\n")).expect("write");
        std::fs::write(dir.join("pids/pids.current"), format!("{pids}\n")).expect("write");
        std::fs::write(dir.join("pids/pids.peak"), "5\n").expect("write");
    }

    #[test]
    fn cgroup_v1_counts_anonymous_shmem_and_kernel_memory_not_page_cache() {
        let dir = std::env::temp_dir().join(format!("rce-meter-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fake_cgroup_v1(&dir, 1 << 20, 3 << 20, 1 << 20, 2_500_000, 4);
        let c = CgroupFiles::find(&dir).expect("found");
        assert!(!c.v2);
        assert_eq!(c.memory_bytes(), Some(5 << 20));
        assert_eq!(c.cpu_us(), Some(2500));
        assert_eq!(c.tasks(), Some(4));
        assert_eq!(c.tasks_peak(), Some(5));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cgroup_without_memory_stat_counts_its_usage_as_gvisor_has_it() {
        let dir = std::env::temp_dir().join(format!("rce-meter-gvisor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["memory", "cpuacct", "pids"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        std::fs::write(dir.join("memory/memory.usage_in_bytes"), "13201408\n").expect("write");
        std::fs::write(dir.join("cpuacct/cpuacct.usage"), "300000000\n").expect("write");
        std::fs::write(dir.join("pids/pids.current"), "2\n").expect("write");
        let c = CgroupFiles::find(&dir).expect("found");
        assert!(c.usage_only);
        assert_eq!(c.memory_bytes(), Some(13_201_408));
        assert_eq!(c.cpu_us(), Some(300_000));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cgroup_v2_reads_its_own_files() {
        let dir = std::env::temp_dir().join(format!("rce-meter-v2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        std::fs::write(dir.join("memory.stat"), "anon 4096\nfile 999999\nkernel 1024\nshmem 2048\n")
            .expect("write");
        std::fs::write(dir.join("cpu.stat"), "usage_usec 1234\nuser_usec 1000\n").expect("write");
        std::fs::write(dir.join("pids.current"), "3\n").expect("write");
        let c = CgroupFiles::find(&dir).expect("found");
        assert!(c.v2);
        assert_eq!(c.memory_bytes(), Some(4096 + 2048 + 1024));
        assert_eq!(c.cpu_us(), Some(1234));
        assert_eq!(c.tasks(), Some(3));
        assert_eq!(c.tasks_peak(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stage_in_a_reused_cgroup_counts_only_what_it_adds() {
        // A warm Pod's cgroup after an earlier run: 100 MiB charged, 5 s of CPU, 3 peak tasks.
        let dir = std::env::temp_dir().join(format!("rce-meter-reuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fake_cgroup_v1(&dir, 100 << 20, 0, 0, 5_000_000_000, 1);
        let source = Source::Cgroup(CgroupFiles::find(&dir).expect("found"));
        let meter = Meter::start(&source, &[]).expect("start");
        // The next stage adds 1 MiB and 10 ms of CPU, and has one task.
        fake_cgroup_v1(&dir, (100 << 20) + (1 << 20), 0, 0, 5_010_000_000, 2);
        let u = meter.sample(-1).expect("sample");
        assert!(u.memory_kib <= 1024, "only the stage's own memory: {u:?}");
        assert!(u.cpu_us <= 10_000, "only the stage's own CPU time: {u:?}");
        assert_eq!(u.tasks, 1);
        // pids.peak (5) did not rise during the stage: no peak is taken from it.
        assert_eq!(meter.tasks_peak(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_readable_cgroup_the_meter_uses_proc() {
        assert_eq!(Source::from_env(None), Source::Proc);
        assert_eq!(Source::from_env(Some("proc")), Source::Proc);
        assert!(CgroupFiles::find(Path::new("/nonexistent-rce")).is_none());
        // Asked for but not there: no silent fallback, every stage fails.
        let m = Meter::start(&Source::Unavailable("no cgroup".into()), &[]);
        assert_eq!(m.err().as_deref(), Some("no cgroup"));
    }
}
