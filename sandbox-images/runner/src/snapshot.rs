//! The work dir and /tmp as they were after compiling, kept in the runner's memory and put
//! back before each repeated run (a request's `runs`), so that every run starts from the same
//! clean slate: what a previous run created, changed or deleted is undone.
//!
//! The copy is in the runner's memory, not on disk: the program runs under the runner's uid,
//! so no place on disk would be out of its reach, while the runner's memory is (the runner is
//! non-dumpable). Nothing of a previous run is running when the dirs are restored (the stage
//! killed and reaped everything), so the walk is not raced; it still never follows a
//! symlink, and it makes directories the program made unreadable readable again to remove
//! them.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Most bytes of file content a snapshot holds. Beyond it the dirs cannot be restored and the
/// program runs once (the result's `runs` says so): the copy lives in the runner's memory,
/// which the Pod's memory budget does not plan for twice the work dir.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries a snapshot holds.
pub const MAX_ENTRIES: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8>, mtime: std::time::SystemTime },
    Symlink { target: PathBuf },
}

/// One directory's copy: its path, its mode, and its entries by path relative to it,
/// parents before children.
type Root = (PathBuf, u32, Vec<(PathBuf, Entry)>);

/// The contents of some directories (not the directories themselves: they are mount points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    roots: Vec<Root>,
}

impl Snapshot {
    /// Copies the contents of `dirs`. Sockets, fifos and device nodes are not kept (nothing
    /// a compiler produces for the program).
    pub fn take(dirs: &[&Path]) -> Result<Snapshot, String> {
        let mut bytes = 0u64;
        let mut count = 0usize;
        let mut roots = Vec::new();
        for root in dirs {
            let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
            let mut entries = Vec::new();
            walk(root, Path::new(""), &mut entries, &mut bytes, &mut count)?;
            roots.push((root.to_path_buf(), meta.mode() & 0o7777, entries));
        }
        Ok(Snapshot { roots })
    }

    /// Empties the directories and puts the copy back.
    pub fn restore(&self) -> Result<(), String> {
        for (root, mode, entries) in &self.roots {
            let err = |p: &Path, e: std::io::Error| format!("{}: {e}", root.join(p).display());
            // (A root is usually not the runner's own, an emptyDir's mount point: its mode is
            // changed only where the program could have changed it.)
            ensure_mode(root, *mode).map_err(|e| err(Path::new(""), e))?;
            empty_dir(root).map_err(|e| err(Path::new(""), e))?;
            for (rel, entry) in entries {
                let path = root.join(rel);
                match entry {
                    Entry::Dir { .. } => {
                        std::fs::DirBuilder::new().mode(0o700).create(&path).map_err(|e| err(rel, e))?
                    }
                    Entry::File { mode, content, mtime } => {
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .mode(0o600)
                            .open(&path)
                            .map_err(|e| err(rel, e))?;
                        std::io::Write::write_all(&mut f, content).map_err(|e| err(rel, e))?;
                        f.set_permissions(std::fs::Permissions::from_mode(*mode)).map_err(|e| err(rel, e))?;
                        let _ = f.set_modified(*mtime);
                    }
                    Entry::Symlink { target } => {
                        std::os::unix::fs::symlink(target, &path).map_err(|e| err(rel, e))?
                    }
                }
            }
            // Directory modes last (children first), once nothing more is written into them.
            for (rel, entry) in entries.iter().rev() {
                if let Entry::Dir { mode } = entry {
                    set_mode(&root.join(rel), *mode).map_err(|e| err(rel, e))?;
                }
            }
        }
        Ok(())
    }
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, Entry)>,
    bytes: &mut u64,
    count: &mut usize,
) -> Result<(), String> {
    let dir = root.join(rel);
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut names: Vec<_> = read_dir_forcibly(&dir).map_err(|e| err(&dir, e))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| err(&path, e))?;
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files to keep"));
        }
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| err(&path, e))?;
            out.push((rel, Entry::Symlink { target }));
        } else if ft.is_dir() {
            out.push((rel.clone(), Entry::Dir { mode }));
            walk(root, &rel, out, bytes, count)?;
        } else if ft.is_file() {
            *bytes += meta.len();
            if *bytes > MAX_BYTES {
                return Err(format!("more than {} MiB of files to keep", MAX_BYTES >> 20));
            }
            let content = read_forcibly(&path, mode).map_err(|e| err(&path, e))?;
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            out.push((rel, Entry::File { mode, content, mtime }));
        }
    }
    Ok(())
}

/// A directory's entry names; a directory the runner may not list (a program's `chmod 0`)
/// is made listable first (the runner owns what the program made, or could not change it).
fn read_dir_forcibly(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    let list = |d: &Path| -> std::io::Result<Vec<_>> {
        std::fs::read_dir(d)?.map(|e| e.map(|e| e.file_name())).collect()
    };
    match list(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let mode = std::fs::symlink_metadata(dir)?.mode() & 0o7777;
            set_mode(dir, mode | 0o700)?;
            let names = list(dir);
            set_mode(dir, mode)?;
            names
        }
        other => other,
    }
}

fn read_forcibly(path: &Path, mode: u32) -> std::io::Result<Vec<u8>> {
    let read = |p: &Path| -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(p)?;
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v)?;
        Ok(v)
    };
    match read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            set_mode(path, mode | 0o400)?;
            let content = read(path);
            set_mode(path, mode)?;
            content
        }
        other => other,
    }
}

/// [`set_mode`] only when the mode is not `mode` already.
fn ensure_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.mode() & 0o7777 == mode {
        return Ok(());
    }
    set_mode(path, mode)
}

/// chmod of a path that is not a symlink (checked: a symlink's target is never changed).
pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::other("a symlink where a directory was"));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Removes everything inside `dir` (not `dir`), never following a symlink, making
/// directories writable and searchable as needed.
pub(crate) fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for name in read_dir_forcibly(dir)? {
        let path = dir.join(name);
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_dir() {
            if meta.mode() & 0o700 != 0o700 {
                set_mode(&path, (meta.mode() & 0o7777) | 0o700)?;
            }
            empty_dir(&path)?;
            std::fs::remove_dir(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<String> {
        let mut v = Vec::new();
        fn go(root: &Path, rel: &Path, v: &mut Vec<String>) {
            let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
                .expect("list")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            for n in names {
                let rel = rel.join(n);
                let p = root.join(&rel);
                let m = std::fs::symlink_metadata(&p).expect("stat");
                let mode = m.mode() & 0o7777;
                if m.file_type().is_symlink() {
                    v.push(format!(
                        "{} -> {}",
                        rel.display(),
                        std::fs::read_link(&p).expect("link").display()
                    ));
                } else if m.is_dir() {
                    v.push(format!("{}/ {mode:o}", rel.display()));
                    go(root, &rel, v);
                } else {
                    let c = std::fs::read(&p).expect("read");
                    v.push(format!("{} {mode:o} {}", rel.display(), String::from_utf8_lossy(&c)));
                }
            }
        }
        go(root, Path::new(""), &mut v);
        v
    }

    #[test]
    fn restores_exactly_what_was_there_and_removes_the_rest() {
        let base = std::env::temp_dir().join(format!("rce-runner-snapshot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (work, tmp, outside) = (base.join("work"), base.join("tmp"), base.join("outside"));
        for d in [&work, &tmp, &outside] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::create_dir_all(work.join("src/deep")).expect("mkdir");
        std::fs::write(work.join("main.c"), "int main(){}").expect("write");
        std::fs::write(work.join("src/deep/a.txt"), "deep").expect("write");
        std::fs::write(work.join("a.out"), "binary").expect("write");
        set_mode(&work.join("a.out"), 0o755).expect("chmod");
        std::fs::write(work.join("secret"), "unreadable").expect("write");
        set_mode(&work.join("secret"), 0o000).expect("chmod");
        std::os::unix::fs::symlink("main.c", work.join("link")).expect("symlink");
        std::fs::write(tmp.join("cache"), "c").expect("write");
        std::fs::write(outside.join("keep"), "outside").expect("write");
        let before = (tree(&work), tree(&tmp));

        let snap = Snapshot::take(&[&work, &tmp]).expect("snapshot");

        // A run changes, deletes, adds, plants symlinks and locks a directory.
        std::fs::write(work.join("main.c"), "changed").expect("write");
        std::fs::remove_file(work.join("a.out")).expect("rm");
        std::fs::write(work.join("new"), "new").expect("write");
        std::fs::remove_dir_all(work.join("src")).expect("rm");
        std::fs::write(work.join("src"), "a file where a dir was").expect("write");
        std::os::unix::fs::symlink(&outside, work.join("escape")).expect("symlink");
        std::fs::create_dir_all(work.join("locked/inner")).expect("mkdir");
        std::fs::write(work.join("locked/inner/f"), "f").expect("write");
        set_mode(&work.join("locked/inner"), 0o000).expect("chmod");
        set_mode(&work.join("locked"), 0o000).expect("chmod");
        std::fs::remove_file(work.join("link")).expect("rm");
        std::os::unix::fs::symlink(outside.join("keep"), work.join("link")).expect("symlink");
        std::fs::write(tmp.join("other"), "o").expect("write");
        std::fs::remove_file(tmp.join("cache")).expect("rm");

        snap.restore().expect("restore");
        assert_eq!((tree(&work), tree(&tmp)), before);
        assert_eq!(std::fs::read_to_string(outside.join("keep")).expect("untouched"), "outside");
        // Twice in a row is the same.
        snap.restore().expect("restore");
        assert_eq!((tree(&work), tree(&tmp)), before);
        let _ = std::fs::remove_dir_all(&base);
    }
}
