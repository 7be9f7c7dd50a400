//! The language catalog, read from the cluster's `Runtime` objects.

use std::sync::Arc;

use rce_api::{runtime::lookup, LimitError, Limits, ResolvedLimits, Runtime};

pub fn name(rt: &Runtime) -> &str {
    rt.metadata.name.as_deref().unwrap_or("")
}

/// Sorted by name, for stable lists.
pub fn sorted(mut rts: Vec<Arc<Runtime>>) -> Vec<Arc<Runtime>> {
    rts.sort_by(|a, b| name(a).cmp(name(b)));
    rts
}

/// The Runtime answering to `language` (see [`lookup::find`]).
pub fn find(rts: &[Arc<Runtime>], language: &str) -> Option<Arc<Runtime>> {
    lookup::find(rts, language).cloned()
}

/// The Runtime serving a Judge0 language id.
pub fn find_judge0(rts: &[Arc<Runtime>], id: u32) -> Option<Arc<Runtime>> {
    lookup::find_judge0(rts, id).cloned()
}

pub fn known_names(rts: &[Arc<Runtime>]) -> Vec<String> {
    lookup::known_names(rts)
}

/// Display name, e.g. "Python" (falls back to the object name).
pub fn display_name(rt: &Runtime) -> String {
    if rt.spec.display_name.is_empty() {
        name(rt).to_string()
    } else {
        rt.spec.display_name.clone()
    }
}

/// Check requested limits against the Runtime's defaults and maximum, under `cap` (the
/// operator's ceilings: the `--cap-*` flags the shim takes too).
pub fn resolve_limits(
    rt: &Runtime,
    requested: Option<&Limits>,
    cap: &ResolvedLimits,
) -> Result<ResolvedLimits, LimitError> {
    Limits::resolve(requested, &rt.spec.default_limits, &rt.spec.max_limits, cap)
}

/// The Runtime's maximum limits, resolved (what a request may ask for at most).
pub fn max_limits(rt: &Runtime, cap: &ResolvedLimits) -> ResolvedLimits {
    ResolvedLimits::maximum(&rt.spec.max_limits, cap)
}

/// Does a Piston-style version request match this Runtime's version? Accepts `*`, an empty
/// string, an exact version, a prefix of whole components (`3`, `3.11`) and `x` wildcards
/// (`3.x`, `3.11.x`).
pub fn version_matches(requested: &str, actual: &str) -> bool {
    let req = requested.trim();
    if req.is_empty() || req == "*" || req == "latest" {
        return true;
    }
    let req = req.trim_start_matches(['=', '^', '~', 'v']);
    let a: Vec<&str> = actual.split('.').collect();
    let r: Vec<&str> = req.split('.').collect();
    if r.len() > a.len() {
        return false;
    }
    r.iter().zip(&a).all(|(r, a)| *r == "x" || *r == "X" || *r == "*" || r == a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::RuntimeSpec;

    pub fn rt(name: &str, aliases: &[&str], ids: &[u32]) -> Arc<Runtime> {
        let mut r = Runtime::new(
            name,
            RuntimeSpec {
                version: "3.11.2".into(),
                aliases: aliases.iter().map(|s| s.to_string()).collect(),
                judge0_ids: ids.to_vec(),
                ..Default::default()
            },
        );
        r.metadata.name = Some(name.into());
        Arc::new(r)
    }

    #[test]
    fn finds_by_name_alias_and_judge0_id() {
        let rts = vec![rt("python", &["py", "python3"], &[71]), rt("bash", &["sh"], &[46])];
        assert_eq!(name(&find(&rts, "PY").unwrap()), "python");
        assert_eq!(name(&find(&rts, "bash").unwrap()), "bash");
        assert!(find(&rts, "cobol").is_none());
        assert_eq!(name(&find_judge0(&rts, 46).unwrap()), "bash");
        assert!(find_judge0(&rts, 1).is_none());
        assert_eq!(known_names(&rts), vec!["bash", "python"]);
    }

    #[test]
    fn piston_versions_match_like_semver_ranges() {
        assert!(version_matches("*", "3.11.2"));
        assert!(version_matches("3.11.2", "3.11.2"));
        assert!(version_matches("3", "3.11.2"));
        assert!(version_matches("3.x", "3.11.2"));
        assert!(version_matches("3.11", "3.11.2"));
        assert!(!version_matches("3.10", "3.11.2"));
        assert!(!version_matches("2", "3.11.2"));
        assert!(!version_matches("3.11.2.1", "3.11.2"));
    }
}
