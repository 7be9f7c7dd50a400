//! Source files of a submission and the rules they must follow. The one definition: the
//! shim refuses at once exactly what the operator would refuse, with the same message, and
//! the runner checks names again where it writes them.

use std::{collections::BTreeSet, fmt};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Longest file name (a path relative to the work dir) in a submission.
pub const MAX_FILE_NAME: usize = 255;
/// Most files in a submission.
pub const MAX_FILES: usize = 64;

/// A source file of a multi-file submission.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub struct SourceFile {
    /// Relative path in the work directory, e.g. "main.py" or "lib/util.py".
    pub name: String,
    /// The file's content, as text or base64 (see `encoding`). May be empty.
    #[serde(default, deserialize_with = "crate::quirks::null_as_empty")]
    #[cfg_attr(feature = "crd", schemars(transform = crate::quirks::nullable_string))]
    pub content: String,
    /// How `content` is encoded: "utf8" (default) or "base64".
    #[serde(default)]
    pub encoding: FileEncoding,
}

/// Encoding of a file's content.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}

impl FileEncoding {
    pub fn is_utf8(&self) -> bool {
        *self == FileEncoding::Utf8
    }
}

/// Why a submission's files are refused, in words for its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError(pub String);

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FileError {}

/// Is `name` a safe relative path inside the work dir?
pub fn check_file_name(name: &str) -> Result<(), FileError> {
    let bad = |why: &str| Err(FileError(format!("file name {name:?} is not allowed: {why}")));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_FILE_NAME {
        return bad("it is longer than 255 bytes");
    }
    if name.starts_with('/') {
        return bad("it must be a relative path");
    }
    if name.starts_with('-') || name.starts_with('@') {
        return bad("it must not start with '-' or '@' (it would be read as an option by compilers)");
    }
    if name.contains('\\') || name.contains('\0') || name.chars().any(char::is_control) {
        return bad("it contains a backslash or a control character");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("it has an empty path component"),
            "." | ".." => return bad("it must not contain \".\" or \"..\" components"),
            _ => {}
        }
    }
    Ok(())
}

/// A file's base64 content; white space (the line breaks of `base64`) is tolerated.
pub fn decode_base64(content: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
}

/// Check a submission's files: at least one and at most [`MAX_FILES`], every name allowed
/// and given once, base64 contents decodable.
pub fn check_files(files: &[SourceFile]) -> Result<(), FileError> {
    if files.is_empty() {
        return Err(FileError("files must not be empty".into()));
    }
    if files.len() > MAX_FILES {
        return Err(FileError(format!("files has {} files; at most {MAX_FILES} are allowed", files.len())));
    }
    let mut seen = BTreeSet::new();
    for f in files {
        check_file_name(&f.name)?;
        if !seen.insert(f.name.as_str()) {
            return Err(FileError(format!("file name {:?} appears twice", f.name)));
        }
        if f.encoding == FileEncoding::Base64 {
            decode_base64(&f.content)
                .map_err(|e| FileError(format!("file {:?} is not valid base64: {e}", f.name)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> SourceFile {
        SourceFile { name: name.into(), content: String::new(), encoding: FileEncoding::Utf8 }
    }

    #[test]
    fn names_must_stay_inside_the_work_dir() {
        for bad in [
            "../x.py",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "",
            "a\\b",
            "a/",
            "-o",
            "@opts",
            "a\nb",
            "a\u{7f}",
        ] {
            let e = check_file_name(bad).unwrap_err();
            assert!(e.0.contains("is not allowed"), "{bad:?}: {e}");
        }
        assert!(check_file_name(&"a".repeat(256)).is_err());
        for ok in ["main.py", "lib/util.py", "a-b.c", "x@y"] {
            assert_eq!(check_file_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn files_are_counted_unique_and_decodable() {
        assert_eq!(check_files(&[]).unwrap_err().0, "files must not be empty");
        let many: Vec<SourceFile> = (0..65).map(|i| file(&format!("f{i}"))).collect();
        assert!(check_files(&many).unwrap_err().0.contains("at most 64"));
        assert!(check_files(&many[..64]).is_ok());
        assert!(check_files(&[file("a.py"), file("a.py")]).unwrap_err().0.contains("twice"));
        let b64 = |c: &str| SourceFile { content: c.into(), encoding: FileEncoding::Base64, ..file("a.bin") };
        assert!(check_files(&[b64("%%%")]).unwrap_err().0.contains("not valid base64"));
        assert!(check_files(&[b64("cHJpbnQoMSk=")]).is_ok());
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
    }
}
