//! Claiming a warm Pod for an Execution, and giving it back.
//!
//! A claim is exclusive by optimistic concurrency: the claim is one JSON merge patch of the
//! Pod that sets its state label to `claimed` and names the Execution, and carries the
//! `metadata.resourceVersion` the claimer saw the Pod idle at. The API server applies it only
//! if the Pod has not changed since (otherwise 409 Conflict), so of two claimers (two
//! operator replicas, two reconciles) that saw the same idle Pod exactly one wins; the other
//! tries another Pod, a bounded number of times, then runs cold. The pool controller deletes
//! idle Pods with the same precondition, so it never deletes a Pod being claimed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{Api, DeleteParams, Patch, PatchParams, Preconditions},
    runtime::reflector::{ObjectRef, Store},
    Client, ResourceExt,
};
use rand::seq::SliceRandom;
use rce_api::warmpool::{
    CLAIMED_BY_LABEL, CLAIMED_RUN_ANNOTATION, IMAGE_ANNOTATION, POOL_LABEL, SERVED_ANNOTATION, STATE_CLAIMED,
    STATE_IDLE, STATE_LABEL,
};
use rce_api::{Execution, LimitField, Runtime, WarmPool};
use serde_json::json;

use crate::{
    config::SandboxSettings,
    error::Result,
    metrics::{Metrics, PoolLabel},
    names, pool, sandbox,
    validate::Plan,
};

/// Most Pods one claim tries before the Execution runs cold.
pub const MAX_CLAIM_TRIES: usize = 4;

/// The warm-pool state the Execution path and the pool controller share.
pub struct Warm {
    pub client: Client,
    /// Every WarmPool the operator serves (its `--selector`, its namespaces).
    pub pools: Store<WarmPool>,
    /// Every Pod of a pool (labelled [`POOL_LABEL`]) in the served namespaces.
    pub pods: Store<Pod>,
    pub runtimes: Store<Runtime>,
    pub settings: SandboxSettings,
    pub metrics: Arc<Metrics>,
    tallies: Mutex<HashMap<(String, String), Tally>>,
}

/// Hits and misses counted since the pool's status last took them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub hits: i64,
    pub misses: i64,
}

/// A warm Pod claimed for one run.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The Pod as the claim patched it.
    pub pod: Pod,
    pub pool: Arc<WarmPool>,
    /// The Pod's result key (its runner seals results and `ready` frames with it).
    pub key: Vec<u8>,
    /// Runs the Pod had served before this claim.
    pub served: u32,
}

impl Warm {
    pub fn new(
        client: Client,
        pools: Store<WarmPool>,
        pods: Store<Pod>,
        runtimes: Store<Runtime>,
        settings: SandboxSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Warm { client, pools, pods, runtimes, settings, metrics, tallies: Mutex::default() }
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Tally>> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, pool: &WarmPool, hit: bool) {
        let key = (pool.namespace().unwrap_or_default(), pool.name_any());
        let label = PoolLabel { namespace: key.0.clone(), pool: key.1.clone() };
        let mut t = self.tallies();
        let tally = t.entry(key).or_default();
        if hit {
            tally.hits += 1;
            self.metrics.warm_hits.get_or_create(&label).inc();
        } else {
            tally.misses += 1;
            self.metrics.warm_misses.get_or_create(&label).inc();
        }
    }

    /// Count an Execution that fitted `pool` but ran cold (for a caller that decided so
    /// without calling [`claim`]).
    pub fn count_miss(&self, pool: &WarmPool) {
        self.count(pool, false);
    }

    /// Take the counts not yet in the pool's status.
    pub(crate) fn take_tally(&self, ns: &str, name: &str) -> Tally {
        self.tallies().remove(&(ns.to_string(), name.to_string())).unwrap_or_default()
    }

    /// Put back counts a failed status write did not record.
    pub(crate) fn give_back(&self, ns: &str, name: &str, back: Tally) {
        let mut t = self.tallies();
        let tally = t.entry((ns.to_string(), name.to_string())).or_default();
        tally.hits += back.hits;
        tally.misses += back.misses;
    }

    /// The Runtime image a pool's Pods must have now (`None`: its Runtime is gone).
    fn current_image(&self, pool: &WarmPool) -> Option<String> {
        self.runtimes.get(&ObjectRef::new(&pool.spec.runtime)).map(|r| r.spec.image.clone())
    }
}

/// Milliseconds since a Kubernetes timestamp (0 without one).
pub(crate) fn age(pod: &Pod) -> Duration {
    let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let ms = pod.metadata.creation_timestamp.as_ref().map_or(0, |t| now - t.0.as_millisecond());
    Duration::from_millis(ms.max(0) as u64)
}

/// Is `pod` a Pod of `pool` (its label and its controller owner)?
pub(crate) fn of_pool(pod: &Pod, pool: &WarmPool) -> bool {
    let label = names::label_value(&pool.name_any());
    pod.namespace() == pool.namespace()
        && pod.labels().get(POOL_LABEL) == Some(&label)
        && pod.owner_references().iter().any(|o| {
            o.controller == Some(true) && o.kind == "WarmPool" && Some(&o.uid) == pool.metadata.uid.as_ref()
        })
}

pub(crate) fn state(pod: &Pod) -> &str {
    pod.labels().get(STATE_LABEL).map_or("", String::as_str)
}

pub(crate) fn served(pod: &Pod) -> u32 {
    pod.annotations().get(SERVED_ANNOTATION).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Is `pod` idle, proven ready, current (image), young enough and not going away?
pub(crate) fn claimable(pod: &Pod, pool: &WarmPool, image: &str) -> bool {
    let max_age = pool.spec.max_age().unwrap_or(Duration::from_secs(1800));
    state(pod) == STATE_IDLE
        && pod.metadata.deletion_timestamp.is_none()
        && pod.annotations().get(IMAGE_ANNOTATION).map(String::as_str) == Some(image)
        && age(pod) < max_age
        && served(pod) < pool.spec.max_runs()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Does an Execution's `plan` fit under a pool's `shape` (both resolved against the same
/// Runtime)? Every limit, the compile step's too, the sandbox's sizes, the deadline (runs ×
/// wall time), the CPU limit, the RuntimeClass and the image.
pub fn fits(plan: &Plan, shape: &Plan, runtime: &Runtime, settings: &SandboxSettings, max_runs: u32) -> bool {
    let under = |a: &rce_api::ResolvedLimits, b: &rce_api::ResolvedLimits| {
        LimitField::ALL.iter().all(|f| a.get(*f) <= b.get(*f))
    };
    let compile_fits = match (&plan.compile_limits, &shape.compile_limits) {
        (None, None) => true,
        (Some(a), Some(b)) => under(a, b),
        _ => false,
    };
    let (p, s) = (sandbox::sizes(plan, runtime, settings), sandbox::sizes(shape, runtime, settings));
    under(&plan.limits, &shape.limits)
        && compile_fits
        && p.work_mib <= s.work_mib
        && p.tmp_mib <= s.tmp_mib
        && p.memory_mib <= s.memory_mib
        && p.ephemeral_mib <= sandbox::warm_ephemeral_mib(shape, max_runs)
        // The warm Pod's deadline leaves one shape-sized Execution past maxAge.
        && p.active_deadline_seconds <= s.active_deadline_seconds
        && plan.cpu_limit == shape.cpu_limit
        && plan.runtime_class_name == shape.runtime_class_name
        && plan.image == shape.image
        && plan.image == runtime.spec.image
}

/// A pool of namespace `ns` and `runtime` whose shape fits the Execution's `plan`, with its
/// shape. Of several, the one with the most claimable Pods.
pub fn fitting_pool(
    pools: &Store<WarmPool>,
    ns: &str,
    runtime: &Runtime,
    plan: &Plan,
    settings: &SandboxSettings,
) -> Option<(Arc<WarmPool>, Plan)> {
    let rt_name = runtime.metadata.name.as_deref().unwrap_or_default();
    let mut found: Vec<(Arc<WarmPool>, Plan)> = pools
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(ns)
                && p.spec.runtime == rt_name
                && p.spec.replicas > 0
                && p.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|p| {
            let shape = pool::shape(&p, runtime, settings).ok()?;
            fits(plan, &shape, runtime, settings, p.spec.max_runs()).then_some((p, shape))
        })
        .collect();
    found.sort_by_key(|(p, _)| std::cmp::Reverse(p.status.as_ref().map_or(0, |s| s.ready_replicas)));
    found.into_iter().next()
}

/// Claim an idle Pod of `pool` (whose `shape` came with it from [`fitting_pool`]) for run
/// `run_id` of `exec`. `None`: no Pod could be claimed; the caller runs cold (and counts the
/// miss then, [`Warm::count_miss`]).
pub async fn claim(
    warm: &Warm,
    pool: Arc<WarmPool>,
    shape: &Plan,
    exec: &Execution,
    run_id: &str,
) -> Result<Option<Claimed>> {
    let started = Instant::now();
    let ns = pool.namespace().unwrap_or_default();
    let exec_uid = exec.uid().unwrap_or_default();
    let mut idle: Vec<Arc<Pod>> = warm
        .pods
        .state()
        .into_iter()
        .filter(|p| of_pool(p, &pool) && claimable(p, &pool, &shape.image))
        .collect();
    // A random order: replicas (and concurrent reconciles) rarely reach for the same Pod.
    idle.shuffle(&mut rand::rng());
    let api = Api::<Pod>::namespaced(warm.client.clone(), &ns);
    for pod in idle.into_iter().take(MAX_CLAIM_TRIES) {
        let Some(rv) = pod.resource_version() else { continue };
        let patch = json!({
            "metadata": {
                "resourceVersion": rv,
                "labels": { STATE_LABEL: STATE_CLAIMED, CLAIMED_BY_LABEL: exec_uid },
                "annotations": { CLAIMED_RUN_ANNOTATION: run_id },
            }
        });
        match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(patched) => {
                let Some(key) = sandbox::result_key(&patched) else {
                    // Not a sandbox this operator built: leave it claimed; the pool deletes it.
                    tracing::warn!(pod = %patched.name_any(), "warm Pod without a result key");
                    continue;
                };
                warm.metrics.claim_seconds.observe(started.elapsed().as_secs_f64());
                warm.count(&pool, true);
                let served = served(&patched);
                return Ok(Some(Claimed { pod: patched, pool, key, served }));
            }
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {
                tracing::debug!(pod = %pod.name_any(), code = s.code, "lost the claim race; next Pod");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Not a miss yet: the caller counts one when the Execution does start cold
    // (Warm::count_miss), not at every look while it waits.
    Ok(None)
}

/// Give a claimed Pod back after its run, `served_now` runs served in all (the runner's
/// sealed `ready` after the run says so, and that it proved a clean slate; only then call
/// this): idle again if it may serve more (fewer than `maxRuns`, younger than `maxAge`, its
/// image current), else deleted. Returns whether it went back to idle.
pub async fn release(warm: &Warm, claimed: &Claimed, served_now: u32) -> Result<bool> {
    let pool = &claimed.pool;
    let max_age = pool.spec.max_age().unwrap_or(Duration::from_secs(1800));
    let image = claimed.pod.annotations().get(IMAGE_ANNOTATION).cloned();
    let reusable = served_now < pool.spec.max_runs()
        && age(&claimed.pod) < max_age
        && image.is_some()
        && image == warm.current_image(pool);
    if !reusable {
        discard(warm, claimed).await?;
        return Ok(false);
    }
    let ns = claimed.pod.namespace().unwrap_or_default();
    let name = claimed.pod.name_any();
    let api = Api::<Pod>::namespaced(warm.client.clone(), &ns);
    let mut current = claimed.pod.clone();
    for _ in 0..3 {
        let patch = json!({
            "metadata": {
                "resourceVersion": current.resource_version(),
                "labels": { STATE_LABEL: STATE_IDLE, CLAIMED_BY_LABEL: null },
                "annotations": { CLAIMED_RUN_ANNOTATION: null, SERVED_ANNOTATION: served_now.to_string() },
            }
        });
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(true),
            // The kubelet wrote the Pod's status since: still ours?
            Err(kube::Error::Api(s)) if s.is_conflict() => match api.get_opt(&name).await? {
                Some(p) if p.metadata.uid == claimed.pod.metadata.uid && still_claimed(&p, claimed) => {
                    current = p
                }
                _ => return Ok(false),
            },
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    discard(warm, claimed).await?;
    Ok(false)
}

/// [`release`], handing the Pod's open attach session back with it: the session is in
/// `sessions` before the Pod is idle again, so the next claimer (who may come the moment
/// the patch lands) takes it instead of opening a second attach to the same runner; if the
/// Pod does not go back to idle, the session is closed.
pub async fn release_with_session(
    warm: &Warm,
    sessions: &crate::attach::Sessions,
    claimed: &Claimed,
    served_now: u32,
    session: crate::attach::Session,
) -> Result<bool> {
    let uid = claimed.pod.metadata.uid.clone().unwrap_or_default();
    sessions.put(&uid, session);
    match release(warm, claimed, served_now).await {
        Ok(true) => Ok(true),
        other => {
            sessions.drop_pod(&uid);
            other
        }
    }
}

fn still_claimed(pod: &Pod, claimed: &Claimed) -> bool {
    let run = |p: &Pod| p.annotations().get(CLAIMED_RUN_ANNOTATION).cloned();
    state(pod) == STATE_CLAIMED
        && pod.labels().get(CLAIMED_BY_LABEL) == claimed.pod.labels().get(CLAIMED_BY_LABEL)
        && run(pod) == run(&claimed.pod)
}

/// Delete a claimed Pod (it failed, was spoiled, or may serve no more); the pool refills.
pub async fn discard(warm: &Warm, claimed: &Claimed) -> Result<()> {
    let ns = claimed.pod.namespace().unwrap_or_default();
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: claimed.pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(warm.client.clone(), &ns).delete(&claimed.pod.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The warm Pod claimed by the Execution with uid `exec_uid` in `ns`, if any (for an
/// operator restarted mid-run).
pub fn claimed_by(pods: &Store<Pod>, ns: &str, exec_uid: &str) -> Option<Arc<Pod>> {
    pods.state().into_iter().find(|p| {
        p.namespace().as_deref() == Some(ns)
            && state(p) == STATE_CLAIMED
            && p.labels().get(CLAIMED_BY_LABEL).map(String::as_str) == Some(exec_uid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{
        plan,
        tests::{runtime, GCC, PYTHON},
    };
    use rce_api::ExecutionSpec;

    fn pool(yaml: &str) -> WarmPool {
        serde_yaml::from_str(yaml).unwrap()
    }

    const POOL: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: WarmPool
metadata: {name: py, namespace: team-a, uid: pool-uid}
spec:
  runtime: python
  replicas: 2
  limits: {memoryMiB: 256, wallTimeMs: 5000, outputBytes: 65536}
"#;

    fn spec(yaml: &str) -> ExecutionSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_execution_under_the_shape_fits_and_each_limit_above_does_not() {
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let p = pool(POOL);
        let shape = pool::shape(&p, &rt, &s).unwrap();
        assert_eq!(shape.limits.memory_mib, 256);
        let fits_spec = |yaml: &str| {
            let plan = plan(&spec(yaml), &rt, &s).unwrap();
            fits(&plan, &shape, &rt, &s, 1)
        };
        assert!(fits_spec("{language: python, source: x, limits: {memoryMiB: 64, wallTimeMs: 2000}}"));
        assert!(fits_spec("{language: python, source: x}"), "the Runtime's defaults fit");
        assert!(fits_spec("{language: python, source: x, limits: {memoryMiB: 256, wallTimeMs: 5000}}"));
        // Each of the seven limits one above the shape's.
        for f in LimitField::ALL {
            let mut limits = rce_api::Limits::default();
            let above = shape.limits.get(f) + 1;
            limits.set(f, Some(above));
            let mut e = spec("{language: python, source: x}");
            e.limits = Some(limits);
            // Above the Runtime's maximum the Execution is invalid anyway; widen the Runtime.
            let mut wide = rt.clone();
            let mut max = wide.spec.max_limits;
            max.set(f, Some(above));
            wide.spec.max_limits = max;
            let shape = pool::shape(&p, &wide, &s).unwrap();
            let Ok(plan) = plan(&e, &wide, &s) else { continue };
            assert!(!fits(&plan, &shape, &wide, &s, 1), "{f:?} above the shape still fits");
        }
        // Runs × wall time past the shape's one-run deadline.
        assert!(!fits_spec("{language: python, source: x, runs: 5}"));
        assert!(fits_spec("{language: python, source: x, runs: 2, limits: {wallTimeMs: 1000}}"));
    }

    #[test]
    fn cpu_class_image_and_compile_steps_must_match() {
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let p = pool(POOL);
        let shape = pool::shape(&p, &rt, &s).unwrap();
        let e = plan(&spec("{language: python, source: x}"), &rt, &s).unwrap();
        assert!(fits(&e, &shape, &rt, &s, 1));
        let mut other = e.clone();
        other.cpu_limit = "2".into();
        assert!(!fits(&other, &shape, &rt, &s, 1));
        let mut other = e.clone();
        other.runtime_class_name = Some("gvisor".into());
        assert!(!fits(&other, &shape, &rt, &s, 1));
        // The Runtime's image changed after the pool's Pods were shaped.
        let mut newer = rt.clone();
        newer.spec.image = "rce.dev/sandbox-python:def".into();
        assert!(!fits(&e, &shape, &newer, &s, 1));
        // A compile step's limits too.
        let c = runtime(GCC);
        let cpool = pool(&POOL.replace("runtime: python", "runtime: c"));
        let cshape = pool::shape(&cpool, &c, &s).unwrap();
        let small = plan(&spec("{language: c, source: x, limits: {memoryMiB: 64}}"), &c, &s).unwrap();
        assert!(fits(&small, &cshape, &c, &s, 1));
        let mut big = small.clone();
        big.compile_limits.as_mut().unwrap().memory_mib += 1;
        assert!(!fits(&big, &cshape, &c, &s, 1));
        big.compile_limits = None;
        assert!(!fits(&big, &cshape, &c, &s, 1));
    }

    #[test]
    fn fitting_pool_picks_by_namespace_and_runtime() {
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let (store, mut writer) = kube::runtime::reflector::store::<WarmPool>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pool(POOL)));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pool(
            &POOL.replace("name: py,", "name: other,").replace("runtime: python", "runtime: ruby"),
        )));
        let e = plan(&spec("{language: python, source: x}"), &rt, &s).unwrap();
        let (found, shape) = fitting_pool(&store, "team-a", &rt, &e, &s).unwrap();
        assert_eq!(found.name_any(), "py");
        assert_eq!(shape.limits.memory_mib, 256);
        assert!(fitting_pool(&store, "team-b", &rt, &e, &s).is_none());
        let big = plan(&spec("{language: python, source: x, limits: {memoryMiB: 300}}"), &rt, &s).unwrap();
        assert!(fitting_pool(&store, "team-a", &rt, &big, &s).is_none());
    }
}
