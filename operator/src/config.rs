//! The operator's configuration: one `clap` struct, every flag with an `RCE_...` environment
//! fallback and a default.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use rce_api::ResolvedLimits;

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

    /// Most sandbox Pods running at once across the operator; further Executions wait in
    /// `Pending` and start in submission order.
    #[arg(long, env = "RCE_MAX_RUNNING", default_value_t = 6)]
    pub max_running: usize,

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

    /// Largest sandbox log read back to find the runner's result.
    #[arg(long, env = "RCE_MAX_LOG_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_log_bytes: i64,

    /// Largest submission (the request annotation: files, stdin, args), in bytes.
    #[arg(long, env = "RCE_MAX_REQUEST_BYTES", default_value_t = 200 * 1024)]
    pub max_request_bytes: usize,

    /// CPU limit of a sandbox container, unless its Runtime sets one.
    #[arg(long, env = "RCE_SANDBOX_CPU_LIMIT", default_value = "1")]
    pub sandbox_cpu_limit: String,

    /// CPU request of a sandbox container. Small, so that the scheduler places many
    /// sandboxes on a node; the limit is what a program gets.
    #[arg(long, env = "RCE_SANDBOX_CPU_REQUEST", default_value = "50m")]
    pub sandbox_cpu_request: String,

    /// RuntimeClass of sandbox Pods (e.g. gvisor), unless their Runtime sets one.
    #[arg(long, env = "RCE_RUNTIME_CLASS_NAME")]
    pub runtime_class_name: Option<String>,

    /// imagePullPolicy of sandbox containers: IfNotPresent, Never (images loaded on the nodes,
    /// nothing is ever pulled: the local cluster) or Always.
    #[arg(long, env = "RCE_IMAGE_PULL_POLICY", default_value = "IfNotPresent",
          value_parser = ["IfNotPresent", "Never", "Always"])]
    pub image_pull_policy: String,

    /// Path of the runner binary inside every sandbox image.
    #[arg(long, env = "RCE_RUNNER_PATH", default_value = "/usr/local/bin/rce-runner")]
    pub runner_path: String,

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

    /// Address of the /metrics and /healthz HTTP server.
    #[arg(long, env = "RCE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,

    /// Operator ceiling on wall time, ms (a Runtime's maximum cannot exceed it).
    #[arg(long, env = "RCE_CAP_WALL_TIME_MS", default_value_t = ResolvedLimits::CEILING.wall_time_ms)]
    pub cap_wall_time_ms: u64,
    /// Operator ceiling on CPU time, ms.
    #[arg(long, env = "RCE_CAP_CPU_TIME_MS", default_value_t = ResolvedLimits::CEILING.cpu_time_ms)]
    pub cap_cpu_time_ms: u64,
    /// Operator ceiling on memory, MiB.
    #[arg(long, env = "RCE_CAP_MEMORY_MIB", default_value_t = ResolvedLimits::CEILING.memory_mib)]
    pub cap_memory_mib: u64,
    /// Operator ceiling on processes.
    #[arg(long, env = "RCE_CAP_PROCESSES", default_value_t = ResolvedLimits::CEILING.processes)]
    pub cap_processes: u64,
    /// Operator ceiling on output bytes (each of stdout and stderr).
    #[arg(long, env = "RCE_CAP_OUTPUT_BYTES", default_value_t = ResolvedLimits::CEILING.output_bytes)]
    pub cap_output_bytes: u64,
    /// Operator ceiling on the file size limit, KiB.
    #[arg(long, env = "RCE_CAP_FILE_SIZE_KIB", default_value_t = ResolvedLimits::CEILING.file_size_kib)]
    pub cap_file_size_kib: u64,
}

impl Config {
    /// The operator's ceiling on every limit.
    pub fn cap(&self) -> ResolvedLimits {
        ResolvedLimits {
            wall_time_ms: self.cap_wall_time_ms,
            cpu_time_ms: self.cap_cpu_time_ms,
            memory_mib: self.cap_memory_mib,
            processes: self.cap_processes,
            output_bytes: self.cap_output_bytes,
            file_size_kib: self.cap_file_size_kib,
        }
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
        SandboxSettings {
            cpu_limit: self.sandbox_cpu_limit.clone(),
            cpu_request: self.sandbox_cpu_request.clone(),
            runtime_class_name: self.runtime_class_name.clone(),
            runner_path: self.runner_path.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            tmp_mib: self.tmp_mib,
            work_mib: self.work_mib,
            runner_overhead_mib: self.runner_overhead_mib,
            start_margin_seconds: self.start_margin_seconds,
            max_request_bytes: self.max_request_bytes,
            cap: self.cap(),
        }
    }

    /// A configuration with every default, as the tests use it.
    pub fn defaults() -> Self {
        Config::parse_from(["rce-operator"])
    }
}

/// What the pure Pod builder and validation need to know from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub cpu_limit: String,
    pub cpu_request: String,
    pub runtime_class_name: Option<String>,
    pub runner_path: String,
    pub image_pull_policy: String,
    pub tmp_mib: u64,
    pub work_mib: u64,
    pub runner_overhead_mib: u64,
    pub start_margin_seconds: u64,
    pub max_request_bytes: usize,
    pub cap: ResolvedLimits,
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
        assert_eq!(c.max_running, 6);
        assert_eq!(c.redis_url, "redis://127.0.0.1:16379");
        assert_eq!(c.ttl(), Some(Duration::from_secs(3600)));
        assert_eq!(c.sandbox_cpu_limit, "1");
        assert_eq!(c.sandbox_cpu_request, "50m");
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(c.cap(), ResolvedLimits::CEILING);
        assert!(c.watched_namespaces().is_empty());
        assert_eq!(c.selector, "!rce.dev/operator");
        assert_eq!(c.image_pull_policy, "IfNotPresent");
        let never = Config::parse_from(["rce-operator", "--image-pull-policy", "Never"]);
        assert_eq!(never.sandbox().image_pull_policy, "Never");
        assert!(Config::try_parse_from(["rce-operator", "--image-pull-policy", "Sometimes"]).is_err());
    }

    #[test]
    fn namespaces_are_comma_separated() {
        let c = Config::parse_from(["rce-operator", "--namespaces", "a, b,,c", "--ttl-seconds", "0"]);
        assert_eq!(c.watched_namespaces(), ["a", "b", "c"]);
        assert_eq!(c.ttl(), None);
    }
}
