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
use rce_api::warmpool::{IMAGE_ANNOTATION, POOL_LABEL, SERVED_ANNOTATION, STATE_LABEL, STATE_STARTING};
use rce_api::{Execution, Runtime, WarmPool, EXECUTION_LABEL, SANDBOX_LABEL};

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
    // The compile stage once, then each run (Judge0's number_of_runs) or test case its whole
    // wall time, plus a second for the clean-up and restore between them.
    let wall_ms = plan.request.budget_ms();
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
    hardened(
        execution_meta(execution, attempt, Some(request_json)),
        Shape {
            plan,
            settings,
            key,
            id: i64::from(names::sandbox_id(&uid)),
            sizes: s,
            active_deadline_seconds: s.active_deadline_seconds,
            serve: false,
        },
    )
}

/// Build a cold sandbox of `attempt` of `execution` whose runner serves over its attached
/// stdin (`rce-runner --serve`), for an interactive Execution that no pool serves: the same
/// name, labels and owner as [`build_pod`], no request volume (the request goes over the
/// attach stream), the same deadline.
pub fn build_serving_pod(
    execution: &Execution,
    attempt: u32,
    plan: &Plan,
    runtime: &Runtime,
    settings: &SandboxSettings,
    key: &str,
) -> Pod {
    let s = sizes(plan, runtime, settings);
    let uid = execution.uid().unwrap_or_default();
    hardened(
        execution_meta(execution, attempt, None),
        Shape {
            plan,
            settings,
            key,
            id: i64::from(names::sandbox_id(&uid)),
            sizes: s,
            active_deadline_seconds: s.active_deadline_seconds,
            serve: true,
        },
    )
}

/// When the sandbox container started running (its first container's running or terminated
/// state), once it did.
pub fn container_started_at(pod: &Pod) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    let state = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?;
    state
        .terminated
        .as_ref()
        .and_then(|t| t.started_at.clone())
        .or_else(|| state.running.as_ref().and_then(|r| r.started_at.clone()))
}

/// Does this sandbox Pod's runner serve over its attached stdin (a warm Pod, or one from
/// [`build_serving_pod`])?
pub fn is_serving(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER)).is_some_and(|c| {
        c.command.as_deref().is_some_and(|cmd| cmd.iter().any(|a| a == rce_api::serve::SERVE_ARG))
    })
}

/// The kubelet rotates a container log at this size (`containerLogMaxSize` in
/// hack/cluster.sh) ...
pub const LOG_ROTATE_MIB: u64 = 64;
/// ... and keeps this many files of it (the kubelet's default `containerLogMaxFiles`).
pub const LOG_FILES: u64 = 5;

/// Ephemeral storage of a warm Pod: the kubelet's files (32 MiB, as for a cold sandbox) and
/// the container log of up to `max_runs` runs. Each run logs its output twice (the live
/// `data` frames and the sealed result line, both base64) and a few short frames; past
/// [`LOG_FILES`] × [`LOG_ROTATE_MIB`] the kubelet's rotation bounds the log whatever the
/// number of runs (one run's log always fits, even when it alone is larger).
pub fn warm_ephemeral_mib(plan: &Plan, max_runs: u32) -> u64 {
    let l = &plan.limits;
    let outputs = 2 * (l.output_bytes + plan.compile_limits.map_or(0, |c| c.output_bytes));
    // Twice the base64 of the output, and 4 KiB of frames (started, stage, ready, data
    // framing) per run.
    let per_run_bytes = 2 * (outputs * 4 / 3) + 4096;
    let logged = (u64::from(max_runs.max(1)) * per_run_bytes).div_ceil(1024 * 1024);
    let bound = (LOG_FILES * LOG_ROTATE_MIB).max(per_run_bytes.div_ceil(1024 * 1024) + LOG_ROTATE_MIB);
    32 + logged.min(bound)
}

/// activeDeadlineSeconds of a warm Pod: `maxAge`, then the longest one Execution the pool's
/// shape allows (its compile and one run's wall time and the start margin, as a cold
/// sandbox's deadline): a Pod is claimed only while younger than `maxAge`, and only by an
/// Execution whose own deadline is within that margin (see `claim::fitting_pool`), so the
/// last run of a Pod always finishes before the kubelet kills it.
pub fn warm_deadline_seconds(
    shape: &Plan,
    runtime: &Runtime,
    settings: &SandboxSettings,
    max_age: u64,
) -> i64 {
    max_age as i64 + sizes(shape, runtime, settings).active_deadline_seconds
}

/// A fresh random sandbox uid/gid for a warm Pod (it serves Executions not known when it is
/// built), in [`names::SANDBOX_ID_MIN`, `names::SANDBOX_ID_END`).
pub fn random_sandbox_id() -> i64 {
    i64::from(rand::Rng::random_range(&mut rand::rng(), names::SANDBOX_ID_MIN..names::SANDBOX_ID_END))
}

/// Build a warm Pod of `pool`, whose shape `plan` resolved (see `pool::shape`): the same
/// hardened sandbox as [`build_pod`], its runner started with `--serve` and its stdin
/// attachable, holding no submission; named `<pool>-<random>`, owned by the pool, running as
/// sandbox uid `uid` (from [`random_sandbox_id`]).
pub fn build_warm_pod(
    pool: &WarmPool,
    plan: &Plan,
    runtime: &Runtime,
    settings: &SandboxSettings,
    key: &str,
    uid: i64,
) -> Pod {
    let mut s = sizes(plan, runtime, settings);
    s.ephemeral_mib = warm_ephemeral_mib(plan, pool.spec.max_runs());
    let max_age = pool.spec.max_age().map_or(1800, |d| d.as_secs());
    let name = pool.name_any();
    let labels = BTreeMap::from([
        (SANDBOX_LABEL.to_string(), "true".to_string()),
        (POOL_LABEL.to_string(), names::label_value(&name)),
        (STATE_LABEL.to_string(), STATE_STARTING.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string()),
        ("app.kubernetes.io/component".to_string(), "warm-sandbox".to_string()),
    ]);
    let meta = ObjectMeta {
        generate_name: Some(format!("{}-", warm_name_base(&name))),
        namespace: pool.namespace(),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([
            (IMAGE_ANNOTATION.to_string(), runtime.spec.image.clone()),
            (SERVED_ANNOTATION.to_string(), "0".to_string()),
        ])),
        owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    let mut pod = hardened(
        meta,
        Shape {
            plan,
            settings,
            key,
            id: uid,
            sizes: s,
            active_deadline_seconds: warm_deadline_seconds(plan, runtime, settings, max_age),
            serve: true,
        },
    );
    // Idle nearly all its life: a request of its own (`--warm-cpu-request`).
    for c in pod.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
        if let Some(r) = c.resources.as_mut().and_then(|r| r.requests.as_mut()) {
            r.insert("cpu".into(), Quantity(settings.warm_cpu_request.clone()));
        }
    }
    pod
}

/// The generateName base of a pool's Pods: room for the API server's 5 random characters.
fn warm_name_base(pool: &str) -> String {
    let base: String = pool.chars().take(names::MAX_LABEL - 6).collect();
    base.trim_end_matches(['-', '.']).to_string()
}

/// Metadata of a sandbox Pod of `attempt` of `execution`: its name, labels, owner, and
/// (for a cold sandbox that reads it from a file) the request.
fn execution_meta(execution: &Execution, attempt: u32, request_json: Option<String>) -> ObjectMeta {
    let uid = execution.uid().unwrap_or_default();
    let mut annotations = BTreeMap::from([(EXECUTION_UID_ANNOTATION.to_string(), uid.clone())]);
    if let Some(json) = request_json {
        annotations.insert(REQUEST_ANNOTATION.to_string(), json);
    }
    ObjectMeta {
        name: Some(names::pod_name(&execution.name_any(), &uid, attempt)),
        namespace: execution.namespace(),
        labels: Some(labels(execution, attempt)),
        annotations: Some(annotations),
        owner_references: execution.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// What differs between the hardened sandboxes.
struct Shape<'a> {
    plan: &'a Plan,
    settings: &'a SandboxSettings,
    key: &'a str,
    /// The sandbox uid and gid.
    id: i64,
    sizes: Sizes,
    active_deadline_seconds: i64,
    /// `rce-runner --serve` with an attachable stdin and no request volume; otherwise the
    /// runner reads the request from the downward-API file.
    serve: bool,
}

/// The hardened sandbox Pod: every protection every sandbox has.
fn hardened(metadata: ObjectMeta, shape: Shape<'_>) -> Pod {
    let Shape { plan, settings, key, id, sizes: s, active_deadline_seconds, serve } = shape;
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
    let mut command = vec![settings.runner_path.clone()];
    let mut mounts = vec![
        VolumeMount { name: "work".into(), mount_path: WORK_DIR.into(), ..Default::default() },
        VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
    ];
    let mut volumes = vec![memory_dir("work", s.work_mib), memory_dir("tmp", s.tmp_mib)];
    if serve {
        command.push(rce_api::serve::SERVE_ARG.to_string());
    } else {
        mounts.push(VolumeMount {
            name: "request".into(),
            mount_path: request_dir.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
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
        });
    }
    Pod {
        metadata,
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(active_deadline_seconds),
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
                command: Some(command),
                working_dir: Some(WORK_DIR.into()),
                // A serving runner reads its requests from the attached stdin (the operator
                // reaches it through the API server only); it stays open between attaches.
                stdin: serve.then_some(true),
                stdin_once: serve.then_some(false),
                tty: serve.then_some(false),
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
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
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
        assert_sandbox_hardening(&pod, None);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name, None);
        // 2.5 s of wall time, rounded up, plus the 10 s start margin.
        assert_eq!(spec.active_deadline_seconds, Some(13));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.command.as_deref(), Some(&["/usr/local/bin/rce-runner".to_string()][..]));
        assert_eq!((c.stdin, c.stdin_once, c.tty), (None, None, None));
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
        assert_eq!(req["cpu"].0, "250m");
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

    const POOL: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: WarmPool
metadata: {name: py, namespace: team-a, uid: pool-uid}
spec:
  runtime: python
  replicas: 3
  maxAge: 10m
  limits: {memoryMiB: 64, wallTimeMs: 2500, outputBytes: 1000}
"#;

    fn warm_pod(pool_yaml: &str) -> (Pod, Plan) {
        let pool: WarmPool = serde_yaml::from_str(pool_yaml).unwrap();
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let shape = crate::pool::shape(&pool, &rt, &s).unwrap();
        (build_warm_pod(&pool, &shape, &rt, &s, KEY, 123_456), shape)
    }

    /// Every protection every sandbox has, field by field.
    fn assert_sandbox_hardening(pod: &Pod, uid: Option<i64>) {
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        assert_eq!(spec.termination_grace_period_seconds, Some(1));
        assert_eq!(spec.host_network, None);
        assert_eq!(spec.host_pid, None);
        assert_eq!(spec.host_ipc, None);
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
        assert_eq!(spec.dns_config.unwrap().nameservers.unwrap(), ["127.0.0.1"]);
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        let id = psc.run_as_user.unwrap();
        assert!((100_000..(1 << 31)).contains(&id), "{id}");
        if let Some(uid) = uid {
            assert_eq!(id, uid);
        }
        assert_eq!((psc.run_as_group, psc.fs_group), (Some(id), Some(id)));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(spec.containers.len(), 1);
        assert!(spec.init_containers.is_none());
        let c = &spec.containers[0];
        assert_eq!(c.name, CONTAINER);
        assert_eq!(c.image.as_deref(), Some("rce.dev/sandbox-python:abc"));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(id), Some(id)));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(sc.capabilities.as_ref().unwrap().add.is_none());
        assert_eq!(c.termination_message_path.as_deref(), Some(TERMINATION_MESSAGE_PATH));
        assert!(c.ports.is_none());
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

    /// A serving sandbox: every protection, the runner serving over its attached stdin.
    fn assert_hardened(pod: &Pod, uid: Option<i64>) {
        assert_sandbox_hardening(pod, uid);
        let spec = pod.spec.clone().unwrap();
        let c = &spec.containers[0];
        // The runner serves over its attached stdin; no request file.
        assert_eq!(
            c.command.as_deref(),
            Some(&["/usr/local/bin/rce-runner".to_string(), "--serve".to_string()][..])
        );
        assert!(is_serving(pod));
        assert_eq!((c.stdin, c.stdin_once, c.tty), (Some(true), Some(false), Some(false)));
        let vols = spec.volumes.unwrap();
        assert_eq!(vols.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["work", "tmp"]);
        for v in &vols {
            let ed = v.empty_dir.as_ref().unwrap();
            assert_eq!(ed.medium.as_deref(), Some("Memory"));
            assert_eq!(ed.size_limit.as_ref().unwrap().0, "16Mi");
        }
        let mounts: Vec<(&str, &str)> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(mounts, [("work", "/work"), ("tmp", "/tmp")]);
        let ann = pod.metadata.annotations.as_ref().unwrap();
        assert!(!ann.contains_key(REQUEST_ANNOTATION), "no submission in a serving sandbox's spec");
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()[SANDBOX_LABEL],
            "true",
            "the deny-all policy selects it"
        );
    }

    #[test]
    fn warm_pod_is_a_hardened_sandbox_of_the_pool() {
        let (pod, _) = warm_pod(POOL);
        assert_hardened(&pod, Some(123_456));
        let m = &pod.metadata;
        assert_eq!(m.name, None);
        assert_eq!(m.generate_name.as_deref(), Some("py-"));
        assert_eq!(m.namespace.as_deref(), Some("team-a"));
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("WarmPool", "py", "pool-uid")
        );
        assert_eq!(owner.controller, Some(true));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[POOL_LABEL], "py");
        assert_eq!(labels[STATE_LABEL], STATE_STARTING);
        assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGER);
        assert!(!labels.contains_key(EXECUTION_LABEL));
        let ann = m.annotations.as_ref().unwrap();
        assert_eq!(ann[IMAGE_ANNOTATION], "rce.dev/sandbox-python:abc");
        assert_eq!(ann[SERVED_ANNOTATION], "0");
        assert_eq!(result_key(&pod).unwrap().len(), 32);
    }

    #[test]
    fn warm_pod_resources_deadline_and_log_room() {
        let (pod, shape) = warm_pod(POOL);
        let spec = pod.spec.unwrap();
        // maxAge (600 s), then one shape-sized Execution: 2.5 s rounded up, the 10 s margin.
        assert_eq!(spec.active_deadline_seconds, Some(600 + 13));
        let r = spec.containers[0].resources.clone().unwrap();
        let (lim, req) = (r.limits.unwrap(), r.requests.unwrap());
        assert_eq!(lim["memory"].0, "112Mi");
        assert_eq!(lim["cpu"].0, "1");
        assert_eq!(req["cpu"].0, "50m");
        assert_eq!(req["memory"], lim["memory"]);
        // One run's log: twice 2 x 1000 bytes as base64 and the frames, under a MiB.
        assert_eq!(lim["ephemeral-storage"].0, "33Mi");
        assert_eq!(req["ephemeral-storage"], lim["ephemeral-storage"]);
        // Reuse: the log of every run, up to the kubelet's rotation bound.
        let (pod, _) = warm_pod(&POOL.replace("maxAge: 10m", "maxAge: 10m\n  reuse: {maxRuns: 1000}"));
        let lim = pod.spec.unwrap().containers[0].resources.clone().unwrap().limits.unwrap();
        // 1000 × (2 × 2666 + 4096) bytes: 9 MiB.
        assert_eq!(lim["ephemeral-storage"].0, "41Mi");
        let mut big = shape.clone();
        big.limits.output_bytes = 4 * 1024 * 1024;
        // 1000 runs of 2 x 4 MiB, twice in base64: rotation bounds it at 5 x 64 MiB.
        assert_eq!(warm_ephemeral_mib(&big, 1000), 32 + 320);
        assert_eq!(warm_ephemeral_mib(&big, 1), 32 + 22);
    }

    #[test]
    fn warm_pod_names_fit_and_uids_are_random() {
        let long = "p".repeat(63);
        let (pod, _) = warm_pod(&POOL.replace("name: py,", &format!("name: {long},")));
        let gen = pod.metadata.generate_name.unwrap();
        assert!(gen.len() + 5 <= names::MAX_LABEL, "{gen}");
        let ids: std::collections::HashSet<i64> = (0..20).map(|_| random_sandbox_id()).collect();
        assert!(ids.len() > 15);
        assert!(ids.iter().all(|i| (100_000..(1 << 31)).contains(i)));
    }

    #[test]
    fn serving_pod_is_the_executions_sandbox_with_stdin_attached() {
        let e = execution(EXEC);
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let p = plan(&e.spec, &rt, &s).unwrap();
        let pod = build_serving_pod(&e, 2, &p, &rt, &s, KEY);
        let cold = build_pod(&e, 2, &p, &rt, &s, KEY);
        assert_hardened(&pod, cold.spec.as_ref().unwrap().security_context.as_ref().unwrap().run_as_user);
        assert_eq!(pod.metadata.name, cold.metadata.name);
        assert_eq!(pod.metadata.labels, cold.metadata.labels);
        assert_eq!(pod.metadata.owner_references, cold.metadata.owner_references);
        assert_eq!(pod.metadata.annotations.as_ref().unwrap()[EXECUTION_UID_ANNOTATION], "5f2d-uid");
        assert!(!is_serving(&cold));
        let (ps, cs) = (pod.spec.unwrap(), cold.spec.unwrap());
        assert_eq!(ps.active_deadline_seconds, cs.active_deadline_seconds);
        assert_eq!(ps.containers[0].resources, cs.containers[0].resources);
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
