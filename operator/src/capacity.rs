//! Cluster-wide capacity and lost nodes.
//!
//! How many more sandboxes may start is read from the nodes, as the scheduler would: on
//! each schedulable node (not cordoned, Ready, not lost, no NoSchedule/NoExecute taint) the
//! allocatable CPU, memory and Pod count less what the Pods bound there request, divided by
//! a sandbox's requests. Every replica computes it from the same caches (Nodes, their
//! Leases, every non-terminal Pod), so the count is the cluster's, not a process's. An
//! optional global cap (`--max-running`) and per-namespace share (`--namespace-max-running`)
//! apply on top.
//!
//! A node is lost when its kubelet stopped renewing its Lease in `kube-node-lease` for
//! `--node-lost-seconds`, or its Ready condition is `Unknown` (the node controller heard
//! nothing). Its sandbox Pods are then deleted (at once: the kubelet that would confirm a
//! graceful deletion is gone) and their Executions retried on another node; new sandbox
//! Pods are kept off lost nodes by a node affinity until they are back.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Node, Pod},
};
use kube::{runtime::reflector::Store, ResourceExt};

/// A parsed resource quantity: CPU in millicores, anything else in units (bytes, Pods).
pub fn quantity(q: &str, cpu: bool) -> Option<u128> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "n" => 1e-9,
        "u" => 1e-6,
        _ => return None,
    };
    let v = value * mult * if cpu { 1000.0 } else { 1.0 };
    Some(v.ceil().max(0.0) as u128)
}

/// What one sandbox asks of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    pub cpu_milli: u128,
    pub memory: u128,
}

/// One node as capacity sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRoom {
    pub name: String,
    pub schedulable: bool,
    pub lost: bool,
    pub cpu_milli: u128,
    pub memory: u128,
    pub pods: u128,
}

impl NodeRoom {
    /// Sandboxes of `ask` that still fit.
    pub fn fits(&self, ask: &Ask) -> usize {
        if !self.schedulable || self.lost {
            return 0;
        }
        let by_cpu = self.cpu_milli.checked_div(ask.cpu_milli).unwrap_or(u128::MAX);
        let by_mem = self.memory.checked_div(ask.memory).unwrap_or(u128::MAX);
        by_cpu.min(by_mem).min(self.pods).min(usize::MAX as u128) as usize
    }
}

fn requests(pod: &Pod) -> (u128, u128) {
    let Some(spec) = pod.spec.as_ref() else { return (0, 0) };
    let sum = |containers: &[k8s_openapi::api::core::v1::Container]| {
        containers.iter().fold((0u128, 0u128), |(c, m), ct| {
            let r = ct.resources.as_ref().and_then(|r| r.requests.as_ref());
            let cpu = r.and_then(|r| r.get("cpu")).and_then(|q| quantity(&q.0, true)).unwrap_or(0);
            let mem = r.and_then(|r| r.get("memory")).and_then(|q| quantity(&q.0, false)).unwrap_or(0);
            (c + cpu, m + mem)
        })
    };
    let (c, m) = sum(&spec.containers);
    // Init containers run before the others: the larger of the two counts.
    let (ic, im) = sum(spec.init_containers.as_deref().unwrap_or_default());
    (c.max(ic), m.max(im))
}

fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Why a node is lost, if it is.
pub fn lost_because(
    node: &Node,
    lease: Option<&Lease>,
    lost_after: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    if ready.is_some_and(|r| r.status == "Unknown") {
        return Some(format!(
            "its Ready condition is Unknown ({})",
            ready
                .and_then(|r| r.message.clone())
                .unwrap_or_else(|| "the node controller heard nothing".into())
        ));
    }
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.0.to_string()).ok())
        .map(|t| t.with_timezone(&chrono::Utc))?;
    let age = now.signed_duration_since(renewed);
    (age.to_std().unwrap_or_default() > lost_after)
        .then(|| format!("its kubelet has not renewed its Lease for {} s", age.num_seconds()))
}

/// The nodes, their Leases and the Pods bound to them.
#[derive(Clone)]
pub struct Capacity {
    pub nodes: Store<Node>,
    pub node_leases: Store<Lease>,
    pub pods: Store<Pod>,
    pub lost_after: Duration,
}

impl Capacity {
    /// Every node with what is left on it.
    pub fn rooms(&self) -> Vec<NodeRoom> {
        let now = chrono::Utc::now();
        let leases: HashMap<String, std::sync::Arc<Lease>> =
            self.node_leases.state().into_iter().map(|l| (l.name_any(), l)).collect();
        let mut used: HashMap<String, (u128, u128, u128)> = HashMap::new();
        for p in self.pods.state() {
            if terminal(&p) {
                continue;
            }
            let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
            let (c, m) = requests(&p);
            let e = used.entry(node).or_default();
            e.0 += c;
            e.1 += m;
            e.2 += 1;
        }
        self.nodes
            .state()
            .iter()
            .map(|n| {
                let name = n.name_any();
                let status = n.status.as_ref();
                let alloc = status.and_then(|s| s.allocatable.as_ref());
                let get = |k: &str, cpu: bool| {
                    alloc.and_then(|a| a.get(k)).and_then(|q| quantity(&q.0, cpu)).unwrap_or(0)
                };
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| c.status == "True");
                let tainted =
                    n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|t| {
                        t.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                    });
                let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
                let (uc, um, up) = used.get(&name).copied().unwrap_or_default();
                NodeRoom {
                    lost: lost_because(n, leases.get(&name).map(|l| l.as_ref()), self.lost_after, now)
                        .is_some(),
                    schedulable: ready && !tainted && !cordoned,
                    cpu_milli: get("cpu", true).saturating_sub(uc),
                    memory: get("memory", false).saturating_sub(um),
                    pods: get("pods", false).saturating_sub(up),
                    name,
                }
            })
            .collect()
    }

    /// Sandboxes of `ask` that may still start, cluster-wide.
    pub fn free(&self, ask: &Ask) -> usize {
        self.rooms().iter().map(|r| r.fits(ask)).sum()
    }

    /// The lost nodes, with why.
    pub fn lost(&self) -> Vec<(String, String)> {
        let now = chrono::Utc::now();
        let leases: HashMap<String, std::sync::Arc<Lease>> =
            self.node_leases.state().into_iter().map(|l| (l.name_any(), l)).collect();
        self.nodes
            .state()
            .iter()
            .filter_map(|n| {
                let name = n.name_any();
                lost_because(n, leases.get(&name).map(|l| l.as_ref()), self.lost_after, now)
                    .map(|why| (name, why))
            })
            .collect()
    }
}

/// Keep a sandbox Pod off `lost` nodes.
pub fn avoid(pod: &mut Pod, lost: &[String]) {
    if lost.is_empty() {
        return;
    }
    let term: k8s_openapi::api::core::v1::NodeSelectorTerm = serde_json::from_value(serde_json::json!({
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": lost}]
    }))
    .unwrap_or_default();
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Default::default);
    let na = affinity.node_affinity.get_or_insert_with(Default::default);
    let req = na.required_during_scheduling_ignored_during_execution.get_or_insert_with(Default::default);
    if req.node_selector_terms.is_empty() {
        req.node_selector_terms.push(term);
    } else {
        // Terms are ORed: the exclusion goes into each of them.
        for t in &mut req.node_selector_terms {
            t.match_expressions
                .get_or_insert_with(Vec::new)
                .extend(term.match_expressions.clone().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_the_api_writes_them() {
        assert_eq!(quantity("2", true), Some(2000));
        assert_eq!(quantity("1500m", true), Some(1500));
        assert_eq!(quantity("50m", true), Some(50));
        assert_eq!(quantity("0.5", true), Some(500));
        assert_eq!(quantity("112Mi", false), Some(112 * 1024 * 1024));
        assert_eq!(quantity("12270344Ki", false), Some(12_270_344 * 1024));
        assert_eq!(quantity("1G", false), Some(1_000_000_000));
        assert_eq!(quantity("110", false), Some(110));
        assert_eq!(quantity("3x", false), None);
    }

    #[test]
    fn a_node_fits_what_its_scarcest_resource_allows() {
        let room = NodeRoom {
            name: "n".into(),
            schedulable: true,
            lost: false,
            cpu_milli: 1000,
            memory: 1024 * 1024 * 1024,
            pods: 100,
        };
        let ask = Ask { cpu_milli: 50, memory: 112 * 1024 * 1024 };
        assert_eq!(room.fits(&ask), 9, "memory: 1 GiB / 112 MiB");
        assert_eq!(room.fits(&Ask { cpu_milli: 50, memory: 1 }), 20, "cpu: 1000m / 50m");
        assert_eq!(NodeRoom { pods: 3, ..room.clone() }.fits(&ask), 3);
        assert_eq!(NodeRoom { lost: true, ..room.clone() }.fits(&ask), 0);
        assert_eq!(NodeRoom { schedulable: false, ..room }.fits(&ask), 0);
    }

    #[test]
    fn a_node_is_lost_when_its_lease_is_old_or_ready_unknown() {
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z").unwrap().with_timezone(&chrono::Utc);
        let node = |ready: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n2"},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}
            }))
            .unwrap()
        };
        let lease = |renew: &str| -> Lease {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "n2"}, "spec": {"renewTime": renew}}),
            )
            .unwrap()
        };
        let after = Duration::from_secs(40);
        assert!(
            lost_because(&node("True"), Some(&lease("2026-01-01T00:00:30.000000Z")), after, now).is_none()
        );
        let why =
            lost_because(&node("True"), Some(&lease("2026-01-01T00:00:10.000000Z")), after, now).unwrap();
        assert!(why.contains("50 s"), "{why}");
        assert!(lost_because(&node("Unknown"), None, after, now).is_some());
        assert!(
            lost_because(&node("False"), None, after, now).is_none(),
            "a live kubelet's NotReady is not a loss"
        );
    }

    #[test]
    fn lost_nodes_are_excluded_by_affinity() {
        let mut pod = Pod::default();
        avoid(&mut pod, &["rce-node-2".to_string()]);
        let v = serde_json::to_value(&pod).unwrap();
        let e = &v["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(e["operator"], "NotIn");
        assert_eq!(e["values"][0], "rce-node-2");
    }
}
