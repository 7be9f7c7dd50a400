//! The local cluster's nodes (RCE_NODES, hack/cluster.sh): at least two real kubelets on this
//! one machine, each with a containerd of its own. Every node is Ready and schedulable and has
//! every image; their allocatable CPU and memory add up to the machine; a hardened Pod runs on
//! each (runc and gVisor) and its log comes back, also minutes after it ended (each kubelet's
//! container GC deletes the log dirs of Pods it does not know: the nodes must not share them);
//! a Pod on one node reaches neither a Pod on another node nor the host.
//!
//! These tests fail, never skip, on a cluster of fewer than two nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::ResourceExt;
use rce_api::Runtime;
use rce_tests::{client, pod_log, test_image, wait_terminated, TestNamespace};

/// The memory eviction threshold of every kubelet of the local cluster (`evictionHard`
/// memory.available in hack/cluster.sh): allocatable memory is capacity less reservation less
/// this.
const EVICTION_HARD_MEMORY: u64 = 200 << 20;

/// The cluster's nodes, by name; an error when there are fewer than two.
async fn nodes(client: &kube::Client) -> Result<Vec<Node>> {
    let mut nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items;
    nodes.sort_by_key(|n| n.name_any());
    let names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
    ensure!(
        nodes.len() >= 2,
        "the cluster has {} node(s) ({names:?}); these tests need at least 2: `RCE_NODES=2 hack/cluster.sh up`",
        nodes.len()
    );
    Ok(nodes)
}

async fn node_names() -> Result<Vec<String>> {
    Ok(nodes(&client().await?).await?.iter().map(|n| n.name_any()).collect())
}

/// A Pod with every hardening field the sandbox uses, placed by the scheduler on `node`
/// (a nodeSelector, not nodeName: taints and readiness count).
fn hardened_pod_on(name: &str, node: &str, script: &str, runtime_class: Option<&str>) -> Result<Pod> {
    let mut pod = serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "activeDeadlineSeconds": 120,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 123457, "runAsGroup": 123457,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "main",
                "image": test_image()?,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", script],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                },
                "resources": {
                    "requests": {"cpu": "50m", "memory": "32Mi"},
                    "limits": {"cpu": "500m", "memory": "32Mi"}
                }
            }]
        }
    });
    if let Some(rc) = runtime_class {
        pod["spec"]["runtimeClassName"] = rc.into();
    }
    Ok(serde_json::from_value(pod)?)
}

fn pod_node(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default()
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

/// A CPU quantity in millicores ("2", "1500m").
fn cpu_millis(q: &str) -> Result<u64> {
    match q.strip_suffix('m') {
        Some(m) => Ok(m.parse()?),
        None => Ok(q.parse::<u64>()? * 1000),
    }
}

/// A memory quantity in bytes ("12136992Ki", "2Gi", "1048576").
fn bytes(q: &str) -> Result<u64> {
    for (suffix, factor) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return Ok(n.parse::<u64>()? * factor);
        }
    }
    q.parse().with_context(|| format!("memory quantity {q:?}"))
}

fn quantity(n: &Node, field: &str, resource: &str) -> Result<String> {
    let st = n.status.as_ref().context("node status")?;
    let map = if field == "capacity" { st.capacity.as_ref() } else { st.allocatable.as_ref() };
    Ok(map
        .and_then(|m| m.get(resource))
        .with_context(|| format!("{} {field} {resource}", n.name_any()))?
        .0
        .clone())
}

/// This machine's CPUs (as cAdvisor counts them for the kubelet) and memory in bytes.
fn machine() -> Result<(u64, u64)> {
    let cpus =
        std::fs::read_to_string("/proc/cpuinfo")?.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .context("MemTotal in /proc/meminfo")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok((cpus as u64, kib * 1024))
}

#[tokio::test]
async fn at_least_two_nodes_are_ready_and_schedulable_with_every_image() -> Result<()> {
    let client = client().await?;
    let nodes = nodes(&client).await?;
    let runtime_images: BTreeSet<String> = Api::<Runtime>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|r| r.spec.image)
        .collect();
    ensure!(!runtime_images.is_empty(), "no Runtimes on the cluster: the engine is not up (`make up`)");
    // The kubelet reports its runtime's images (up to 50) in the node status.
    let images = |n: &Node| -> BTreeSet<String> {
        let st = n.status.as_ref();
        st.and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| i.names.iter().flatten().cloned())
            .collect()
    };
    // The images of the Runtimes that some node has (other tests make Runtimes whose image
    // exists nowhere, on purpose), and the tests' own: every node must have them all.
    let anywhere: BTreeSet<String> = nodes.iter().flat_map(images).collect();
    let mut wanted: BTreeSet<String> = runtime_images.intersection(&anywhere).cloned().collect();
    ensure!(
        wanted.len() * 2 > runtime_images.len(),
        "most Runtime images are on no node: {runtime_images:?}"
    );
    wanted.insert(test_image()?);
    for n in &nodes {
        let name = n.name_any();
        let st = n.status.as_ref().context("node status")?;
        let ready = st.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(ready, "node {name} is not Ready: {:?}", st.conditions);
        let spec = n.spec.as_ref().context("node spec")?;
        ensure!(!spec.unschedulable.unwrap_or(false), "node {name} is cordoned");
        let blocking: Vec<String> = spec
            .taints
            .iter()
            .flatten()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect();
        ensure!(blocking.is_empty(), "node {name} has taints that keep Pods off: {blocking:?}");
        let have = images(n);
        let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
        ensure!(missing.is_empty(), "node {name} lacks {} images a Pod may need: {missing:?}", missing.len());
    }
    Ok(())
}

#[tokio::test]
async fn allocatable_cpu_and_memory_of_the_nodes_add_up_to_the_machine() -> Result<()> {
    let client = client().await?;
    let nodes = nodes(&client).await?;
    let count = nodes.len() as u64;
    let (cpus, mem) = machine()?;
    let (mut cpu_sum, mut mem_sum) = (0u64, 0u64);
    let mut report = String::new();
    for n in &nodes {
        let (cap_cpu, cap_mem) = (quantity(n, "capacity", "cpu")?, quantity(n, "capacity", "memory")?);
        let (cpu, m) = (quantity(n, "allocatable", "cpu")?, quantity(n, "allocatable", "memory")?);
        report += &format!(
            "{}: capacity cpu {cap_cpu} memory {cap_mem}; allocatable cpu {cpu} memory {m}\n",
            n.name_any()
        );
        // Every kubelet sees the whole of this machine (they are all here)...
        ensure!(
            cpu_millis(&cap_cpu)? == cpus * 1000,
            "capacity cpu of {} is not this machine's {cpus}:\n{report}",
            n.name_any()
        );
        ensure!(
            bytes(&cap_mem)? == mem,
            "capacity memory of {} is not this machine's {mem} bytes:\n{report}",
            n.name_any()
        );
        cpu_sum += cpu_millis(&cpu)?;
        mem_sum += bytes(&m)?;
    }
    eprint!("{report}");
    // ...and keeps 1/N of it: each reserves (N-1)/N (rounded down to a millicore and a KiB), so
    // the sum is the machine, less at most one unit per node (and each node's memory eviction
    // threshold).
    let machine_m = cpus * 1000;
    ensure!(
        cpu_sum <= machine_m && cpu_sum + count >= machine_m,
        "allocatable CPU summed over {count} nodes is {cpu_sum}m, the machine has {machine_m}m:\n{report}"
    );
    let mem_expected = mem - count * EVICTION_HARD_MEMORY;
    ensure!(
        mem_sum <= mem_expected && mem_sum + count * 1024 >= mem_expected,
        "allocatable memory summed over {count} nodes is {mem_sum} bytes; the machine has {mem} \
         ({mem_expected} less {count} eviction thresholds of 200Mi):\n{report}"
    );
    Ok(())
}

/// Run one hardened Pod per node at once; return each node's (Pod name, exit code, log, Pod).
async fn run_on_every_node(
    ns: &TestNamespace,
    prefix: &str,
    script: &str,
    runtime_class: Option<&str>,
) -> Result<BTreeMap<String, (String, i32, String, Pod)>> {
    let pods = ns.api::<Pod>();
    let nodes = node_names().await?;
    for (i, node) in nodes.iter().enumerate() {
        let script = format!("NODE={node}\n{script}");
        pods.create(
            &PostParams::default(),
            &hardened_pod_on(&format!("{prefix}-{i}"), node, &script, runtime_class)?,
        )
        .await?;
    }
    let mut out = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let name = format!("{prefix}-{i}");
        let (code, _) = wait_terminated(&pods, &name, Duration::from_secs(120))
            .await
            .with_context(|| format!("pod {name} on {node}"))?;
        let log = pod_log(&pods, &name).await?;
        out.insert(node.clone(), (name.clone(), code, log, pods.get(&name).await?));
    }
    Ok(out)
}

#[tokio::test]
async fn a_hardened_pod_runs_on_every_node_and_its_log_comes_back() -> Result<()> {
    let ns = TestNamespace::new("rce-nodes-run").await?;
    let script = r#"echo "on=$NODE uid=$(id -u)"
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi
echo "caps=$(grep CapEff /proc/self/status | tr -d '\t')"
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t')"
exit 7"#;
    let result = run_on_every_node(&ns, "hardened", script, None).await;
    ns.cleanup().await?;
    let mut subnets = BTreeSet::new();
    for (node, (name, code, log, pod)) in result? {
        assert_eq!(pod_node(&pod), node, "pod {name} ran elsewhere");
        assert_eq!(code, 7, "exit code of {name} on {node}, log:\n{log}");
        for want in [format!("on={node} uid=123457"), "rootfs=readonly".into(), "seccomp=Seccomp:2".into()] {
            assert!(log.lines().any(|l| l == want), "{name} on {node}: missing {want:?} in log:\n{log}");
        }
        // Each node has a pod CIDR of its own.
        let ip = pod_ip(&pod);
        let subnet = ip.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or_default();
        assert!(
            subnets.insert(subnet.clone()),
            "{name} on {node} has {ip}, in a /24 another node uses ({subnet})"
        );
    }
    Ok(())
}

#[tokio::test]
async fn gvisor_runs_on_every_node() -> Result<()> {
    let ns = TestNamespace::new("rce-nodes-gvisor").await?;
    // gVisor's kernel says it is Linux 4.4.0 (this machine's is not).
    let script = r#"echo "on=$NODE release=$(uname -r)"
exit 0"#;
    let result = run_on_every_node(&ns, "gvisor", script, Some("gvisor")).await;
    ns.cleanup().await?;
    for (node, (name, code, log, pod)) in result? {
        assert_eq!(pod_node(&pod), node);
        assert_eq!(code, 0, "{name} on {node}, log:\n{log}");
        assert!(
            log.lines().any(|l| l == format!("on={node} release=4.4.0")),
            "{name} on {node} is not under gVisor:\n{log}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn logs_of_finished_pods_on_every_node_stay_readable_past_the_kubelets_container_gc() -> Result<()> {
    // Each kubelet's container GC runs every minute and deletes the /var/log/pods dirs of Pods
    // it does not know. Were the nodes to share that dir, each would delete the others' logs
    // (and rce reads results from the log): wait two GC rounds and read them all again.
    let ns = TestNamespace::new("rce-nodes-logs").await?;
    let result: Result<()> = async {
        let script = r#"i=0; while [ $i -lt 50 ]; do echo "line $i of $NODE"; i=$((i+1)); done"#;
        let first = run_on_every_node(&ns, "logs", script, None).await?;
        for (node, (name, code, log, _)) in &first {
            ensure!(*code == 0 && log.lines().count() == 50, "{name} on {node}: exit {code}, log:\n{log}");
        }
        let waited = Instant::now();
        tokio::time::sleep(Duration::from_secs(130)).await;
        let pods = ns.api::<Pod>();
        for (node, (name, _, log, _)) in &first {
            let again = pod_log(&pods, name).await.with_context(|| {
                format!("the log of {name} on {node}, {:?} after it ended", waited.elapsed())
            })?;
            ensure!(
                &again == log,
                "the log of {name} on {node} changed after {:?}:\n{again}",
                waited.elapsed()
            );
        }
        Ok(())
    }
    .await;
    ns.cleanup().await?;
    result
}

/// A listener of the test's own on the host's loopback that counts connections.
struct HostListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostListener {
    fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let (accepted, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (counter, stop2) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((mut s, _)) = listener.accept() {
                    let mut b = [0u8; 16];
                    let _ = s.read(&mut b);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Ok(Self { port, accepted, stop, thread: Some(thread) })
    }

    fn count(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wait until the running Pod's log has a line `want`; return the log.
async fn wait_log_line(pods: &Api<Pod>, name: &str, want: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = pod_log(pods, name).await.unwrap_or_default();
        if log.lines().any(|l| l == want) {
            return Ok(log);
        }
        if Instant::now() > deadline {
            bail!("pod {name} did not log {want:?} within {timeout:?}; log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

const LISTEN_PORT: u16 = 7777;

#[tokio::test]
async fn a_pod_reaches_neither_a_pod_on_another_node_nor_the_host() -> Result<()> {
    let host = HostListener::start()?;
    // Positive control: the host itself reaches its listener.
    drop(std::net::TcpStream::connect(("127.0.0.1", host.port))?);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(host.count(), 1, "the host itself reaches the listener");

    let nodes = node_names().await?;
    let ns = TestNamespace::new("rce-nodes-net").await?;
    let pods = ns.api::<Pod>();
    let result: Result<Vec<(String, String, String, String)>> = async {
        // A listener Pod on each of the first two nodes, which proves it listens by reaching
        // itself on its own address, and logs every line it receives.
        let listener_script = format!(
            r#"set -- $(ip -4 -o addr show dev eth0); addr=${{4%/*}}
(while true; do nc -l -p {LISTEN_PORT} | while read -r l; do echo "got:$l"; done; done) &
sleep 1
echo self | nc -w 2 "$addr" {LISTEN_PORT}
sleep 100"#
        );
        let pair = [nodes[0].clone(), nodes[1].clone()];
        for (i, node) in pair.iter().enumerate() {
            pods.create(&PostParams::default(), &hardened_pod_on(&format!("listener-{i}"), node, &listener_script, None)?)
                .await?;
        }
        let mut listeners = Vec::new();
        for i in 0..2 {
            let name = format!("listener-{i}");
            wait_log_line(&pods, &name, "got:self", Duration::from_secs(90)).await?;
            listeners.push(pods.get(&name).await?);
        }
        // From each node, a prober tries the other node's listener, the host's loopback
        // listener, and looks at its routes and IPv6 addresses.
        let mut out = Vec::new();
        for (i, node) in pair.iter().enumerate() {
            let target = &listeners[1 - i];
            let (target_ip, target_node) = (pod_ip(target), pod_node(target));
            let script = format!(
                r#"echo routes:; cat /proc/net/route
if grep -qE '^[^[:space:]]+[[:space:]]+00000000[[:space:]]' /proc/net/route; then echo default-route=present; else echo default-route=absent; fi
if echo from-{node} | nc -w 2 {target_ip} {LISTEN_PORT}; then echo pod=connected; else echo pod=failed; fi
if echo hi | nc -w 2 127.0.0.1 {port}; then echo loopback=connected; else echo loopback=failed; fi
if grep -v ' lo$' /proc/net/if_inet6 | grep -q .; then echo ipv6=present; grep -v ' lo$' /proc/net/if_inet6; else echo ipv6=none; fi
exit 0"#,
                port = host.port
            );
            let name = format!("prober-{i}");
            pods.create(&PostParams::default(), &hardened_pod_on(&name, node, &script, None)?).await?;
            let (code, _) = wait_terminated(&pods, &name, Duration::from_secs(90)).await?;
            let log = pod_log(&pods, &name).await?;
            ensure!(code == 0, "{name} on {node}: exit {code}, log:\n{log}");
            let prober = pods.get(&name).await?;
            ensure!(pod_node(&prober) == *node && target_node != *node, "{name} and its target share a node");
            out.push((node.clone(), target_node, log, String::new()));
        }
        // What the listeners received (each must have had only its own "self").
        for (i, item) in out.iter_mut().enumerate() {
            item.3 = pod_log(&pods, &format!("listener-{}", 1 - i)).await?;
        }
        Ok(out)
    }
    .await;
    ns.cleanup().await?;
    std::thread::sleep(Duration::from_millis(200));
    for (node, target_node, log, listener_log) in result? {
        assert!(log.contains("default-route=absent"), "a pod on {node} has a default route:\n{log}");
        assert!(
            log.contains("pod=failed"),
            "a pod on {node} reached the listener Pod on {target_node}:\n{log}"
        );
        assert!(log.contains("loopback=failed"), "a pod on {node} reached 127.0.0.1:{}:\n{log}", host.port);
        assert!(log.contains("ipv6=none"), "a pod on {node} has IPv6 beside the loopback:\n{log}");
        assert!(
            !listener_log.contains(&format!("got:from-{node}")),
            "the listener Pod on {target_node} received from {node}:\n{listener_log}"
        );
        // A pod's only route is its own /24.
        let routes: Vec<&str> = log.lines().filter(|l| l.starts_with("eth0")).collect();
        assert_eq!(routes.len(), 1, "a pod on {node} has routes beyond its subnet:\n{log}");
    }
    assert_eq!(host.count(), 1, "a connection from a pod reached the host listener");
    Ok(())
}
