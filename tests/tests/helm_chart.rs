//! The Helm chart (charts/rce), rendered and linted by the real Helm v4 engine and checked
//! object by object: hardening, RBAC, environment names against the binaries' clap
//! definitions, Runtimes against the images' catalog, namespaces and NetworkPolicies, and the
//! values that switch parts on and off, and the pieces for several replicas. No cluster is
//! needed, except by the tests named `on_the_cluster_*`: they render as an install on the
//! cluster of KUBECONFIG would (a server dry run, the API server's capabilities: Kubernetes
//! 1.20 there) and fail without it. hack/helm-test.sh installs, upgrades, scales and
//! uninstalls the chart on one.
//!
//! Rendering goes through `hack/helm-sdk.py` (the public API of helm-python-sdk) in the
//! virtualenv of `hack/helm-venv.sh`; without it every test here fails and says so.

mod helm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use clap::CommandFactory as _;
use helm::{
    chart, clap_envs, container, env_of, env_value, lint_for, render, render_as, render_on_cluster,
    repo_root, rules_of, triples, try_render, yaml_docs, Rendered, Triple,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, EnvVarSource, Namespace, ObjectFieldSelector, SeccompProfile, Secret, SecretKeySelector,
    Service, ServiceAccount, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rce_api::{Runtime, WarmPool};
use serde_json::{json, Value};

static DEFAULT: LazyLock<Rendered> = LazyLock::new(|| render(&json!({})));
static NON_DEFAULT: LazyLock<Rendered> = LazyLock::new(|| render_as(&non_default(), "prod", "rce-system"));

/// Every non-default value the tests below look for, as release `prod` in `rce-system`.
fn non_default() -> Value {
    json!({
        "hostNetwork": true,
        "kubernetesApi": {"host": "127.0.0.1", "port": "6443"},
        "namespace": {"create": false},
        "operator": {
            "image": {"repository": "registry.example/rce-operator", "tag": "v9", "pullPolicy": "Never"},
            "maxRunning": 2,
            "ttlSeconds": 60,
            "watchNamespaces": ["team-a", "team-b"],
            "metricsPort": 19464,
            "extraArgs": ["--start-timeout-seconds=60"],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
        },
        "shim": {
            "image": {"repository": "registry.example/rce-api-shim", "tag": "v9", "pullPolicy": "Never"},
            "port": 18080,
            "corsOrigins": ["https://a.example", "https://b.example"],
            "auth": {"enabled": true, "apiKeysSecret": "shim-keys"},
            "service": {"type": "NodePort", "nodePort": 30080},
        },
        "sandbox": {"namespace": "jobs", "namespaceLabels": {"team": "x"}, "runtimeClassName": "gvisor",
                    "cpuRequest": "100m"},
        "networkPolicy": {"extraNamespaces": ["team-a"]},
        "redis": {"enabled": false, "existingSecret": "ext-redis"},
        "sandboxImages": {"repositoryPrefix": "registry.example/sb", "tag": "v9"},
        "runtimes": [{
            "name": "python",
            "image": "registry.example/py:3",
            "annotations": {"a": "b"},
            "version": "3.11.2",
            "sourceFile": "main.py",
            "run": ["python3", "{file}"],
        }],
        "extraRuntimes": [{"name": "cobol", "version": "3.2", "sourceFile": "main.cob",
                           "compile": ["cobc", "-x", "{file}"], "run": ["./main"]}],
    })
}

/// The non-default values plus every remaining optional setting that adds an environment
/// variable or an object (instance label, metrics Service, logging).
fn every_option() -> Value {
    let mut v = non_default();
    v["limitCaps"] = json!({"wallTimeMs": 12000, "memoryMiB": 256, "processes": 32});
    v["operator"]["instance"] = json!("blue");
    v["operator"]["metricsService"] = json!(true);
    v["operator"]["logLevel"] = json!("debug");
    v["operator"]["logFormat"] = json!("json");
    v["shim"]["logLevel"] = json!("debug");
    v["shim"]["logFormat"] = json!("json");
    v["warmPools"] = json!([{"name": "python", "runtime": "python", "replicas": 3,
                             "limits": {"memoryMiB": 256, "wallTimeMs": 5000}, "maxAge": "20m",
                             "reuse": {"maxRuns": 10}},
                            {"name": "py-b", "namespace": "team-b", "runtime": "python"}]);
    v
}

fn labels(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

fn btree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---- the chart package ------------------------------------------------------------------------

#[test]
fn chart_crds_equal_the_generated_crds() {
    let root = repo_root();
    let src = root.join("crds/rce.dev.yaml");
    let copy = root.join("charts/rce/crds/rce.dev.yaml");
    let a = std::fs::read(&src).unwrap_or_else(|e| panic!("{} (make crds): {e}", src.display()));
    let b =
        std::fs::read(&copy).unwrap_or_else(|e| panic!("{} (hack/helm-crds.sh sync): {e}", copy.display()));
    assert!(
        a == b,
        "charts/rce/crds/rce.dev.yaml differs from crds/rce.dev.yaml (run: hack/helm-crds.sh sync)"
    );
}

#[test]
fn helm_loads_every_crd_from_crds_dir() {
    let mut names = BTreeSet::new();
    for file in chart()["crds"].as_array().expect("crds is a list") {
        for doc in yaml_docs(file["data"].as_str().expect("a CRD file's data")) {
            assert_eq!(doc["kind"], "CustomResourceDefinition", "kind in crds/");
            let crd: CustomResourceDefinition =
                serde_json::from_value(doc).expect("a CustomResourceDefinition");
            names.insert(crd.metadata.name.expect("a CRD name"));
        }
    }
    let want = ["executions.rce.dev", "runtimes.rce.dev", "warmpools.rce.dev"];
    assert_eq!(names, want.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
}

#[test]
fn chart_app_version_is_the_workspace_version() {
    let meta = &chart()["metadata"];
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"), "Chart appVersion vs the workspace version");
    assert_eq!(meta["name"], "rce", "chart name");
}

fn assert_lint_clean(values: &Value, namespace: &str) {
    assert_lint_clean_for(values, namespace, "v1.20.2");
}

fn assert_lint_clean_for(values: &Value, namespace: &str, kube_version: &str) {
    let report = lint_for(values, namespace, kube_version);
    assert_eq!(report["total_charts_linted"], 1, "charts linted: {report}");
    let errors = report["errors"].as_array().expect("errors");
    let bad: Vec<&Value> = report["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
        .collect();
    assert!(errors.is_empty() && bad.is_empty(), "lint for {kube_version}: {errors:?} {bad:?}");
}

#[test]
fn lint_default_values() {
    assert_lint_clean(&json!({}), "rce");
}

#[test]
fn lint_non_default_values() {
    assert_lint_clean(&non_default(), "rce-system");
}

#[test]
fn lint_three_replicas_with_budgets_and_spread() {
    // Lint reports an API deprecated or removed in the version linted for: the budgets are
    // policy/v1beta1 for 1.20 and must be policy/v1 for later versions.
    for version in ["v1.20.2", "v1.25.0", "v1.30.0"] {
        assert_lint_clean_for(&three_replicas(), "rce", version);
    }
}

#[test]
fn lint_in_the_default_namespace() {
    assert_lint_clean(&json!({}), "default");
}

fn assert_refused(values: Value, needle: &str) {
    match try_render(&values, "rce", "rce") {
        Ok(_) => panic!("rendering {values} succeeded"),
        Err(e) => {
            assert!(e.starts_with("Helm"), "not an error of the Helm SDK: {e}");
            assert!(e.contains(needle), "error does not mention {needle:?}: {e}");
        }
    }
}

#[test]
fn schema_takes_several_operator_replicas_and_refuses_bad_scale_out_values() {
    let r = render(&json!({"operator": {"replicas": 5}}));
    let spec = r.get::<Deployment>("rce-operator").spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(5), "operator replicas");
    assert_refused(json!({"operator": {"replicas": -1}}), "replicas");
    assert_refused(json!({"operator": {"maxRunning": -1}}), "maxRunning");
    assert_refused(json!({"operator": {"namespaceMaxRunning": "2"}}), "namespaceMaxRunning");
    assert_refused(json!({"operator": {"podDisruptionBudget": {"enabled": "yes"}}}), "enabled");
    assert_refused(json!({"shim": {"podDisruptionBudget": {"maxUnavailable": "half"}}}), "maxUnavailable");
    assert_refused(
        json!({"operator": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                           "whenUnsatisfiable": "Sometimes"}]}}),
        "whenUnsatisfiable",
    );
    assert_refused(json!({"operator": {"metricsPort": 0, "metricsService": true}}), "metricsPort");
}

#[test]
fn schema_refuses_an_unknown_service_type() {
    assert_refused(json!({"shim": {"service": {"type": "Ingress"}}}), "type");
}

#[test]
fn schema_refuses_a_runtime_without_run() {
    assert_refused(json!({"runtimes": [{"name": "x", "version": "1", "sourceFile": "a"}]}), "run");
}

#[test]
fn render_fails_without_any_redis() {
    assert_refused(json!({"redis": {"enabled": false}}), "redis.url");
}

// ---- every object of a render parses into its type --------------------------------------------

/// Where `typed` lost or changed something of `rendered` (None: it kept all of it; it may
/// add defaults of its own).
fn lost(rendered: &Value, typed: &Value, path: &str) -> Option<String> {
    match (rendered, typed) {
        (Value::Object(r), Value::Object(t)) => r.iter().find_map(|(k, v)| match t.get(k) {
            Some(tv) => lost(v, tv, &format!("{path}.{k}")),
            None => Some(format!("{path}.{k} was dropped")),
        }),
        (Value::Array(r), Value::Array(t)) if r.len() == t.len() => {
            r.iter().zip(t).enumerate().find_map(|(i, (rv, tv))| lost(rv, tv, &format!("{path}[{i}]")))
        }
        _ if rendered == typed => None,
        _ => Some(format!("{path}: rendered {rendered}, typed {typed}")),
    }
}

/// Parses `o` into the type of its kind and back; Err when the kind is unknown here or when
/// something was lost on the way (a misspelled or misplaced field, which the API server would
/// drop or refuse).
fn round_trip(o: &Value) -> Result<(), String> {
    fn via<K: serde::de::DeserializeOwned + serde::Serialize>(o: &Value) -> Result<Value, String> {
        let k: K = serde_json::from_value(o.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(k).map_err(|e| e.to_string())
    }
    let kind = (o["apiVersion"].as_str().unwrap_or(""), o["kind"].as_str().unwrap_or(""));
    let back = match kind {
        ("apps/v1", "Deployment") => via::<Deployment>(o),
        ("v1", "Service") => via::<Service>(o),
        ("v1", "ServiceAccount") => via::<ServiceAccount>(o),
        ("v1", "Namespace") => via::<Namespace>(o),
        ("v1", "Secret") => via::<Secret>(o),
        ("networking.k8s.io/v1", "NetworkPolicy") => via::<NetworkPolicy>(o),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => via::<ClusterRole>(o),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => via::<ClusterRoleBinding>(o),
        ("rbac.authorization.k8s.io/v1", "Role") => via::<Role>(o),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => via::<RoleBinding>(o),
        ("policy/v1", "PodDisruptionBudget") => via::<PodDisruptionBudget>(o),
        // policy/v1beta1's PodDisruptionBudget has the fields of policy/v1's that the chart sets.
        ("policy/v1beta1", "PodDisruptionBudget") => {
            let mut v1 = o.clone();
            v1["apiVersion"] = json!("policy/v1");
            via::<PodDisruptionBudget>(&v1).map(|mut back| {
                back["apiVersion"] = json!("policy/v1beta1");
                back
            })
        }
        ("rce.dev/v1alpha1", "Runtime") => via::<Runtime>(o),
        ("rce.dev/v1alpha1", "WarmPool") => via::<WarmPool>(o),
        (v, k) => return Err(format!("no type known here for {v} {k}")),
    }?;
    lost(o, &back, "").map_or(Ok(()), Err)
}

#[test]
fn every_rendered_object_parses_into_its_type_losing_nothing() {
    let one_ns = render_as(&json!({"operator": {"watchNamespaces": ["team-a"]}}), "prod", "rce-system");
    let every = render_as(&every_option(), "prod", "rce-system");
    let three = render(&three_replicas());
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    for r in [&*DEFAULT, &*NON_DEFAULT, &one_ns, &every, &three] {
        for o in &r.objects {
            kinds.insert(o["kind"].as_str().unwrap_or("").to_owned());
            if let Err(e) = round_trip(o) {
                failures.push(format!("{} {}: {e}", o["kind"], o["metadata"]["name"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in ["RoleBinding", "Role", "Runtime", "PodDisruptionBudget"] {
        assert!(kinds.contains(kind), "{kind} not among the kinds covered: {kinds:?}");
    }
}

// ---- the default render -----------------------------------------------------------------------

#[test]
fn default_render_has_the_expected_objects() {
    let d = &*DEFAULT;
    assert_eq!(d.names::<Deployment>(), ["rce-operator", "rce-redis", "rce-shim"], "Deployments");
    assert_eq!(d.names::<Service>(), ["rce-api", "rce-redis"], "Services");
    assert_eq!(d.names::<ServiceAccount>(), ["rce-operator", "rce-shim"], "ServiceAccounts");
    assert_eq!(d.names::<Namespace>(), ["rce", "rce-sandbox"], "Namespaces");
    assert_eq!(d.names::<Runtime>(), ["bash", "javascript", "python"], "Runtimes");
    assert_eq!(d.names::<NetworkPolicy>(), ["rce-redis", "rce-sandbox-deny-all"], "NetworkPolicies");
    assert_eq!(d.names::<Secret>(), ["rce-redis-url"], "Secrets");
    assert_eq!(
        d.names::<ClusterRole>(),
        ["rce-rce-operator", "rce-rce-operator-runtimes", "rce-rce-shim"],
        "ClusterRoles"
    );
    assert_eq!(
        d.names::<ClusterRoleBinding>(),
        ["rce-rce-operator", "rce-rce-operator-runtimes", "rce-rce-shim"],
        "ClusterRoleBindings"
    );
    assert_eq!(d.names::<Role>(), ["rce-operator-leases", "rce-rce-operator-node-leases"], "Roles");
    assert_eq!(
        d.names::<RoleBinding>(),
        ["rce-operator-leases", "rce-rce-operator-node-leases"],
        "RoleBindings"
    );
    assert!(d.all::<PodDisruptionBudget>().is_empty(), "PodDisruptionBudgets with one replica each");
    assert!(
        d.objects.iter().all(|o| o["kind"] != "CustomResourceDefinition"),
        "CRDs among templates (they belong in crds/)"
    );
    for o in &d.objects {
        let kind = o["kind"].as_str().unwrap_or("");
        let name = &o["metadata"]["name"];
        if !["Namespace", "ClusterRole", "ClusterRoleBinding", "Runtime"].contains(&kind) {
            assert!(
                o["metadata"]["namespace"].as_str().is_some_and(|n| !n.is_empty()),
                "{kind} {name} has no namespace"
            );
        }
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/instance"], "rce", "{kind} {name} unlabelled");
    }
}

#[test]
fn every_port_has_a_protocol() {
    // Server-side apply (Helm 4) on older API servers needs the protocol of every port.
    let r = render(&json!({"operator": {"metricsService": true}}));
    let services = r.all::<Service>();
    assert!(
        services.iter().any(|s| s.metadata.name.as_deref() == Some("rce-operator-metrics")),
        "metrics Service"
    );
    for svc in &services {
        for port in svc.spec.as_ref().and_then(|s| s.ports.as_ref()).expect("Service ports") {
            assert!(
                port.protocol.is_some(),
                "Service {:?} port {:?} has no protocol",
                svc.metadata.name,
                port.name
            );
        }
    }
    for dep in r.all::<Deployment>() {
        for port in container(&dep).ports.iter().flatten() {
            assert!(port.protocol.is_some(), "{:?} port {:?} has no protocol", dep.metadata.name, port.name);
        }
    }
}

fn assert_hardened(d: &Deployment, live: &str, ready: &str, host_network: bool) {
    let name = d.metadata.name.clone().unwrap_or_default();
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
    let psc = pod.security_context.clone().unwrap_or_default();
    assert_eq!(psc.run_as_non_root, Some(true), "{name} pod runAsNonRoot");
    assert_ne!(psc.run_as_user.unwrap_or(0), 0, "{name}: pod runs as uid 0");
    let runtime_default = SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None };
    assert_eq!(psc.seccomp_profile.as_ref(), Some(&runtime_default), "{name} pod seccompProfile");
    let c = container(d);
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{name} allowPrivilegeEscalation");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{name} readOnlyRootFilesystem");
    assert_eq!(sc.run_as_non_root, Some(true), "{name} container runAsNonRoot");
    assert!(!sc.privileged.unwrap_or(false), "{name} privileged");
    let drop_all = Capabilities { add: None, drop: Some(strings(&["ALL"])) };
    assert_eq!(sc.capabilities, Some(drop_all), "{name} capabilities");
    assert_eq!(sc.seccomp_profile, Some(runtime_default), "{name} container seccompProfile");
    let res = c.resources.clone().unwrap_or_default();
    for (kind, set) in [("requests", &res.requests), ("limits", &res.limits)] {
        for r in ["cpu", "memory"] {
            let q = set.as_ref().and_then(|m| m.get(r));
            assert!(q.is_some_and(|q| !q.0.is_empty()), "{name}: no {kind}.{r}");
        }
    }
    for (probe, p, path) in
        [("livenessProbe", &c.liveness_probe, live), ("readinessProbe", &c.readiness_probe, ready)]
    {
        let get = p
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{name}: no {probe}.httpGet"));
        assert_eq!(get.path.as_deref(), Some(path), "{name} {probe} path");
        assert_eq!(get.host.as_deref(), host_network.then_some("127.0.0.1"), "{name} {probe} host");
    }
    assert_eq!(pod.host_network.unwrap_or(false), host_network, "{name} hostNetwork");
    assert_eq!(pod.automount_service_account_token, Some(true), "{name} automountServiceAccountToken");
    assert_eq!(pod.enable_service_links, Some(false), "{name} enableServiceLinks");
    assert_ne!(
        pod.service_account_name.as_deref().unwrap_or("default"),
        "default",
        "{name}: default service account"
    );
    let mounts: Vec<&str> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
    assert!(mounts.contains(&"/tmp"), "{name}: no writable /tmp");
}

#[test]
fn operator_deployment_is_hardened() {
    assert_hardened(&DEFAULT.get::<Deployment>("rce-operator"), "/healthz", "/healthz", false);
}

#[test]
fn shim_deployment_is_hardened() {
    assert_hardened(&DEFAULT.get::<Deployment>("rce-shim"), "/health", "/ready", false);
}

#[test]
fn bundled_redis_is_hardened_and_has_no_api_token() {
    let r = DEFAULT.get::<Deployment>("rce-redis");
    let pod = r.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
    let sc = container(&r).security_context.clone().expect("a securityContext");
    assert_eq!(
        pod.security_context.as_ref().and_then(|p| p.run_as_non_root),
        Some(true),
        "redis runAsNonRoot"
    );
    assert_eq!(pod.automount_service_account_token, Some(false), "redis token");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "redis readOnlyRootFilesystem");
    assert_eq!(
        sc.capabilities,
        Some(Capabilities { add: None, drop: Some(strings(&["ALL"])) }),
        "redis capabilities"
    );
}

fn secret_ref(name: &str) -> Option<EnvVarSource> {
    Some(EnvVarSource {
        secret_key_ref: Some(SecretKeySelector { name: name.into(), key: "url".into(), optional: None }),
        ..Default::default()
    })
}

#[test]
fn default_operator_and_shim_configuration() {
    let d = &*DEFAULT;
    let op = d.get::<Deployment>("rce-operator");
    assert_eq!(env_value(&op, "RCE_MAX_RUNNING"), "0", "no global cap: the nodes' capacity decides");
    assert_eq!(env_value(&op, "RCE_NAMESPACE_MAX_RUNNING"), "0");
    assert_eq!(env_value(&op, "RCE_SHARD_GROUP"), "rce", "the shard group is the release's fullname");
    assert_eq!(env_value(&op, "RCE_TTL_SECONDS"), "3600");
    assert_eq!(env_value(&op, "RCE_NAMESPACES"), "");
    assert_eq!(env_value(&op, "RCE_METRICS_ADDR"), "0.0.0.0:9464");
    let env = env_of(&op);
    assert_eq!(env["RCE_REDIS_URL"].value_from, secret_ref("rce-redis-url"), "RCE_REDIS_URL");
    assert!(!env.contains_key("KUBERNETES_SERVICE_HOST"), "API host overridden by default");
    assert!(!env.contains_key("RCE_RUNTIME_CLASS_NAME"), "runtime class set by default");
    assert_eq!(container(&op).image.as_deref(), Some("rce.dev/rce-operator:0.1.0"), "operator image");
    assert_eq!(container(&op).image_pull_policy.as_deref(), Some("IfNotPresent"), "operator pull policy");
    let spec = op.spec.as_ref().expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(1), "operator replicas");
    assert_eq!(spec.strategy, Some(one_at_a_time()), "operator strategy");
    let shim = d.get::<Deployment>("rce-shim");
    assert_eq!(env_value(&shim, "RCE_SHIM_LISTEN"), "0.0.0.0:8080");
    assert_eq!(env_value(&shim, "RCE_SHIM_NAMESPACE"), "rce-sandbox");
    assert_eq!(container(&shim).image.as_deref(), Some("rce.dev/rce-api-shim:0.1.0"), "shim image");
    let secret = d.get::<Secret>("rce-redis-url");
    let url = secret.string_data.as_ref().and_then(|s| s.get("url")).map(String::as_str);
    assert_eq!(url, Some("redis://rce-redis.rce.svc:6379"), "bundled Redis URL");
    let svc = d.get::<Service>("rce-api").spec.expect("a Service spec");
    assert_eq!(svc.type_.as_deref(), Some("ClusterIP"), "API Service type");
    let port = &svc.ports.as_ref().expect("ports")[0];
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())), "API Service targetPort");
}

#[test]
fn rbac_grants_exactly_the_verbs_each_part_needs() {
    let d = &*DEFAULT;
    let operator: BTreeSet<Triple> = [
        triples(
            &["rce.dev"],
            &["executions", "executions/status", "executions/finalizers"],
            &["get", "list", "watch", "patch", "update", "delete"],
        ),
        triples(&["rce.dev"], &["warmpools"], &["get", "list", "watch"]),
        triples(&["rce.dev"], &["warmpools/status"], &["get", "patch", "update"]),
        triples(&[""], &["pods"], &["create", "get", "list", "watch", "patch", "delete"]),
        triples(&[""], &["pods/log"], &["get"]),
        triples(&[""], &["pods/attach"], &["create", "get"]),
        triples(&[""], &["configmaps"], &["create", "get", "list", "update", "delete"]),
        triples(&["networking.k8s.io"], &["networkpolicies"], &["get", "create", "patch"]),
        triples(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Cluster-wide reads: the Runtimes, and the nodes (capacity); never other namespaces'
    // Pods.
    let operator_runtimes: BTreeSet<Triple> = triples(&["rce.dev"], &["runtimes"], &["get", "list", "watch"])
        .into_iter()
        .chain(triples(&[""], &["nodes"], &["get", "list", "watch"]))
        .collect();
    // Membership Leases, in the release namespace only.
    let leases = triples(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "list", "watch", "create", "update", "patch", "delete"],
    );
    let shim: BTreeSet<Triple> = triples(&["rce.dev"], &["executions"], &["create", "get", "list", "watch"])
        .into_iter()
        .chain(triples(&["rce.dev"], &["runtimes"], &["list", "watch"]))
        .chain(triples(&[""], &["configmaps"], &["get", "create"]))
        .collect();
    assert_eq!(rules_of(&d.get::<ClusterRole>("rce-rce-operator").rules), operator, "operator ClusterRole");
    assert_eq!(
        rules_of(&d.get::<ClusterRole>("rce-rce-operator-runtimes").rules),
        operator_runtimes,
        "operator runtimes ClusterRole"
    );
    assert_eq!(rules_of(&d.get::<ClusterRole>("rce-rce-shim").rules), shim, "shim ClusterRole");
    let role = d.get::<Role>("rce-operator-leases");
    assert_eq!(role.metadata.namespace.as_deref(), Some("rce"), "leases Role namespace");
    assert_eq!(rules_of(&role.rules), leases, "leases Role");
    let rb = d.get::<RoleBinding>("rce-operator-leases");
    assert_eq!(rb.metadata.namespace.as_deref(), Some("rce"), "leases RoleBinding namespace");
    let role_ref = RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "Role".into(),
        name: "rce-operator-leases".into(),
    };
    assert_eq!(rb.role_ref, role_ref, "leases RoleBinding roleRef");
    let operator_sa = Subject {
        kind: "ServiceAccount".into(),
        name: "rce-operator".into(),
        namespace: Some("rce".into()),
        api_group: None,
    };
    assert_eq!(rb.subjects, Some(vec![operator_sa.clone()]), "leases RoleBinding subjects");
    // The nodes' Leases (a lost node), read in kube-node-lease only.
    let node_leases = d.get::<Role>("rce-rce-operator-node-leases");
    assert_eq!(
        node_leases.metadata.namespace.as_deref(),
        Some("kube-node-lease"),
        "node leases Role namespace"
    );
    assert_eq!(
        rules_of(&node_leases.rules),
        triples(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch"]),
        "node leases Role: read only"
    );
    let nrb = d.get::<RoleBinding>("rce-rce-operator-node-leases");
    assert_eq!(
        (nrb.metadata.namespace.as_deref(), nrb.role_ref.name.as_str(), nrb.subjects),
        (Some("kube-node-lease"), "rce-rce-operator-node-leases", Some(vec![operator_sa])),
        "node leases RoleBinding"
    );
    // Nothing else of the render grants leases or nodes, or anything at all on them beyond reads.
    let every = render_as(&every_option(), "prod", "rce-system");
    let one_ns = render_as(&json!({"operator": {"watchNamespaces": ["team-a"]}}), "prod", "rce-system");
    for r in [d, &every, &one_ns] {
        let mut granted: BTreeSet<Triple> = BTreeSet::new();
        for cr in r.all::<ClusterRole>() {
            granted.extend(rules_of(&cr.rules));
        }
        for role in r.all::<Role>() {
            granted.extend(rules_of(&role.rules));
        }
        let on: BTreeSet<Triple> =
            granted.into_iter().filter(|(_, res, _)| res == "leases" || res == "nodes").collect();
        let mut want = leases.clone();
        want.extend(triples(&[""], &["nodes"], &["get", "list", "watch"]));
        assert_eq!(on, want, "every grant on leases and nodes");
        assert_eq!(r.all::<Role>().len(), 2, "Roles");
    }
    for (binding, role, sa) in [
        ("rce-rce-operator", "rce-rce-operator", "rce-operator"),
        ("rce-rce-operator-runtimes", "rce-rce-operator-runtimes", "rce-operator"),
        ("rce-rce-shim", "rce-rce-shim", "rce-shim"),
    ] {
        let b = d.get::<ClusterRoleBinding>(binding);
        assert_eq!(b.role_ref.name, role, "{binding} roleRef");
        let subject = Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some("rce".into()),
            api_group: None,
        };
        assert_eq!(b.subjects, Some(vec![subject]), "{binding} subjects");
    }
    for sa in d.all::<ServiceAccount>() {
        assert_eq!(sa.automount_service_account_token, Some(false), "{:?} automount", sa.metadata.name);
    }
}

/// Every environment variable the chart sets on the operator and the shim is read by that
/// binary: RCE_* ones through its clap definition (`Config`), KUBERNETES_SERVICE_* by the kube
/// client, anything else only when the values' extraEnv asked for it. The values set must also
/// parse under clap, as the flags those variables stand for, with the chart's extraArgs.
#[test]
fn env_names_are_the_binaries_clap_envs_and_their_values_parse() {
    let every = every_option();
    let renders = [
        (&*DEFAULT, json!({})),
        (&*NON_DEFAULT, non_default()),
        (&render_as(&every, "prod", "rce-system"), every.clone()),
    ];
    let binaries = [
        ("operator", rce_operator::config::Config::command()),
        ("shim", rce_api_shim::config::Config::command()),
    ];
    let mut seen = BTreeSet::new();
    for (r, values) in &renders {
        for (part, cmd) in &binaries {
            let envs = clap_envs(cmd);
            let extra: Vec<&str> = values[part]["extraEnv"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str())
                .collect();
            let deploy = r
                .all::<Deployment>()
                .into_iter()
                .find(|d| d.metadata.name.as_deref().is_some_and(|n| n.ends_with(&format!("-{part}"))))
                .unwrap_or_else(|| panic!("no {part} Deployment"));
            // The variables as flags, without the environment of this process.
            let mut argv = vec![format!("rce-{part}")];
            for (name, e) in env_of(&deploy) {
                seen.insert(name.clone());
                if name.starts_with("RCE_") {
                    match envs.get(&name) {
                        Some(long) => {
                            if let Some(v) = e.value.as_deref().filter(|v| !v.is_empty()) {
                                argv.push(format!("--{long}={v}"));
                            }
                        }
                        None => {
                            panic!("{part}: the chart sets {name}, which the {part}'s Config does not read")
                        }
                    }
                } else {
                    assert!(
                        ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"].contains(&name.as_str())
                            || extra.contains(&name.as_str()),
                        "{part}: the chart sets {name}, which nothing reads"
                    );
                }
            }
            argv.extend(container(&deploy).args.iter().flatten().cloned());
            let no_env = cmd.clone().mut_args(|a| a.env(None::<&'static str>));
            if let Err(e) = no_env.try_get_matches_from(&argv) {
                panic!("{part}: the chart's settings do not parse as its flags {argv:?}: {e}");
            }
        }
    }
    // Every optional variable was among those checked.
    for name in [
        "RCE_SELECTOR",
        "RCE_RUNTIME_CLASS_NAME",
        "RCE_SHIM_EXECUTION_LABELS",
        "RCE_SHIM_CORS_ORIGINS",
        "RCE_SHIM_API_KEYS_FILE",
        "KUBERNETES_SERVICE_HOST",
        "RCE_LOG",
        "RCE_LOG_FORMAT",
        "RCE_IDENTITY",
        "RCE_LEASE_NAMESPACE",
        "RCE_SHARD_GROUP",
        "RCE_NAMESPACE_MAX_RUNNING",
    ] {
        assert!(seen.contains(name), "{name} was not rendered by any of the values checked");
    }
}

#[test]
fn shim_logging_uses_rce_log_like_the_operator() {
    let r = render(&json!({"shim": {"logLevel": "debug,tower_http=info", "logFormat": "json"}}));
    let shim = r.get::<Deployment>("rce-shim");
    assert_eq!(env_value(&shim, "RCE_LOG"), "debug,tower_http=info");
    assert_eq!(env_value(&shim, "RCE_LOG_FORMAT"), "json");
    assert!(!env_of(&shim).contains_key("RUST_LOG"), "RUST_LOG is read by neither binary");
    let op = DEFAULT.get::<Deployment>("rce-operator");
    assert_eq!(env_value(&op, "RCE_LOG"), "info");
    assert_eq!(env_value(&op, "RCE_LOG_FORMAT"), "text");
}

fn lang_runtime(lang: &str) -> Value {
    let path = repo_root().join(format!("sandbox-images/langs/{lang}/runtime.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_docs(&text).into_iter().next().expect("a Runtime document")
}

#[test]
fn default_runtimes_match_the_sandbox_images_catalog() {
    for lang in ["python", "javascript", "bash"] {
        let rt = DEFAULT.get::<Runtime>(lang);
        assert!(rt.metadata.namespace.is_none(), "{lang}: a Runtime is cluster-scoped");
        assert_eq!(rt.spec.image, format!("rce.dev/sandbox-{lang}:0.1.0"), "{lang} image");
        let rendered = &DEFAULT.raw::<Runtime>(lang)["spec"];
        let catalog = lang_runtime(lang);
        // Placeholders (image, versions) are filled in by sandbox-images/build.sh, at any depth.
        fn same(path: &str, got: &serde_json::Value, want: &serde_json::Value) {
            match want {
                serde_json::Value::String(s) if s.contains("{{") => {}
                serde_json::Value::Object(m) => {
                    for (k, w) in m {
                        same(&format!("{path}.{k}"), &got[k], w);
                    }
                    let extra: Vec<&String> = got
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                        .filter(|k| !m.contains_key(*k))
                        .collect();
                    assert!(extra.is_empty(), "{path}: the chart has {extra:?} beyond the catalog");
                }
                _ => assert_eq!(got, want, "{path} vs the catalog's runtime.yaml"),
            }
        }
        for (key, want) in catalog["spec"].as_object().expect("a catalog spec") {
            same(&format!("{lang} spec.{key}"), &rendered[key], want);
        }
        let v = &rt.spec.version;
        let parts: Vec<&str> = v.split('.').collect();
        assert!(
            parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{lang} version {v:?}"
        );
    }
}

#[test]
fn namespaces_carry_pod_security_labels_and_network_policies() {
    let d = &*DEFAULT;
    for ns in ["rce", "rce-sandbox"] {
        let l = labels(&d.get::<Namespace>(ns).metadata);
        for mode in ["enforce", "warn", "audit"] {
            let key = format!("pod-security.kubernetes.io/{mode}");
            assert_eq!(l.get(&key).map(String::as_str), Some("restricted"), "{ns} PSA {mode}");
        }
    }
    let rce = d.get::<Namespace>("rce");
    let policy = rce.metadata.annotations.as_ref().and_then(|a| a.get("helm.sh/resource-policy"));
    assert_eq!(policy.map(String::as_str), Some("keep"), "release namespace kept on uninstall");
    let np = d.get::<NetworkPolicy>("rce-sandbox-deny-all");
    assert_eq!(np.metadata.namespace.as_deref(), Some("rce-sandbox"), "deny-all namespace");
    let spec = np.spec.expect("a NetworkPolicy spec");
    assert_eq!(
        spec.pod_selector.as_ref().and_then(|s| s.match_expressions.as_ref()),
        None,
        "deny-all selector"
    );
    let sel = spec.pod_selector.and_then(|s| s.match_labels);
    assert_eq!(sel, Some(btree(&[("rce.dev/sandbox", "true")])), "deny-all selector");
    let mut types = spec.policy_types.clone().unwrap_or_default();
    types.sort();
    assert_eq!(types, ["Egress", "Ingress"], "deny-all policy types");
    assert_eq!((spec.ingress, spec.egress), (Some(vec![]), Some(vec![])), "deny-all rules");
    let rp = d.get::<NetworkPolicy>("rce-redis").spec.expect("a NetworkPolicy spec");
    assert_eq!(rp.policy_types, Some(strings(&["Ingress"])), "redis policy types");
    let peers = rp.ingress.as_ref().and_then(|i| i.first()).and_then(|r| r.from.as_ref()).map_or(0, Vec::len);
    assert_eq!(peers, 2, "redis policy peers");
}

#[test]
fn notes_say_how_to_reach_the_api() {
    assert!(DEFAULT.notes.contains("port-forward service/rce-api 8080:80"), "{}", DEFAULT.notes);
    assert!(DEFAULT.notes.contains("/api/execute"), "{}", DEFAULT.notes);
}

// ---- non-default values -----------------------------------------------------------------------

#[test]
fn non_default_render_host_network_api_override_operator_and_shim_settings() {
    let n = &*NON_DEFAULT;
    for (dep, live, ready) in
        [("prod-rce-operator", "/healthz", "/healthz"), ("prod-rce-shim", "/health", "/ready")]
    {
        let deploy = n.get::<Deployment>(dep);
        assert_hardened(&deploy, live, ready, true);
        let pod = deploy.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"), "{dep} dnsPolicy");
        assert_eq!(env_value(&deploy, "KUBERNETES_SERVICE_HOST"), "127.0.0.1", "{dep}");
        assert_eq!(env_value(&deploy, "KUBERNETES_SERVICE_PORT"), "6443", "{dep}");
        assert_eq!(env_of(&deploy)["RCE_REDIS_URL"].value_from, secret_ref("ext-redis"), "{dep} Redis");
    }
    let op = n.get::<Deployment>("prod-rce-operator");
    assert_eq!(
        env_value(&op, "RCE_METRICS_ADDR"),
        "127.0.0.1:19464",
        "operator binds loopback on the host network"
    );
    assert_eq!(env_value(&op, "RCE_MAX_RUNNING"), "2");
    assert_eq!(env_value(&op, "RCE_TTL_SECONDS"), "60");
    assert_eq!(env_value(&op, "RCE_NAMESPACES"), "team-a,team-b");
    assert_eq!(env_value(&op, "RCE_RUNTIME_CLASS_NAME"), "gvisor");
    assert_eq!(env_value(&op, "RCE_SANDBOX_CPU_REQUEST"), "100m");
    assert_eq!(env_value(&op, "EXTRA"), "1", "extraEnv");
    let c = container(&op);
    assert_eq!(c.args, Some(strings(&["--start-timeout-seconds=60"])), "extraArgs");
    assert_eq!(c.image.as_deref(), Some("registry.example/rce-operator:v9"), "operator image");
    assert_eq!(c.image_pull_policy.as_deref(), Some("Never"), "operator pull policy");
    assert_eq!(c.ports.as_ref().expect("ports")[0].container_port, 19464, "operator port");
    let shim = n.get::<Deployment>("prod-rce-shim");
    assert_eq!(
        env_value(&shim, "RCE_SHIM_LISTEN"),
        "127.0.0.1:18080",
        "shim binds loopback on the host network"
    );
    assert_eq!(env_value(&shim, "RCE_SHIM_NAMESPACE"), "jobs");
    assert_eq!(env_value(&shim, "RCE_SHIM_AUTH"), "true");
    assert_eq!(env_value(&shim, "RCE_SHIM_API_KEYS_FILE"), "/etc/rce-shim/api-keys");
    assert_eq!(env_value(&shim, "RCE_SHIM_CORS_ORIGINS"), "https://a.example,https://b.example");
    let spec = shim.spec.as_ref().expect("a Deployment spec");
    let recreate = DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None };
    assert_eq!(spec.strategy, Some(recreate), "shim strategy on the host network");
    let vols = spec.template.spec.as_ref().and_then(|p| p.volumes.clone()).unwrap_or_default();
    let keys = vols.iter().find(|v| v.name == "api-keys").and_then(|v| v.secret.as_ref());
    assert_eq!(keys.and_then(|s| s.secret_name.as_deref()), Some("shim-keys"), "api keys Secret");
    let svc = n.get::<Service>("prod-rce-api").spec.expect("a Service spec");
    let node_port = svc.ports.as_ref().expect("ports")[0].node_port;
    assert_eq!((svc.type_.as_deref(), node_port), (Some("NodePort"), Some(30080)), "NodePort");
    assert!(n.notes.contains("127.0.0.1:18080"), "{}", n.notes);
}

#[test]
fn redis_toggles_bundled_off_external_url_or_secret() {
    let n = &*NON_DEFAULT;
    assert!(n.maybe::<Deployment>("prod-rce-redis").is_none(), "Redis Deployment with redis.enabled=false");
    assert!(n.maybe::<Service>("prod-rce-redis").is_none(), "Redis Service with redis.enabled=false");
    assert!(n.maybe::<NetworkPolicy>("prod-rce-redis").is_none(), "Redis NetworkPolicy");
    assert!(n.all::<Secret>().is_empty(), "Secrets (the URL comes from redis.existingSecret)");
    let r = render(&json!({"redis": {"enabled": false, "url": "redis://10.1.2.3:6379/2"}}));
    assert!(r.maybe::<Deployment>("rce-redis").is_none(), "Redis Deployment with redis.url");
    let secret = r.get::<Secret>("rce-redis-url");
    let url = secret.string_data.as_ref().and_then(|s| s.get("url")).map(String::as_str);
    assert_eq!(url, Some("redis://10.1.2.3:6379/2"), "external URL");
}

#[test]
fn watch_namespaces_one_gives_a_role_binding_there_several_bind_cluster_wide() {
    // Several namespaces: the operator watches cluster-wide and filters, so it is bound
    // cluster-wide. Exactly one: a namespaced watch, and a RoleBinding there only.
    let n = &*NON_DEFAULT;
    assert_eq!(
        n.names::<RoleBinding>(),
        ["prod-rce-operator-leases", "rce-system-prod-rce-operator-node-leases"],
        "RoleBindings with two watched namespaces (the Leases' only)"
    );
    assert_eq!(n.all::<ClusterRoleBinding>().len(), 3, "ClusterRoleBindings with two watched namespaces");
    let one = render_as(&json!({"operator": {"watchNamespaces": ["team-a"]}}), "prod", "rce-system");
    assert_eq!(
        one.names::<ClusterRoleBinding>(),
        ["rce-system-prod-rce-operator-runtimes", "rce-system-prod-rce-shim"],
        "ClusterRoleBindings with one watched namespace"
    );
    assert_eq!(
        one.names::<RoleBinding>(),
        ["prod-rce-operator", "prod-rce-operator-leases", "rce-system-prod-rce-operator-node-leases"],
        "RoleBindings"
    );
    let rb = one.get::<RoleBinding>("prod-rce-operator");
    assert_eq!(rb.metadata.namespace.as_deref(), Some("team-a"), "RoleBinding namespace");
    let leases = one.get::<RoleBinding>("prod-rce-operator-leases");
    assert_eq!(leases.metadata.namespace.as_deref(), Some("rce-system"), "leases: the release namespace");
    let role_ref = RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: "rce-system-prod-rce-operator".into(),
    };
    assert_eq!(rb.role_ref, role_ref, "RoleBinding roleRef");
    assert_eq!(env_value(&one.get::<Deployment>("prod-rce-operator"), "RCE_NAMESPACES"), "team-a");
}

#[test]
fn runtimes_from_a_values_list_extra_runtimes_and_images() {
    let n = &*NON_DEFAULT;
    assert_eq!(n.names::<Runtime>(), ["cobol", "python"], "Runtimes");
    let python = n.get::<Runtime>("python");
    let cobol = n.get::<Runtime>("cobol");
    assert_eq!(python.spec.image, "registry.example/py:3", "explicit image");
    assert_eq!(cobol.spec.image, "registry.example/sb-cobol:v9", "defaulted image");
    assert_eq!(cobol.spec.compile, Some(strings(&["cobc", "-x", "{file}"])), "compile command");
    assert_eq!(python.metadata.annotations, Some(btree(&[("a", "b")])), "annotations");
    assert!(n.raw::<Runtime>("python")["spec"].get("name").is_none(), "name leaked into spec");
    assert!(render(&json!({"runtimes": []})).all::<Runtime>().is_empty(), "runtimes: [] installs none");
}

#[test]
fn warm_pools_from_a_values_list_in_the_sandbox_namespace_with_the_instance_label() {
    assert!(DEFAULT.all::<WarmPool>().is_empty(), "no WarmPool by default");
    let e = render_as(&every_option(), "prod", "rce-system");
    assert_eq!(e.names::<WarmPool>(), ["py-b", "python"], "WarmPools");
    let python = e.get::<WarmPool>("python");
    assert_eq!(python.metadata.namespace.as_deref(), Some("jobs"), "default: the sandbox namespace");
    assert_eq!(e.get::<WarmPool>("py-b").metadata.namespace.as_deref(), Some("team-b"));
    assert_eq!(python.spec.runtime, "python");
    assert_eq!(python.spec.replicas, 3);
    assert_eq!(python.spec.limits.memory_mib, Some(256));
    assert_eq!(python.spec.max_age.as_deref(), Some("20m"));
    assert_eq!(python.spec.max_runs(), 10);
    assert_eq!(
        labels(&python.metadata).get("rce.dev/operator").map(String::as_str),
        Some("blue"),
        "instance"
    );
    assert!(e.raw::<WarmPool>("python")["spec"].get("name").is_none(), "name leaked into spec");
    let plain = render(&json!({"warmPools": [{"name": "python", "runtime": "python"}]}));
    assert!(!labels(&plain.get::<WarmPool>("python").metadata).contains_key("rce.dev/operator"));
    assert_refused(json!({"warmPools": [{"name": "python"}]}), "runtime");
    assert_refused(
        json!({"warmPools": [{"name": "p", "runtime": "python", "reuse": {"maxRuns": 0}}]}),
        "maxRuns",
    );
    assert_refused(json!({"warmPools": [{"name": "p", "runtime": "python", "maxAge": "soon"}]}), "maxAge");
}

#[test]
fn namespaces_managed_or_not_pod_security_levels_and_extra_labels() {
    let n = &*NON_DEFAULT;
    assert_eq!(n.names::<Namespace>(), ["jobs"], "Namespaces (release namespace not managed)");
    let l = labels(&n.get::<Namespace>("jobs").metadata);
    assert_eq!(
        l.get("pod-security.kubernetes.io/enforce").map(String::as_str),
        Some("restricted"),
        "sandbox PSA"
    );
    assert_eq!(l.get("team").map(String::as_str), Some("x"), "sandbox namespace extra label");
    let mut places: Vec<String> =
        n.all::<NetworkPolicy>().into_iter().filter_map(|p| p.metadata.namespace).collect();
    places.sort();
    assert_eq!(places, ["jobs", "team-a"], "deny-all places");
    assert!(n.notes.contains("kubectl label --overwrite namespace rce-system"), "{}", n.notes);
    let h = render(&json!({"hostNetwork": true}));
    let l = labels(&h.get::<Namespace>("rce").metadata);
    assert_eq!(
        l.get("pod-security.kubernetes.io/enforce").map(String::as_str),
        Some("privileged"),
        "hostNetwork"
    );
    assert_eq!(
        l.get("pod-security.kubernetes.io/warn").map(String::as_str),
        Some("restricted"),
        "release ns warn"
    );
    assert!(h.maybe::<NetworkPolicy>("rce-redis").is_none(), "Redis policy with hostNetwork");
    let dflt = render_as(&json!({}), "rce", "default");
    assert_eq!(dflt.names::<Namespace>(), ["rce-sandbox"], "no Namespace object for default");
    assert!(dflt.notes.contains("kubectl label --overwrite namespace default"), "{}", dflt.notes);
}

#[test]
fn shim_disabled_drops_the_shim() {
    let r = render(&json!({"shim": {"enabled": false}}));
    assert_eq!(r.names::<Deployment>(), ["rce-operator", "rce-redis"], "Deployments without the shim");
    assert!(r.maybe::<ClusterRole>("rce-rce-shim").is_none(), "shim ClusterRole");
}

/// The ceilings reach the operator and the shim alike, as the same RCE_CAP_* variables, so
/// that the shim refuses at once what the operator would refuse.
#[test]
fn limit_caps_reach_the_operator_and_the_shim_alike() {
    let r = render_as(&json!({"limitCaps": {"memoryMiB": 256, "wallTimeMs": 12000}}), "rce", "rce");
    for dep in ["rce-operator", "rce-shim"] {
        let d = r.get::<Deployment>(dep);
        assert_eq!(env_value(&d, "RCE_CAP_MEMORY_MIB"), "256", "{dep}");
        assert_eq!(env_value(&d, "RCE_CAP_WALL_TIME_MS"), "12000", "{dep}");
        assert!(
            !env_of(&d).contains_key("RCE_CAP_PROCESSES"),
            "{dep}: an unset ceiling keeps the built-in one"
        );
    }
    assert!(!env_of(&DEFAULT.get::<Deployment>("rce-operator")).keys().any(|k| k.starts_with("RCE_CAP_")));
}

// ---- several replicas ------------------------------------------------------------------------

/// Three operators and three shims.
fn three_replicas() -> Value {
    json!({"operator": {"replicas": 3}, "shim": {"replicas": 3}})
}

/// The operator's update strategy: one Pod at a time, none beyond `replicas`.
fn one_at_a_time() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(0)),
            max_unavailable: Some(IntOrString::Int(1)),
        }),
    }
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    let spec = d.spec.as_ref().expect("a Deployment spec");
    spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

fn field_ref(path: &str) -> Option<EnvVarSource> {
    Some(EnvVarSource {
        field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
        ..Default::default()
    })
}

/// What every render, at any replica count, gives each replica: its identity and the Leases'
/// namespace from the downward API, the release's shard group.
fn assert_sharding_env(op: &Deployment, fullname: &str) {
    let env = env_of(op);
    assert_eq!(env["RCE_IDENTITY"].value_from, field_ref("metadata.name"), "RCE_IDENTITY: the Pod's name");
    assert_eq!(env["RCE_IDENTITY"].value, None, "RCE_IDENTITY has no fixed value");
    assert_eq!(
        env["RCE_LEASE_NAMESPACE"].value_from,
        field_ref("metadata.namespace"),
        "RCE_LEASE_NAMESPACE: the Pod's (release) namespace"
    );
    assert_eq!(env_value(op, "RCE_SHARD_GROUP"), fullname, "RCE_SHARD_GROUP");
}

/// The topology spread of a Deployment's Pods: over hostnames, ScheduleAnyway, selecting
/// exactly that Deployment's Pods.
fn assert_spread(d: &Deployment) {
    let name = d.metadata.name.clone().unwrap_or_default();
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
    let spread: &Vec<TopologySpreadConstraint> = pod
        .topology_spread_constraints
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no topologySpreadConstraints"));
    assert_eq!(spread.len(), 1, "{name}: topologySpreadConstraints");
    let c = &spread[0];
    assert_eq!(
        (c.topology_key.as_str(), c.when_unsatisfiable.as_str(), c.max_skew),
        ("kubernetes.io/hostname", "ScheduleAnyway", 1),
        "{name}: topology spread"
    );
    let sel = c.label_selector.as_ref().and_then(|s| s.match_labels.clone());
    assert_eq!(sel, Some(pod_labels(d)), "{name}: the spread selects the Deployment's own Pods");
    let dep_sel = d.spec.as_ref().and_then(|s| s.selector.match_labels.clone());
    assert_eq!(sel, dep_sel, "{name}: spread selector vs the Deployment's selector");
}

/// The PodDisruptionBudgets of a render: apiVersion, maxUnavailable 1, each selecting exactly
/// the Pods of its Deployment.
fn assert_budgets(r: &Rendered, api_version: &str, prefix: &str) {
    let raw: Vec<&Value> = r.objects.iter().filter(|o| o["kind"] == "PodDisruptionBudget").collect();
    let versions: Vec<&str> = raw.iter().map(|o| o["apiVersion"].as_str().unwrap_or("")).collect();
    assert_eq!(versions, [api_version, api_version], "PodDisruptionBudget apiVersions");
    for part in ["operator", "shim"] {
        let name = format!("{prefix}-{part}");
        let o = raw
            .iter()
            .find(|o| o["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no PDB {name}"));
        let mut v1 = (*o).clone();
        v1["apiVersion"] = json!("policy/v1");
        let pdb: PodDisruptionBudget = serde_json::from_value(v1).expect("a PodDisruptionBudget");
        let spec = pdb.spec.expect("a PDB spec");
        assert_eq!((spec.max_unavailable, spec.min_available), (Some(IntOrString::Int(1)), None), "{name}");
        let dep = r.get::<Deployment>(&name);
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some(pod_labels(&dep)),
            "{name}: the budget selects the Deployment's Pods"
        );
        assert_eq!(pdb.metadata.namespace, dep.metadata.namespace, "{name}: namespace");
    }
}

#[test]
fn at_one_replica_no_budget_at_three_budgets_spread_and_identity_offline() {
    // An offline render (no cluster: Helm's default capabilities, Kubernetes >= 1.21):
    // policy/v1. The cluster's 1.20 render is on_the_cluster_*.
    for (values, replicas) in [(json!({}), 1), (three_replicas(), 3)] {
        let r = render(&values);
        for dep in ["rce-operator", "rce-shim"] {
            let d = r.get::<Deployment>(dep);
            assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(replicas), "{dep} replicas");
            assert_spread(&d);
        }
        let op = r.get::<Deployment>("rce-operator");
        assert_sharding_env(&op, "rce");
        assert_eq!(
            op.spec.as_ref().and_then(|s| s.strategy.clone()),
            Some(one_at_a_time()),
            "operator strategy"
        );
        if replicas == 1 {
            assert!(r.all::<PodDisruptionBudget>().is_empty(), "PodDisruptionBudgets at one replica");
        } else {
            assert_budgets(&r, "policy/v1", "rce");
            assert!(r.notes.contains("3 replicas sharing the Executions"), "{}", r.notes);
        }
    }
}

#[test]
fn budgets_and_spread_follow_their_values() {
    // enabled: true at one replica; minAvailable replaces maxUnavailable.
    let r = render(&json!({"operator": {"podDisruptionBudget": {"enabled": true, "minAvailable": "50%"}}}));
    let pdb = r.get::<PodDisruptionBudget>("rce-operator").spec.expect("a PDB spec");
    assert_eq!((pdb.min_available, pdb.max_unavailable), (Some(IntOrString::String("50%".into())), None));
    assert!(r.maybe::<PodDisruptionBudget>("rce-shim").is_none(), "shim PDB at one replica");
    // enabled: false at three replicas; another maxUnavailable.
    let r = render(&json!({"operator": {"replicas": 3, "podDisruptionBudget": {"enabled": false}},
                           "shim": {"replicas": 2, "podDisruptionBudget": {"maxUnavailable": 2}}}));
    assert!(r.maybe::<PodDisruptionBudget>("rce-operator").is_none(), "operator PDB disabled");
    let shim = r.get::<PodDisruptionBudget>("rce-shim").spec.expect("a PDB spec");
    assert_eq!(shim.max_unavailable, Some(IntOrString::Int(2)), "shim maxUnavailable");
    // No shim, no shim budget.
    let r = render(&json!({"operator": {"replicas": 3}, "shim": {"enabled": false, "replicas": 3}}));
    assert_eq!(r.names::<PodDisruptionBudget>(), ["rce-operator"], "PDBs without the shim");
    // No spread; a spread of one's own keeps its selector.
    let own = json!({"matchLabels": {"team": "x"}});
    let r = render(&json!({"operator": {"topologySpreadConstraints": []},
                           "shim": {"topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
                                     "whenUnsatisfiable": "DoNotSchedule", "labelSelector": own}]}}));
    let pod = |d: &str| r.get::<Deployment>(d).spec.and_then(|s| s.template.spec).expect("a pod spec");
    assert_eq!(pod("rce-operator").topology_spread_constraints, None, "operator spread: []");
    let c = pod("rce-shim").topology_spread_constraints.expect("shim spread").remove(0);
    assert_eq!((c.topology_key.as_str(), c.max_skew), ("topology.kubernetes.io/zone", 2));
    assert_eq!(c.label_selector.and_then(|s| s.match_labels), Some(btree(&[("team", "x")])), "own selector");
}

#[test]
fn metrics_port_zero_binds_an_ephemeral_port_without_probes() {
    // Several replicas on one node's host network cannot share a port.
    let r = render(&json!({"hostNetwork": true, "operator": {"replicas": 3, "metricsPort": 0}}));
    let op = r.get::<Deployment>("rce-operator");
    assert_eq!(env_value(&op, "RCE_METRICS_ADDR"), "127.0.0.1:0");
    let c = container(&op);
    assert_eq!(c.ports, None, "no container port (on the host network it would be a host port)");
    assert!(c.liveness_probe.is_none() && c.readiness_probe.is_none(), "probes without a port");
    let fixed = container(&DEFAULT.get::<Deployment>("rce-operator")).clone();
    assert!(fixed.ports.is_some() && fixed.readiness_probe.is_some(), "a fixed port keeps port and probes");
}

#[test]
fn sharding_settings_reach_the_operator_and_name_each_release_apart() {
    let r = render_as(
        &json!({"operator": {"replicas": 3, "maxRunning": 12, "namespaceMaxRunning": 4}}),
        "blue",
        "rce",
    );
    let op = r.get::<Deployment>("blue-rce-operator");
    assert_eq!(env_value(&op, "RCE_MAX_RUNNING"), "12");
    assert_eq!(env_value(&op, "RCE_NAMESPACE_MAX_RUNNING"), "4");
    assert_sharding_env(&op, "blue-rce");
    let green = render_as(&json!({}), "green", "rce").get::<Deployment>("green-rce-operator");
    assert_sharding_env(&green, "green-rce");
    // The shim gets none of it.
    let shim = r.get::<Deployment>("blue-rce-shim");
    for name in ["RCE_IDENTITY", "RCE_LEASE_NAMESPACE", "RCE_SHARD_GROUP", "RCE_MAX_RUNNING"] {
        assert!(!env_of(&shim).contains_key(name), "the shim sets {name}");
    }
}

/// A release name and namespace of its own (`helmrep-` prefix); a render creates nothing.
fn cluster_release(tag: &str) -> (String, String) {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("helmrep-{tag}-{:08x}", (nanos as u64 ^ u64::from(std::process::id())) & 0xffff_ffff);
    (name.clone(), name)
}

/// On the cluster of KUBECONFIG (Kubernetes 1.20: no policy/v1): the budgets are policy/v1beta1,
/// rendered at three replicas and not at one, with spread, identity and the leases Role.
#[test]
fn on_the_cluster_three_replicas_render_policy_v1beta1_budgets() {
    for (values, replicas) in [(json!({"runtimes": []}), 1), (three_replicas(), 3)] {
        let mut values = values;
        values["runtimes"] = json!([]); // cluster-scoped Runtimes of that name may exist already
        let (name, ns) = cluster_release(&replicas.to_string());
        let r = render_on_cluster(&values, &name, &ns);
        let full = format!("{name}-rce");
        let op = r.get::<Deployment>(&format!("{full}-operator"));
        assert_eq!(op.spec.as_ref().and_then(|s| s.replicas), Some(replicas), "operator replicas");
        assert_sharding_env(&op, &full);
        assert_spread(&op);
        assert_spread(&r.get::<Deployment>(&format!("{full}-shim")));
        let role = r.get::<Role>(&format!("{full}-operator-leases"));
        assert_eq!(role.metadata.namespace.as_deref(), Some(ns.as_str()), "leases Role namespace");
        assert_eq!(
            rules_of(&role.rules),
            triples(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "list", "watch", "create", "update", "patch", "delete"]
            ),
            "leases Role"
        );
        if replicas == 1 {
            assert!(
                r.objects.iter().all(|o| o["kind"] != "PodDisruptionBudget"),
                "PodDisruptionBudgets at one replica"
            );
        } else {
            assert_budgets(&r, "policy/v1beta1", &full);
        }
    }
}
