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

/// Name of the sandbox Pod of `attempt` (1-based) of the Execution `execution`:
/// `<execution>-<attempt>` when that is a valid DNS label; otherwise the name is lowered to
/// a label and shortened, with a hash of the full name keeping it unique.
pub fn pod_name(execution: &str, attempt: u32) -> String {
    let suffix = format!("-{attempt}");
    let simple = format!("{execution}{suffix}");
    if is_dns_label(&simple) {
        return simple;
    }
    let hash = format!("-{:08x}", fnv1a(execution.as_bytes()) as u32);
    let room = MAX_LABEL - hash.len() - suffix.len();
    let mut base: String = execution
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(room)
        .collect();
    while base.ends_with('-') {
        base.pop();
    }
    let base = base.trim_start_matches('-');
    if base.is_empty() {
        format!("x{hash}{suffix}")
    } else {
        format!("{base}{hash}{suffix}")
    }
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

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
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

    #[test]
    fn short_names_stay_readable() {
        assert_eq!(pod_name("hello", 1), "hello-1");
        assert_eq!(pod_name("hello", 2), "hello-2");
    }

    #[test]
    fn long_or_dotted_names_become_unique_labels() {
        let long = "a".repeat(250);
        let p1 = pod_name(&long, 1);
        let p2 = pod_name(&long, 2);
        assert!(p1.len() <= MAX_LABEL && is_dns_label(&p1), "{p1}");
        assert!(p1.ends_with("-1") && p2.ends_with("-2"));
        let other = format!("{}b", "a".repeat(249));
        assert_ne!(pod_name(&other, 1), p1, "the hash keeps long names apart");
        let dotted = pod_name("my.exec", 1);
        assert!(is_dns_label(&dotted), "{dotted}");
        assert!(dotted.starts_with("my-exec-"));
        assert_ne!(pod_name("my.exec", 1), pod_name("my-exec", 1));
        // 61 characters plus "-1" fit exactly; 62 do not.
        let n61 = "b".repeat(61);
        assert_eq!(pod_name(&n61, 1), format!("{n61}-1"));
        let p = pod_name(&"b".repeat(62), 1);
        assert!(p.len() <= MAX_LABEL && p.ends_with("-1"), "{p}");
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
