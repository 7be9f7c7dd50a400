//! How Piston names the Runtimes: upstream's `language`, SemVer `version`, `aliases` and
//! `runtime` from each Runtime's `spec.piston` ([`rce_api::PistonName`]); a Runtime without
//! it is listed under its own name, version and aliases. A request's `language` is matched
//! as upstream matches it (the language or one of its aliases, the latest version satisfying
//! the requested one), then, as rce always has, against the Runtimes' own names and aliases.

use std::{cmp::Ordering, sync::Arc};

use rce_api::Runtime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog;

/// One entry of `GET /api/v2/runtimes`. `runtime` is there only for a language served by a
/// package of another name (upstream's `provides`, e.g. JavaScript by `node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PistonRuntime {
    pub language: String,
    pub version: String,
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// The Piston entry of a Runtime.
pub fn entry(rt: &Runtime) -> PistonRuntime {
    match &rt.spec.piston {
        Some(p) => PistonRuntime {
            language: p.language.clone(),
            version: p.version.clone(),
            aliases: p.aliases.clone(),
            runtime: p.runtime.clone(),
        },
        None => PistonRuntime {
            language: catalog::name(rt).to_string(),
            version: semver(&rt.spec.version),
            aliases: rt.spec.aliases.clone(),
            runtime: None,
        },
    }
}

/// A version as SemVer (upstream's versions all are): a numeric `MAJOR` or `MAJOR.MINOR`
/// padded with zeros (`9.1` → `9.1.0`); anything else as it is.
pub fn semver(version: &str) -> String {
    let v = version.trim();
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric && parts.len() < 3 {
        let mut parts: Vec<&str> = parts;
        parts.resize(3, "0");
        parts.join(".")
    } else {
        v.to_string()
    }
}

/// The list, sorted by language then version (newest first).
pub fn list(runtimes: Vec<Arc<Runtime>>) -> Vec<PistonRuntime> {
    let mut list: Vec<PistonRuntime> = runtimes.iter().map(|rt| entry(rt)).collect();
    list.sort_by(|a, b| a.language.cmp(&b.language).then_with(|| compare_versions(&b.version, &a.version)));
    list
}

/// Compare two versions component by component, numerically where both are numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| v.split(['.', '-', '+']).map(str::to_string).collect::<Vec<_>>();
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The Runtime a Piston request names: among those whose Piston language or alias is
/// `language` and whose version satisfies `version`, the latest (upstream's
/// `get_latest_runtime_matching_language_version`); else the Runtime of that rce name or
/// alias, if its version satisfies `version`.
pub fn find(runtimes: &[Arc<Runtime>], language: &str, version: &str) -> Option<Arc<Runtime>> {
    let lang = language.trim();
    let upstream = runtimes
        .iter()
        .filter(|rt| {
            rt.spec.piston.as_ref().is_some_and(|p| {
                (p.language.eq_ignore_ascii_case(lang)
                    || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(lang)))
                    && catalog::version_matches(version, &p.version)
            })
        })
        .max_by(|a, b| compare_versions(&entry(a).version, &entry(b).version));
    if let Some(rt) = upstream {
        return Some(rt.clone());
    }
    catalog::find(runtimes, lang).filter(|rt| catalog::version_matches(version, &entry(rt).version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::runtime;
    use rce_api::PistonName;

    fn with_piston(
        mut rt: Runtime,
        language: &str,
        version: &str,
        aliases: &[&str],
        by: Option<&str>,
    ) -> Arc<Runtime> {
        rt.spec.piston = Some(PistonName {
            language: language.into(),
            version: version.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            runtime: by.map(str::to_string),
        });
        Arc::new(rt)
    }

    #[test]
    fn upstream_names_first_then_rces_own() {
        let rts = vec![
            with_piston(runtime("cpp", "12.2.0", &["c++"], &[54]), "c++", "12.2.0", &["cpp", "g++"], None),
            with_piston(
                runtime("sqlite", "3.40.1", &[], &[82]),
                "sqlite3",
                "3.40.1",
                &["sqlite", "sql"],
                None,
            ),
            with_piston(
                runtime("javascript", "18.19.0", &["js"], &[63]),
                "javascript",
                "18.19.0",
                &["node-js", "js"],
                Some("node"),
            ),
            Arc::new(runtime("bash", "5.2.15", &["sh"], &[46])),
        ];
        let name = |l: &str, v: &str| find(&rts, l, v).map(|r| catalog::name(&r).to_string());
        assert_eq!(name("c++", "*").as_deref(), Some("cpp"));
        assert_eq!(name("g++", "12").as_deref(), Some("cpp"));
        assert_eq!(name("sqlite3", "3.40.1").as_deref(), Some("sqlite"));
        assert_eq!(name("sqlite", "*").as_deref(), Some("sqlite"));
        assert_eq!(name("node-js", "18.x").as_deref(), Some("javascript"));
        assert_eq!(name("bash", "5").as_deref(), Some("bash"));
        assert_eq!(name("c++", "11"), None);
        assert_eq!(name("cobol", "*"), None);
        let l = list(rts.clone());
        assert_eq!(
            l.iter().map(|e| e.language.as_str()).collect::<Vec<_>>(),
            ["bash", "c++", "javascript", "sqlite3"]
        );
        let js = serde_json::to_value(&l[2]).unwrap();
        assert_eq!(
            js,
            serde_json::json!({"language": "javascript", "version": "18.19.0", "aliases": ["node-js", "js"], "runtime": "node"})
        );
        let bash = serde_json::to_value(&l[0]).unwrap();
        assert_eq!(bash, serde_json::json!({"language": "bash", "version": "5.2.15", "aliases": ["sh"]}));
    }

    #[test]
    fn own_versions_are_listed_as_semver() {
        assert_eq!(semver("9.1"), "9.1.0");
        assert_eq!(semver("3"), "3.0.0");
        assert_eq!(semver("3.11.2"), "3.11.2");
        assert_eq!(semver("1.2.3.4"), "1.2.3.4");
        assert_eq!(semver("2.0-rc1"), "2.0-rc1");
        let rts = vec![Arc::new(runtime("plaintext", "9.1", &[], &[43]))];
        assert_eq!(entry(&rts[0]).version, "9.1.0");
        assert!(find(&rts, "plaintext", "9.1.0").is_some());
        assert!(find(&rts, "plaintext", "9").is_some());
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("10.2.0", "9.9.9"), Ordering::Greater);
        assert_eq!(compare_versions("3.11.2", "3.11.2"), Ordering::Equal);
        assert_eq!(compare_versions("3.11", "3.11.2"), Ordering::Less);
    }
}
