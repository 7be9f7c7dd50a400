//! Redis names shared by the operator (writer) and the shim (reader). Changing one of these
//! breaks every running shim: the tests below pin them.

/// Seconds a status document stays in Redis after its last write.
pub const STATUS_TTL_SECS: u64 = 24 * 3600;

/// Key holding the JSON status document of an Execution.
pub fn status_key(namespace: &str, name: &str) -> String {
    format!("rce:exec:{namespace}:{name}")
}

/// Pub/sub channel on which every status change of an Execution is published.
pub fn status_channel(namespace: &str, name: &str) -> String {
    format!("rce:events:{namespace}:{name}")
}

/// Redis Stream of an Execution's live output, written by the operator while the program
/// runs (XADD, capped with MAXLEN at [`LIVE_MAXLEN`], expiring [`LIVE_TTL_SECS`] after the
/// last write). Each entry has a field `k`: `stdout` or `stderr` (with `d`, the bytes as
/// read), `stage` (with `d`: "compile" or "run"), or `end` (the run finished; the terminal
/// status follows on [`status_channel`]). Readers start at id `0` and follow with XREAD, so
/// nothing written before they came is missed.
pub fn live_key(namespace: &str, name: &str) -> String {
    format!("rce:live:{namespace}:{name}")
}

/// Redis Stream of an interactive Execution's stdin, written by the shim (XADD) and read by
/// the operator from id `0`: entries with `k` = `data` (with `d`, the bytes), `eof`, or
/// `signal` (with `d`, a signal name such as "SIGINT").
pub fn stdin_key(namespace: &str, name: &str) -> String {
    format!("rce:stdin:{namespace}:{name}")
}

/// Most entries kept in a live stream.
pub const LIVE_MAXLEN: usize = 10_000;
/// Seconds a live or stdin stream is kept after its last write.
pub const LIVE_TTL_SECS: u64 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        assert_eq!(status_key("default", "ex-1"), "rce:exec:default:ex-1");
        assert_eq!(status_channel("team-a", "ex-1"), "rce:events:team-a:ex-1");
        assert_ne!(status_key("a", "b"), status_channel("a", "b"));
        assert_eq!(live_key("team-a", "ex-1"), "rce:live:team-a:ex-1");
        assert_eq!(stdin_key("team-a", "ex-1"), "rce:stdin:team-a:ex-1");
    }
}

/// The JSON document stored under [`status_key`] and published on [`status_channel`] on
/// every status change of an Execution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDocument {
    pub namespace: String,
    pub name: String,
    /// The Execution's metadata.uid.
    pub uid: String,
    /// The language as given in the spec.
    pub language: String,
    /// The Execution's status at the time of writing.
    pub status: crate::ExecutionStatus,
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    #[test]
    fn document_round_trips() {
        let d = StatusDocument {
            namespace: "default".into(),
            name: "e".into(),
            uid: "u".into(),
            language: "python".into(),
            status: crate::ExecutionStatus { phase: Some(crate::Phase::Pending), ..Default::default() },
        };
        let s = serde_json::to_string(&d).unwrap();
        assert!(s.contains("\"phase\":\"Pending\""), "{s}");
        assert_eq!(serde_json::from_str::<StatusDocument>(&s).unwrap(), d);
    }
}
