//! Judge0's `additional_files`: a zip, extracted here into the Execution's `files`, beside
//! the source file (upstream unzips it into the sandbox's work dir with `unzip -n`: a file
//! already there, the source, is not overwritten).
//!
//! Nothing in the archive is trusted: every entry's name must pass the core's file-name rule
//! ([`rce_api::files::check_file_name`]: relative, no `..`, no backslash); links and other
//! special files are refused; the bytes actually decompressed (never the sizes the headers
//! claim) are counted against [`MAX_EXTRACT_BYTES`] in total and against
//! [`MAX_RATIO`] × the archive's size while reading, so a zip bomb stops at the first
//! chunk over the bound; at most [`MAX_ENTRIES`] files.

use std::io::{Cursor, Read};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{files::check_file_name, FileEncoding, SourceFile};

/// Most files in the archive (the Execution holds at most 64 with the source).
pub const MAX_ENTRIES: usize = rce_api::files::MAX_FILES - 1;
/// Most bytes extracted in total (Judge0's `MAX_EXTRACT_SIZE`, in rce: what an Execution
/// object can carry with room to spare).
pub const MAX_EXTRACT_BYTES: u64 = 768 * 1024;
/// Largest expansion of the archive's size that is believed (beyond a first 64 KiB).
pub const MAX_RATIO: u64 = 200;
const RATIO_FREE_BYTES: u64 = 64 * 1024;

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// Extract the archive. `skip`: names already present (the source file), left as they are.
/// `Err`: why it is refused, in words for the field error of `additional_files`.
/// The name with its `.` components dropped (`./a/./b` is `a/b`).
fn without_dot_components(name: &str) -> String {
    name.split('/').filter(|c| *c != ".").collect::<Vec<_>>().join("/")
}

pub fn extract(zip: &[u8], skip: &[&str]) -> Result<Vec<SourceFile>, String> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("is not a valid zip archive ({e})"))?;
    if archive.len() > MAX_ENTRIES * 4 {
        return Err(format!("has {} entries; at most {MAX_ENTRIES} files are allowed", archive.len()));
    }
    let ratio_bound = (zip.len() as u64).saturating_mul(MAX_RATIO).saturating_add(RATIO_FREE_BYTES);
    let mut total: u64 = 0;
    let mut out: Vec<SourceFile> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("has an entry that cannot be read ({e})"))?;
        // `./` components mean nothing to unzip (the SDK's own examples have them); `..` and
        // everything else is judged by the file name rules.
        let raw_name = without_dot_components(&String::from_utf8_lossy(entry.name_raw()));
        if entry.encrypted() {
            return Err(format!("has an encrypted entry {raw_name:?}"));
        }
        let mode = entry.unix_mode();
        let kind = mode.map(|m| m & S_IFMT).filter(|k| *k != 0);
        if entry.is_dir() || kind == Some(S_IFDIR) {
            let dir = raw_name.trim_end_matches('/');
            if !dir.is_empty() {
                check_file_name(dir).map_err(|e| format!("has an entry whose {e}"))?;
            }
            continue;
        }
        if entry.is_symlink() || kind.is_some_and(|k| k != S_IFREG) {
            return Err(format!(
                "has an entry {raw_name:?} that is a link or a special file; only regular files are allowed"
            ));
        }
        check_file_name(&raw_name).map_err(|e| format!("has an entry whose {e}"))?;
        let mut content = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("has an entry {raw_name:?} that cannot be extracted ({e})"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_EXTRACT_BYTES {
                return Err(format!(
                    "is too large: it extracts to more than {} KB (the most allowed)",
                    MAX_EXTRACT_BYTES / 1024
                ));
            }
            if total > ratio_bound {
                return Err(format!(
                    "is refused: it expands more than {MAX_RATIO} times its size (a zip bomb)"
                ));
            }
            content.extend_from_slice(&buf[..n]);
        }
        if skip.contains(&raw_name.as_str()) || out.iter().any(|f| f.name == raw_name) {
            continue;
        }
        if out.len() == MAX_ENTRIES {
            return Err(format!("has more than {MAX_ENTRIES} files"));
        }
        out.push(match String::from_utf8(content) {
            Ok(text) => SourceFile { name: raw_name, content: text, encoding: FileEncoding::Utf8 },
            Err(e) => SourceFile {
                name: raw_name,
                content: B64.encode(e.into_bytes()),
                encoding: FileEncoding::Base64,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored (uncompressed) zip, written by hand so that every header can lie.
    pub fn stored_zip(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        fn crc32(data: &[u8]) -> u32 {
            let mut c = !0u32;
            for b in data {
                c ^= u32::from(*b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
                }
            }
            !c
        }
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data, mode) in entries {
            let offset = out.len() as u32;
            let crc = crc32(data);
            let local = |v: &mut Vec<u8>| {
                v.extend_from_slice(&20u16.to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend_from_slice(&crc.to_le_bytes());
                v.extend_from_slice(&(data.len() as u32).to_le_bytes());
                v.extend_from_slice(&(data.len() as u32).to_le_bytes());
                v.extend_from_slice(&(name.len() as u16).to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
            };
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            local(&mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&(0x0300u16 | 20).to_le_bytes());
            local(&mut central);
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&(mode << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    const FILE: u32 = 0o100644;

    #[test]
    fn regular_files_are_extracted_beside_the_source() {
        let zip = stored_zip(&[
            ("mymod.py", b"X = 5\n", FILE),
            ("lib/", b"", 0o040755),
            ("lib/data.bin", &[0xff, 0x00], FILE),
            ("main.py", b"not me", FILE),
        ]);
        let files = extract(&zip, &["main.py"]).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].name.as_str(), files[0].content.as_str()), ("mymod.py", "X = 5\n"));
        assert_eq!(files[1].encoding, FileEncoding::Base64);
        assert_eq!(files[1].content, "/wA=");
    }

    #[test]
    fn dot_components_are_dropped_as_unzip_does() {
        let z = stored_zip(&[("./dir1/./dir2/f.txt", b"x", FILE), ("./", b"", 0o040755)]);
        let files = extract(&z, &[]).expect("extracted");
        assert_eq!(files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["dir1/dir2/f.txt"]);
        assert!(extract(&stored_zip(&[("./../x", b"x", FILE)]), &[]).is_err(), "`..` stays refused");
    }

    #[test]
    fn links_escapes_and_bombs_are_refused() {
        let link = stored_zip(&[("evil", b"/etc/passwd", 0o120777)]);
        assert!(extract(&link, &[]).unwrap_err().contains("link"));
        for name in ["../x", "/etc/x", "a/../../b", "a\\b", "-rf"] {
            let z = stored_zip(&[(name, b"x", FILE)]);
            assert!(extract(&z, &[]).unwrap_err().contains("is not allowed"), "{name}");
        }
        let big = vec![b'a'; (MAX_EXTRACT_BYTES + 1) as usize];
        assert!(extract(&stored_zip(&[("big", &big, FILE)]), &[]).unwrap_err().contains("too large"));
        let many: Vec<(String, Vec<u8>)> = (0..70).map(|i| (format!("f{i}"), vec![])).collect();
        let refs: Vec<(&str, &[u8], u32)> =
            many.iter().map(|(n, d)| (n.as_str(), d.as_slice(), FILE)).collect();
        assert!(extract(&stored_zip(&refs), &[]).unwrap_err().contains("more than 63"));
        assert!(extract(b"PK\x03\x04 not a zip", &[]).unwrap_err().contains("not a valid zip"));
    }
}
