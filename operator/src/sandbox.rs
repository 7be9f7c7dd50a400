//! The sandbox Pod and the deny-all NetworkPolicy, built as plain values (no cluster access).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            Capabilities, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
            EnvVar, ObjectFieldSelector, Pod, PodDNSConfig, PodSecurityContext, PodSpec,
            ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
        },
        networking::v1::{NetworkPolicy, NetworkPolicySpec},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::LabelSelector},
};
use kube::{api::ObjectMeta, Resource, ResourceExt};
pub use rce_api::protocol::{ACCOUNTING_ENV, RESULT_KEY_ENV};
use rce_api::protocol::{REQUEST_ANNOTATION, REQUEST_PATH, WORK_DIR};
use rce_api::{Execution, Runtime, EXECUTION_LABEL, SANDBOX_LABEL};

use crate::{config::SandboxSettings, names, validate::Plan};

/// Name of the sandbox container.
pub const CONTAINER: &str = "runner";
/// Label carrying the attempt number on a sandbox Pod.
pub const ATTEMPT_LABEL: &str = "rce.dev/attempt";
/// Annotation carrying the owning Execution's uid on a sandbox Pod.
pub const EXECUTION_UID_ANNOTATION: &str = "rce.dev/execution-uid";
/// Label carrying the owning Execution's uid on a sandbox Pod.
pub const EXECUTION_UID_LABEL: &str = "rce.dev/execution-uid";
/// Where the kubelet's termination-message file is mounted in the sandbox container.
pub const TERMINATION_MESSAGE_PATH: &str = "/root/.rce-termination-log";
/// Name of the NetworkPolicy that isolates sandbox Pods in each namespace.
pub const NETWORK_POLICY: &str = "rce-sandbox-deny-all";
/// The field manager of everything the operator writes.
pub const MANAGER: &str = "rce-operator";

/// Sizes of one sandbox, in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub work_mib: u64,
    pub tmp_mib: u64,
    /// Memory request = limit: the program's memory, the memory-backed work dir and /tmp
    /// (tmpfs pages count against the Pod's memory) and the runner's own.
    pub memory_mib: u64,
    /// Ephemeral storage: the container log (the runner's one result line; nothing else can
    /// write there) and the kubelet's files of the Pod.
    pub ephemeral_mib: u64,
    pub active_deadline_seconds: i64,
}

/// Decide the sandbox's sizes.
pub fn sizes(plan: &Plan, runtime: &Runtime, settings: &SandboxSettings) -> Sizes {
    let l = &plan.limits;
    let file_mib = |kib: u64| kib.div_ceil(1024);
    let max_file_mib =
        file_mib(l.file_size_kib).max(plan.compile_limits.map_or(0, |c| file_mib(c.file_size_kib)));
    let work_mib = runtime.spec.work_dir_mib.unwrap_or(settings.work_mib.max(2 * max_file_mib));
    let tmp_mib = runtime.spec.tmp_mib.unwrap_or(settings.tmp_mib);
    let program_mib = l.memory_mib.max(plan.compile_limits.map_or(0, |c| c.memory_mib));
    // The result line holds stdout and stderr of the run and of the compile step, base64.
    let outputs = 2 * (l.output_bytes + plan.compile_limits.map_or(0, |c| c.output_bytes));
    let ephemeral_mib = 32 + (outputs * 4 / 3).div_ceil(1024 * 1024);
    // Each of the runs (Judge0's number_of_runs) may take its whole wall time, plus a second
    // for the runner's clean-up and restore between runs; the compile stage runs once.
    let runs = u64::from(plan.request.runs.max(1));
    let wall_ms = runs * (l.wall_time_ms + if runs > 1 { 1000 } else { 0 })
        + plan.compile_limits.map_or(0, |c| c.wall_time_ms);
    Sizes {
        work_mib,
        tmp_mib,
        memory_mib: program_mib + work_mib + tmp_mib + settings.runner_overhead_mib,
        ephemeral_mib,
        active_deadline_seconds: (wall_ms.div_ceil(1000) + settings.start_margin_seconds) as i64,
    }
}

fn mib(n: u64) -> Quantity {
    Quantity(format!("{n}Mi"))
}

/// The run id of `attempt` of the Execution with uid `uid`: what the runner's sealed
/// result must name.
pub fn run_id(uid: &str, attempt: u32) -> String {
    format!("{uid}/{attempt}")
}

/// A fresh result key: 32 random bytes, in hex.
pub fn new_result_key() -> String {
    let mut key = [0u8; rce_api::mac::KEY_BYTES];
    // The thread RNG is a CSPRNG seeded (and reseeded) from the operating system.
    rand::Rng::fill(&mut rand::rng(), &mut key[..]);
    rce_api::mac::hex(&key)
}

/// The result key a sandbox Pod was given, from its spec.
pub fn result_key(pod: &Pod) -> Option<Vec<u8>> {
    let env = pod.spec.as_ref()?.containers.iter().find(|c| c.name == CONTAINER)?.env.as_ref()?;
    let hex = env.iter().find(|v| v.name == RESULT_KEY_ENV)?.value.as_deref()?;
    rce_api::mac::unhex(hex).filter(|k| !k.is_empty())
}

/// The labels every sandbox Pod of `execution` carries.
pub fn labels(execution: &Execution, attempt: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SANDBOX_LABEL.to_string(), "true".to_string()),
        (EXECUTION_LABEL.to_string(), names::label_value(&execution.name_any())),
        (EXECUTION_UID_LABEL.to_string(), execution.uid().unwrap_or_default()),
        (ATTEMPT_LABEL.to_string(), attempt.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string()),
        ("app.kubernetes.io/component".to_string(), "sandbox".to_string()),
    ])
}

/// Build the sandbox Pod of `attempt` (1-based) of `execution`, whose runner seals its
/// result with `key` (hex, from [`new_result_key`]).
pub fn build_pod(
    execution: &Execution,
    attempt: u32,
    plan: &Plan,
    runtime: &Runtime,
    settings: &SandboxSettings,
    key: &str,
) -> Pod {
    let s = sizes(plan, runtime, settings);
    let uid = execution.uid().unwrap_or_default();
    let mut request = plan.request.clone();
    request.run_id = run_id(&uid, attempt);
    // The stdin is for the program's stdin only: in the request, which the program could
    // read (at compile time, say), it is sealed under the Pod's key.
    if !request.stdin.is_empty() {
        let key_bytes = rce_api::mac::unhex(key).unwrap_or_default();
        let mut nonce = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
        request.stdin_sealed = Some(rce_api::protocol::SealedText::seal(
            &key_bytes,
            &nonce,
            &std::mem::take(&mut request.stdin),
        ));
    }
    let request_json = serde_json::to_string(&request).unwrap_or_else(|_| plan.request_json.clone());
    let id = i64::from(names::sandbox_id(&uid));
    let request_dir = REQUEST_PATH.rsplit_once('/').map_or("/etc/rce", |(d, _)| d);
    let request_file = REQUEST_PATH.rsplit_once('/').map_or("request.json", |(_, f)| f);
    let resources = BTreeMap::from([
        ("memory".to_string(), mib(s.memory_mib)),
        ("ephemeral-storage".to_string(), mib(s.ephemeral_mib)),
    ]);
    let mut limits = resources.clone();
    limits.insert("cpu".into(), Quantity(plan.cpu_limit.clone()));
    let mut requests = resources;
    requests.insert("cpu".into(), Quantity(settings.cpu_request.clone()));
    let memory_dir = |name: &str, size: u64| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: Some(mib(size)) }),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(names::pod_name(&execution.name_any(), &uid, attempt)),
            namespace: execution.namespace(),
            labels: Some(labels(execution, attempt)),
            annotations: Some(BTreeMap::from([
                (REQUEST_ANNOTATION.to_string(), request_json),
                (EXECUTION_UID_ANNOTATION.to_string(), uid),
            ])),
            owner_references: execution.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(s.active_deadline_seconds),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(1),
            // No network: name lookups fail at once instead of timing out.
            dns_policy: Some("None".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["127.0.0.1".into()]),
                ..Default::default()
            }),
            runtime_class_name: plan.runtime_class_name.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(id),
                run_as_group: Some(id),
                fs_group: Some(id),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(plan.image.clone()),
                image_pull_policy: Some(settings.image_pull_policy.as_str().to_string()),
                command: Some(vec![settings.runner_path.clone()]),
                working_dir: Some(WORK_DIR.into()),
                // The runner takes the key out of its environment before any stage starts,
                // and stages get an environment of their own.
                env: Some(vec![
                    EnvVar { name: RESULT_KEY_ENV.into(), value: Some(key.into()), value_from: None },
                    EnvVar { name: ACCOUNTING_ENV.into(), value: Some("cgroup".into()), value_from: None },
                ]),
                // The kubelet mounts this file from the node's disk, writable by anyone: it goes
                // where the sandbox's uid cannot reach; RLIMIT_FSIZE and the runner's filter
                // (no fallocate that keeps the size) bound it where an image has no such place,
                // and the operator never uses its text.
                // (Not /dev/termination-log: the file is the node's, on its disk. Under /root,
                // root's own 0700 directory in every rce image, the program cannot reach it.)
                termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
                termination_message_policy: Some("File".into()),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    requests: Some(requests),
                    ..Default::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    privileged: Some(false),
                    capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
                    read_only_root_filesystem: Some(true),
                    run_as_non_root: Some(true),
                    run_as_user: Some(id),
                    run_as_group: Some(id),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..Default::default()
                }),
                volume_mounts: Some(vec![
                    VolumeMount { name: "work".into(), mount_path: WORK_DIR.into(), ..Default::default() },
                    VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
                    VolumeMount {
                        name: "request".into(),
                        mount_path: request_dir.into(),
                        read_only: Some(true),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }],
            volumes: Some(vec![
                memory_dir("work", s.work_mib),
                memory_dir("tmp", s.tmp_mib),
                Volume {
                    name: "request".into(),
                    downward_api: Some(DownwardAPIVolumeSource {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: request_file.into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: format!("metadata.annotations['{REQUEST_ANNOTATION}']"),
                                api_version: None,
                            }),
                            mode: Some(0o444),
                            resource_field_ref: None,
                        }]),
                        default_mode: Some(0o444),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The NetworkPolicy denying all ingress and egress of sandbox Pods in `namespace`.
pub fn network_policy(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(NETWORK_POLICY.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string())])),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(SANDBOX_LABEL.to_string(), "true".to_string())])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![]),
            egress: Some(vec![]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{
        plan,
        tests::{execution, runtime, GCC, PYTHON},
    };

    const EXEC: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: Execution
metadata: {name: hello, namespace: team-a, uid: 5f2d-uid}
spec:
  language: python
  source: print('hello')
  stdin: "some input\n"
  limits: {memoryMiB: 64, wallTimeMs: 2500, outputBytes: 1000}
"#;

    const KEY: &str = "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

    fn pod() -> (Pod, Plan) {
        let e = execution(EXEC);
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let p = plan(&e.spec, &rt, &s).unwrap();
        (build_pod(&e, 1, &p, &rt, &s, KEY), p)
    }

    #[test]
    fn pod_is_owned_named_labelled_and_carries_the_request() {
        let (pod, plan) = pod();
        let m = &pod.metadata;
        // The uid in the name: no other Execution can arrive at it.
        assert_eq!(m.name.as_deref(), Some("hello-5f2dd-1"));
        assert_eq!(m.namespace.as_deref(), Some("team-a"));
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Execution", "hello", "5f2d-uid")
        );
        assert_eq!(owner.controller, Some(true));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[SANDBOX_LABEL], "true");
        assert_eq!(labels[EXECUTION_LABEL], "hello");
        assert_eq!(labels[ATTEMPT_LABEL], "1");
        assert_eq!(labels[EXECUTION_UID_LABEL], "5f2d-uid");
        let ann = m.annotations.as_ref().unwrap();
        let sent: rce_api::protocol::RunRequest = serde_json::from_str(&ann[REQUEST_ANNOTATION]).unwrap();
        assert_eq!(sent.run_id, "5f2d-uid/1", "the request names its run");
        assert!(sent.stdin.is_empty());
        let key = rce_api::mac::unhex(KEY).unwrap();
        assert_eq!(sent.stdin_sealed.as_ref().unwrap().open(&key).unwrap(), "some input\n", "stdin sealed");
        assert!(!ann[REQUEST_ANNOTATION].contains("some input"));
        assert_eq!(sent.files, plan.request.files);
        assert_eq!(ann[EXECUTION_UID_ANNOTATION], "5f2d-uid");
        assert!(!ann[REQUEST_ANNOTATION].contains(KEY), "the key is not in what the program can read");
    }

    #[test]
    fn pod_is_hardened() {
        let (pod, _) = pod();
        assert_eq!(result_key(&pod).unwrap().len(), 32);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        assert_eq!(spec.termination_grace_period_seconds, Some(1));
        assert_eq!(spec.host_network, None);
        assert_eq!(spec.runtime_class_name, None);
        // 2.5 s of wall time, rounded up, plus the 10 s start margin.
        assert_eq!(spec.active_deadline_seconds, Some(13));
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        let uid = psc.run_as_user.unwrap();
        assert!((100_000..(1 << 31)).contains(&uid), "{uid}");
        assert_eq!(psc.run_as_group, Some(uid));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(spec.containers.len(), 1);
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("rce.dev/sandbox-python:abc"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.command.as_deref(), Some(&["/usr/local/bin/rce-runner".to_string()][..]));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(sc.capabilities.as_ref().unwrap().add.is_none());
        // The runner's environment: the result key and cgroup accounting; nothing else.
        let env: Vec<(String, Option<String>)> =
            c.env.clone().unwrap().into_iter().map(|v| (v.name, v.value)).collect();
        assert_eq!(
            env,
            [
                (RESULT_KEY_ENV.to_string(), Some(KEY.to_string())),
                (ACCOUNTING_ENV.to_string(), Some("cgroup".into()))
            ]
        );
    }

    #[test]
    fn pod_resources_and_volumes() {
        let (pod, _) = pod();
        let spec = pod.spec.unwrap();
        let c = &spec.containers[0];
        let r = c.resources.as_ref().unwrap();
        let (lim, req) = (r.limits.as_ref().unwrap(), r.requests.as_ref().unwrap());
        // 64 MiB program + 16 work + 16 tmp + 16 runner.
        assert_eq!(lim["memory"].0, "112Mi");
        assert_eq!(req["memory"], lim["memory"]);
        assert_eq!(lim["cpu"].0, "1");
        assert_eq!(req["cpu"].0, "50m");
        // 32 MiB plus the base64 result line: 2 x 1000 bytes of output, rounded up.
        assert_eq!(lim["ephemeral-storage"].0, "33Mi");
        assert_eq!(req["ephemeral-storage"], lim["ephemeral-storage"]);
        let vols = spec.volumes.unwrap();
        let by_name = |n: &str| vols.iter().find(|v| v.name == n).unwrap().clone();
        for (name, size) in [("work", "16Mi"), ("tmp", "16Mi")] {
            let ed = by_name(name).empty_dir.unwrap();
            assert_eq!(ed.medium.as_deref(), Some("Memory"));
            assert_eq!(ed.size_limit.unwrap().0, size);
        }
        let items = by_name("request").downward_api.unwrap().items.unwrap();
        assert_eq!(items[0].path, "request.json");
        assert_eq!(
            items[0].field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['rce.dev/request']"
        );
        let mounts = c.volume_mounts.as_ref().unwrap();
        let mount = |n: &str| mounts.iter().find(|m| m.name == n).unwrap();
        assert_eq!(mount("work").mount_path, "/work");
        assert_eq!(mount("tmp").mount_path, "/tmp");
        assert_eq!(mount("request").mount_path, "/etc/rce");
        assert_eq!(mount("request").read_only, Some(true));
        // Every volume type is allowed by the restricted Pod Security Standard.
        assert!(vols.iter().all(|v| v.empty_dir.is_some() || v.downward_api.is_some()));
    }

    #[test]
    fn compiled_runtimes_get_the_compile_time_memory_and_class() {
        let e = execution(EXEC);
        let rt = runtime(GCC);
        let s = SandboxSettings::default();
        let p = plan(&e.spec, &rt, &s).unwrap();
        let pod = build_pod(&e, 2, &p, &rt, &s, KEY);
        assert_eq!(pod.metadata.name.as_deref(), Some("hello-5f2dd-2"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        // 15 s compile + 2.5 s run, rounded up, plus the margin.
        assert_eq!(spec.active_deadline_seconds, Some(28));
        // Three runs: each its wall time and a second for the restore: 15 + 3 × 3.5 s, plus
        // the margin.
        let mut three = p.clone();
        three.request.runs = 3;
        assert_eq!(sizes(&three, &rt, &s).active_deadline_seconds, 36);
        let lim = spec.containers[0].resources.clone().unwrap().limits.unwrap();
        // The compile step's 384 MiB is the larger need.
        assert_eq!(lim["memory"].0, "432Mi");
        assert_eq!(lim["cpu"].0, "2");
        let cfg = SandboxSettings { runtime_class_name: Some("kata".into()), ..Default::default() };
        let py = runtime(PYTHON);
        let p = plan(&e.spec, &py, &cfg).unwrap();
        assert_eq!(
            build_pod(&e, 1, &p, &py, &cfg, KEY).spec.unwrap().runtime_class_name.as_deref(),
            Some("kata")
        );
    }

    #[test]
    fn result_keys_are_fresh_and_long() {
        let (a, b) = (new_result_key(), new_result_key());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(rce_api::mac::unhex(&a).is_some());
    }

    #[test]
    fn network_policy_denies_everything_for_sandboxes() {
        let np = network_policy("team-a");
        let v = serde_json::to_value(&np).unwrap();
        assert_eq!(v["metadata"]["namespace"], "team-a");
        assert_eq!(v["spec"]["podSelector"]["matchLabels"][SANDBOX_LABEL], "true");
        assert_eq!(v["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        assert_eq!(v["spec"]["ingress"], serde_json::json!([]));
        assert_eq!(v["spec"]["egress"], serde_json::json!([]));
    }
}
