//! Writing the submission's files into the work dir without trusting their names.
//!
//! Every path is resolved one component at a time from a directory file descriptor with
//! `O_NOFOLLOW`, directories are created with `mkdirat`, files with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`: a symlink already present in the work dir (at any depth)
//! is never followed, and an existing file is never overwritten.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::protocol::{Encoding, File};

pub use rce_api::files::{MAX_FILES, MAX_FILE_NAME};

/// Checks a file name from the request (the domain core's rules, the ones the operator and
/// the shim applied already: checked again here, where the name is used) and splits it into
/// its components.
pub fn validate_name(name: &str) -> Result<Vec<&str>, String> {
    rce_api::files::check_file_name(name).map_err(|e| e.0)?;
    Ok(name.split('/').collect())
}

/// Decodes a file's content.
pub fn decode_content(file: &File) -> Result<Vec<u8>, String> {
    match file.encoding {
        Encoding::Utf8 => Ok(file.content.as_bytes().to_vec()),
        Encoding::Base64 => rce_api::files::decode_base64(&file.content)
            .map_err(|e| format!("invalid base64 content in file {:?}: {e}", file.name)),
    }
}

/// Validates every name and content first, then writes the files into `dir`.
pub fn write_files(dir: &Path, files: &[File]) -> Result<(), String> {
    if files.len() > MAX_FILES {
        return Err(format!("too many files: {} (at most {MAX_FILES})", files.len()));
    }
    let mut checked = Vec::with_capacity(files.len());
    for f in files {
        checked.push((f.name.as_str(), validate_name(&f.name)?, decode_content(f)?));
    }
    let root = open_dir(libc::AT_FDCWD, path_cstring(dir)?, false)
        .map_err(|e| format!("cannot open the work dir {}: {e}", dir.display()))?;
    for (name, parts, content) in checked {
        write_one(&root, &parts, &content).map_err(|e| format!("cannot write file {name:?}: {e}"))?;
    }
    Ok(())
}

fn write_one(root: &OwnedFd, parts: &[&str], content: &[u8]) -> std::io::Result<()> {
    let (last, dirs) = parts.split_last().ok_or_else(|| std::io::Error::other("empty name"))?;
    let mut held: Option<OwnedFd> = None;
    for d in dirs {
        let parent = held.as_ref().unwrap_or(root).as_raw_fd();
        let c = component_cstring(d)?;
        let fd = match open_dir(parent, c.clone(), true) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // SAFETY: plain syscall on a valid fd and NUL-terminated name.
                if unsafe { libc::mkdirat(parent, c.as_ptr(), 0o755) } < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                open_dir(parent, c, true)?
            }
            other => other?,
        };
        held = Some(fd);
    }
    let parent = held.as_ref().unwrap_or(root).as_raw_fd();
    let c = component_cstring(last)?;
    // SAFETY: plain syscall on a valid fd and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            parent,
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(content)
}

/// Opens a directory relative to `parent`; with `nofollow`, a symlink is an error (`ELOOP`
/// or `ENOTDIR`), never followed.
fn open_dir(parent: RawFd, name: CString, nofollow: bool) -> std::io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: plain syscall with a NUL-terminated name.
    let fd = unsafe { libc::openat(parent, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn component_cstring(s: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

fn path_cstring(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("invalid work dir {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str) -> String {
        validate_name(name).expect_err(name)
    }

    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(validate_name("main.c").expect("valid"), vec!["main.c"]);
        assert_eq!(validate_name("src/lib/util.py").expect("valid"), vec!["src", "lib", "util.py"]);
        assert_eq!(validate_name(".hidden").expect("valid"), vec![".hidden"]);
        assert_eq!(validate_name("a..b").expect("valid"), vec!["a..b"]);
        assert_eq!(validate_name("ünïcode.txt").expect("valid"), vec!["ünïcode.txt"]);
    }

    #[test]
    fn rejects_traversal_and_absolute_names() {
        let e = err("../x");
        assert!(e.starts_with("file name \"../x\" is not allowed: "), "{e}");
        assert!(e.contains(".."), "{e}");
        assert!(err("a/../../etc/passwd").contains("\"..\""));
        assert!(err("..").contains("\"..\""));
        assert!(err("/etc/passwd").contains("relative path"));
        assert!(err("./a").contains("\".\""));
        assert!(err("@opts").contains("'-' or '@'"));
        assert!(err("-toolexec=sh x").contains("'-' or '@'"));
        assert!(validate_name("a/-b").is_ok() && validate_name("a@b").is_ok());
    }

    #[test]
    fn rejects_empty_components_nul_and_control_characters() {
        assert!(err("").contains("it is empty"));
        assert!(err("a//b").contains("empty path component"));
        assert!(err("dir/").contains("empty path component"));
        assert!(err("a\0b").contains("control character"));
        assert!(err("a\nb").contains("control character"));
    }

    #[test]
    fn rejects_overlong_names() {
        assert!(err(&"x".repeat(MAX_FILE_NAME + 1)).contains("longer than"));
        assert!(validate_name(&"x".repeat(MAX_FILE_NAME)).is_ok());
        let long_path = vec!["abcdefgh"; MAX_FILE_NAME / 9 + 1].join("/");
        assert!(long_path.len() > MAX_FILE_NAME);
        assert!(err(&long_path).contains("longer than"));
    }

    #[test]
    fn decodes_base64_with_line_breaks() {
        let f = File { name: "b".into(), content: "aGVs\nbG8=\n".into(), encoding: Encoding::Base64 };
        assert_eq!(decode_content(&f).expect("valid base64"), b"hello");
        let bad = File { name: "b".into(), content: "!!!".into(), encoding: Encoding::Base64 };
        assert!(decode_content(&bad).expect_err("invalid").contains("invalid base64 content in file \"b\""));
    }

    #[test]
    fn writes_nested_files_and_refuses_duplicates_and_symlinks() {
        let dir = std::env::temp_dir().join(format!("rce-runner-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("work")).expect("mkdir");
        let work = dir.join("work");
        let file = |name: &str, content: &str| File {
            name: name.into(),
            content: content.into(),
            encoding: Encoding::Utf8,
        };
        write_files(&work, &[file("a/b/c.txt", "deep"), file("a/d.txt", "x"), file("top", "t")])
            .expect("written");
        assert_eq!(std::fs::read_to_string(work.join("a/b/c.txt")).expect("read"), "deep");
        assert_eq!(std::fs::read_to_string(work.join("top")).expect("read"), "t");

        let e = write_files(&work, &[file("top", "again")]).expect_err("duplicate");
        assert!(e.contains("cannot write file \"top\""), "{e}");
        assert_eq!(std::fs::read_to_string(work.join("top")).expect("read"), "t");

        // Symlinks planted in the work dir: neither the last nor an inner component is followed.
        std::fs::create_dir_all(dir.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("outside/target"), work.join("link")).expect("symlink");
        std::os::unix::fs::symlink(dir.join("outside"), work.join("linkdir")).expect("symlink");
        assert!(write_files(&work, &[file("link", "evil")]).is_err());
        assert!(write_files(&work, &[file("linkdir/x", "evil")]).is_err());
        assert!(!dir.join("outside/target").exists());
        assert!(!dir.join("outside/x").exists());

        // Validation happens before anything is written.
        let e = write_files(&work, &[file("fresh", "1"), file("../escape", "2")]).expect_err("invalid");
        assert!(e.contains("\"../escape\""), "{e}");
        assert!(!work.join("fresh").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
