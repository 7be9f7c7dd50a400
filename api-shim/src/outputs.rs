//! The exact bytes of an Execution's outputs (stdout, stderr, compile output), for every
//! surface.
//!
//! The status holds each output as text, or as base64 when its `…Encoding` is `base64` (the
//! bytes are not UTF-8), and at most [`STATUS_EXCERPT_BYTES`] of it. Beyond that the full
//! outputs live in ConfigMaps owned by the Execution, named by `status.output`
//! ([`StoredOutput`]): each ConfigMap's `binaryData.part`, in order, concatenated, is stdout
//! then stderr then the compile output, of the lengths given there. [`read`] gives the exact
//! bytes from either; [`from_status`] only what the status itself holds (no cluster call).
//!
//! The ConfigMaps are in the cluster, not in Redis: a large output survives the loss of
//! Redis (the status document is mirrored again from the Execution; the parts are read from
//! the ConfigMaps as before). Once the Execution is deleted its ConfigMaps go with it; a
//! status document still cached in Redis then yields its excerpts, with `complete: false`.
//!
//! [`STATUS_EXCERPT_BYTES`]: rce_api::execution::STATUS_EXCERPT_BYTES

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_api::{execution::StoredOutput, ExecutionStatus, FileEncoding};

use crate::{
    backend::{BackendError, Cluster, ExecView},
    error::ApiError,
};

/// The `binaryData` key of each output ConfigMap.
pub const PART_KEY: &str = "part";

/// An Execution's outputs as bytes. `None`: the status has no such output (e.g. before the
/// program ran, or no compile step).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub compile_output: Option<Vec<u8>>,
    /// The order in which stdout and stderr arrived (`status.arrival`).
    pub arrival: Vec<i64>,
    /// These are the full outputs (false: the status held only excerpts and the stored
    /// parts could not be read; the `…Truncated` flags of the status still say whether the
    /// program wrote more than its output limit).
    pub complete: bool,
}

impl Outputs {
    pub fn stdout(&self) -> &[u8] {
        self.stdout.as_deref().unwrap_or_default()
    }
    pub fn stderr(&self) -> &[u8] {
        self.stderr.as_deref().unwrap_or_default()
    }
    pub fn compile_output(&self) -> &[u8] {
        self.compile_output.as_deref().unwrap_or_default()
    }
    /// stdout and stderr interleaved as they arrived (Piston's `output`).
    pub fn combined(&self) -> Vec<u8> {
        in_arrival_order(self.stdout(), self.stderr(), &self.arrival)
    }
}

impl From<Outputs> for rce_api::judge0::Outputs {
    fn from(o: Outputs) -> Self {
        rce_api::judge0::Outputs { stdout: o.stdout, stderr: o.stderr, compile_output: o.compile_output }
    }
}

/// Text of output bytes, invalid UTF-8 replaced (for surfaces that only speak text).
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn decode(text: Option<&String>, encoding: FileEncoding, what: &str) -> Option<Vec<u8>> {
    let text = text?;
    Some(match encoding {
        FileEncoding::Utf8 => text.as_bytes().to_vec(),
        FileEncoding::Base64 => B64.decode(text).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the status's {what} is marked base64 but is not");
            text.as_bytes().to_vec()
        }),
    })
}

/// What the status itself holds (its excerpts, decoded). `complete` when there is nothing
/// stored beyond them.
pub fn from_status(status: &ExecutionStatus) -> Outputs {
    Outputs {
        stdout: decode(status.stdout.as_ref(), status.stdout_encoding, "stdout"),
        stderr: decode(status.stderr.as_ref(), status.stderr_encoding, "stderr"),
        compile_output: decode(
            status.compile_output.as_ref(),
            status.compile_output_encoding,
            "compileOutput",
        ),
        arrival: status.arrival.clone(),
        complete: status.output.is_none(),
    }
}

/// Why the stored parts could not be used.
enum Stored {
    /// A ConfigMap or its part is gone (the Execution was deleted): use the excerpts.
    Missing(String),
    /// The parts do not add up to the lengths in the status.
    Inconsistent(String),
    Backend(BackendError),
}

async fn stored_bytes(
    cluster: &dyn Cluster,
    namespace: &str,
    stored: &StoredOutput,
) -> Result<Vec<u8>, Stored> {
    let total = stored.stdout_bytes + stored.stderr_bytes + stored.compile_output_bytes;
    let mut all = Vec::with_capacity(usize::try_from(total).unwrap_or(0).min(64 << 20));
    for name in &stored.config_maps {
        match cluster.config_map_bytes(namespace, name, PART_KEY).await {
            Ok(Some(part)) => all.extend_from_slice(&part),
            Ok(None) => {
                return Err(Stored::Missing(format!("ConfigMap {namespace}/{name} or its part is gone")))
            }
            Err(e) => return Err(Stored::Backend(e)),
        }
    }
    if all.len() as u64 != total {
        return Err(Stored::Inconsistent(format!(
            "the parts hold {} bytes, the status says {total}",
            all.len()
        )));
    }
    Ok(all)
}

/// The exact bytes of an Execution's outputs, given its status and namespace: the status's
/// own fields decoded, or, when `status.output` names stored parts, the parts read from the
/// ConfigMaps (in the Execution's namespace). A stored part that is gone (the Execution was
/// deleted) gives the excerpts with `complete: false`; an unreachable API server is an error
/// (503), not a silently shortened output.
pub async fn read_status(
    cluster: &dyn Cluster,
    namespace: &str,
    status: &ExecutionStatus,
) -> Result<Outputs, ApiError> {
    let mut out = from_status(status);
    let Some(stored) = &status.output else {
        return Ok(out);
    };
    match stored_bytes(cluster, namespace, stored).await {
        Ok(mut all) => {
            let (so, se) = (stored.stdout_bytes as usize, stored.stderr_bytes as usize);
            let compile = all.split_off(so + se);
            let stderr = all.split_off(so);
            // A stored output replaces the excerpt; an empty one stays as the status had it
            // (absent or empty).
            let keep = |bytes: Vec<u8>, excerpt: Option<Vec<u8>>| {
                if bytes.is_empty() {
                    excerpt.map(|_| bytes)
                } else {
                    Some(bytes)
                }
            };
            out.stdout = keep(all, out.stdout);
            out.stderr = keep(stderr, out.stderr);
            out.compile_output = keep(compile, out.compile_output);
            out.complete = true;
            Ok(out)
        }
        Err(Stored::Missing(why)) => {
            tracing::warn!(namespace, %why, "stored outputs unavailable; answering with the status's excerpts");
            Ok(out)
        }
        Err(Stored::Inconsistent(why)) => {
            tracing::error!(namespace, %why, "stored outputs inconsistent; answering with the status's excerpts");
            Ok(out)
        }
        Err(Stored::Backend(e)) => {
            tracing::error!(error = %e, namespace, "reading the stored outputs failed");
            Err(ApiError::unavailable())
        }
    }
}

/// [`read_status`] for a view (its namespace and status).
pub async fn read(cluster: &dyn Cluster, view: &ExecView) -> Result<Outputs, ApiError> {
    read_status(cluster, &view.namespace, &view.status).await
}

/// stdout and stderr in the order they arrived. `arrival`: `+n` the next `n` bytes of
/// stdout, `-n` the next `n` of stderr (see `rce_api::protocol::StageResult::arrival`).
/// Whatever it does not cover (an empty list, or outputs longer than it says) follows:
/// the rest of stdout, then the rest of stderr.
pub fn in_arrival_order(stdout: &[u8], stderr: &[u8], arrival: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stdout.len() + stderr.len());
    let (mut o, mut e) = (0usize, 0usize);
    for &n in arrival {
        let (src, at) = if n >= 0 { (stdout, &mut o) } else { (stderr, &mut e) };
        let len = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
        let end = at.saturating_add(len).min(src.len());
        out.extend_from_slice(&src[*at..end]);
        *at = end;
    }
    out.extend_from_slice(&stdout[o..]);
    out.extend_from_slice(&stderr[e..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryCluster;

    #[test]
    fn arrival_interleaves_and_the_rest_follows() {
        assert_eq!(in_arrival_order(b"ab", b"XY", &[]), b"abXY");
        assert_eq!(in_arrival_order(b"ab", b"XY", &[1, -2, 1]), b"aXYb");
        assert_eq!(in_arrival_order(b"abc", b"XY", &[-1, 1]), b"XabcY");
        // Longer than the outputs (excerpts of longer ones): clamped.
        assert_eq!(in_arrival_order(b"a", b"X", &[5, -5, 3]), b"aX");
        assert_eq!(in_arrival_order(b"", b"", &[i64::MIN, i64::MAX]), b"");
    }

    #[test]
    fn the_status_fields_are_decoded_by_their_encoding() {
        let st = ExecutionStatus {
            stdout: Some("/v8AQQo=".into()),
            stdout_encoding: FileEncoding::Base64,
            stderr: Some("warn\n".into()),
            ..Default::default()
        };
        let o = from_status(&st);
        assert_eq!(o.stdout.as_deref(), Some(&[0xfe, 0xff, 0x00, 0x41, 0x0a][..]));
        assert_eq!(o.stderr.as_deref(), Some(&b"warn\n"[..]));
        assert_eq!(o.compile_output, None);
        assert!(o.complete);
    }

    fn stored(names: &[&str], so: u64, se: u64, co: u64) -> ExecutionStatus {
        ExecutionStatus {
            stdout: Some("excerpt".into()),
            stderr: Some(String::new()),
            compile_output: None,
            output: Some(StoredOutput {
                config_maps: names.iter().map(|s| s.to_string()).collect(),
                stdout_bytes: so,
                stderr_bytes: se,
                compile_output_bytes: co,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn stored_parts_are_concatenated_and_split_by_their_lengths() {
        let c = MemoryCluster::with_runtimes(vec![]);
        c.put_config_map("ns", "x-out-0", PART_KEY, b"hello\xffwor".to_vec());
        c.put_config_map("ns", "x-out-1", PART_KEY, b"ld\nerr!cc".to_vec());
        let o = read_status(&*c, "ns", &stored(&["x-out-0", "x-out-1"], 12, 4, 2)).await.unwrap();
        assert_eq!(o.stdout(), b"hello\xffworld\n");
        assert_eq!(o.stderr(), b"err!");
        assert_eq!(o.compile_output.as_deref(), Some(&b"cc"[..]));
        assert!(o.complete);
        // Another namespace's ConfigMap of that name is not this one: the excerpts.
        let o = read_status(&*c, "other", &stored(&["x-out-0", "x-out-1"], 12, 4, 2)).await.unwrap();
        assert_eq!((o.stdout(), o.complete), (&b"excerpt"[..], false));
        // Lengths that do not add up: the excerpts, never bytes cut at the wrong place.
        let o = read_status(&*c, "ns", &stored(&["x-out-0", "x-out-1"], 12, 4, 3)).await.unwrap();
        assert_eq!((o.stdout(), o.complete), (&b"excerpt"[..], false));
        // An empty stored output keeps the status's absent or empty field.
        c.put_config_map("ns", "y-out-0", PART_KEY, b"abc".to_vec());
        let o = read_status(&*c, "ns", &stored(&["y-out-0"], 3, 0, 0)).await.unwrap();
        assert_eq!((o.stderr.as_deref(), o.compile_output.as_deref()), (Some(&b""[..]), None));
        // The API server down: an error, not a shortened output.
        c.set_down(true);
        assert!(read_status(&*c, "ns", &stored(&["y-out-0"], 3, 0, 0)).await.is_err());
        // Nothing stored: no cluster call at all.
        assert_eq!(read_status(&*c, "ns", &ExecutionStatus::default()).await.unwrap().stdout, None);
    }
}
