//! Names and numbers derived deterministically from an Execution, so that every operator
//! process (before or after a restart) arrives at the same ones.

/// FNV-1a, 64 bit: a stable hash (std's hasher may change between Rust releases).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Longest DNS label (Pod names are used as host names, which are labels).
pub const MAX_LABEL: usize = 63;

/// Name of the sandbox Pod of `attempt` (1-based) of the Execution named `execution` with
/// metadata.uid `uid`: `<name>-<uid>-<attempt>`, the uid as 32 hex digits, the name lowered
/// to a DNS label and shortened to fit. The uid is chosen by the API server, never by the
/// submitter, so no two Executions (in any namespace) can arrive at the same name, whatever
/// names they are given; the name part only makes it readable.
pub fn pod_name(execution: &str, uid: &str, attempt: u32) -> String {
    let uid: String = uid.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect();
    let suffix = format!("-{uid}-{attempt}");
    let room = MAX_LABEL.saturating_sub(suffix.len());
    let mut base: String = execution
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(room)
        .collect();
    while base.ends_with('-') {
        base.pop();
    }
    let base = base.trim_start_matches('-');
    let name = if base.is_empty() { format!("x{suffix}") } else { format!("{base}{suffix}") };
    // A uid is 32 hex digits: the name always fits (and stays unique) when it is one.
    name.chars().take(MAX_LABEL).collect()
}

/// A value usable as a label value: the name itself when it fits, else a shortened form
/// with a hash.
pub fn label_value(name: &str) -> String {
    let ok = name.len() <= MAX_LABEL
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    let base: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_LABEL - hash.len() - 1)
        .collect();
    let base = base.trim_matches('-');
    if base.is_empty() {
        hash
    } else {
        format!("{base}-{hash}")
    }
}

/// Lowest uid/gid given to a sandbox (above any uid an image's /etc/passwd uses).
pub const SANDBOX_ID_MIN: u32 = 100_000;
/// One past the highest sandbox uid/gid.
pub const SANDBOX_ID_END: u32 = 1 << 31;

/// The uid (and gid) the sandbox of an Execution runs as: spread over
/// [`SANDBOX_ID_MIN`, `SANDBOX_ID_END`) by a hash of the Execution's metadata.uid, so that
/// concurrent sandboxes practically never share one (the runner's RLIMIT_NPROC counts per
/// uid) and a retried or re-created Pod gets the same one.
pub fn sandbox_id(execution_uid: &str) -> u32 {
    let span = u64::from(SANDBOX_ID_END - SANDBOX_ID_MIN);
    SANDBOX_ID_MIN + (fnv1a(execution_uid.as_bytes()) % span) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5f2d3a1b-9c8e-4f7a-8b6c-5d4e3f2a1b0c";

    #[test]
    fn names_carry_the_uid_and_stay_readable() {
        assert_eq!(pod_name("hello", UID, 1), "hello-5f2d3a1b9c8e4f7a8b6c5d4e3f2a1b0c-1");
        assert_eq!(pod_name("hello", UID, 2), "hello-5f2d3a1b9c8e4f7a8b6c5d4e3f2a1b0c-2");
        assert_eq!(pod_name("My.Exec", UID, 1), "my-exec-5f2d3a1b9c8e4f7a8b6c5d4e3f2a1b0c-1");
        assert_eq!(pod_name("...", UID, 1), "x-5f2d3a1b9c8e4f7a8b6c5d4e3f2a1b0c-1");
    }

    #[test]
    fn names_are_valid_labels_and_differ_by_uid_whatever_the_name() {
        let long = "a".repeat(250);
        for attempt in [1, 2, 1000] {
            let p = pod_name(&long, UID, attempt);
            assert!(rce_api::names::is_dns_label(&p), "{p}");
            assert!(p.ends_with(&format!("-5f2d3a1b9c8e4f7a8b6c5d4e3f2a1b0c-{attempt}")), "{p}");
        }
        // Same name, another uid: another Pod; names that differ only past the cut: the uid
        // keeps them apart too.
        let other = "0b7c0000-0000-4000-8000-000000000001";
        assert_ne!(pod_name(&long, UID, 1), pod_name(&long, other, 1));
        assert_ne!(pod_name("my.exec", UID, 1), pod_name("my-exec", other, 1));
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("ex-1"), "ex-1");
        let v = label_value(&"x".repeat(100));
        assert!(v.len() <= MAX_LABEL, "{v}");
    }

    #[test]
    fn sandbox_ids_are_in_range_stable_and_spread() {
        let a = sandbox_id("0b7c-uid-1");
        assert_eq!(a, sandbox_id("0b7c-uid-1"));
        assert!((SANDBOX_ID_MIN..SANDBOX_ID_END).contains(&a));
        let ids: std::collections::HashSet<u32> =
            (0..1000).map(|i| sandbox_id(&format!("uid-{i}"))).collect();
        assert_eq!(ids.len(), 1000);
    }
}
