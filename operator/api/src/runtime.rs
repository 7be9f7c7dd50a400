use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Limits;

/// A language rce can run: its sandbox image, how to compile and run a submission, and the
/// limits that apply. Cluster-scoped; `kubectl apply` of a Runtime adds a language without a
/// rebuild. An Execution names a Runtime by its object name or one of its aliases.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "rce.dev",
    version = "v1alpha1",
    kind = "Runtime",
    plural = "runtimes",
    shortname = "rt",
    printcolumn = r#"{"name":"Language","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpec {
    /// Human-readable name, e.g. "Python". Shown by the REST API's language lists.
    #[serde(
        default,
        deserialize_with = "crate::quirks::null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    #[schemars(transform = crate::quirks::nullable_string)]
    pub display_name: String,
    /// Version of the language toolchain in the image, e.g. "3.11.2".
    pub version: String,
    /// The code editor's syntax mode for this language (the playground's CodeMirror
    /// language, e.g. "python", "cpp", "javascript", "rust"); absent: plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editor_mode: Option<String>,
    /// Other names this language answers to, e.g. ["py", "python3"].
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Container image holding the toolchain and the rce runner.
    pub image: String,
    /// File name the source is written to when an Execution gives `source` (e.g. "main.py").
    pub source_file: String,
    /// Compile command as an argument vector, run in the work dir before the program.
    /// `{file}` stands for the entry file's name. Absent for interpreted languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<Vec<String>>,
    /// Run command as an argument vector; the Execution's args are appended.
    /// `{file}` stands for the entry file's name.
    pub run: Vec<String>,
    /// Extra environment variables for the compile and run steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Limits used when an Execution does not set them.
    #[serde(default)]
    pub default_limits: Limits,
    /// The most an Execution may ask for; a request above it is refused.
    #[serde(default)]
    pub max_limits: Limits,
    /// Limits of the compile step (defaults to the run limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_limits: Option<Limits>,
    /// CPU limit of the sandbox container (a Kubernetes quantity, e.g. "1" or "500m");
    /// defaults to the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    /// Size of the sandbox's memory-backed work directory in MiB (defaults to the operator's,
    /// grown to twice the file size limit). Compilers writing big binaries need more.
    #[serde(default, rename = "workDirMiB", skip_serializing_if = "Option::is_none")]
    pub work_dir_mib: Option<u64>,
    /// Size of the sandbox's memory-backed /tmp in MiB (defaults to the operator's).
    #[serde(default, rename = "tmpMiB", skip_serializing_if = "Option::is_none")]
    pub tmp_mib: Option<u64>,
    /// RuntimeClass for the sandbox Pod (e.g. "gvisor", "kata"); overrides the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Judge0 CE language ids served by this Runtime (e.g. [71] for Python).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judge0_ids: Vec<u32>,
    /// The compiler options a submission may give (`spec.compilerOptions`), as patterns:
    /// an exact option, or a prefix ending in `*` (e.g. `-O*`, `-std=*`, `-D*`); see
    /// [`crate::options`]. Empty: no options are accepted. They replace `{options}` in
    /// `compile`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiler_options: Vec<String>,
    /// How Piston v2 lists this Runtime (`/api/v2/runtimes`), as upstream names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piston: Option<PistonName>,
}

/// A Runtime's entry in Piston's list: upstream's `language`, SemVer `version`, `aliases`
/// and, for languages served by several runtimes (JavaScript by node or deno), `runtime`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PistonName {
    pub language: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// One environment variable.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl Runtime {
    /// Does this Runtime answer to `language` (its name or an alias, case-insensitive)?
    pub fn answers_to(&self, language: &str) -> bool {
        let l = language.trim();
        self.metadata.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(l))
            || self.spec.aliases.iter().any(|a| a.eq_ignore_ascii_case(l))
    }
}

/// Looking a Runtime up: the one definition, used by the operator (which runs the Execution)
/// and the shim (which refuses an unknown language at once).
pub mod lookup {
    use std::{borrow::Borrow, collections::BTreeSet};

    use super::Runtime;

    fn rt<R: Borrow<Runtime>>(r: &R) -> &Runtime {
        r.borrow()
    }

    /// The Runtime a `language` names: an exact object name (case-insensitive) wins over an
    /// alias.
    pub fn find<'a, R: Borrow<Runtime>>(runtimes: &'a [R], language: &str) -> Option<&'a R> {
        let lang = language.trim();
        runtimes
            .iter()
            .find(|r| rt(*r).metadata.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(lang)))
            .or_else(|| runtimes.iter().find(|r| rt(*r).answers_to(lang)))
    }

    /// The Runtime serving a Judge0 language id.
    pub fn find_judge0<R: Borrow<Runtime>>(runtimes: &[R], id: u32) -> Option<&R> {
        runtimes.iter().find(|r| rt(*r).spec.judge0_ids.contains(&id))
    }

    /// The Runtimes' names, sorted, each once.
    pub fn known_names<R: Borrow<Runtime>>(runtimes: &[R]) -> Vec<String> {
        let names: BTreeSet<&str> = runtimes.iter().filter_map(|r| rt(r).metadata.name.as_deref()).collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// The message for an unknown language, listing the known ones.
    pub fn unknown_language<R: Borrow<Runtime>>(language: &str, runtimes: &[R]) -> String {
        let known = known_names(runtimes);
        if known.is_empty() {
            format!("unknown language {language:?}: no Runtime is installed")
        } else {
            format!("unknown language {language:?}; known languages: {}", known.join(", "))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::RuntimeSpec;

        fn runtime(name: &str, aliases: &[&str], ids: &[u32]) -> Runtime {
            let mut r = Runtime::new(
                name,
                RuntimeSpec {
                    aliases: aliases.iter().map(|s| s.to_string()).collect(),
                    judge0_ids: ids.to_vec(),
                    ..Default::default()
                },
            );
            r.metadata.name = Some(name.into());
            r
        }

        #[test]
        fn by_name_then_alias_then_judge0_id() {
            // "py" is one Runtime's alias and another's name: the name wins.
            let rts = vec![
                runtime("python", &["py", "python3"], &[71]),
                runtime("py", &[], &[]),
                runtime("c", &[], &[50]),
            ];
            let name = |r: Option<&Runtime>| r.and_then(|r| r.metadata.name.clone());
            assert_eq!(name(find(&rts, " PY ")).as_deref(), Some("py"));
            assert_eq!(name(find(&rts, "Python3")).as_deref(), Some("python"));
            assert_eq!(name(find(&rts, "c")).as_deref(), Some("c"));
            assert!(find(&rts, "cobol").is_none());
            assert_eq!(name(find_judge0(&rts, 50)).as_deref(), Some("c"));
            assert!(find_judge0(&rts, 1).is_none());
            assert_eq!(known_names(&rts), ["c", "py", "python"]);
            assert_eq!(
                unknown_language("cobol", &rts),
                "unknown language \"cobol\"; known languages: c, py, python"
            );
            let none: Vec<Runtime> = vec![];
            assert!(unknown_language("x", &none).contains("no Runtime is installed"));
        }
    }
}
