//! WarmPools against the real cluster: each test runs its own operator in-process, serving
//! only its own namespace (and only WarmPools labelled `rce.dev/operator=<namespace>`, as its
//! Executions). The Runtime `python` must be installed (`make up`), its image built with the
//! serving runner (`rce-runner --serve`); `RCE_TEST_WARM_RUNTIME` names another Runtime to
//! use instead (one of Python's images, e.g. a newer build not yet installed as `python`).
//!
//! - a pool fills to `replicas` with Pods proven ready, `kubectl scale` grows and shrinks
//!   it, a deleted idle Pod is replaced, every warm Pod passes the restricted Pod Security
//!   profile's checks, and `kubectl get warmpools` prints the columns;
//! - concurrent claims (two claimers with caches of their own, as two operator replicas,
//!   several claims each) against a pool of two Pods: at most two succeed, never one Pod
//!   twice.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use kube::{
    api::{Api, DeleteParams, ListParams, PostParams},
    runtime::{reflector, watcher, WatchStreamExt},
    Client, ResourceExt,
};
use rce_api::{
    warmpool::{CLAIMED_BY_LABEL, CLAIMED_RUN_ANNOTATION, POOL_LABEL, STATE_CLAIMED, STATE_IDLE},
    Execution, Runtime, WarmPool,
};
use rce_operator::{claim, validate};
use rce_tests::{
    exec::Engine,
    operator::LABEL,
    warm::{live_pods, pools, warm_state as state},
    with_engine,
};

/// How long a pool may take to reach a size (Pods start in about a second each on the
/// local cluster; two cores).
const FILL: Duration = Duration::from_secs(90);

/// The Runtime the pools keep warm.
fn runtime_name() -> String {
    std::env::var("RCE_TEST_WARM_RUNTIME").unwrap_or_else(|_| "python".into())
}

fn pool_object(name: &str, ns: &str, replicas: i32) -> Result<WarmPool> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "WarmPool",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL: ns}},
        "spec": {"runtime": runtime_name(), "replicas": replicas, "limits": {"memoryMiB": 128, "wallTimeMs": 5000}},
    }))?)
}

/// Wait until the pool's status and its Pods both show `n` Pods, all idle and ready.
async fn wait_ready(eng: &Engine, pool: &str, n: i32) -> Result<WarmPool> {
    let t0 = Instant::now();
    loop {
        let wp = pools(eng).get(pool).await?;
        let st = wp.status.clone().unwrap_or_default();
        let pods = live_pods(eng, pool).await?;
        let idle = pods.iter().filter(|p| state(p) == STATE_IDLE).count();
        if st.ready_replicas == n && st.replicas == n && pods.len() == n as usize && idle == n as usize {
            eprintln!("pool {pool}: {n} ready after {:?}", t0.elapsed());
            return Ok(wp);
        }
        if t0.elapsed() > FILL {
            let states: Vec<(String, String)> = pods.iter().map(|p| (p.name_any(), state(p))).collect();
            bail!("pool {pool} never reached {n} ready Pods: status {st:?}, Pods {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The restricted Pod Security Standard's checks (the ones a Pod spec can fail), on a Pod
/// as the API server stored it. (Kubernetes 1.20 has no PodSecurity admission to do it.)
fn restricted_violations(pod: &Pod) -> Vec<String> {
    let mut v = Vec::new();
    let Some(spec) = pod.spec.as_ref() else { return vec!["no spec".into()] };
    for (what, set) in
        [("hostNetwork", spec.host_network), ("hostPID", spec.host_pid), ("hostIPC", spec.host_ipc)]
    {
        if set == Some(true) {
            v.push(what.into());
        }
    }
    let psc = spec.security_context.clone().unwrap_or_default();
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|s| s.type_.clone());
    for vol in spec.volumes.iter().flatten() {
        let allowed = vol.empty_dir.is_some()
            || vol.downward_api.is_some()
            || vol.config_map.is_some()
            || vol.secret.is_some()
            || vol.projected.is_some()
            || vol.csi.is_some()
            || vol.ephemeral.is_some()
            || vol.persistent_volume_claim.is_some();
        if !allowed {
            v.push(format!("volume {} of a restricted type", vol.name));
        }
    }
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let sc = c.security_context.clone().unwrap_or_default();
        if sc.privileged == Some(true) {
            v.push(format!("{}: privileged", c.name));
        }
        if sc.allow_privilege_escalation != Some(false) {
            v.push(format!("{}: allowPrivilegeEscalation not false", c.name));
        }
        if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
            v.push(format!("{}: runAsNonRoot not true", c.name));
        }
        if sc.run_as_user.or(psc.run_as_user) == Some(0) {
            v.push(format!("{}: runAsUser 0", c.name));
        }
        let seccomp = sc.seccomp_profile.as_ref().map(|s| s.type_.clone()).or(pod_seccomp.clone());
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!("{}: seccomp {seccomp:?}", c.name));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
            v.push(format!("{}: capabilities not dropping ALL", c.name));
        }
        if caps.add.unwrap_or_default().iter().any(|a| a != "NET_BIND_SERVICE") {
            v.push(format!("{}: capabilities added", c.name));
        }
        if c.ports.iter().flatten().any(|p| p.host_port.is_some_and(|h| h != 0)) {
            v.push(format!("{}: hostPort", c.name));
        }
    }
    v
}

/// The same hardening as a cold sandbox, beyond the profile: no token, no network, the
/// serving runner with an attachable stdin, no submission in the spec.
fn sandbox_violations(pod: &Pod) -> Vec<String> {
    let mut v = Vec::new();
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.automount_service_account_token != Some(false) {
        v.push("a service account token".into());
    }
    if spec.enable_service_links != Some(false) {
        v.push("service links".into());
    }
    if spec.dns_policy.as_deref() != Some("None") {
        v.push(format!("dnsPolicy {:?}", spec.dns_policy));
    }
    let c = &spec.containers[0];
    if c.security_context.as_ref().and_then(|s| s.read_only_root_filesystem) != Some(true) {
        v.push("a writable root filesystem".into());
    }
    if !c.command.iter().flatten().any(|a| a == rce_api::serve::SERVE_ARG) || c.stdin != Some(true) {
        v.push("not a serving runner".into());
    }
    if c.stdin_once == Some(true) || c.tty == Some(true) {
        v.push("stdinOnce or tty".into());
    }
    if pod.annotations().contains_key(rce_api::protocol::REQUEST_ANNOTATION) {
        v.push("a submission in the Pod".into());
    }
    if pod.labels().get(rce_api::SANDBOX_LABEL).map(String::as_str) != Some("true") {
        v.push("not selected by the deny-all policy".into());
    }
    v
}

fn kubectl(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("kubectl").args(args).output().context("running kubectl")?;
    ensure!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn a_pool_fills_scales_with_kubectl_replaces_a_deleted_pod_and_prints_its_columns() -> Result<()> {
    with_engine!(operator "warmpool-fill", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        pools(&eng).create(&PostParams::default(), &pool_object("py", &ns, 3)?).await?;
        let wp = wait_ready(&eng, "py", 3).await?;
        let st = wp.status.clone().unwrap_or_default();
        ensure!(st.selector == "rce.dev/pool=py", "selector {:?}", st.selector);
        ensure!(st.busy == 0 && st.observed_generation == wp.metadata.generation, "{st:?}");
        ensure!(
            st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == rce_api::ConditionStatus::True),
            "{st:?}"
        );
        ensure!(
            eng.ns.api::<NetworkPolicy>().get_opt(rce_operator::sandbox::NETWORK_POLICY).await?.is_some(),
            "no deny-all NetworkPolicy in the pool's namespace"
        );
        let mut uids = HashSet::new();
        for p in live_pods(&eng, "py").await? {
            let bad: Vec<String> = restricted_violations(&p).into_iter().chain(sandbox_violations(&p)).collect();
            ensure!(bad.is_empty(), "warm Pod {}: {bad:?}", p.name_any());
            ensure!(p.name_any().starts_with("py-"), "{}", p.name_any());
            ensure!(
                p.owner_references().iter().any(|o| o.kind == "WarmPool" && o.controller == Some(true)),
                "{} not owned by its pool",
                p.name_any()
            );
            let id = p.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.run_as_user);
            ensure!(id.is_some_and(|id| id >= 100_000) && uids.insert(id), "{}: sandbox uid {id:?}", p.name_any());
        }

        // The scale subresource, through the real kubectl.
        kubectl(&["scale", "warmpool", "py", "-n", &ns, "--replicas=5"])?;
        wait_ready(&eng, "py", 5).await?;
        kubectl(&["scale", "warmpool", "py", "-n", &ns, "--replicas=1"])?;
        wait_ready(&eng, "py", 1).await?;
        let scale = kubectl(&["get", "--raw", &format!("/apis/rce.dev/v1alpha1/namespaces/{ns}/warmpools/py/scale")])?;
        let scale: serde_json::Value = serde_json::from_str(&scale)?;
        ensure!(scale["spec"]["replicas"] == 1 && scale["status"]["replicas"] == 1, "{scale}");
        ensure!(scale["status"]["selector"] == "rce.dev/pool=py", "{scale}");

        // A deleted idle Pod is replaced by a new one, proven ready.
        let old = live_pods(&eng, "py").await?.remove(0);
        eng.pods().delete(&old.name_any(), &DeleteParams::default()).await?;
        let t0 = Instant::now();
        let new = loop {
            let pods = live_pods(&eng, "py").await?;
            if let Some(p) = pods.iter().find(|p| p.uid() != old.uid() && state(p) == STATE_IDLE) {
                break p.clone();
            }
            ensure!(t0.elapsed() < FILL, "the deleted Pod was not replaced: {pods:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!("deleted idle Pod replaced by a ready one in {:?}", t0.elapsed());
        ensure!(restricted_violations(&new).is_empty() && sandbox_violations(&new).is_empty());
        wait_ready(&eng, "py", 1).await?;

        // kubectl get warmpools: the columns read well.
        let table = kubectl(&["get", "warmpools", "-n", &ns])?;
        eprintln!("{table}");
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        ensure!(header == ["NAME", "RUNTIME", "DESIRED", "READY", "BUSY", "HITS", "MISSES", "AGE"], "{table}");
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let rt = runtime_name();
        ensure!(row.get(..7) == Some(&["py", rt.as_str(), "1", "1", "0", "0", "0"][..]), "{table}");
        Ok(())
    })
}

/// A Store of `K` in `ns`, filled (a reflector of the test's own).
async fn store<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> Result<(reflector::Store<K>, tokio::task::JoinHandle<()>)>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let task = tokio::spawn(
        reflector::reflector(writer, watcher(api, wc))
            .default_backoff()
            .touched_objects()
            .for_each(|_| async {}),
    );
    reader.wait_until_ready().await?;
    Ok((reader, task))
}

/// A claimer as one operator replica has it: caches of its own.
async fn claimer(client: &Client, ns: &str) -> Result<(Arc<claim::Warm>, Vec<tokio::task::JoinHandle<()>>)> {
    let (pools, t1) = store(Api::<WarmPool>::namespaced(client.clone(), ns), Default::default()).await?;
    let (pods, t2) =
        store(Api::<Pod>::namespaced(client.clone(), ns), watcher::Config::default().labels(POOL_LABEL))
            .await?;
    let (runtimes, t3) = store(Api::<Runtime>::all(client.clone()), Default::default()).await?;
    let warm = claim::Warm::new(
        client.clone(),
        pools,
        pods,
        runtimes,
        rce_operator::config::SandboxSettings::default(),
        Arc::new(rce_operator::metrics::Metrics::default()),
    );
    Ok((Arc::new(warm), vec![t1, t2, t3]))
}

#[tokio::test]
async fn concurrent_claims_never_hand_one_pod_out_twice() -> Result<()> {
    with_engine!(operator "warmpool-race", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        pools(&eng).create(&PostParams::default(), &pool_object("py", &ns, 2)?).await?;
        wait_ready(&eng, "py", 2).await?;
        let client = eng.ns.client.clone();
        let runtime = Api::<Runtime>::all(client.clone()).get(&runtime_name()).await?;
        let settings = rce_operator::config::SandboxSettings::default();
        let spec: rce_api::ExecutionSpec =
            serde_json::from_value(serde_json::json!({"language": runtime_name(), "source": "print(1)",
                                                     "limits": {"memoryMiB": 64, "wallTimeMs": 2000}}))?;
        let plan = validate::plan(&spec, &runtime, &settings).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Two replicas, each with caches of its own, four claims each, all at once.
        let (a, ta) = claimer(&client, &ns).await?;
        let (b, tb) = claimer(&client, &ns).await?;
        // Both caches see both Pods idle before anyone claims.
        for w in [&a, &b] {
            let t0 = Instant::now();
            while w.pods.state().iter().filter(|p| state(p) == STATE_IDLE).count() < 2 {
                ensure!(t0.elapsed() < Duration::from_secs(10), "a claimer's cache never saw 2 idle Pods");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut claims = Vec::new();
        for i in 0..8 {
            let warm = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (pool, shape) = claim::fitting_pool(&warm.pools, &ns, &runtime, &plan, &settings)
                .context("the python Execution does not fit the pool")?;
            let exec: Execution = serde_json::from_value(serde_json::json!({
                "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
                "metadata": {"name": format!("e{i}"), "namespace": ns, "uid": format!("uid-{i}")},
                "spec": {"language": runtime_name(), "source": "print(1)"},
            }))?;
            claims.push(tokio::spawn(async move {
                let t = Instant::now();
                let c = claim::claim(&warm, pool, &shape, &exec, &format!("uid-{i}/1")).await;
                eprintln!("claim {i}: {} in {:?}", if matches!(c, Ok(Some(_))) { "won" } else { "lost" }, t.elapsed());
                c.map(|c| (i, c))
            }));
        }
        let mut won: BTreeMap<String, String> = BTreeMap::new();
        let mut held = Vec::new();
        let mut misses = 0;
        for c in claims {
            match c.await?? {
                (i, Some(claimed)) => {
                    held.push(claimed.clone());
                    let pod = claimed.pod.name_any();
                    ensure!(claimed.key.len() == 32, "the claimed Pod's key");
                    if let Some(other) = won.insert(pod.clone(), format!("uid-{i}")) {
                        bail!("Pod {pod} claimed twice: by {other} and by uid-{i}");
                    }
                }
                (_, None) => misses += 1,
            }
        }
        eprintln!("claims: {} won ({won:?}), {misses} ran cold", won.len());
        ensure!(won.len() <= 2 && won.len() + misses == 8, "{won:?}, {misses} misses");
        ensure!(!won.is_empty(), "no claim succeeded against 2 idle Pods");
        // The API server's copy agrees: each claimed Pod names exactly its one winner.
        for (pod, uid) in &won {
            let p = eng.pods().get(pod).await?;
            ensure!(state(&p) == STATE_CLAIMED, "{pod}: {:?}", p.labels());
            ensure!(p.labels().get(CLAIMED_BY_LABEL) == Some(uid), "{pod}: {:?}", p.labels());
            ensure!(p.annotations().get(CLAIMED_RUN_ANNOTATION) == Some(&format!("{uid}/1")));
        }
        // The pool counts them busy, and the hits and misses reach its status.
        let t0 = Instant::now();
        loop {
            let st = pools(&eng).get("py").await?.status.unwrap_or_default();
            let (hits, miss) = (st.hits, st.misses);
            // The claimers' tallies are their own (a test process is not the operator), so
            // only the busy count is the operator's to report.
            if st.busy == won.len() as i32 {
                eprintln!("pool status: busy {}, hits {hits}, misses {miss}", st.busy);
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(10), "busy never reached {}: {st:?}", won.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Released after one run (no reuse): deleted, and the pool refills; a claim on a
        // warm connection, uncontended, then takes one of the new Pods.
        for c in &held {
            claim::release(&a, c, 1).await?;
        }
        wait_ready(&eng, "py", 2).await?;
        let t0 = Instant::now();
        while a.pods.state().iter().filter(|p| state(p) == STATE_IDLE).count() < 2 {
            ensure!(t0.elapsed() < Duration::from_secs(10), "the claimer's cache never saw the new Pods");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (pool, shape) = claim::fitting_pool(&a.pools, &ns, &runtime, &plan, &settings).context("no fit")?;
        let exec: Execution = serde_json::from_value(serde_json::json!({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "solo", "namespace": ns, "uid": "uid-solo"},
            "spec": {"language": runtime_name(), "source": "print(1)"},
        }))?;
        let t = Instant::now();
        let solo = claim::claim(&a, pool, &shape, &exec, "uid-solo/1").await?.context("an uncontended claim failed")?;
        eprintln!("an uncontended claim: {:?}", t.elapsed());
        ensure!(!held.iter().any(|c| c.pod.uid() == solo.pod.uid()), "a released (deleted) Pod was claimed again");
        for t in ta.into_iter().chain(tb) {
            t.abort();
        }
        Ok(())
    })
}

#[tokio::test]
async fn executions_that_fit_run_warm_and_the_hits_and_misses_reach_the_status() -> Result<()> {
    with_engine!(operator "warmpool-hits", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        pools(&eng).create(&PostParams::default(), &pool_object("py", &ns, 1)?).await?;
        wait_ready(&eng, "py", 1).await?;
        let fits = serde_json::json!({"language": runtime_name(), "source": "print('warm')",
                                      "limits": {"memoryMiB": 64, "wallTimeMs": 2000}});
        // Two at once against one Pod: one runs warm; the other warm too if the refill was
        // quick enough, else cold (a miss).
        eng.submit_all(&[("a".to_string(), fits.clone()), ("b".to_string(), fits.clone())]).await?;
        // Above the shape (128 MiB): cold, and no miss (it does not fit).
        let big = serde_json::json!({"language": runtime_name(), "source": "print('cold')",
                                     "limits": {"memoryMiB": 200}});
        eng.submit("big", big).await?;
        let mut warm = 0;
        for name in ["a", "b", "big"] {
            let e = eng.wait_done(name).await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(rce_tests::exec::verdict(&e) == Some(rce_api::Verdict::Accepted), "{name}: {st:?}");
            eprintln!("{name}: warmPool {:?}", st.warm_pool);
            if name == "big" {
                ensure!(st.warm_pool.is_none(), "an Execution above the shape ran warm: {st:?}");
            } else if st.warm_pool.as_deref() == Some("py") {
                warm += 1;
            }
        }
        ensure!(warm >= 1, "no fitting Execution ran warm");
        let t0 = Instant::now();
        loop {
            let st = pools(&eng).get("py").await?.status.unwrap_or_default();
            if st.hits == warm && st.hits + st.misses == 2 {
                eprintln!("pool status: hits {}, misses {}", st.hits, st.misses);
                break;
            }
            ensure!(t0.elapsed() < Duration::from_secs(10), "hits {warm} and 2 in all expected: {st:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The pool refills.
        wait_ready(&eng, "py", 1).await?;
        Ok(())
    })
}

#[tokio::test]
async fn pods_past_max_age_are_replaced_one_at_a_time_after_a_ready_replacement() -> Result<()> {
    with_engine!(operator "warmpool-roll", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        let mut wp = pool_object("py", &ns, 2)?;
        wp.spec.max_age = Some("6s".into());
        pools(&eng).create(&PostParams::default(), &wp).await?;
        wait_ready(&eng, "py", 2).await?;
        let first: HashSet<String> = live_pods(&eng, "py").await?.iter().filter_map(|p| p.uid()).collect();
        ensure!(first.len() == 2);
        // Watch for 20 s: never more than one surplus Pod, and never fewer than 2 idle Pods
        // once the first were ready (an old one goes only when its replacement is ready).
        let t0 = Instant::now();
        let (mut most, mut fewest_idle, mut seen) = (0, usize::MAX, HashSet::new());
        while t0.elapsed() < Duration::from_secs(20) {
            let pods = live_pods(&eng, "py").await?;
            most = most.max(pods.len());
            fewest_idle = fewest_idle.min(pods.iter().filter(|p| state(p) == STATE_IDLE).count());
            seen.extend(pods.iter().filter_map(|p| p.uid()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("roll: {} Pods seen, at most {most} at once, at least {fewest_idle} idle", seen.len());
        ensure!(most <= 3, "more than one surplus Pod at once: {most}");
        ensure!(fewest_idle >= 2, "an old Pod went before its replacement was ready: {fewest_idle} idle");
        ensure!(seen.len() >= 4, "aged Pods were not replaced: {} Pods seen", seen.len());
        let now: HashSet<String> = live_pods(&eng, "py").await?.iter().filter_map(|p| p.uid()).collect();
        ensure!(first.is_disjoint(&now), "a Pod older than maxAge is still there");
        Ok(())
    })
}

#[tokio::test]
async fn a_refused_refill_is_a_warning_event_and_a_condition() -> Result<()> {
    with_engine!(operator "warmpool-quota", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        // Room for one Pod only: the second create is refused.
        let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "one-pod"},
            "spec": {"hard": {"pods": "1"}},
        }))?;
        eng.ns.api::<k8s_openapi::api::core::v1::ResourceQuota>().create(&PostParams::default(), &quota).await?;
        pools(&eng).create(&PostParams::default(), &pool_object("py", &ns, 2)?).await?;
        let t0 = Instant::now();
        let cond = loop {
            let st = pools(&eng).get("py").await?.status.unwrap_or_default();
            if let Some(c) = st.conditions.iter().find(|c| c.type_ == "Ready" && c.reason.as_deref() == Some("RefillFailed")) {
                break c.clone();
            }
            ensure!(t0.elapsed() < Duration::from_secs(30), "no RefillFailed condition: {st:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(cond.status == rce_api::ConditionStatus::False, "{cond:?}");
        ensure!(cond.message.as_deref().is_some_and(|m| m.contains("exceeded quota")), "{cond:?}");
        let events = eng.ns.api::<k8s_openapi::api::core::v1::Event>().list(&ListParams::default()).await?.items;
        ensure!(
            events.iter().any(|e| e.reason.as_deref() == Some("RefillFailed")
                && e.type_.as_deref() == Some("Warning")
                && e.involved_object.kind.as_deref() == Some("WarmPool")),
            "no RefillFailed Warning Event: {:?}",
            events.iter().map(|e| (&e.reason, &e.message)).collect::<Vec<_>>()
        );
        ensure!(live_pods(&eng, "py").await?.len() == 1, "the quota's one Pod");
        Ok(())
    })
}

#[tokio::test]
async fn a_reused_pod_serves_max_runs_then_is_replaced() -> Result<()> {
    with_engine!(operator "warmpool-maxruns", |_| {}, needs ["python"], |eng| {
        let ns = eng.ns.name.clone();
        let mut wp = pool_object("py", &ns, 1)?;
        wp.spec.reuse = Some(rce_api::warmpool::Reuse { max_runs: 2 });
        pools(&eng).create(&PostParams::default(), &wp).await?;
        wait_ready(&eng, "py", 1).await?;
        let spec = serde_json::json!({"language": runtime_name(), "source": "print('again')",
                                      "limits": {"memoryMiB": 64, "wallTimeMs": 2000}});
        let mut pods = Vec::new();
        for (i, name) in ["one", "two", "three"].into_iter().enumerate() {
            let e = eng.run(name, spec.clone(), rce_tests::exec::WAIT).await?;
            let st = e.status.clone().unwrap_or_default();
            ensure!(rce_tests::exec::verdict(&e) == Some(rce_api::Verdict::Accepted), "{name}: {st:?}");
            ensure!(st.warm_pool.as_deref() == Some("py"), "{name} did not run warm: {st:?}");
            let pod = st.pod_name.clone().unwrap_or_default();
            if i == 0 {
                // Back to idle, one run served.
                let t0 = Instant::now();
                loop {
                    let p = eng.pods().get(&pod).await?;
                    if state(&p) == STATE_IDLE {
                        ensure!(p.annotations().get(rce_api::warmpool::SERVED_ANNOTATION).map(String::as_str) == Some("1"));
                        ensure!(!p.labels().contains_key(CLAIMED_BY_LABEL), "{:?}", p.labels());
                        break;
                    }
                    ensure!(t0.elapsed() < Duration::from_secs(10), "{pod} never went back to idle: {:?}", p.labels());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            pods.push(pod);
            wait_ready(&eng, "py", 1).await?;
        }
        eprintln!("runs went to {pods:?}");
        ensure!(pods[0] == pods[1], "the second run did not reuse the Pod: {pods:?}");
        ensure!(pods[2] != pods[1], "a Pod served more than maxRuns: {pods:?}");
        ensure!(eng.pods().get_opt(&pods[0]).await?.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
                "the Pod that served maxRuns is still there");
        Ok(())
    })
}
