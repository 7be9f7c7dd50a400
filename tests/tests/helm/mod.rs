//! charts/rce rendered by the real Helm v4 engine, through `hack/helm-sdk.py` (public API of
//! the PyPI package helm-python-sdk, in the virtualenv `hack/helm-venv.sh` prepares), and the
//! rendered objects parsed into their k8s-openapi (or rce-api) types.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The virtualenv's Python: `RCE_HELM_PYTHON`, else `$RCE_CACHE/venv-helm/bin/python`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("RCE_HELM_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("RCE_CACHE").map_or_else(|| PathBuf::from("/var/cache/rce"), PathBuf::from);
    cache.join("venv-helm/bin/python")
}

fn missing_sdk(why: &str) -> ! {
    panic!(
        "the Helm SDK is not usable ({why}): run hack/helm-venv.sh to prepare the virtualenv \
         (helm-python-sdk in $RCE_CACHE/venv-helm), or point RCE_HELM_PYTHON at its python"
    )
}

/// Runs `hack/helm-sdk.py ARGS` with `values` as JSON on its standard input. Ok: its standard
/// output; Err: the Helm error it printed. Panics when the SDK itself is missing.
pub fn sdk(args: &[&str], values: Option<&Value>) -> Result<String, String> {
    let py = python();
    if !py.exists() {
        missing_sdk(&format!("{} does not exist", py.display()));
    }
    let script = repo_root().join("hack/helm-sdk.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if values.is_some() {
        cmd.args(["--values", "-"]).stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| missing_sdk(&format!("cannot run {}: {e}", py.display())));
    if let Some(v) = values {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(v.to_string().as_bytes()).expect("write the values to helm-sdk.py");
    }
    let out = child.wait_with_output().expect("wait for helm-sdk.py");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("No module named 'helm_python'") {
        missing_sdk("the module helm_python is not installed");
    }
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm-sdk.py prints UTF-8"))
    } else {
        Err(stderr)
    }
}

/// Parses every YAML document of `text` (empty ones dropped).
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("bad YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects of one render and its NOTES.txt.
pub struct Rendered {
    pub notes: String,
    pub objects: Vec<Value>,
}

fn is<K: Resource<DynamicType = ()>>(o: &Value) -> bool {
    o["kind"] == K::kind(&()).as_ref() && o["apiVersion"] == K::api_version(&()).as_ref()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn typed<K: DeserializeOwned>(o: &Value) -> K {
    serde_json::from_value(o.clone())
        .unwrap_or_else(|e| panic!("{} {} does not parse as its type: {e}", o["kind"], name_of(o)))
}

impl Rendered {
    /// The objects of kind K (matched by kind and apiVersion), parsed.
    pub fn all<K: Resource<DynamicType = ()> + DeserializeOwned>(&self) -> Vec<K> {
        self.objects.iter().filter(|o| is::<K>(o)).map(typed).collect()
    }

    /// Sorted names of the objects of kind K.
    pub fn names<K: Resource<DynamicType = ()>>(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.objects.iter().filter(|o| is::<K>(o)).map(|o| name_of(o).to_owned()).collect();
        v.sort();
        v
    }

    /// The one object of kind K named `name`, as rendered (untyped).
    pub fn raw<K: Resource<DynamicType = ()>>(&self, name: &str) -> &Value {
        let found: Vec<&Value> = self.objects.iter().filter(|o| is::<K>(o) && name_of(o) == name).collect();
        assert_eq!(found.len(), 1, "expected one {} {name:?}, found {}", K::kind(&()), found.len());
        found[0]
    }

    /// The one object of kind K named `name`, parsed.
    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(&self, name: &str) -> K {
        typed(self.raw::<K>(name))
    }

    pub fn maybe<K: Resource<DynamicType = ()> + DeserializeOwned>(&self, name: &str) -> Option<K> {
        self.objects.iter().find(|o| is::<K>(o) && name_of(o) == name).map(typed)
    }
}

/// Renders the chart as release `name` in `namespace` (an install), or returns Helm's error.
pub fn try_render(values: &Value, name: &str, namespace: &str) -> Result<Rendered, String> {
    parse_render(&sdk(&["render", "--name", name, "--namespace", namespace], Some(values))?)
}

/// Renders the chart as an install of release `name` in `namespace` on the cluster of
/// KUBECONFIG would (a server dry run: the API server's `.Capabilities`, nothing created).
/// Panics when the cluster cannot be reached.
pub fn render_on_cluster(values: &Value, name: &str, namespace: &str) -> Rendered {
    let out = sdk(&["render", "--cluster", "--name", name, "--namespace", namespace], Some(values))
        .unwrap_or_else(|e| panic!("rendering {values} against the cluster of KUBECONFIG failed: {e}"));
    parse_render(&out).expect("a render")
}

fn parse_render(out: &str) -> Result<Rendered, String> {
    let manifests: BTreeMap<String, String> = serde_json::from_str(out).expect("render prints a JSON object");
    let mut r = Rendered { notes: String::new(), objects: Vec::new() };
    for (path, text) in manifests {
        if path.ends_with("NOTES.txt") {
            r.notes = text;
        } else {
            r.objects.extend(yaml_docs(&text));
        }
    }
    Ok(r)
}

pub fn render_as(values: &Value, name: &str, namespace: &str) -> Rendered {
    try_render(values, name, namespace).unwrap_or_else(|e| panic!("rendering {values} failed: {e}"))
}

/// Release `rce` in namespace `rce`.
pub fn render(values: &Value) -> Rendered {
    render_as(values, "rce", "rce")
}

/// `helm lint --strict` with these values, for that Kubernetes version.
pub fn lint_for(values: &Value, namespace: &str, kube_version: &str) -> Value {
    let out = sdk(&["lint", "--namespace", namespace, "--kube-version", kube_version], Some(values))
        .unwrap_or_else(|e| panic!("lint failed: {e}"));
    serde_json::from_str(&out).expect("lint prints a JSON report")
}

/// `helm-sdk.py chart`: metadata, default values and the files under crds/.
pub fn chart() -> Value {
    let out = sdk(&["chart"], None).unwrap_or_else(|e| panic!("loading the chart failed: {e}"));
    serde_json::from_str(&out).expect("chart prints JSON")
}

pub fn container(d: &Deployment) -> &Container {
    let cs = &d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec").containers;
    assert_eq!(
        cs.len(),
        1,
        "{}: expected one container, got {}",
        d.metadata.name.as_deref().unwrap_or(""),
        cs.len()
    );
    &cs[0]
}

/// The container's environment by name.
pub fn env_of(d: &Deployment) -> BTreeMap<String, EnvVar> {
    container(d).env.iter().flatten().map(|e| (e.name.clone(), e.clone())).collect()
}

/// The plain value of environment variable `name` (panics when it is not set).
pub fn env_value(d: &Deployment, name: &str) -> String {
    let env = env_of(d);
    let e = env
        .get(name)
        .unwrap_or_else(|| panic!("{} sets no {name}", d.metadata.name.as_deref().unwrap_or("")));
    e.value.clone().unwrap_or_else(|| panic!("{name} has no plain value: {e:?}"))
}

pub type Triple = (String, String, String);

/// Rules flattened to (apiGroup, resource, verb) triples.
pub fn rules_of(rules: &Option<Vec<PolicyRule>>) -> std::collections::BTreeSet<Triple> {
    let mut out = std::collections::BTreeSet::new();
    for r in rules.iter().flatten() {
        let groups = r.api_groups.clone().unwrap_or_else(|| vec![String::new()]);
        for g in &groups {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

pub fn triples(groups: &[&str], resources: &[&str], verbs: &[&str]) -> std::collections::BTreeSet<Triple> {
    let mut out = std::collections::BTreeSet::new();
    for g in groups {
        for r in resources {
            for v in verbs {
                out.insert(((*g).to_owned(), (*r).to_owned(), (*v).to_owned()));
            }
        }
    }
    out
}

/// The environment variables a clap command reads, by name, with each one's long flag.
pub fn clap_envs(cmd: &clap::Command) -> BTreeMap<String, String> {
    cmd.get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_owned();
            Some((env, a.get_long().unwrap_or(a.get_id().as_str()).to_owned()))
        })
        .collect()
}
