//! The WarmPool controller: keeps each pool's warm Pods (hardened sandboxes whose runner
//! serves over its attached stdin, see [`crate::sandbox::build_warm_pod`]) at `replicas`,
//! proves each new one ready before it can be claimed, replaces used, failed, aged and
//! outdated ones (rolling), and writes the pool's status.
//!
//! Reconcile as steps: fetch (the pool, its Runtime, its Pods from the cache) → validate
//! (the pool's shape, [`shape`]) → decide (pure: [`decide`]) → apply (create, delete, probe)
//! → status. A warm Pod's life: `starting` (created; not claimable) → the controller attaches,
//! pings, and checks the runner's sealed `ready` → `idle` (claimable; its session kept in
//! [`Sessions`]) → `claimed` ([`crate::claim`]) → back to `idle` (reuse) or deleted.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use kube::{
    api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{
        controller::{self as kc, Action, Controller},
        events::{Event, EventType, Recorder},
        reflector::{ObjectRef, Store},
        watcher,
    },
    Client, Resource, ResourceExt,
};
use rce_api::{
    serve,
    warmpool::{IMAGE_ANNOTATION, STATE_CLAIMED, STATE_IDLE, STATE_LABEL, STATE_STARTING},
    ExecutionSpec, Runtime, WarmPool, WarmPoolStatus,
};
use serde_json::json;

use crate::{
    attach::{Session, Sessions},
    claim::{self, Warm},
    config::SandboxSettings,
    error::{Error, Result},
    metrics::{Metrics, PoolLabel},
    names,
    sandbox::{self, MANAGER},
    status::{rfc3339, set_condition},
    validate::{self, Invalid, Plan},
};

/// How long a probe waits for the runner's `ready`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A new Pod whose runner has not answered is deleted and replaced after at least this
/// many failed probes ...
pub const PROBE_ATTEMPTS: u32 = 3;
/// ... spread over at least this long (a runner that is slow to start is not given up on a
/// burst of quick failures).
pub const PROBE_WINDOW: Duration = Duration::from_secs(10);
/// Pause after a failed probe before the next.
const PROBE_RETRY: Duration = Duration::from_millis(500);
/// How often a pool looks again while something is in flight (Pods starting, a refill
/// due); Pod events wake it at once for the rest.
const BUSY_RECHECK: Duration = Duration::from_millis(500);
/// How often a settled pool looks again (maxAge, a Runtime image change).
const IDLE_RECHECK: Duration = Duration::from_secs(10);
/// Longest wait between refills after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The shape of `pool`: the plan of an Execution that asks for exactly the pool's limits,
/// against its Runtime (an invalid pool, e.g. limits above the Runtime's maximum, says why).
pub fn shape(pool: &WarmPool, runtime: &Runtime, settings: &SandboxSettings) -> Result<Plan, Invalid> {
    pool.spec.max_age().map_err(|e| Invalid(format!("spec.maxAge: {e}")))?;
    if pool.spec.replicas < 0 {
        return Err(Invalid(format!("spec.replicas = {} is negative", pool.spec.replicas)));
    }
    if let Some(r) = pool.spec.reuse {
        if !(1..=rce_api::warmpool::MAX_REUSE_RUNS).contains(&r.max_runs) {
            return Err(Invalid(format!(
                "spec.reuse.maxRuns = {} is not allowed: give 1 to {}",
                r.max_runs,
                rce_api::warmpool::MAX_REUSE_RUNS
            )));
        }
    }
    let spec = ExecutionSpec {
        language: runtime.metadata.name.clone().unwrap_or_default(),
        source: Some(String::new()),
        limits: Some(pool.spec.limits),
        ..Default::default()
    };
    validate::plan(&spec, runtime, settings)
}

/// Shared state of the pool controller.
pub struct Context {
    pub client: Client,
    pub namespaces: Vec<String>,
    pub settings: SandboxSettings,
    pub warm: Arc<Warm>,
    pub sessions: Arc<Sessions>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// How long a new Pod may take to start (scheduling, image) before it is replaced.
    pub start_timeout: Duration,
    /// Which pools are this replica's to keep filled.
    pub shard: crate::shard::Shard,
    /// Pods with a probe in flight, by uid.
    probing: Mutex<HashSet<String>>,
    /// Failed probes (how many, the first when), by Pod uid.
    probe_failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Refill backoff, by pool.
    backoff: Mutex<HashMap<(String, String), Backoff>>,
    policies: Mutex<HashSet<String>>,
    /// Uids of the Pods whose session this controller put into [`Sessions`].
    opened: Mutex<HashSet<String>>,
    /// Creates and deletes the Pod cache has not shown yet, by pool.
    expected: Mutex<HashMap<(String, String), Expected>>,
    /// When each pool's status was last written: counts alone (busy, hits) are written at
    /// most every [`STATUS_EVERY`], so that claims and releases (two per warm run) do not
    /// each cost a status write.
    written: Mutex<HashMap<(String, String), Instant>>,
}

/// Least time between two status writes of a pool whose Ready condition did not change.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What this controller did that its Pod cache may not show yet (as a ReplicaSet
/// controller's expectations): so that a reconcile right after a create or delete neither
/// creates nor deletes a Pod twice.
#[derive(Debug, Default)]
struct Expected {
    /// Names of created Pods, not yet in the cache.
    created: HashMap<String, Instant>,
    /// Uids of deleted Pods, still in the cache without a deletionTimestamp.
    deleted: HashMap<String, Instant>,
}

/// How long an expectation is kept at most (a watch that missed an event relists).
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// Apply what this controller did to what the cache shows: Pods it deleted are going away,
/// Pods it created and the cache has not shown yet are starting (with no uid: never deleted
/// before they are seen). Expectations the cache has caught up with are dropped.
fn expect(ex: &mut Expected, views: &mut Vec<PodView>) {
    let names: HashSet<String> = views.iter().map(|v| v.name.clone()).collect();
    ex.created.retain(|n, at| !names.contains(n) && at.elapsed() < EXPECTATION_TTL);
    ex.deleted.retain(|u, at| {
        views.iter().any(|v| &v.uid == u && v.state != PodState::Deleting) && at.elapsed() < EXPECTATION_TTL
    });
    for v in views.iter_mut().filter(|v| ex.deleted.contains_key(&v.uid)) {
        v.state = PodState::Deleting;
    }
    views.extend(ex.created.keys().map(|n| PodView {
        name: n.clone(),
        uid: String::new(),
        resource_version: String::new(),
        state: PodState::Starting { running: false },
        stale: false,
        age: Duration::ZERO,
    }));
}

#[derive(Debug, Clone)]
struct Backoff {
    failures: u32,
    until: Instant,
    /// What failed last.
    why: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Context {
    pub fn with_shard(mut self, shard: crate::shard::Shard) -> Self {
        self.shard = shard;
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        namespaces: Vec<String>,
        settings: SandboxSettings,
        warm: Arc<Warm>,
        sessions: Arc<Sessions>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        start_timeout: Duration,
    ) -> Self {
        Context {
            shard: crate::shard::Shard::solo("operator"),
            client,
            namespaces,
            settings,
            warm,
            sessions,
            recorder,
            metrics,
            start_timeout,
            probing: Mutex::default(),
            probe_failures: Mutex::default(),
            backoff: Mutex::default(),
            policies: Mutex::default(),
            opened: Mutex::default(),
            expected: Mutex::default(),
            written: Mutex::default(),
        }
    }

    fn watches(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    async fn event(&self, pool: &WarmPool, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(crate::outcome::cap_text(&note, 1000).0),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&ev, &pool.object_ref(&())).await {
            tracing::debug!(error = %err, "could not publish an event");
        }
    }

    /// A refill failed: wait longer before the next (2^n s, at most [`MAX_BACKOFF`]).
    fn failed(&self, key: &(String, String), why: &str) -> Duration {
        let mut b = lock(&self.backoff);
        let e = b.entry(key.clone()).or_insert(Backoff {
            failures: 0,
            until: Instant::now(),
            why: String::new(),
        });
        e.failures = (e.failures + 1).min(16);
        let wait = Duration::from_secs(1 << e.failures.min(6)).min(MAX_BACKOFF);
        e.until = Instant::now() + wait;
        e.why = why.to_string();
        wait
    }

    fn recovered(&self, key: &(String, String)) {
        lock(&self.backoff).remove(key);
    }

    /// While refills wait after failures: how much longer, and what failed last.
    fn backing_off(&self, key: &(String, String)) -> Option<(Duration, String)> {
        let b = lock(&self.backoff);
        let e = b.get(key)?;
        Some((e.until.checked_duration_since(Instant::now())?, e.why.clone()))
    }
}

/// Make sure the deny-all NetworkPolicy exists in `namespace` (once per process).
pub(crate) async fn ensure_network_policy(
    client: &Client,
    done: &Mutex<HashSet<String>>,
    namespace: &str,
) -> Result<()> {
    if lock(done).contains(namespace) {
        return Ok(());
    }
    let np = sandbox::network_policy(namespace);
    Api::<NetworkPolicy>::namespaced(client.clone(), namespace)
        .patch(sandbox::NETWORK_POLICY, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&np))
        .await?;
    lock(done).insert(namespace.to_string());
    Ok(())
}

/// What one Pod of a pool is, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub state: PodState,
    /// Older than maxAge, or built from an older Runtime image.
    pub stale: bool,
    pub age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Not yet proven ready; `running`: its container runs (it can be probed).
    Starting {
        running: bool,
    },
    Idle,
    Claimed,
    /// Failed, terminated (a spoiled runner exits), its deadline passed, or its container
    /// cannot start (no image).
    Dead,
    /// Being deleted.
    Deleting,
}

/// What to do with a pool's Pods.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Pods to create.
    pub create: usize,
    /// Pods to delete, each with the resourceVersion it was seen at (idle ones: never a Pod
    /// that changed since, such as one being claimed) or none (dead ones).
    pub delete: Vec<(String, String, Option<String>, &'static str)>,
    /// Starting Pods to probe.
    pub probe: Vec<String>,
    /// Starting Pods that never came up (deleted, with an Event).
    pub timed_out: Vec<String>,
}

/// Decide (pure) what to do with `pods` for `desired` replicas. Rolling replacement of stale
/// idle Pods: one surplus Pod at a time, and a stale Pod is deleted only once no
/// replacement is still starting (the replacement is ready).
pub fn decide(desired: usize, pods: &[PodView], start_timeout: Duration) -> Decision {
    let mut d = Decision::default();
    let mut live = Vec::new();
    for p in pods {
        match p.state {
            PodState::Deleting => {}
            PodState::Dead => d.delete.push((p.name.clone(), p.uid.clone(), None, "Failed")),
            PodState::Starting { .. } if p.age > start_timeout => {
                d.timed_out.push(p.name.clone());
                d.delete.push((
                    p.name.clone(),
                    p.uid.clone(),
                    Some(p.resource_version.clone()),
                    "NotStarted",
                ));
            }
            PodState::Starting { running } => {
                if running {
                    d.probe.push(p.name.clone());
                }
                live.push(p);
            }
            PodState::Idle | PodState::Claimed => live.push(p),
        }
    }
    let starting = live.iter().filter(|p| matches!(p.state, PodState::Starting { .. })).count();
    let mut stale: Vec<&&PodView> = live.iter().filter(|p| p.state == PodState::Idle && p.stale).collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.age));
    let mut fresh_idle: Vec<&&PodView> =
        live.iter().filter(|p| p.state == PodState::Idle && !p.stale).collect();
    fresh_idle.sort_by_key(|p| std::cmp::Reverse(p.age));
    let mut starting_pods: Vec<&&PodView> =
        live.iter().filter(|p| matches!(p.state, PodState::Starting { .. })).collect();
    starting_pods.sort_by_key(|p| p.age);

    let mut count = live.len();
    // The one surplus Pod of a roll, while it starts.
    let rolling = usize::from(!stale.is_empty() && starting > 0);
    let excess = count.saturating_sub(desired + rolling);
    // Surplus: stale idle first, then fresh idle (oldest first), then starting (newest
    // first); never a claimed Pod.
    let mut victims = stale.iter().map(|p| (*p, "Replaced")).collect::<Vec<_>>();
    victims.extend(fresh_idle.iter().map(|p| (*p, "ScaledDown")));
    victims.extend(starting_pods.iter().map(|p| (*p, "ScaledDown")));
    let mut stale_left = stale.len();
    for (p, why) in victims.into_iter().take(excess) {
        d.delete.push((p.name.clone(), p.uid.clone(), Some(p.resource_version.clone()), why));
        if p.stale && p.state == PodState::Idle {
            stale_left -= 1;
        }
        count -= 1;
    }
    if count < desired {
        d.create = desired - count;
    } else if stale_left > 0 && count == desired && starting == 0 {
        // Start the replacement of the oldest stale Pod.
        d.create = 1;
    }
    d
}

fn container_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == sandbox::CONTAINER))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// The container cannot start: its image cannot be had or its configuration is refused
/// (the kubelet would only retry the same).
fn container_cannot_start(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == sandbox::CONTAINER))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .is_some_and(|r| {
            matches!(
                r,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            )
        })
}

fn container_terminated(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == sandbox::CONTAINER))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

/// How the controller sees `pod` of `pool`.
pub fn view(pod: &Pod, pool: &WarmPool, image: &str) -> PodView {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let max_age = pool.spec.max_age().unwrap_or(Duration::from_secs(1800));
    let age = claim::age(pod);
    let state = if pod.metadata.deletion_timestamp.is_some() {
        PodState::Deleting
    } else if claim::state(pod) == STATE_CLAIMED {
        // Even when it ended: the Execution that claimed it reads its log, then discards it.
        PodState::Claimed
    } else if matches!(phase, "Failed" | "Succeeded")
        || container_terminated(pod)
        || container_cannot_start(pod)
    {
        PodState::Dead
    } else {
        match claim::state(pod) {
            STATE_IDLE => PodState::Idle,
            _ => PodState::Starting { running: container_running(pod) },
        }
    };
    PodView {
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        resource_version: pod.resource_version().unwrap_or_default(),
        state,
        stale: age >= max_age || pod.annotations().get(IMAGE_ANNOTATION).map(String::as_str) != Some(image),
        age,
    }
}

/// Entry point of every reconciliation of a pool.
pub async fn reconcile(pool: Arc<WarmPool>, ctx: Arc<Context>) -> Result<Action> {
    let ns = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    if !ctx.watches(&ns) || pool.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Another replica keeps this pool (a membership change reconciles every pool).
    if !ctx.shard.owns(pool.metadata.uid.as_deref().unwrap_or_default()) {
        return Ok(Action::await_change());
    }
    let key = (ns.clone(), name.clone());
    let label = PoolLabel { namespace: ns.clone(), pool: name.clone() };
    let shaped = match ctx.warm.runtimes.get(&ObjectRef::new(&pool.spec.runtime)) {
        None => Err(Invalid(format!("Runtime {:?} not found", pool.spec.runtime))),
        Some(rt) => shape(&pool, &rt, &ctx.settings).map(|plan| (rt, plan)),
    };
    let pods: Vec<Arc<Pod>> =
        ctx.warm.pods.state().into_iter().filter(|p| claim::of_pool(p, &pool)).collect();
    let (runtime, plan) = match shaped {
        Ok(found) => found,
        Err(invalid) => {
            let counts = counts(&pods, &pool, "");
            let changed = write_status(&pool, counts, Some(("Invalid", invalid.0.clone())), &ctx).await?;
            if changed == Some(true) {
                ctx.event(&pool, EventType::Warning, "Invalid", invalid.0).await;
            }
            return Ok(Action::requeue(IDLE_RECHECK));
        }
    };
    ensure_network_policy(&ctx.client, &ctx.policies, &ns).await?;
    let image = runtime.spec.image.clone();
    let mut views: Vec<PodView> = pods.iter().map(|p| view(p, &pool, &image)).collect();
    expect(lock(&ctx.expected).entry(key.clone()).or_default(), &mut views);
    // A Pod going away keeps no session.
    for v in views.iter().filter(|v| matches!(v.state, PodState::Deleting | PodState::Dead)) {
        ctx.sessions.drop_pod(&v.uid);
        lock(&ctx.opened).remove(&v.uid);
    }
    let start_timeout = ctx.start_timeout;
    let decision = decide(pool.spec.replicas.max(0) as usize, &views, start_timeout);
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);

    for (pod_name, uid, rv, why) in &decision.delete {
        if uid.is_empty() {
            continue; // created and not yet seen: the next reconcile decides
        }
        ctx.sessions.drop_pod(uid);
        lock(&ctx.opened).remove(uid);
        lock(&ctx.probe_failures).remove(uid);
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: rv.clone() }),
            ..Default::default()
        };
        match api.delete(pod_name, &dp).await {
            Ok(_) => {
                tracing::debug!(pool = %name, pod = %pod_name, why, "warm Pod deleted");
                lock(&ctx.expected)
                    .entry(key.clone())
                    .or_default()
                    .deleted
                    .insert(uid.clone(), Instant::now());
            }
            // Changed since (claimed at that moment) or gone: the next reconcile sees it.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
        if *why == "Failed" || *why == "NotStarted" {
            let note = if *why == "Failed" {
                format!("warm Pod {pod_name} failed, cannot start, or its runner exited; replacing it")
            } else {
                format!("warm Pod {pod_name} did not start in {} s; replacing it", start_timeout.as_secs())
            };
            ctx.failed(&key, &note);
            ctx.event(&pool, EventType::Warning, "PodFailed", note).await;
        }
    }
    for pod_name in &decision.probe {
        if let Some(pod) = pods.iter().find(|p| &p.name_any() == pod_name) {
            spawn_probe(ctx.clone(), pool.clone(), pod.clone());
        }
    }

    let mut refill_error = None;
    if decision.create > 0 {
        if let Some((wait, why)) = ctx.backing_off(&key) {
            refill_error = Some(format!("{why} (next try in {} s)", wait.as_secs().max(1)));
        } else {
            for _ in 0..decision.create {
                let pod = sandbox::build_warm_pod(
                    &pool,
                    &plan,
                    &runtime,
                    &ctx.settings,
                    &sandbox::new_result_key(),
                    sandbox::random_sandbox_id(),
                );
                match api.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        lock(&ctx.expected)
                            .entry(key.clone())
                            .or_default()
                            .created
                            .insert(created.name_any(), Instant::now());
                    }
                    Err(e) => {
                        let why = format!("creating a warm Pod: {e}");
                        let wait = ctx.failed(&key, &why);
                        let msg = format!("{why}; retrying in {} s", wait.as_secs());
                        ctx.event(&pool, EventType::Warning, "RefillFailed", msg.clone()).await;
                        refill_error = Some(msg);
                        break;
                    }
                }
            }
        }
    }

    // Sessions of Pods that are gone.
    let uids: HashSet<String> = ctx.warm.pods.state().iter().filter_map(|p| p.uid()).collect();
    let gone: Vec<String> = lock(&ctx.opened).iter().filter(|u| !uids.contains(*u)).cloned().collect();
    for uid in gone {
        ctx.sessions.drop_pod(&uid);
        lock(&ctx.opened).remove(&uid);
        lock(&ctx.probe_failures).remove(&uid);
    }

    let c = counts(&pods, &pool, &image);
    ctx.metrics.pool_size.get_or_create(&label).set(i64::from(c.replicas));
    ctx.metrics.pool_ready.get_or_create(&label).set(i64::from(c.ready));
    ctx.metrics.pool_busy.get_or_create(&label).set(i64::from(c.busy));
    let problem = refill_error.map(|m| ("RefillFailed", m));
    let deferred = write_status(&pool, c, problem, &ctx).await?.is_none();
    let settled = decision.create == 0
        && decision.delete.is_empty()
        && views.iter().all(|v| !matches!(v.state, PodState::Starting { .. } | PodState::Deleting));
    let recheck = if settled { IDLE_RECHECK } else { BUSY_RECHECK };
    Ok(Action::requeue(if deferred { recheck.min(STATUS_EVERY) } else { recheck }))
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    replicas: i32,
    ready: i32,
    busy: i32,
}

fn counts(pods: &[Arc<Pod>], pool: &WarmPool, image: &str) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        let v = view(p, pool, image);
        match v.state {
            PodState::Deleting | PodState::Dead => continue,
            PodState::Idle if !v.stale => c.ready += 1,
            PodState::Claimed => c.busy += 1,
            _ => {}
        }
        c.replicas += 1;
    }
    c
}

/// Write the pool's status (with the hits and misses counted since the last write).
/// `Some(true)` when the Ready condition changed; `None` when the write was put off (only
/// counts changed, and the last write was less than [`STATUS_EVERY`] ago).
async fn write_status(
    pool: &WarmPool,
    c: Counts,
    problem: Option<(&str, String)>,
    ctx: &Context,
) -> Result<Option<bool>> {
    let ns = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    let old = pool.status.clone().unwrap_or_default();
    let tally = ctx.warm.take_tally(&ns, &name);
    let mut next = WarmPoolStatus {
        replicas: c.replicas,
        ready_replicas: c.ready,
        busy: c.busy,
        hits: old.hits + tally.hits,
        misses: old.misses + tally.misses,
        selector: format!("{}={}", rce_api::warmpool::POOL_LABEL, names::label_value(&name)),
        observed_generation: pool.metadata.generation,
        conditions: old.conditions.clone(),
    };
    let desired = pool.spec.replicas.max(0);
    let (ok, reason, message) = match &problem {
        Some((reason, msg)) => (false, *reason, msg.clone()),
        None if c.ready + c.busy >= desired => {
            (true, "Ready", format!("{} of {desired} Pods ready", c.ready))
        }
        None => (false, "Refilling", format!("{} of {desired} Pods ready", c.ready)),
    };
    set_condition(
        &mut next.conditions,
        "Ready",
        ok,
        reason,
        &message,
        pool.metadata.generation,
        &rfc3339(Utc::now()),
    );
    let changed = old.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.status, c.reason.clone()))
        != next.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.status, c.reason.clone()));
    if next == old {
        return Ok(Some(false));
    }
    // Counts alone wait for the next write (at most STATUS_EVERY; the reconcile requeues).
    let key = (ns.clone(), name.clone());
    let recent = lock(&ctx.written).get(&key).is_some_and(|t| t.elapsed() < STATUS_EVERY);
    if recent && !changed {
        ctx.warm.give_back(&ns, &name, tally);
        return Ok(None);
    }
    // Conditional on the pool as read: the totals are the cached ones plus this process's
    // counts, so a write from an outdated copy (ours a moment ago, another replica's) must
    // not replace newer totals. A conflict gives the counts back and reconciles again.
    let patch = json!({ "metadata": { "resourceVersion": pool.resource_version() }, "status": next });
    let api = Api::<WarmPool>::namespaced(ctx.client.clone(), &ns);
    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {
            lock(&ctx.written).insert(key, Instant::now());
            Ok(Some(changed))
        }
        Err(e) => {
            ctx.warm.give_back(&ns, &name, tally);
            Err(e.into())
        }
    }
}

fn spawn_probe(ctx: Arc<Context>, pool: Arc<WarmPool>, pod: Arc<Pod>) {
    let uid = pod.uid().unwrap_or_default();
    if uid.is_empty() || !lock(&ctx.probing).insert(uid.clone()) {
        return;
    }
    tokio::spawn(async move {
        let outcome = probe(&ctx, &pod).await;
        match outcome {
            Ok(()) => {
                lock(&ctx.probe_failures).remove(&uid);
                ctx.recovered(&(pool.namespace().unwrap_or_default(), pool.name_any()));
            }
            Err(why) => {
                let (n, first) = {
                    let mut f = lock(&ctx.probe_failures);
                    let e = f.entry(uid.clone()).or_insert((0, Instant::now()));
                    e.0 += 1;
                    *e
                };
                tracing::info!(pod = %pod.name_any(), attempt = n, %why, "warm Pod not ready");
                if n >= PROBE_ATTEMPTS && first.elapsed() >= PROBE_WINDOW {
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                        ..Default::default()
                    };
                    let ns = pod.namespace().unwrap_or_default();
                    let _ =
                        Api::<Pod>::namespaced(ctx.client.clone(), &ns).delete(&pod.name_any(), &dp).await;
                    let note =
                        format!("warm Pod {} did not prove ready ({why}); replacing it", pod.name_any());
                    ctx.failed(&(ns, pool.name_any()), &note);
                    ctx.event(&pool, EventType::Warning, "NotReady", note).await;
                } else {
                    tokio::time::sleep(PROBE_RETRY).await;
                }
            }
        }
        lock(&ctx.probing).remove(&uid);
    });
}

/// Prove a starting Pod's runner ready: attach, ping with a fresh nonce, check the sealed
/// `ready` (served 0) under the Pod's own key; keep the session and only then mark the Pod
/// idle (with its resourceVersion as the precondition).
async fn probe(ctx: &Context, pod: &Pod) -> Result<(), String> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let key = sandbox::result_key(pod).ok_or("the Pod has no result key")?;
    let mut session = Session::open(ctx.client.clone(), &ns, &name).await.map_err(|e| e.to_string())?;
    let nonce = sandbox::new_result_key();
    let answer = session.ping(&nonce, PROBE_TIMEOUT).await.map_err(|e| e.to_string());
    let (served, mac) = match answer {
        Ok(Some(a)) => a,
        Ok(None) => {
            session.close();
            return Err("the runner closed the stream or is spoiled".into());
        }
        Err(e) => {
            session.close();
            return Err(e);
        }
    };
    if served != 0 || !serve::ready_verifies(&key, served, &nonce, &mac) {
        session.close();
        return Err(format!("a ready frame that does not verify (served {served})"));
    }
    ctx.sessions.put(&uid, session);
    lock(&ctx.opened).insert(uid.clone());
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let mut rv = pod.resource_version();
    for _ in 0..3 {
        let patch = json!({ "metadata": { "resourceVersion": rv, "labels": { STATE_LABEL: STATE_IDLE } } });
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            // The kubelet wrote the status since: still the same starting Pod?
            Err(kube::Error::Api(s)) if s.is_conflict() => match api.get_opt(&name).await {
                Ok(Some(p)) if p.uid().as_deref() == Some(&uid) && claim::state(&p) == STATE_STARTING => {
                    rv = p.resource_version();
                }
                _ => break,
            },
            Err(e) => {
                ctx.sessions.drop_pod(&uid);
                return Err(format!("marking the Pod idle: {e}"));
            }
        }
    }
    ctx.sessions.drop_pod(&uid);
    Err("the Pod changed while it was marked idle".into())
}

/// Requeue policy for failed reconciliations.
pub fn error_policy(pool: Arc<WarmPool>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(err.metric_label());
    if err.is_conflict() {
        Action::requeue(Duration::from_millis(300))
    } else {
        tracing::warn!(pool = %pool.name_any(), namespace = ?pool.namespace(), error = %err, "pool reconcile failed");
        Action::requeue(Duration::from_secs(2))
    }
}

/// Run the pool controller over `pools` (a reflector's trigger stream and its store) and
/// the pool Pods' watch stream, until `shutdown`. Watch errors (no CRD, no RBAC for
/// warmpools) are logged and retried with backoff; they never stop the operator.
pub async fn run(
    pool_stream: impl Stream<Item = std::result::Result<WarmPool, watcher::Error>> + Send + 'static,
    pools: Store<WarmPool>,
    pod_stream: impl Stream<Item = std::result::Result<Pod, watcher::Error>> + Send + 'static,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_stream(pool_stream, pools)
        .with_config(kc::Config::default().concurrency(4))
        .owns_stream(pod_stream)
        .reconcile_all_on(crate::shard::change_stream(ctx.shard.changes()))
        .graceful_shutdown_on(shutdown);
    let mut last_warn = Instant::now() - Duration::from_secs(3600);
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            if let Err(e) = r {
                if matches!(e, kc::Error::ReconcilerFailed(..)) {
                    // error_policy logged it (or it was a conflict, retried at once).
                    return futures::future::ready(());
                }
                // Not found / forbidden watches repeat with backoff: one warning a minute.
                if last_warn.elapsed() > Duration::from_secs(60) {
                    tracing::warn!(error = %e, "WarmPool controller (is the WarmPool CRD installed and allowed?)");
                    last_warn = Instant::now();
                } else {
                    tracing::debug!(error = %e, "WarmPool controller");
                }
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, state: PodState, stale: bool, age_s: u64) -> PodView {
        PodView {
            name: name.into(),
            uid: format!("uid-{name}"),
            resource_version: format!("rv-{name}"),
            state,
            stale,
            age: Duration::from_secs(age_s),
        }
    }
    const T: Duration = Duration::from_secs(120);
    const STARTING: PodState = PodState::Starting { running: false };
    const RUNNING: PodState = PodState::Starting { running: true };

    fn deleted(d: &Decision) -> Vec<&str> {
        d.delete.iter().map(|x| x.0.as_str()).collect()
    }

    #[test]
    fn refills_to_replicas_counting_every_live_pod() {
        let pods = [
            v("a", PodState::Idle, false, 5),
            v("b", PodState::Claimed, false, 5),
            v("c", STARTING, false, 1),
        ];
        assert_eq!(decide(5, &pods, T).create, 2);
        assert_eq!(decide(3, &pods, T), Decision::default());
        let d = decide(3, &[v("a", RUNNING, false, 1)], T);
        assert_eq!((d.create, d.probe.clone()), (2, vec!["a".to_string()]));
        // Dead and deleting Pods do not count; dead ones are deleted without a precondition
        // on their resourceVersion.
        let d = decide(2, &[v("a", PodState::Dead, false, 5), v("b", PodState::Deleting, false, 5)], T);
        assert_eq!(d.create, 2);
        assert_eq!(d.delete, vec![("a".into(), "uid-a".into(), None, "Failed")]);
    }

    #[test]
    fn scale_down_deletes_idle_first_and_never_a_claimed_pod() {
        let pods = [
            v("busy1", PodState::Claimed, false, 50),
            v("busy2", PodState::Claimed, false, 40),
            v("idle-old", PodState::Idle, false, 30),
            v("idle-new", PodState::Idle, false, 10),
            v("start", STARTING, false, 1),
        ];
        let d = decide(3, &pods, T);
        assert_eq!(deleted(&d), ["idle-old", "idle-new"]);
        assert_eq!(d.delete[0].2.as_deref(), Some("rv-idle-old"), "the resourceVersion precondition");
        let d = decide(0, &pods, T);
        assert_eq!(deleted(&d), ["idle-old", "idle-new", "start"]);
        assert_eq!(d.create, 0);
    }

    #[test]
    fn stale_pods_roll_one_at_a_time_after_a_ready_replacement() {
        // Three stale idle Pods: one surplus Pod is started.
        let stale = |n: &str, age| v(n, PodState::Idle, true, age);
        let d = decide(3, &[stale("a", 30), stale("b", 20), stale("c", 10)], T);
        assert_eq!((d.create, d.delete.len()), (1, 0));
        // While it starts nothing is deleted and nothing more is created.
        let d = decide(3, &[stale("a", 30), stale("b", 20), stale("c", 10), v("n1", RUNNING, false, 1)], T);
        assert_eq!((d.create, d.delete.len()), (0, 0));
        // Ready: the oldest stale Pod goes, and the next replacement starts.
        let d = decide(
            3,
            &[stale("a", 30), stale("b", 20), stale("c", 10), v("n1", PodState::Idle, false, 2)],
            T,
        );
        assert_eq!(deleted(&d), ["a"]);
        assert_eq!(d.create, 1);
        // A stale claimed Pod is left alone (release deletes it).
        let d = decide(1, &[v("a", PodState::Claimed, true, 30)], T);
        assert_eq!(d, Decision::default());
    }

    #[test]
    fn creates_and_deletes_the_cache_has_not_shown_are_not_done_twice() {
        let mut ex = Expected::default();
        ex.created.insert("new".into(), Instant::now());
        ex.deleted.insert("uid-old".into(), Instant::now());
        let mut views = vec![v("old", PodState::Idle, false, 30), v("a", PodState::Idle, false, 5)];
        expect(&mut ex, &mut views);
        // 2 replicas: "a" and the created one; "old" is going away. Nothing to do.
        let d = decide(2, &views, T);
        assert_eq!((d.create, d.delete.len()), (0, 0), "{d:?}");
        // Scaling down to 1 never deletes the unseen one by name (it has no uid yet).
        let d = decide(1, &views, T);
        assert!(d.delete.iter().all(|x| !x.1.is_empty()), "{d:?}");
        // The cache catches up: the created Pod is seen, the deleted one is being deleted.
        let mut views = vec![
            v("old", PodState::Deleting, false, 30),
            v("a", PodState::Idle, false, 5),
            v("new", RUNNING, false, 1),
        ];
        expect(&mut ex, &mut views);
        assert!(ex.created.is_empty() && ex.deleted.is_empty());
        assert_eq!(views.len(), 3);
        assert_eq!(decide(2, &views, T).create, 0);
    }

    #[test]
    fn pods_are_seen_in_their_states() {
        let pool: WarmPool = serde_yaml::from_str(
            "{apiVersion: rce.dev/v1alpha1, kind: WarmPool, metadata: {name: py, namespace: a, uid: u}, spec: {runtime: python, replicas: 1, maxAge: 10m}}",
        )
        .unwrap();
        let pod = |labels: serde_json::Value, status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "py-x", "uid": "x", "labels": labels,
                             "annotations": {IMAGE_ANNOTATION: "img:1"},
                             "creationTimestamp": rfc3339(Utc::now())},
                "status": status,
            }))
            .unwrap()
        };
        let running = serde_json::json!({"phase": "Running", "containerStatuses": [{"name": "runner", "ready": true,
            "restartCount": 0, "image": "img:1", "imageID": "", "state": {"running": {}}}]});
        let state = |labels, status| view(&pod(labels, status), &pool, "img:1").state;
        assert_eq!(
            state(json!({STATE_LABEL: STATE_STARTING}), running.clone()),
            PodState::Starting { running: true }
        );
        assert_eq!(state(json!({STATE_LABEL: STATE_IDLE}), running.clone()), PodState::Idle);
        assert_eq!(state(json!({STATE_LABEL: STATE_CLAIMED}), json!({"phase": "Failed"})), PodState::Claimed);
        assert_eq!(state(json!({STATE_LABEL: STATE_IDLE}), json!({"phase": "Failed"})), PodState::Dead);
        let no_image = json!({"phase": "Pending", "containerStatuses": [{"name": "runner", "ready": false,
            "restartCount": 0, "image": "img:1", "imageID": "", "state": {"waiting": {"reason": "ErrImageNeverPull"}}}]});
        assert_eq!(state(json!({STATE_LABEL: STATE_STARTING}), no_image), PodState::Dead);
        assert!(!view(&pod(json!({STATE_LABEL: STATE_IDLE}), running.clone()), &pool, "img:1").stale);
        assert!(
            view(&pod(json!({STATE_LABEL: STATE_IDLE}), running), &pool, "img:2").stale,
            "an older image"
        );
    }

    #[test]
    fn a_pod_that_never_starts_is_replaced() {
        let d = decide(1, &[v("a", STARTING, false, 121)], T);
        assert_eq!(d.timed_out, ["a"]);
        assert_eq!(deleted(&d), ["a"]);
        assert_eq!(d.create, 1);
    }

    #[test]
    fn an_invalid_pool_says_why() {
        use crate::validate::tests::{runtime, PYTHON};
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let pool: WarmPool = serde_yaml::from_str(
            "{apiVersion: rce.dev/v1alpha1, kind: WarmPool, metadata: {name: p, namespace: a}, spec: {runtime: python, replicas: 1, limits: {memoryMiB: 600}}}",
        )
        .unwrap();
        assert_eq!(shape(&pool, &rt, &s).unwrap_err().0, "limits.memoryMiB = 600 exceeds the maximum of 512");
        let mut p = pool.clone();
        p.spec.limits = Default::default();
        p.spec.max_age = Some("soon".into());
        assert!(shape(&p, &rt, &s).unwrap_err().0.starts_with("spec.maxAge: invalid duration"));
        p.spec.max_age = None;
        p.spec.reuse = Some(rce_api::warmpool::Reuse { max_runs: 0 });
        assert!(shape(&p, &rt, &s).unwrap_err().0.contains("maxRuns = 0"));
        p.spec.reuse = None;
        assert_eq!(shape(&p, &rt, &s).unwrap().limits.memory_mib, 128, "the Runtime's defaults");
    }
}
