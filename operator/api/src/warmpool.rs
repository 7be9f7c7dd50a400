//! `WarmPool`: sandbox Pods of one Runtime started ahead of time, their runner idle and
//! holding no submission, so that an Execution runs without waiting for a new Pod.
//!
//! A warm Pod is the same hardened sandbox as a cold one (PSS restricted, no token, no
//! network, the deny-all policy, limits); its runner serves requests over the Kubernetes
//! attach stream (see [`crate::serve`]). The pool's `limits` are the Pod's shape: an
//! Execution of the pool's namespace and Runtime whose resolved limits all fit under them
//! runs in a warm Pod, any other runs cold. `replicas` counts every Pod of the pool, idle
//! or busy, as a Deployment counts its Pods.

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Condition, Limits};

/// Label on every Pod of a pool: the pool's name.
pub const POOL_LABEL: &str = "rce.dev/pool";
/// Label on a warm Pod: [`STATE_STARTING`], [`STATE_IDLE`] or [`STATE_CLAIMED`]. A claim changes it with the
/// Pod's resourceVersion as a precondition, so one Pod is never claimed twice.
pub const STATE_LABEL: &str = "rce.dev/warm";
/// A warm Pod whose runner has not yet answered (not claimable).
pub const STATE_STARTING: &str = "starting";
/// A warm Pod whose runner answered a ping with a sealed `ready`: claimable.
pub const STATE_IDLE: &str = "idle";
pub const STATE_CLAIMED: &str = "claimed";
/// Label on a claimed warm Pod: the uid of the Execution it runs.
pub const CLAIMED_BY_LABEL: &str = "rce.dev/claimed-by";
/// Annotation on a claimed warm Pod: the run id (`<uid>/<attempt>`) it was claimed for.
pub const CLAIMED_RUN_ANNOTATION: &str = "rce.dev/claimed-run";
/// Annotation on a warm Pod: how many Executions it has served.
pub const SERVED_ANNOTATION: &str = "rce.dev/served";
/// Annotation on a warm Pod: the Runtime image it was built from (an image change replaces
/// the pool's Pods, one at a time).
pub const IMAGE_ANNOTATION: &str = "rce.dev/image";
/// Default `maxAge`.
pub const DEFAULT_MAX_AGE: &str = "30m";
/// Most `reuse.maxRuns`.
pub const MAX_REUSE_RUNS: u32 = 1000;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "rce.dev",
    version = "v1alpha1",
    kind = "WarmPool",
    plural = "warmpools",
    shortname = "wp",
    namespaced,
    status = "WarmPoolStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Runtime","type":"string","jsonPath":".spec.runtime"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Busy","type":"integer","jsonPath":".status.busy"}"#,
    printcolumn = r#"{"name":"Hits","type":"integer","jsonPath":".status.hits"}"#,
    printcolumn = r#"{"name":"Misses","type":"integer","jsonPath":".status.misses"}"#,
    printcolumn = r#"{"name":"Reuse","type":"integer","jsonPath":".spec.reuse.maxRuns","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolSpec {
    /// The Runtime (its object name) whose sandboxes the pool keeps warm.
    pub runtime: String,
    /// How many Pods the pool keeps, idle or busy.
    #[serde(default)]
    pub replicas: i32,
    /// The Pod's shape: the most an Execution served by the pool may ask for. Unset fields
    /// take the Runtime's defaults. An Execution whose limits exceed any of these runs cold.
    #[serde(default)]
    pub limits: Limits,
    /// How long an idle Pod is kept before it is replaced (a Go-style duration: "30m",
    /// "1h30m", "90s"); default [`DEFAULT_MAX_AGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Serve several Executions (of this namespace) per Pod, one after another, each after
    /// the runner proved a clean slate. Without it a Pod serves one Execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Reuse>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Reuse {
    /// Most Executions one Pod serves (1 to [`MAX_REUSE_RUNS`]).
    pub max_runs: u32,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolStatus {
    /// Pods of the pool (not being deleted).
    #[serde(default)]
    pub replicas: i32,
    /// Idle Pods whose runner is attached to and ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods running an Execution.
    #[serde(default)]
    pub busy: i32,
    /// Executions that ran in a warm Pod of the pool.
    #[serde(default)]
    pub hits: i64,
    /// Executions that fitted the pool but found no ready Pod and ran cold.
    #[serde(default)]
    pub misses: i64,
    /// The label selector of the pool's Pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl WarmPoolSpec {
    /// Most runs per Pod: 1 without `reuse`.
    pub fn max_runs(&self) -> u32 {
        self.reuse.map_or(1, |r| r.max_runs.clamp(1, MAX_REUSE_RUNS))
    }

    /// `maxAge`, parsed; the default when unset.
    pub fn max_age(&self) -> Result<std::time::Duration, String> {
        parse_duration(self.max_age.as_deref().unwrap_or(DEFAULT_MAX_AGE))
    }
}

/// A Go-style duration: one or more `<integer><unit>` with units `h`, `m`, `s`, `ms`
/// ("1h30m", "90s"). At least one second.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. \"30m\", \"1h30m\", \"90s\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1000, 1)
        } else {
            return Err(bad());
        };
        total_ms = n.checked_mul(unit_ms).and_then(|v| v.checked_add(total_ms)).ok_or_else(bad)?;
        rest = &rest[len..];
    }
    if total_ms < 1000 {
        return Err(format!("invalid duration {text:?}: at least 1s"));
    }
    Ok(std::time::Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        for bad in ["", "m", "10", "10x", "-5m", "500ms", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crd_has_the_scale_subresource() {
        use kube_core::CustomResourceExt;
        let crd = serde_json::to_value(WarmPool::crd()).unwrap();
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert_eq!(v["subresources"]["scale"]["statusReplicasPath"], ".status.replicas");
        assert_eq!(v["subresources"]["scale"]["labelSelectorPath"], ".status.selector");
        assert!(v["subresources"]["status"].is_object());
        assert_eq!(crd["spec"]["scope"], "Namespaced");
    }

    #[test]
    fn max_runs() {
        let mut s = WarmPoolSpec { runtime: "python".into(), replicas: 2, ..Default::default() };
        assert_eq!(s.max_runs(), 1);
        s.reuse = Some(Reuse { max_runs: 50 });
        assert_eq!(s.max_runs(), 50);
        assert_eq!(s.max_age(), Ok(Duration::from_secs(1800)));
    }
}
