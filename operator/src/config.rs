//! The operator's configuration: one `clap` struct, every flag with an `RCE_...` environment
//! fallback and a default.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, ValueEnum};
pub use rce_api::cli::LogFormat;
use rce_api::{callback::Policy, LimitCaps, ResolvedLimits};

/// imagePullPolicy of sandbox containers.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "verbatim")]
pub enum PullPolicy {
    IfNotPresent,
    /// Images loaded on the nodes, nothing is ever pulled (the local cluster).
    Never,
    Always,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
            PullPolicy::Always => "Always",
        }
    }
}

/// Reconciles rce Executions into hardened sandbox Pods and records their results.
#[derive(Parser, Debug, Clone)]
#[command(name = "rce-operator", version, about)]
pub struct Config {
    /// Namespaces to watch, comma-separated. Empty means every namespace. (The cluster
    /// connection itself comes from KUBECONFIG or the in-cluster service account.)
    #[arg(long, env = "RCE_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,

    /// Label selector of the Executions this operator serves. By default every Execution
    /// without an `rce.dev/operator` label; an Execution labelled `rce.dev/operator=X` is
    /// served only by an operator started with `--selector rce.dev/operator=X` (the cluster
    /// tests run their own operators this way). Empty: every Execution.
    #[arg(long, env = "RCE_SELECTOR", default_value = "!rce.dev/operator")]
    pub selector: String,

    /// Optional global cap on sandboxes running at once, cluster-wide over every replica (0:
    /// none). Capacity itself comes from the schedulable nodes' allocatable CPU, memory and
    /// Pod count against the sandbox Pods' requests; further Executions wait in `Pending`
    /// and are admitted in submission order within a namespace, fairly across namespaces.
    #[arg(long, env = "RCE_MAX_RUNNING", default_value_t = 0)]
    pub max_running: usize,

    /// Optional cap on sandboxes running at once per namespace (0: none beyond the fair
    /// order, in which a namespace running fewer goes first).
    #[arg(long, env = "RCE_NAMESPACE_MAX_RUNNING", default_value_t = 0)]
    pub namespace_max_running: usize,

    /// This replica's identity among the operator replicas (its membership Lease is named
    /// `<group>.<identity>`). Default: the Pod's name (POD_NAME) or the host name, with a
    /// random suffix.
    #[arg(long, env = "RCE_IDENTITY")]
    pub identity: Option<String>,

    /// Namespace of the membership Leases. Default: POD_NAMESPACE, else `default`.
    #[arg(long, env = "RCE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the group of replicas that share the Executions. Default: `rce-operator`
    /// for the default selector, else derived from the selector (operators serving other
    /// Executions never share with these).
    #[arg(long, env = "RCE_SHARD_GROUP")]
    pub shard_group: Option<String>,

    /// Seconds a replica's membership Lease lasts without renewal; a replica killed is
    /// replaced in the assignment this long after its last renewal.
    #[arg(long, env = "RCE_LEASE_SECONDS", default_value_t = 10)]
    pub lease_seconds: u64,

    /// Seconds without a renewal of a node's Lease (kube-node-lease), or of a Ready
    /// condition not True, after which the node is taken as lost: its sandbox Pods are
    /// deleted and their Executions retried elsewhere.
    #[arg(long, env = "RCE_NODE_LOST_SECONDS", default_value_t = 30)]
    pub node_lost_seconds: u64,

    /// Executions reconciled concurrently by the controller.
    #[arg(long, env = "RCE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Client-side limit on Kubernetes API requests per second (0: no limit).
    #[arg(long, env = "RCE_KUBE_QPS", default_value_t = 100)]
    pub kube_qps: u64,

    /// Requests that may be sent in a burst above the steady rate.
    #[arg(long, env = "RCE_KUBE_BURST", default_value_t = 200)]
    pub kube_burst: u64,

    /// Redis holding the status mirror.
    #[arg(long, env = "RCE_REDIS_URL", default_value = "redis://127.0.0.1:16379")]
    pub redis_url: String,

    /// Timeout of one Redis operation, in milliseconds; reconciliation never waits on Redis.
    #[arg(long, env = "RCE_REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,

    /// Seconds a finished Execution is kept before it is deleted (0: keep forever).
    #[arg(long, env = "RCE_TTL_SECONDS", default_value_t = 3600)]
    pub ttl_seconds: u64,

    /// Cap on each of stdout, stderr and compileOutput stored in the status, in bytes as the
    /// API server stores them (JSON-escaped: `<` takes 6), so that a status stays well under
    /// etcd's limit of about 1.5 MiB whatever the program printed.
    #[arg(long, env = "RCE_STATUS_OUTPUT_BYTES", default_value_t = 128 * 1024)]
    pub status_output_bytes: usize,

    /// Largest sandbox log read back to find the runner's result. The result line carries
    /// every output as base64: at the 4 MiB output ceiling, stdout and stderr of the run and
    /// of the compile stage make about 22 MiB.
    #[arg(long, env = "RCE_MAX_LOG_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_log_bytes: i64,

    /// Follow a running cold sandbox's log, so that its result is read as soon as the runner
    /// prints it rather than when the kubelet next reports the container terminated.
    #[arg(long, env = "RCE_FOLLOW_LOGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub follow_logs: bool,

    /// Seconds an image problem (ErrImagePull, ErrImageNeverPull, ...) is given before the
    /// Execution fails.
    #[arg(long, env = "RCE_IMAGE_ERROR_GRACE_SECONDS", default_value_t = 5)]
    pub image_error_grace_seconds: u64,

    /// Seconds past a sandbox's deadline (its Pod's activeDeadlineSeconds) after which an
    /// Execution whose result still could not be recorded fails: nothing stays Processing.
    #[arg(long, env = "RCE_RESULT_MARGIN_SECONDS", default_value_t = 60)]
    pub result_margin_seconds: u64,

    /// Seconds a sandbox Pod may take to start (scheduling, image) before the Execution fails.
    #[arg(long, env = "RCE_START_TIMEOUT_SECONDS", default_value_t = 120)]
    pub start_timeout_seconds: u64,

    /// Result-callback destinations admitted (`spec.callback`): a comma-separated list of
    /// `public` (any public address), CIDRs (`127.0.0.1/32`) and host names. Loopback,
    /// private, link-local and cluster ranges are refused unless listed. Empty: callbacks are
    /// off (an Execution asking for one records why it was not sent).
    #[arg(long, env = "RCE_CALLBACK_ALLOW", default_value = "", value_parser = Policy::parse)]
    pub callback_allow: Policy,

    /// Address of the /metrics and /healthz HTTP server.
    #[arg(long, env = "RCE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,

    /// What the sandbox Pods are built with, and the ceilings on every limit.
    #[command(flatten)]
    pub sandbox: SandboxSettings,

    /// Log filter (tracing EnvFilter syntax, e.g. `info,rce_operator=debug`).
    #[arg(long, env = "RCE_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "RCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The operator's ceiling on every limit.
    pub fn cap(&self) -> ResolvedLimits {
        self.sandbox.cap()
    }

    /// Watched namespaces, without empty entries; empty means all.
    pub fn watched_namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()
    }

    pub fn ttl(&self) -> Option<Duration> {
        (self.ttl_seconds > 0).then(|| Duration::from_secs(self.ttl_seconds))
    }

    /// The settings the pure builders need.
    pub fn sandbox(&self) -> SandboxSettings {
        self.sandbox.clone()
    }

    /// The group of replicas that share the work (see `--shard-group`).
    pub fn shard_group(&self) -> String {
        if let Some(g) = self.shard_group.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
            return g.to_string();
        }
        if self.selector.trim() == "!rce.dev/operator" {
            return "rce-operator".into();
        }
        format!(
            "rce-operator-{:012x}",
            crate::names::fnv1a(self.selector.trim().as_bytes()) & 0xffff_ffff_ffff
        )
    }

    /// This replica's identity (see `--identity`).
    pub fn identity(&self) -> String {
        if let Some(i) = self.identity.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
            return i.to_string();
        }
        let host: String = host_name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
            .take(40)
            .collect();
        format!("{}-{:06x}", host.trim_matches('-'), rand::random::<u32>() & 0xff_ffff)
    }

    /// Namespace of the membership Leases (see `--lease-namespace`).
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "default".into())
    }

    /// A configuration with every default, as the tests use it.
    pub fn defaults() -> Self {
        Config::parse_from(["rce-operator"])
    }
}

/// The Pod's name (POD_NAME) or the host name: where an identity of this process starts.
pub fn host_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "operator".into())
}

/// What the pure Pod builder and validation need to know from the configuration: the
/// sandbox flags and the ceilings, flattened into [`Config`].
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// CPU limit of a sandbox container, unless its Runtime sets one.
    #[arg(
        id = "sandbox_cpu_limit",
        long = "sandbox-cpu-limit",
        env = "RCE_SANDBOX_CPU_LIMIT",
        default_value = "1"
    )]
    pub cpu_limit: String,

    /// CPU request of a cold sandbox container: what the scheduler, and the operator's
    /// cluster-wide capacity, count a running sandbox as (a quarter CPU: starting a container
    /// and running a short program takes about that on these nodes; the limit is what a
    /// program may burst to).
    #[arg(
        id = "sandbox_cpu_request",
        long = "sandbox-cpu-request",
        env = "RCE_SANDBOX_CPU_REQUEST",
        default_value = "250m"
    )]
    pub cpu_request: String,

    /// CPU request of a warm Pod: idle nearly all its life (a pool of a dozen must not
    /// hold the nodes' CPU), it runs one program at a time for a fraction of a second.
    #[arg(
        id = "warm_cpu_request",
        long = "warm-cpu-request",
        env = "RCE_WARM_CPU_REQUEST",
        default_value = "50m"
    )]
    pub warm_cpu_request: String,

    /// RuntimeClass of sandbox Pods (e.g. gvisor), unless their Runtime sets one.
    #[arg(long, env = "RCE_RUNTIME_CLASS_NAME")]
    pub runtime_class_name: Option<String>,

    /// Path of the runner binary inside every sandbox image.
    #[arg(long, env = "RCE_RUNNER_PATH", default_value = "/usr/local/bin/rce-runner")]
    pub runner_path: String,

    /// imagePullPolicy of sandbox containers: IfNotPresent, Never (images loaded on the nodes,
    /// nothing is ever pulled: the local cluster) or Always.
    #[arg(long, env = "RCE_IMAGE_PULL_POLICY", value_enum, default_value_t = PullPolicy::IfNotPresent)]
    pub image_pull_policy: PullPolicy,

    /// Size of the memory-backed /tmp of a sandbox, in MiB.
    #[arg(long, env = "RCE_TMP_MIB", default_value_t = 16)]
    pub tmp_mib: u64,

    /// Smallest size of the memory-backed /work of a sandbox, in MiB (it grows with the
    /// file size limit).
    #[arg(long, env = "RCE_WORK_MIB", default_value_t = 16)]
    pub work_mib: u64,

    /// Memory added to a sandbox's limit for the runner itself, in MiB.
    #[arg(long, env = "RCE_RUNNER_OVERHEAD_MIB", default_value_t = 16)]
    pub runner_overhead_mib: u64,

    /// Seconds added to the compile and run wall limits for the Pod's activeDeadlineSeconds.
    #[arg(long, env = "RCE_START_MARGIN_SECONDS", default_value_t = 10)]
    pub start_margin_seconds: u64,

    /// Largest submission (the request annotation: files, stdin, args), in bytes.
    #[arg(long, env = "RCE_MAX_REQUEST_BYTES", default_value_t = 200 * 1024)]
    pub max_request_bytes: usize,

    /// The ceilings on every limit (`--cap-*`; the shim takes the same flags).
    #[command(flatten)]
    pub caps: LimitCaps,

    /// The bounds on test cases (`--max-tests*`; the shim takes the same flags).
    #[command(flatten)]
    pub tests: rce_api::TestCaps,
}

impl SandboxSettings {
    /// The operator's ceiling on every limit.
    pub fn cap(&self) -> ResolvedLimits {
        self.caps.limits()
    }
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Config::defaults().sandbox()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults();
        assert_eq!(c.max_running, 0);
        assert_eq!(c.shard_group(), "rce-operator");
        let other = Config::parse_from(["rce-operator", "--selector", "rce.dev/operator=t1"]);
        assert_ne!(other.shard_group(), c.shard_group());
        assert!(other.shard_group().len() <= 30);
        assert_eq!(c.redis_url, "redis://127.0.0.1:16379");
        assert_eq!(c.ttl(), Some(Duration::from_secs(3600)));
        assert_eq!(c.sandbox.cpu_limit, "1");
        assert_eq!(c.sandbox.cpu_request, "250m");
        assert_eq!(c.sandbox.warm_cpu_request, "50m");
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(c.cap(), ResolvedLimits::CEILING);
        assert!(c.watched_namespaces().is_empty());
        assert!(c.callback_allow.is_off());
        let on = Config::parse_from(["rce-operator", "--callback-allow", "127.0.0.1/32, hooks.example.com"]);
        assert!(on.callback_allow.admits("x", "127.0.0.1".parse().unwrap()));
        assert!(Config::try_parse_from(["rce-operator", "--callback-allow", "10.0.0.0/33"]).is_err());
        assert_eq!(c.selector, "!rce.dev/operator");
        assert_eq!(c.sandbox.image_pull_policy.as_str(), "IfNotPresent");
        let never = Config::parse_from(["rce-operator", "--image-pull-policy", "Never"]);
        assert_eq!(never.sandbox().image_pull_policy.as_str(), "Never");
        assert!(Config::try_parse_from(["rce-operator", "--image-pull-policy", "Sometimes"]).is_err());
    }

    #[test]
    fn namespaces_are_comma_separated() {
        let c = Config::parse_from(["rce-operator", "--namespaces", "a, b,,c", "--ttl-seconds", "0"]);
        assert_eq!(c.watched_namespaces(), ["a", "b", "c"]);
        assert_eq!(c.ttl(), None);
    }
}
