//! The Execution controller: reconcile as steps (fetch → validate → build → apply → status).
//! Only this module talks to the cluster; everything it decides comes from the pure modules.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
        finalizer::{finalizer, Event as Finalizer},
        reflector::{ObjectRef, Store},
    },
    Client, Resource, ResourceExt,
};
use rce_api::protocol::{ResultError, ResultLine};
use rce_api::{redis_keys::StatusDocument, Execution, ExecutionStatus, Phase, Runtime};
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    attempt::{self, How, Locked},
    capacity::{self, Ask},
    claim,
    config::{Config, SandboxSettings},
    decide::{self, RUNNING_RECHECK},
    error::{Error, Result},
    metrics::{Metrics, PhaseVerdict},
    mirror::Mirror,
    names, outcome, outputs,
    queue::{self, Decision, Entry, Key, Limits, Overrides, Slot},
    sandbox::{self, MANAGER},
    status::{self, Expiry, FailReason},
    validate::{self, Invalid, Plan},
    warm,
};

/// The finalizer that removes an Execution's Redis key when it is deleted.
pub use rce_api::FINALIZER;

/// A warm run still going after this long is shown `Processing`; a shorter one goes from no
/// status straight to its verdict.
const SHOW_PROCESSING_AFTER: Duration = Duration::from_millis(200);
/// How often a waiting Execution looks again on its own (slots freed by this operator wake
/// the next ones at once; this catches the rest).
const PENDING_RECHECK: Duration = Duration::from_secs(2);
/// Longest wait for a sandbox's log (tens of MiB at the largest outputs; the local API
/// server streams that in well under a second).
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub settings: SandboxSettings,
    pub namespaces: Vec<String>,
    pub executions: Store<Execution>,
    pub runtimes: Store<Runtime>,
    pub pods: Store<Pod>,
    /// WarmPools (filled by the pool controller, [`crate::pool`]).
    pub pools: Store<rce_api::WarmPool>,
    /// Open attach sessions with serving runners, by Pod uid.
    pub sessions: Arc<crate::attach::Sessions>,
    /// Warm pools and claims (absent: every Execution runs cold).
    pub warm: Option<Arc<claim::Warm>>,
    /// Live output to Redis (absent: none).
    pub live: Option<crate::live::Live>,
    /// Executions whose warm run this operator recorded lately (uid → when): a reconcile of
    /// an older copy of one must not claim a Pod for it again.
    warm_recorded: Mutex<HashMap<String, std::time::Instant>>,
    /// Executions this operator started cold lately (uid → when): a reconcile of an older,
    /// still Pending copy of one must not run it warm as well.
    cold_started: Mutex<HashMap<String, std::time::Instant>>,
    /// Executions that fitted a pool but found no Pod to claim (uid → the pool): a miss is
    /// counted when one of them starts cold, not at every look.
    missed: Mutex<HashMap<String, Arc<rce_api::WarmPool>>>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub mirror: Mirror,
    overrides: Mutex<Overrides>,
    wake: UnboundedSender<ObjectRef<Execution>>,
    policies: Mutex<HashSet<String>>,
    callbacks: crate::callback::Callbacks,
    /// Which Executions are this replica's (all of them for a lone process).
    pub shard: crate::shard::Shard,
    /// Cluster-wide capacity from the nodes (absent: only `--max-running` bounds it).
    pub capacity: Option<crate::capacity::Capacity>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        config: Config,
        executions: Store<Execution>,
        runtimes: Store<Runtime>,
        pods: Store<Pod>,
        pools: Store<rce_api::WarmPool>,
        sessions: Arc<crate::attach::Sessions>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        mirror: Mirror,
        wake: UnboundedSender<ObjectRef<Execution>>,
        callbacks: crate::callback::Callbacks,
    ) -> Self {
        Context {
            client,
            settings: config.sandbox(),
            namespaces: config.watched_namespaces(),
            config,
            executions,
            runtimes,
            pods,
            pools,
            sessions,
            warm: None,
            live: None,
            warm_recorded: Mutex::default(),
            cold_started: Mutex::default(),
            missed: Mutex::default(),
            recorder,
            metrics,
            mirror,
            overrides: Mutex::default(),
            wake,
            policies: Mutex::default(),
            callbacks,
            shard: crate::shard::Shard::solo("operator"),
            capacity: None,
        }
    }

    pub fn with_shard(mut self, shard: crate::shard::Shard) -> Self {
        self.shard = shard;
        self
    }

    pub fn with_capacity(mut self, capacity: crate::capacity::Capacity) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Is `exec` this replica's to reconcile?
    pub fn owns(&self, exec: &Execution) -> bool {
        self.shard.owns(exec.metadata.uid.as_deref().unwrap_or_default())
    }

    /// What a sandbox of default size asks of a node (for waking the queue; admission
    /// uses each Execution's own).
    fn default_ask(&self) -> Ask {
        let s = &self.settings;
        let mib =
            rce_api::ResolvedLimits::DEFAULT.memory_mib + s.work_mib + s.tmp_mib + s.runner_overhead_mib;
        Ask {
            cpu_milli: capacity::quantity(&s.cpu_request, true).unwrap_or(0),
            memory: u128::from(mib) * 1024 * 1024,
        }
    }

    /// The limits of the queue now, for sandboxes of `ask`.
    fn limits(&self, entries: &[Entry], ask: &Ask) -> Limits {
        let mut cap = match &self.capacity {
            Some(c) => queue::running(entries).saturating_add(c.free(ask)),
            None => usize::MAX,
        };
        if self.config.max_running > 0 {
            cap = cap.min(self.config.max_running);
        }
        Limits { capacity: cap, per_namespace: self.config.namespace_max_running }
    }

    /// The nodes sandboxes must stay off now.
    fn lost_nodes(&self) -> Vec<String> {
        self.capacity.as_ref().map(|c| c.lost().into_iter().map(|(n, _)| n).collect()).unwrap_or_default()
    }

    /// With warm pools.
    pub fn with_warm(mut self, warm: Arc<claim::Warm>) -> Self {
        self.warm = Some(warm);
        self
    }

    /// With live output.
    pub fn with_live(mut self, live: crate::live::Live) -> Self {
        self.live = Some(live);
        self
    }

    fn warm_done(&self, uid: &str) {
        let mut m = self.warm_recorded.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        m.retain(|_, t| now.duration_since(*t) < Duration::from_secs(120));
        m.insert(uid.to_string(), now);
    }

    fn warm_finished(&self, uid: &str) -> bool {
        self.warm_recorded.lock().unwrap_or_else(|p| p.into_inner()).contains_key(uid)
    }

    fn cold_start(&self, uid: &str) {
        let mut m = self.cold_started.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        m.retain(|_, t| now.duration_since(*t) < Duration::from_secs(600));
        m.insert(uid.to_string(), now);
        let missed = self.missed.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
        if let (Some(pool), Some(warm)) = (missed, &self.warm) {
            warm.count_miss(&pool);
        }
    }

    fn started_cold(&self, uid: &str) -> bool {
        self.cold_started.lock().unwrap_or_else(|p| p.into_inner()).contains_key(uid)
    }

    fn note_miss(&self, uid: &str, pool: Arc<rce_api::WarmPool>) {
        let mut m = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(uid.to_string(), pool);
    }

    /// Is `namespace` one the operator is configured to serve?
    pub fn watches(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    fn overrides(&self) -> std::sync::MutexGuard<'_, Overrides> {
        self.overrides.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every served Execution as the queue sees it (from the store).
    fn entries(&self) -> Vec<Entry> {
        self.executions
            .state()
            .iter()
            .filter(|e| self.watches(e.namespace().as_deref().unwrap_or_default()))
            .map(|e| Entry {
                key: key_of(e),
                created: queue::submitted_key(
                    e.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).as_deref(),
                    e.annotations().get(rce_api::queue::SUBMITTED_ANNOTATION).map(String::as_str),
                ),
                slot: slot_of(e),
            })
            .collect()
    }

    /// Ask for a slot; on `Admit` the slot is reserved until [`Context::release`] or
    /// [`Context::done`].
    fn admit(&self, key: &Key, ask: &Ask) -> Decision {
        let entries = self.entries();
        let mut o = self.overrides();
        let merged = o.merge(entries);
        let limits = self.limits(&merged, ask);
        let d = queue::decide(&merged, &limits, key);
        if d == Decision::Admit {
            o.set(key.clone(), Slot::Running);
        }
        d
    }

    /// Take a slot for a sandbox that already exists, whatever the queue says.
    fn adopt(&self, key: &Key) -> Decision {
        self.overrides().set(key.clone(), Slot::Running);
        Decision::Admit
    }

    /// Give back a reserved slot that was not used.
    fn release(&self, key: &Key) {
        self.overrides().clear(key);
        self.wake_next();
    }

    /// The Execution has finished: its slot is free.
    fn done(&self, key: &Key) {
        self.overrides().set(key.clone(), Slot::Done);
        self.wake_next();
    }

    /// Reconcile the waiting Executions that may start now.
    fn wake_next(&self) {
        let entries = self.entries();
        let merged = self.overrides().merge(entries);
        let limits = self.limits(&merged, &self.default_ask());
        for k in queue::startable(&merged, &limits) {
            let _ = self.wake.send(ObjectRef::new(&k.name).within(&k.namespace));
        }
    }

    /// Refresh the gauges from the store (every few seconds).
    pub fn refresh_gauges(&self) {
        let all = self.executions.state();
        let mut counts: std::collections::HashMap<PhaseVerdict, i64> = Default::default();
        let (mut waiting, mut running) = (0, 0);
        for e in all.iter().filter(|e| self.watches(e.namespace().as_deref().unwrap_or_default())) {
            let st = e.status.clone().unwrap_or_default();
            let phase = st.phase.unwrap_or(Phase::Pending);
            match phase {
                Phase::Pending => waiting += 1,
                Phase::Processing => running += 1,
                _ => {}
            }
            let label = PhaseVerdict {
                phase: phase.as_str().to_string(),
                verdict: st.verdict.map(|v| v.as_str()).unwrap_or("").to_string(),
            };
            *counts.entry(label).or_default() += 1;
        }
        self.metrics.executions.clear();
        for (label, n) in counts {
            self.metrics.executions.get_or_create(&label).set(n);
        }
        self.metrics.queue_depth.set(waiting);
        self.metrics.running.set(running);
        self.metrics.beat();
        // The cluster-wide capacity for the shim (back-pressure, queue positions).
        let entries = self.overrides().merge(self.entries());
        let limits = self.limits(&entries, &self.default_ask());
        let doc = serde_json::json!({
            "capacity": (limits.capacity != usize::MAX).then_some(limits.capacity),
            "perNamespace": limits.per_namespace,
            "running": queue::running(&entries),
            "waiting": entries.iter().filter(|e| e.slot == Slot::Waiting).count(),
            "members": self.shard.members().live,
            "at": now(),
        });
        self.mirror.capacity(doc.to_string());
    }

    fn runtimes_cached(&self) -> Vec<Arc<Runtime>> {
        self.runtimes.state()
    }

    /// Find the Runtime for `language`; the cache may lag behind a Runtime applied just
    /// before the Execution, so an unknown language is checked against the API.
    async fn runtime_for(&self, language: &str) -> Result<Result<Arc<Runtime>, Invalid>> {
        if let Some(r) = validate::find_runtime(&self.runtimes_cached(), language) {
            return Ok(Ok(r.clone()));
        }
        let fresh = Api::<Runtime>::all(self.client.clone()).list(&ListParams::default()).await?.items;
        Ok(match validate::find_runtime(&fresh, language) {
            Some(r) => Ok(Arc::new(r.clone())),
            None => Err(validate::unknown_language(language, &fresh)),
        })
    }

    /// The Execution's Runtime and its validated plan, or why it is invalid. Reads no test
    /// data ([`Plan::test_data`]): a queued Execution is planned at every reconcile.
    async fn plan_for(&self, exec: &Execution) -> Result<Result<(Arc<Runtime>, Plan), Invalid>> {
        let runtime = match self.runtime_for(&exec.spec.language).await? {
            Ok(r) => r,
            Err(invalid) => return Ok(Err(invalid)),
        };
        Ok(validate::plan(&exec.spec, &runtime, &self.settings).map(|plan| (runtime, plan)))
    }

    /// The request of run `run_id` of `exec`, as a serving sandbox is sent it: `plan`'s, or,
    /// when its test cases take data from ConfigMaps, planned again with that data read in
    /// (and checked again: its size). Called once a run is about to be sent.
    async fn request_for(
        &self,
        exec: &Execution,
        plan: &Plan,
        run_id: &str,
    ) -> Result<Result<rce_api::protocol::RunRequest, Invalid>> {
        let mut request = if plan.test_data {
            let spec = match self.test_data(exec).await? {
                Ok(spec) => spec,
                Err(invalid) => return Ok(Err(invalid)),
            };
            let runtime = match self.runtime_for(&spec.language).await? {
                Ok(r) => r,
                Err(invalid) => return Ok(Err(invalid)),
            };
            match validate::plan(&spec, &runtime, &self.settings) {
                Ok(p) => p.request,
                Err(invalid) => return Ok(Err(invalid)),
            }
        } else {
            plan.request.clone()
        };
        request.run_id = run_id.to_string();
        Ok(Ok(request))
    }

    /// [`Self::plan_for`] then [`Self::request_for`]: the request of run `run_id`.
    async fn plan_and_request(
        &self,
        exec: &Execution,
        run_id: &str,
    ) -> Result<Result<rce_api::protocol::RunRequest, Invalid>> {
        match self.plan_for(exec).await? {
            Ok((_, plan)) => self.request_for(exec, &plan, run_id).await,
            Err(invalid) => Ok(Err(invalid)),
        }
    }

    /// The spec with every test case's data from a ConfigMap (`stdinFrom`,
    /// `expectedOutputFrom`) read into it. A ConfigMap or key that is not there: while the
    /// Execution is younger than [`TEST_DATA_WAIT`] it may be on its way (the shim creates
    /// them right after the Execution), an error that requeues; then `Invalid`.
    async fn test_data<'a>(
        &self,
        exec: &'a Execution,
    ) -> Result<Result<std::borrow::Cow<'a, rce_api::ExecutionSpec>, Invalid>> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let refers = |t: &rce_api::TestCase| t.stdin_from.is_some() || t.expected_output_from.is_some();
        if !exec.spec.tests.iter().flatten().any(refers) {
            return Ok(Ok(std::borrow::Cow::Borrowed(&exec.spec)));
        }
        let ns = exec.namespace().unwrap_or_default();
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), &ns);
        let mut maps: HashMap<String, Option<ConfigMap>> = HashMap::new();
        let mut spec = exec.spec.clone();
        let young = age_ms(exec.metadata.creation_timestamp.as_ref()) < TEST_DATA_WAIT.as_millis() as i64;
        for (i, t) in spec.tests.iter_mut().flatten().enumerate() {
            for (from, into, what) in [
                (t.stdin_from.take(), &mut t.stdin, "stdinFrom"),
                (t.expected_output_from.take(), &mut t.expected_output, "expectedOutputFrom"),
            ] {
                let Some(r) = from else { continue };
                if !maps.contains_key(&r.config_map) {
                    maps.insert(r.config_map.clone(), api.get_opt(&r.config_map).await?);
                }
                let cm = maps.get(&r.config_map).and_then(Option::as_ref);
                let value = cm.and_then(|cm| {
                    cm.data.as_ref().and_then(|d| d.get(&r.key).cloned()).or_else(|| {
                        cm.binary_data
                            .as_ref()
                            .and_then(|b| b.get(&r.key))
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    })
                });
                match value {
                    Some(v) => *into = Some(v),
                    None if young => {
                        return Err(Error::TestDataPending(format!(
                            "tests[{i}].{what}: {}/{}",
                            r.config_map, r.key
                        )))
                    }
                    None => {
                        return Ok(Err(Invalid(format!(
                            "tests[{i}].{what}: {} {:?} of namespace {ns} {}",
                            if cm.is_some() { "the key" } else { "the ConfigMap" },
                            if cm.is_some() { &r.key } else { &r.config_map },
                            if cm.is_some() {
                                format!("is not in ConfigMap {:?}", r.config_map)
                            } else {
                                "does not exist".into()
                            }
                        ))))
                    }
                }
            }
        }
        Ok(Ok(std::borrow::Cow::Owned(spec)))
    }

    /// Make sure the deny-all NetworkPolicy exists in `namespace` (once per process).
    async fn ensure_network_policy(&self, namespace: &str) -> Result<()> {
        crate::pool::ensure_network_policy(&self.client, &self.policies, namespace).await
    }

    async fn event(&self, e: &Execution, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(outcome::cap_text(&note, 1000).0),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&ev, &e.object_ref(&())).await {
            tracing::debug!(error = %err, "could not publish an event");
        }
    }
}

fn key_of(e: &Execution) -> Key {
    Key { namespace: e.namespace().unwrap_or_default(), name: e.name_any() }
}

fn slot_of(e: &Execution) -> Slot {
    if e.metadata.deletion_timestamp.is_some() {
        return Slot::Done;
    }
    match e.status.as_ref().and_then(|s| s.phase) {
        None | Some(Phase::Pending) => Slot::Waiting,
        Some(Phase::Processing) => Slot::Running,
        Some(_) => Slot::Done,
    }
}

/// The Redis document of an Execution.
pub fn document(e: &Execution) -> StatusDocument {
    StatusDocument {
        namespace: e.namespace().unwrap_or_default(),
        name: e.name_any(),
        uid: e.uid().unwrap_or_default(),
        language: e.spec.language.clone(),
        status: e.status.clone().unwrap_or_default(),
    }
}

fn now() -> String {
    status::rfc3339(Utc::now())
}

/// Milliseconds since a Kubernetes timestamp.
fn age_ms(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    t.map_or(0, |t| now - t.0.as_millisecond())
}

/// Entry point of every reconciliation.
pub async fn reconcile(exec: Arc<Execution>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciliations.inc();
    let ns = exec.namespace().unwrap_or_default();
    if !ctx.watches(&ns) {
        return Ok(Action::await_change());
    }
    // Another replica's share: it reconciles it (a membership change wakes every
    // Execution, so a new owner picks up its share at once).
    if !ctx.owns(&exec) {
        return Ok(Action::await_change());
    }
    let _ = ctx.executions.wait_until_ready().await;
    tracing::trace!(execution = %exec.name_any(), phase = ?exec.status.as_ref().and_then(|s| s.phase), "reconcile");
    let api = Api::<Execution>::namespaced(ctx.client.clone(), &ns);
    // The finalizer is added here and the reconcile goes on with the patched object (kube's
    // helper would return and wait for the patch's watch event: a round trip of tens of
    // milliseconds before every new Execution's first real step). The shim creates
    // Executions with it already set.
    let exec = match add_finalizer(&api, exec).await {
        Ok(e) => e,
        Err(e) => return Err(e),
    };
    finalizer(&api, FINALIZER, exec, |event| async {
        match event {
            Finalizer::Apply(e) => apply(&e, &ctx).await,
            Finalizer::Cleanup(e) => cleanup(&e, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// `exec` with the finalizer: as it is when it has it (or is being deleted), else patched
/// (a JSON patch that tests the finalizer list it read, so a concurrent change conflicts).
async fn add_finalizer(api: &Api<Execution>, exec: Arc<Execution>) -> Result<Arc<Execution>> {
    if exec.metadata.deletion_timestamp.is_some() || exec.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(exec);
    }
    let patch = match exec.metadata.finalizers.as_ref() {
        None => serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ]),
        Some(list) => serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": list },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ]),
    };
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    let patched = api.patch(&exec.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    Ok(Arc::new(patched))
}

/// Requeue policy for failed reconciliations: conflicts (an outdated copy) soon, the rest
/// after a short pause. Invalid Executions never get here: they end `Failed`.
pub fn error_policy(exec: Arc<Execution>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(err.metric_label());
    if err.is_conflict() {
        tracing::debug!(execution = %exec.name_any(), "conflict; retrying");
        Action::requeue(Duration::from_millis(300))
    } else {
        tracing::warn!(execution = %exec.name_any(), namespace = ?exec.namespace(), error = %err, "reconcile failed");
        Action::requeue(Duration::from_secs(2))
    }
}

async fn apply(exec: &Execution, ctx: &Context) -> Result<Action> {
    // The mirror skips documents Redis already has, so this is how a restarted operator
    // re-mirrors every Execution, and how a missed write is caught up.
    ctx.mirror.update(&document(exec));
    match exec.status.as_ref().and_then(|s| s.phase) {
        Some(p) if p.is_terminal() => finished(exec, ctx).await,
        Some(Phase::Processing) => processing(exec, ctx).await,
        _ => pending(exec, ctx).await,
    }
}

/// The finalizer's cleanup: forget the Execution in Redis and free its slot.
async fn cleanup(exec: &Execution, ctx: &Context) -> Result<Action> {
    let k = key_of(exec);
    ctx.mirror.remove(&k.namespace, &k.name);
    ctx.callbacks.forget(exec);
    ctx.done(&k);
    Ok(Action::await_change())
}

/// Write `next` as the status of `exec` (server-side apply, guarded by the resourceVersion
/// `exec` was read at), mirror it, and return the updated object.
async fn write_status(exec: &Execution, next: ExecutionStatus, ctx: &Context) -> Result<Execution> {
    if exec.status.as_ref() == Some(&next) {
        return Ok(exec.clone());
    }
    let api = Api::<Execution>::namespaced(ctx.client.clone(), &exec.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "Execution",
        "metadata": { "resourceVersion": exec.resource_version() },
        "status": next,
    });
    // The API server reads an apply patch as YAML, which refuses some characters that JSON
    // carries raw (DEL, C1 controls, U+FFFE/U+FFFF): send them escaped.
    let body =
        serde_json::value::RawValue::from_string(status::yaml_safe_json(&serde_json::to_string(&patch)?))?;
    let updated = api
        .patch_status(&exec.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
        .await?;
    ctx.mirror.update(&document(&updated));
    Ok(updated)
}

/// Read the Execution again from the API (the cache may be behind the operator's own writes).
async fn fetch(exec: &Execution, ctx: &Context) -> Result<Option<Execution>> {
    let api = Api::<Execution>::namespaced(ctx.client.clone(), &exec.namespace().unwrap_or_default());
    Ok(api.get_opt(&exec.name_any()).await?.filter(|e| e.uid() == exec.uid()))
}

/// Validate; plan; report Pending; start when a slot is free.
async fn pending(exec: &Execution, ctx: &Context) -> Result<Action> {
    let (runtime, plan) = match ctx.plan_for(exec).await? {
        Ok(rp) => rp,
        Err(invalid) => return fail(exec, FailReason::Invalid, &invalid.0, ctx).await,
    };
    // A warm Pod, when a pool fits: no Pending status, no slot, no new Pod.
    if let Some(action) = try_warm(exec, &runtime, &plan, ctx).await? {
        return Ok(action);
    }
    let k = key_of(exec);
    // A sandbox created just before a restart (its status not yet written) already holds a
    // slot: adopt it whatever the queue says.
    let first_pod = names::pod_name(&exec.name_any(), &exec.uid().unwrap_or_default(), 1);
    let orphan =
        ctx.pods.get(&ObjectRef::new(&first_pod).within(&k.namespace)).is_some_and(|p| owned_by(&p, exec));
    let sizes = sandbox::sizes(&plan, &runtime, &ctx.settings);
    let ask = Ask {
        cpu_milli: capacity::quantity(&ctx.settings.cpu_request, true).unwrap_or(0),
        memory: u128::from(sizes.memory_mib) * 1024 * 1024,
    };
    let decision = if orphan { ctx.adopt(&k) } else { ctx.admit(&k, &ask) };
    // Why it waits, in words that change only when the reason does (a position would
    // rewrite every waiting status at every start; the shim reports positions on request).
    let why = match decision {
        Decision::Wait { why: queue::Wait::NamespaceShare, .. } => format!(
            "waiting for its namespace's share: at most {} sandboxes run at once in namespace {}",
            ctx.config.namespace_max_running, k.namespace
        ),
        _ if ctx.config.max_running > 0 && ctx.capacity.is_none() => {
            format!("waiting for a free sandbox slot (at most {} run at once)", ctx.config.max_running)
        }
        _ => "waiting for cluster capacity: every sandbox the schedulable nodes' allocatable CPU, memory and Pods allow (or the global cap) is running; admitted in submission order, fairly across namespaces".to_string(),
    };
    let old = exec.status.clone().unwrap_or_default();
    let created = exec.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
    let next = status::pending(&old, created.as_deref(), exec.metadata.generation, &why, &now());
    let exec = match write_status(exec, next, ctx).await {
        Ok(e) => e,
        Err(e) => {
            if decision == Decision::Admit {
                ctx.release(&k);
            }
            return Err(e);
        }
    };
    match decision {
        Decision::Wait { position, running, .. } => {
            tracing::debug!(execution = %k.name, position, running, "waiting for a sandbox slot");
            return Ok(Action::requeue(PENDING_RECHECK));
        }
        Decision::Admit => {}
    }
    let started = async {
        // Never start a sandbox from an outdated copy: it may have finished already.
        let Some(fresh) = fetch(&exec, ctx).await? else { return Ok(None) };
        if !matches!(fresh.status.as_ref().and_then(|s| s.phase), None | Some(Phase::Pending)) {
            return Ok(None);
        }
        start(&fresh, &plan, &runtime, 1, None, ctx).await.map(Some)
    }
    .await;
    match started {
        Ok(Some(action)) => Ok(action),
        Ok(None) => {
            ctx.release(&k);
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(e) => {
            ctx.release(&k);
            Err(e)
        }
    }
}

/// Does `pod` belong to `exec` (and not to an earlier Execution of the same name)? Its
/// controlling owner is `exec`.
fn owned_by(pod: &Pod, exec: &Execution) -> bool {
    let uid = exec.uid();
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true) && o.kind == "Execution")
}

/// How long a missing test-data ConfigMap is waited for after the Execution's creation.
const TEST_DATA_WAIT: Duration = Duration::from_secs(30);

/// Does `exec` run in a serving sandbox (the request over attach): an interactive one, or
/// one with test cases.
fn serves(exec: &Execution) -> bool {
    exec.spec.interactive || exec.spec.tests.is_some()
}

/// Create (or adopt) the sandbox Pod of `attempt` and record it: phase Processing.
async fn start(
    exec: &Execution,
    plan: &Plan,
    runtime: &Runtime,
    attempt: u32,
    message: Option<String>,
    ctx: &Context,
) -> Result<Action> {
    let ns = exec.namespace().unwrap_or_default();
    ctx.ensure_network_policy(&ns).await?;
    // The attempt's lock first: whichever replica takes it decides how the attempt runs.
    match attempt::take(&ctx.client, exec, attempt, How::Cold, &ctx.shard.identity).await? {
        // Cold: the sandbox of this attempt's name, created here or by the lock's holder
        // (one create succeeds; the other adopts it).
        Locked::Mine | Locked::Taken { how: How::Cold, .. } => {}
        Locked::Taken { how: How::Warm { pod }, by } => {
            let uid = exec.uid().unwrap_or_default();
            let alive =
                Api::<Pod>::namespaced(ctx.client.clone(), &ns).get_opt(&pod).await?.is_some_and(|p| {
                    p.labels().get(rce_api::warmpool::CLAIMED_BY_LABEL) == Some(&uid)
                        && p.metadata.deletion_timestamp.is_none()
                });
            if alive {
                // Runs warm (this Execution's claim is followed where it is found).
                tracing::debug!(execution = %exec.name_any(), attempt, %pod, %by, "attempt runs warm elsewhere; following");
                return Ok(Action::requeue(Duration::from_millis(300)));
            }
            let msg =
                format!("the warm sandbox {pod} of attempt {attempt} is gone before a result; retrying");
            return Box::pin(start(exec, plan, runtime, attempt + 1, Some(msg), ctx)).await;
        }
        Locked::Foreign => {
            let msg = format!(
                "a ConfigMap named {} already exists in namespace {ns} and is not this Execution's attempt lock; \
                 it was left alone and the Execution did not run",
                attempt::lock_name(exec, attempt)
            );
            return fail(exec, FailReason::SandboxNameTaken, &msg, ctx).await;
        }
    }
    let key = sandbox::new_result_key();
    let mut pod = if serves(exec) {
        // Its stdin comes while it runs, or its test cases are not for an annotation (nor for
        // the program to read): a runner that serves the request over attach.
        sandbox::build_serving_pod(exec, attempt, plan, runtime, &ctx.settings, &key)
    } else {
        sandbox::build_pod(exec, attempt, plan, runtime, &ctx.settings, &key)
    };
    capacity::avoid(&mut pod, &ctx.lost_nodes());
    let pod_name = pod.name_any();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let created = match pods.create(&pp, &pod).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.is_already_exists() => match pods.get_opt(&pod_name).await? {
            Some(p) if owned_by(&p, exec) => false,
            // Someone else's Pod holds the name: never touch it.
            Some(_) => {
                let msg = format!(
                    "a Pod named {pod_name} already exists in namespace {ns} and is not this Execution's sandbox; \
                     it was left alone and the Execution did not run"
                );
                return fail(exec, FailReason::SandboxNameTaken, &msg, ctx).await;
            }
            // Gone again since the create: try once more on the next reconcile.
            None => return Err(Error::ForeignPod(pod_name)),
        },
        Err(e) => return Err(e.into()),
    };
    ctx.cold_start(&exec.uid().unwrap_or_default());
    let old = exec.status.clone().unwrap_or_default();
    let mut next = status::processing(&old, &pod_name, attempt, message, &now());
    // A cold sandbox (after a warm one was lost, say).
    next.warm_pool = None;
    let exec = write_status(exec, next, ctx).await?;
    if created {
        tracing::info!(execution = %exec.name_any(), namespace = %ns, pod = %pod_name, attempt, "sandbox created");
        ctx.event(
            &exec,
            EventType::Normal,
            "SandboxCreated",
            format!("sandbox Pod {pod_name} created (attempt {attempt})"),
        )
        .await;
    } else {
        tracing::info!(execution = %exec.name_any(), pod = %pod_name, attempt, "adopted existing sandbox");
    }
    Ok(Action::requeue(RUNNING_RECHECK))
}

/// Follow the sandbox Pod of a Processing Execution.
async fn processing(exec: &Execution, ctx: &Context) -> Result<Action> {
    // The usual case reads nothing from the API: the Pod is in the cache and alive. Before
    // anything drastic (a missing or deleted Pod means a retry), both objects are read
    // again from the API, since the caches may be behind the operator's own writes.
    let cached = exec.status.as_ref().and_then(|s| s.pod_name.clone()).and_then(|name| {
        ctx.pods
            .get(&ObjectRef::new(&name).within(&exec.namespace().unwrap_or_default()))
            .filter(|p| owned_by(p, exec) && p.metadata.deletion_timestamp.is_none())
    });
    let (exec, pod) = match cached {
        Some(p) => (exec.clone(), Some(Pod::clone(&p))),
        None => {
            let Some(fresh) = fetch(exec, ctx).await? else { return Ok(Action::await_change()) };
            (fresh, None)
        }
    };
    let st = exec.status.clone().unwrap_or_default();
    if st.phase != Some(Phase::Processing) {
        // The cache was behind; the newer state is on its way.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if st.warm_pool.is_some() {
        return warm_processing(&exec, ctx).await;
    }
    let ns = exec.namespace().unwrap_or_default();
    let attempt = st.attempts.unwrap_or(1);
    let pod_name = st
        .pod_name
        .clone()
        .unwrap_or_else(|| names::pod_name(&exec.name_any(), &exec.uid().unwrap_or_default(), attempt));
    let since_start = chrono::DateTime::parse_from_rfc3339(st.started_at.as_deref().unwrap_or_default())
        .ok()
        .and_then(|started| Utc::now().signed_duration_since(started.with_timezone(&Utc)).to_std().ok());
    let timeouts = decide::Timeouts::of(&ctx.config);
    let facts = pod.as_ref().map(pod_facts);
    let sandbox = match &facts {
        Some(f) => decide::Sandbox::Cached(f),
        None => decide::Sandbox::NotCached,
    };
    let mut pod = pod;
    let mut decision = decide::processing(sandbox, since_start, attempt, &pod_name, &timeouts);
    if decision == decide::Decision::LookUp {
        pod = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&pod_name)
            .await?
            .filter(|p| owned_by(p, &exec));
        let facts = pod.as_ref().map(pod_facts);
        decision = decide::processing(
            decide::Sandbox::Fetched(facts.as_ref()),
            since_start,
            attempt,
            &pod_name,
            &timeouts,
        );
    }
    // A running sandbox: an interactive one serves its run over attach; any other is
    // followed through its log, whose result line ends the run before the kubelet's next
    // relist reports the container terminated.
    if matches!(decision, decide::Decision::Requeue(_)) {
        if let Some(p) = pod.as_ref().filter(|p| matches!(outcome::view(p), outcome::PodView::Running)) {
            if serves(&exec) {
                return serve_cold(&exec, p.clone(), ctx).await;
            }
            if let Some(action) = follow_cold(&exec, p, ctx).await? {
                return Ok(action);
            }
        }
    }
    match (decision, pod) {
        (decide::Decision::Requeue(after), _) => Ok(Action::requeue(after)),
        (decide::Decision::ReadResult(t), Some(pod)) => complete(&exec, &pod, &t, ctx).await,
        (decide::Decision::Retry { attempt, message }, _) => retry(&exec, attempt, message, ctx).await,
        (decide::Decision::Fail { reason, message }, _) => fail(&exec, reason, &message, ctx).await,
        // Not decided after a look-up, nor a result without a Pod: look again soon.
        (decide::Decision::LookUp | decide::Decision::ReadResult(_), _) => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
    }
}

/// What [`decide::processing`] needs to know of a sandbox Pod.
fn pod_facts(pod: &Pod) -> decide::PodFacts {
    let age = Duration::from_millis(age_ms(pod.metadata.creation_timestamp.as_ref()).max(0) as u64);
    decide::PodFacts::of(pod, age)
}

/// The sandbox Pod vanished (or is being deleted) before it reported: start `attempt`.
async fn retry(exec: &Execution, attempt: u32, message: String, ctx: &Context) -> Result<Action> {
    let (runtime, plan) = match ctx.plan_for(exec).await? {
        Ok(rp) => rp,
        Err(invalid) => return fail(exec, FailReason::Invalid, &invalid.0, ctx).await,
    };
    tracing::warn!(execution = %exec.name_any(), attempt, "sandbox lost; retrying");
    ctx.event(exec, EventType::Warning, "SandboxLost", message.clone()).await;
    start(exec, &plan, &runtime, attempt, Some(message), ctx).await
}

/// The container has terminated: read the result, record it, remove the sandbox.
async fn complete(exec: &Execution, pod: &Pod, t: &outcome::Termination, ctx: &Context) -> Result<Action> {
    let ns = exec.namespace().unwrap_or_default();
    let pod_name = pod.name_any();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let log = if t.exit_code.is_some() {
        let lp = LogParams {
            container: Some(sandbox::CONTAINER.into()),
            limit_bytes: Some(ctx.config.max_log_bytes),
            ..Default::default()
        };
        match read_log(&pods, &pod_name, &lp, ctx.config.max_log_bytes).await {
            Ok(l) => l,
            // The log is gone (or never was): decide without it.
            Err(kube::Error::Api(s)) if s.code < 500 => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        Vec::new()
    };
    // Only the runner writes this log, and only the line sealed with the Pod's key counts.
    let request = outcome::pod_request(pod);
    let opened = match sandbox::result_key(pod) {
        Some(key) => {
            ResultLine::open(&log, &key, &sandbox::run_id(&exec.uid().unwrap_or_default(), attempt_of(pod)))
        }
        None => Err(ResultError::BadMac),
    };
    if let Err(why) = &opened {
        if !log.is_empty() {
            tracing::warn!(execution = %exec.name_any(), pod = %pod_name, %why, "sandbox result refused");
        }
    }
    let tail = log_tail(&log);
    // The log can be tens of MiB (the outputs as base64): not kept past this point.
    drop(log);
    let exec = match record(exec, Some(pod), opened, t, request.as_ref(), &tail, ctx).await? {
        Ok(exec) => exec,
        Err(action) => return Ok(action),
    };
    ctx.done(&key_of(&exec));
    delete_pod(&ns, &pod_name, pod.uid().as_deref(), ctx).await?;
    expire(&exec, ctx).await
}

/// The last lines of a sandbox log that are not the result (for a Failed message).
pub(crate) fn log_tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let tail: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(rce_api::protocol::RESULT_PREFIX) && !l.starts_with("{\"t\":"))
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    tail.join("\n")
}

/// Record the end of a run: the result (or why there is none), the stored outputs, the
/// terminal status, the metrics and the Event. `Err(action)` when the Execution ended
/// `Failed` on the way (its outputs could not be stored).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    exec: &Execution,
    pod: Option<&Pod>,
    opened: std::result::Result<rce_api::protocol::RunResult, ResultError>,
    t: &outcome::Termination,
    request: Option<&rce_api::protocol::RunRequest>,
    tail: &str,
    ctx: &Context,
) -> Result<std::result::Result<Execution, Action>> {
    let ns = exec.namespace().unwrap_or_default();
    let finish = outcome::finish_all(&outcome::Finished {
        result: opened.as_ref(),
        termination: t,
        limits: request.map(|r| &r.limits),
        compile_limits: request.and_then(|r| r.compile_limits.as_ref()),
        expected_output: exec.spec.expected_output.as_deref(),
        checker: exec.spec.checker.as_ref(),
        cases: request.map_or(&[][..], |r| &r.tests[..]),
        redirect: exec.spec.redirect_stderr_to_stdout,
        cap: ctx.config.status_output_bytes,
        log_tail: tail,
    });
    let mut outcome = finish.status;
    // The full outputs are stored before the status that points at them is written.
    if let Some(full) = &finish.full {
        match store_outputs(exec, full, ctx).await? {
            Ok(stored) => outcome.output = Some(stored),
            Err(msg) => return fail(exec, FailReason::OutputNotStored, &msg, ctx).await.map(Err),
        }
    }
    let old = exec.status.clone().unwrap_or_default();
    let next = status::finished(&old, outcome, &now());
    let exec = match write_status(exec, next, ctx).await {
        Ok(e) => e,
        Err(e) if refused(&e) => {
            // The API server refused the result itself (too large, invalid): record that the
            // result could not be recorded, with the reason, rather than retry for ever.
            tracing::warn!(execution = %exec.name_any(), error = %e, "status refused; writing a minimal one");
            let msg = format!("the result could not be recorded: the API server refused the status ({e})");
            let minimal = status::failed(
                &old,
                &FailReason::StatusRefused,
                &outcome::cap_stored(&msg, 1024).0,
                exec.metadata.generation,
                &now(),
            );
            write_status(exec, minimal, ctx).await?
        }
        Err(e) => return Err(e),
    };
    let st = exec.status.clone().unwrap_or_default();
    record_finish(&exec, pod, ctx);
    let verdict = st.verdict.map(|v| v.as_str()).unwrap_or("");
    let note = match &st.message {
        Some(m) => format!("{verdict}: {m}"),
        None => verdict.to_string(),
    };
    if st.phase == Some(Phase::Failed) {
        ctx.event(&exec, EventType::Warning, "Failed", note).await;
    } else {
        ctx.event(&exec, EventType::Normal, "Completed", note).await;
    }
    tracing::info!(execution = %exec.name_any(), namespace = %ns, verdict, "execution finished");
    Ok(Ok(exec))
}

/// Create the output ConfigMaps of `exec` holding `full` (idempotent: ones already there and
/// owned by `exec` are kept, or replaced when they hold other bytes, as after a retried
/// sandbox). The stored output for the status, or why it could not be stored (a ConfigMap of
/// the name that is not `exec`'s, which is left alone; a ConfigMap the API server refuses).
async fn store_outputs(
    exec: &Execution,
    full: &outcome::Outputs,
    ctx: &Context,
) -> Result<std::result::Result<rce_api::StoredOutput, String>> {
    let ns = exec.namespace().unwrap_or_default();
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let (bytes, mut stored) = full.stored();
    for cm in outputs::config_maps(exec, &bytes) {
        let name = cm.name_any();
        match api.create(&pp, &cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => match api.get_opt(&name).await? {
                Some(have) if outputs::owned_by(&have, exec) => {
                    if outputs::part_of(&have) != outputs::part_of(&cm) {
                        let mut cm = cm.clone();
                        cm.metadata.resource_version = have.resource_version();
                        api.replace(&name, &pp, &cm).await?;
                    }
                }
                Some(_) => {
                    return Ok(Err(format!(
                        "a ConfigMap named {name} already exists in namespace {ns} and is not this \
                         Execution's; it was left alone and the full output was not stored"
                    )));
                }
                // Gone again since the create: try again on the next reconcile.
                None => return Err(Error::ForeignPod(name)),
            },
            Err(kube::Error::Api(s)) if refused_status(&s) => {
                return Ok(Err(format!(
                    "the output could not be stored: the API server refused ConfigMap {name} ({}: {})",
                    s.code, s.message
                )));
            }
            Err(e) => return Err(e.into()),
        }
        stored.config_maps.push(name);
    }
    Ok(Ok(stored))
}

/// A write the API server refused for what it held (not a conflict, not unavailability):
/// writing the same again would be refused again.
fn refused(e: &Error) -> bool {
    match e {
        Error::Kube(kube::Error::Api(s)) => refused_status(s),
        _ => false,
    }
}

fn refused_status(s: &kube::core::Status) -> bool {
    matches!(s.code, 400 | 413 | 422) || (s.code == 500 && s.message.contains("too large"))
}

/// A Pod's log as bytes (not decoded: one bad byte must not make it unreadable), at most
/// `max` bytes, within [`LOG_READ_TIMEOUT`].
pub(crate) async fn read_log(pods: &Api<Pod>, name: &str, lp: &LogParams, max: i64) -> kube::Result<Vec<u8>> {
    use futures::AsyncReadExt as _;
    let read = async {
        let stream = pods.log_stream(name, lp).await?;
        let mut buf = Vec::new();
        stream.take(max.max(0) as u64).read_to_end(&mut buf).await.map_err(kube::Error::ReadEvents)?;
        Ok(buf)
    };
    match tokio::time::timeout(LOG_READ_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(kube::Error::ReadEvents(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("reading the log of {name} took longer than {LOG_READ_TIMEOUT:?}"),
        ))),
    }
}

/// The attempt a sandbox Pod belongs to, from its label.
fn attempt_of(pod: &Pod) -> u32 {
    pod.labels().get(sandbox::ATTEMPT_LABEL).and_then(|a| a.parse().ok()).unwrap_or(1)
}

fn record_finish(exec: &Execution, pod: Option<&Pod>, ctx: &Context) {
    let st = exec.status.clone().unwrap_or_default();
    let label = PhaseVerdict {
        phase: st.phase.map(|p| p.as_str()).unwrap_or("").to_string(),
        verdict: st.verdict.map(|v| v.as_str()).unwrap_or("").to_string(),
    };
    ctx.metrics.finished.get_or_create(&label).inc();
    let e2e = age_ms(exec.metadata.creation_timestamp.as_ref());
    ctx.metrics.end_to_end.observe(e2e.max(0) as f64 / 1000.0);
    let started = pod.and_then(sandbox::container_started_at);
    if let (Some(started), Some(created)) =
        (started, pod.and_then(|p| p.metadata.creation_timestamp.as_ref()))
    {
        let secs = (started.0.as_millisecond() - created.0.as_millisecond()).max(0) as f64 / 1000.0;
        ctx.metrics.sandbox_start.observe(secs);
    }
}

/// The system could not run the Execution: phase Failed with `message`.
async fn fail(exec: &Execution, reason: FailReason, message: &str, ctx: &Context) -> Result<Action> {
    let old = exec.status.clone().unwrap_or_default();
    let next = status::failed(&old, &reason, message, exec.metadata.generation, &now());
    let reason = reason.as_str();
    let exec = write_status(exec, next, ctx).await?;
    record_finish(&exec, None, ctx);
    tracing::info!(execution = %exec.name_any(), namespace = ?exec.namespace(), reason, message, "execution failed");
    ctx.event(&exec, EventType::Warning, reason, message.to_string()).await;
    ctx.done(&key_of(&exec));
    if let Some(p) = old.pod_name.as_deref() {
        delete_own_pod(&exec, p, ctx).await?;
    }
    expire(&exec, ctx).await
}

/// Delete the Pod `name` whose uid is `uid` (a precondition: never another Pod that has
/// taken the name since).
async fn delete_pod(ns: &str, name: &str, uid: Option<&str>, ctx: &Context) -> Result<()> {
    let dp = DeleteParams {
        preconditions: uid
            .map(|u| kube::api::Preconditions { uid: Some(u.to_string()), resource_version: None }),
        ..DeleteParams::background()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), ns).delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete the Pod `name` if it is `exec`'s sandbox (the operator never deletes a Pod it does
/// not own).
async fn delete_own_pod(exec: &Execution, name: &str, ctx: &Context) -> Result<()> {
    let ns = exec.namespace().unwrap_or_default();
    let pod = match ctx.pods.get(&ObjectRef::new(name).within(&ns)) {
        Some(p) => Some(Pod::clone(&p)),
        None => Api::<Pod>::namespaced(ctx.client.clone(), &ns).get_opt(name).await?,
    };
    match pod {
        Some(p) if owned_by(&p, exec) && p.metadata.deletion_timestamp.is_none() => {
            delete_pod(&ns, name, p.uid().as_deref(), ctx).await
        }
        _ => Ok(()),
    }
}

/// A finished Execution: send its result callback (once); make sure its sandbox is gone;
/// delete it after the TTL.
async fn finished(exec: &Execution, ctx: &Context) -> Result<Action> {
    ctx.callbacks.consider(exec, &ctx.client);
    let ns = exec.namespace().unwrap_or_default();
    if let Some(pod) = exec.status.as_ref().and_then(|s| s.pod_name.as_deref()) {
        let cached = ctx.pods.get(&ObjectRef::new(pod).within(&ns));
        if let Some(p) = cached.filter(|p| owned_by(p, exec) && p.metadata.deletion_timestamp.is_none()) {
            delete_pod(&ns, pod, p.uid().as_deref(), ctx).await?;
        }
    }
    // A warm Pod still claimed by this finished Execution (an operator stopped between the
    // result and giving the Pod back): nobody proved it clean, so it goes. Only the very
    // version seen claimed is deleted: a Pod released and claimed again since is left alone.
    if let Some(warm) = &ctx.warm {
        if let Some(p) = claim::claimed_by(&warm.pods, &ns, &exec.uid().unwrap_or_default()) {
            let dp = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: p.uid(),
                    resource_version: p.resource_version(),
                }),
                ..DeleteParams::background()
            };
            match Api::<Pod>::namespaced(ctx.client.clone(), &ns).delete(&p.name_any(), &dp).await {
                Ok(_) => {
                    tracing::info!(execution = %exec.name_any(), pod = %p.name_any(), "a warm Pod left claimed by a finished Execution deleted")
                }
                Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    expire(exec, ctx).await
}

async fn expire(exec: &Execution, ctx: &Context) -> Result<Action> {
    let finished_at = exec.status.as_ref().and_then(|s| s.finished_at.as_deref());
    match status::expiry(finished_at, ctx.config.ttl(), Utc::now()) {
        Expiry::Keep => Ok(Action::await_change()),
        Expiry::After(d) => Ok(Action::requeue(d)),
        Expiry::DeleteNow => {
            let api = Api::<Execution>::namespaced(ctx.client.clone(), &exec.namespace().unwrap_or_default());
            match api.delete(&exec.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(execution = %exec.name_any(), "deleted after its TTL");
            Ok(Action::await_change())
        }
    }
}

/// Follow the log of a running cold sandbox until its runner prints the result line (or the
/// run's deadline): the kubelet opens a container's log as soon as its relist has seen the
/// container, so a result printed after that is read at once instead of at the next relist
/// (up to a second later). `None`: no verified result came this way; the usual path (the
/// Pod's termination, its whole log) decides.
async fn follow_cold(exec: &Execution, pod: &Pod, ctx: &Context) -> Result<Option<Action>> {
    use futures::{AsyncBufReadExt as _, AsyncReadExt as _};
    // Only plain (runc) sandboxes. Under a RuntimeClass (gVisor) the kubelet's own end of
    // the container still decides: there a fork bomb's processes can outlive the runner's
    // result (the hostile suite's `fork-bash` under gVisor: the runner said Accepted, the
    // container ran on to its deadline), and only the container's end tells.
    if !ctx.config.follow_logs || pod.spec.as_ref().is_some_and(|s| s.runtime_class_name.is_some()) {
        return Ok(None);
    }
    let ns = exec.namespace().unwrap_or_default();
    let Some(key) = sandbox::result_key(pod) else { return Ok(None) };
    let Some(request) = outcome::pod_request(pod) else { return Ok(None) };
    let run_id = sandbox::run_id(&exec.uid().unwrap_or_default(), attempt_of(pod));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let lp = LogParams {
        container: Some(sandbox::CONTAINER.into()),
        follow: true,
        limit_bytes: Some(ctx.config.max_log_bytes),
        ..Default::default()
    };
    let read = async {
        let stream = pods.log_stream(&pod.name_any(), &lp).await.ok()?;
        let mut lines = futures::io::BufReader::new(stream.take(ctx.config.max_log_bytes.max(0) as u64));
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = lines.read_until(b'\n', &mut line).await.ok()?;
            if n == 0 {
                return None;
            }
            if line.starts_with(rce_api::protocol::RESULT_PREFIX.as_bytes()) {
                return Some(std::mem::take(&mut line));
            }
        }
    };
    let Ok(Some(line)) = tokio::time::timeout(warm::budget(&request), read).await else { return Ok(None) };
    let Ok(result) = ResultLine::open(&line, &key, &run_id) else { return Ok(None) };
    drop(line);
    let Some(exec) = fetch(exec, ctx).await? else { return Ok(Some(Action::await_change())) };
    if exec.status.as_ref().and_then(|s| s.phase) != Some(Phase::Processing) {
        return Ok(Some(Action::requeue(Duration::from_millis(200))));
    }
    let exec = match record(&exec, Some(pod), Ok(result), &warm::answered(), Some(&request), "", ctx).await? {
        Ok(e) => e,
        Err(action) => return Ok(Some(action)),
    };
    tracing::debug!(execution = %exec.name_any(), "result read from the followed log");
    ctx.done(&key_of(&exec));
    delete_pod(&ns, &pod.name_any(), pod.uid().as_deref(), ctx).await?;
    expire(&exec, ctx).await.map(Some)
}

/// The run of an interactive Execution in its own (cold) serving sandbox, once the Pod
/// runs: sent over attach (or taken over, when the log shows it started), recorded, and the
/// Pod deleted. A run lost on the way is decided by the usual path (the Pod's end, its log).
async fn serve_cold(exec: &Execution, pod: Pod, ctx: &Context) -> Result<Action> {
    let ns = exec.namespace().unwrap_or_default();
    let uid = exec.uid().unwrap_or_default();
    let Some(key) = sandbox::result_key(&pod) else { return Ok(Action::requeue(RUNNING_RECHECK)) };
    let run_id = sandbox::run_id(&uid, attempt_of(&pod));
    let request = match ctx.plan_and_request(exec, &run_id).await? {
        Ok(r) => r,
        Err(invalid) => return fail(exec, FailReason::Invalid, &invalid.0, ctx).await,
    };
    let Some((driven, session)) = warm::resume(exec, &pod, &request, &key, ctx).await else {
        return Ok(Action::requeue(Duration::from_millis(500)));
    };
    if let Some(s) = session {
        s.close();
    }
    let opened = match driven {
        warm::Driven::Result(r) => Ok(*r),
        warm::Driven::Refused(why) => Err(why),
        warm::Driven::NotRun(why) | warm::Driven::Lost { why, .. } => {
            tracing::info!(execution = %exec.name_any(), pod = %pod.name_any(), %why, "serving sandbox: no result on the stream");
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
    };
    let Some(exec) = fetch(exec, ctx).await? else { return Ok(Action::await_change()) };
    if exec.status.as_ref().and_then(|s| s.phase) != Some(Phase::Processing) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let exec = match record(&exec, Some(&pod), opened, &warm::answered(), Some(&request), "", ctx).await? {
        Ok(e) => e,
        Err(action) => return Ok(action),
    };
    ctx.done(&key_of(&exec));
    delete_pod(&ns, &pod.name_any(), pod.uid().as_deref(), ctx).await?;
    expire(&exec, ctx).await
}

// ---- Serving sandboxes: warm Pods (and the recovery of runs in them) ----

/// Run `exec` in a warm Pod when a pool of its namespace fits it and has a Pod to claim.
/// `None`: run it cold. An Execution that already holds a claim (an operator restarted
/// after claiming) follows that claim and never claims a second Pod.
async fn try_warm(exec: &Execution, runtime: &Runtime, plan: &Plan, ctx: &Context) -> Result<Option<Action>> {
    let Some(warm) = ctx.warm.clone() else { return Ok(None) };
    let ns = exec.namespace().unwrap_or_default();
    let uid = exec.uid().unwrap_or_default();
    if let Some(pod) = claim::claimed_by(&warm.pods, &ns, &uid) {
        return warm_follow(exec, Pod::clone(&pod), ctx).await.map(Some);
    }
    if ctx.warm_finished(&uid) {
        // This copy is older than the run this operator just recorded.
        return Ok(Some(Action::requeue(Duration::from_millis(300))));
    }
    let Some((pool, shape)) = claim::fitting_pool(&warm.pools, &ns, runtime, plan, &ctx.settings) else {
        return Ok(None);
    };
    let attempt = exec.status.as_ref().and_then(|s| s.attempts).unwrap_or(0) + 1;
    // A cold sandbox of this attempt exists: this copy is older than its start (a reconcile
    // on a cache behind the operator's own writes). Running it warm too would run it twice.
    let cold = names::pod_name(&exec.name_any(), &uid, attempt);
    if ctx.started_cold(&uid)
        || ctx.pods.get(&ObjectRef::new(&cold).within(&ns)).is_some_and(|p| owned_by(&p, exec))
    {
        return Ok(None);
    }
    let run_id = sandbox::run_id(&uid, attempt);
    let request = match ctx.request_for(exec, plan, &run_id).await? {
        Ok(r) => r,
        Err(invalid) => return fail(exec, FailReason::Invalid, &invalid.0, ctx).await.map(Some),
    };
    let t0 = std::time::Instant::now();
    let Some(claimed) = claim::claim(&warm, pool.clone(), &shape, exec, &run_id).await? else {
        ctx.note_miss(&uid, pool);
        return Ok(None);
    };
    // The attempt's lock: another replica that took it (cold, or warm in another Pod) runs
    // this attempt; the Pod claimed here never got a run and goes.
    let how = How::Warm { pod: claimed.pod.name_any() };
    match attempt::take(&ctx.client, exec, attempt, how, &ctx.shard.identity).await {
        Ok(Locked::Mine) => {}
        other => {
            tracing::info!(execution = %exec.name_any(), attempt, lock = ?other, "attempt taken elsewhere; claimed Pod discarded");
            claim::discard(&warm, &claimed).await?;
            other?;
            return Ok(Some(Action::requeue(Duration::from_millis(200))));
        }
    }
    ctx.missed.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
    let claimed_ms = t0.elapsed().as_millis();
    let old = exec.status.clone().unwrap_or_default();
    let mut next = status::processing(&old, &claimed.pod.name_any(), attempt, None, &now());
    next.warm_pool = Some(claimed.pool.name_any());
    // The request goes first. A run that takes a while is shown Processing (written while
    // the runner works); a short one goes straight to its verdict: one write less for each.
    let (exec, (driven, session)) = {
        let run = warm::run_in(exec, &claimed.pod, &request, true, &claimed.key, ctx);
        tokio::pin!(run);
        match tokio::time::timeout(SHOW_PROCESSING_AFTER, &mut run).await {
            Ok(out) => {
                let mut e = exec.clone();
                e.status = Some(next);
                (e, out)
            }
            Err(_) => {
                let (written, out) = tokio::join!(write_status(exec, next.clone(), ctx), &mut run);
                let e = match written {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(execution = %exec.name_any(), error = %e, "Processing status not written");
                        match fetch(exec, ctx).await? {
                            Some(mut e) => {
                                e.status = Some(next);
                                e
                            }
                            None => {
                                // The Execution is gone: so is the need for its result.
                                give_back(&warm, &claimed, out.1, ctx).await;
                                return Ok(Some(Action::await_change()));
                            }
                        }
                    }
                };
                (e, out)
            }
        }
    };
    let ran_ms = t0.elapsed().as_millis();
    let action = finish_warm(&exec, &warm, claimed, &request, driven, session, attempt, ctx).await;
    tracing::debug!(
        execution = %exec.name_any(),
        claimed_ms,
        ran_ms,
        done_ms = t0.elapsed().as_millis(),
        "warm run"
    );
    action.map(Some)
}

/// How a run in a warm Pod ended: record it, give the Pod back (or discard it), or retry
/// the Execution elsewhere when the Pod was lost before a result.
#[allow(clippy::too_many_arguments)]
async fn finish_warm(
    exec: &Execution,
    warm: &claim::Warm,
    claimed: claim::Claimed,
    request: &rce_api::protocol::RunRequest,
    driven: warm::Driven,
    session: Option<crate::attach::Session>,
    attempt: u32,
    ctx: &Context,
) -> Result<Action> {
    let uid = exec.uid().unwrap_or_default();
    let pod_name = claimed.pod.name_any();
    let opened = match driven {
        warm::Driven::Result(r) => Ok(*r),
        warm::Driven::Refused(why) => {
            tracing::warn!(execution = %exec.name_any(), pod = %pod_name, %why, "warm sandbox result refused");
            Err(why)
        }
        warm::Driven::NotRun(why) | warm::Driven::Lost { why, .. } => {
            if let Some(s) = session {
                s.close();
            }
            claim::discard(warm, &claimed).await?;
            let message = format!("the warm sandbox {pod_name} was lost before a result ({why}); retrying");
            ctx.adopt(&key_of(exec));
            return retry(exec, attempt + 1, message, ctx).await;
        }
    };
    let refused = opened.is_err();
    // The result is in hand and nowhere else once the Pod is given back: a conflict (the
    // Execution changed since it was read) is met by reading it again, a few times.
    let mut current = exec.clone();
    let mut recorded = Err(Error::ForeignPod(String::new()));
    for _ in 0..5 {
        recorded = record(&current, None, opened.clone(), &warm::answered(), Some(request), "", ctx).await;
        match &recorded {
            Err(e) if e.is_conflict() => match fetch(exec, ctx).await {
                Ok(Some(mut fresh))
                    if !fresh.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_terminal()) =>
                {
                    // Keep what this run knows of itself (its Pod, attempt, start).
                    let mine = exec.status.clone().unwrap_or_default();
                    let mut st = fresh.status.clone().unwrap_or_default();
                    st.pod_name = mine.pod_name;
                    st.warm_pool = mine.warm_pool;
                    st.attempts = mine.attempts;
                    st.started_at = mine.started_at.or(st.started_at);
                    fresh.status = Some(st);
                    current = fresh;
                }
                _ => break,
            },
            _ => break,
        }
    }
    if recorded.is_ok() {
        ctx.warm_done(&uid);
    }
    if refused {
        if let Some(s) = session {
            s.close();
        }
        claim::discard(warm, &claimed).await?;
    } else {
        give_back(warm, &claimed, session, ctx).await;
    }
    match recorded? {
        Ok(exec) => expire(&exec, ctx).await,
        Err(action) => Ok(action),
    }
}

/// After a run: the Pod goes back to its pool once its runner proved a clean slate (with
/// its session kept open for the next claim), or is deleted.
async fn give_back(
    warm: &claim::Warm,
    claimed: &claim::Claimed,
    session: Option<crate::attach::Session>,
    ctx: &Context,
) {
    let ready = match session {
        Some(mut s) => warm::await_ready(&mut s, &claimed.key).await.map(|served| (served, s)),
        None => None,
    };
    let result = match ready {
        // The session is back in the registry before the Pod is idle again: the next claimer
        // takes it rather than opening a second attach to the same runner.
        Some((served, s)) => {
            claim::release_with_session(warm, &ctx.sessions, claimed, served, s).await.map(|_| ())
        }
        None => claim::discard(warm, claimed).await,
    };
    if let Err(e) = result {
        tracing::warn!(pod = %claimed.pod.name_any(), error = %e, "could not give the warm Pod back");
    }
}

/// Follow the claim of an Execution whose run this operator does not hold (it restarted, or
/// a reconcile found the Execution Processing in a warm Pod): its log decides. A result
/// printed is taken; a run never started is sent now; a run started is awaited.
async fn warm_follow(exec: &Execution, pod: Pod, ctx: &Context) -> Result<Action> {
    let Some(warm) = ctx.warm.clone() else { return Ok(Action::requeue(Duration::from_secs(1))) };
    let ns = exec.namespace().unwrap_or_default();
    let Some(run_id) = pod.annotations().get(rce_api::warmpool::CLAIMED_RUN_ANNOTATION).cloned() else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let attempt = run_id.rsplit('/').next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let request = match ctx.plan_and_request(exec, &run_id).await? {
        Ok(r) => r,
        Err(invalid) => return fail(exec, FailReason::Invalid, &invalid.0, ctx).await,
    };
    let Some(key) = sandbox::result_key(&pod) else {
        return fail(exec, FailReason::SandboxLost, "the claimed warm Pod has no result key", ctx).await;
    };
    let pool_name = pod.labels().get(rce_api::warmpool::POOL_LABEL).cloned().unwrap_or_default();
    let pool = warm
        .pools
        .get(&ObjectRef::new(&pool_name).within(&ns))
        .unwrap_or_else(|| Arc::new(rce_api::WarmPool::new(&pool_name, rce_api::WarmPoolSpec::default())));
    let claimed = claim::Claimed { served: 0, key: key.clone(), pool, pod };
    let Some((driven, session)) = warm::resume(exec, &claimed.pod, &request, &key, ctx).await else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    tracing::info!(execution = %exec.name_any(), pod = %claimed.pod.name_any(), run = %run_id, "followed a warm run this operator did not start");
    let exec = match fetch(exec, ctx).await? {
        Some(e) => e,
        None => return Ok(Action::await_change()),
    };
    if exec.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_terminal()) {
        give_back(&warm, &claimed, session, ctx).await;
        return finished(&exec, ctx).await;
    }
    finish_warm(&exec, &warm, claimed, &request, driven, session, attempt, ctx).await
}

/// A Processing Execution whose run is in a warm Pod: follow its claim, or retry when the
/// Pod is gone.
async fn warm_processing(exec: &Execution, ctx: &Context) -> Result<Action> {
    let Some(warm) = ctx.warm.clone() else { return Ok(Action::requeue(Duration::from_secs(1))) };
    let ns = exec.namespace().unwrap_or_default();
    let uid = exec.uid().unwrap_or_default();
    if let Some(pod) = claim::claimed_by(&warm.pods, &ns, &uid) {
        return warm_follow(exec, Pod::clone(&pod), ctx).await;
    }
    // Not in the cache: ask the API before concluding that the Pod is gone.
    let st = exec.status.clone().unwrap_or_default();
    let attempt = st.attempts.unwrap_or(1);
    if let Some(name) = st.pod_name.as_deref() {
        if let Some(pod) = Api::<Pod>::namespaced(ctx.client.clone(), &ns).get_opt(name).await? {
            let ours = pod.labels().get(rce_api::warmpool::CLAIMED_BY_LABEL) == Some(&uid);
            if ours && pod.metadata.deletion_timestamp.is_none() {
                return warm_follow(exec, pod, ctx).await;
            }
        }
    }
    let Some(fresh) = fetch(exec, ctx).await? else { return Ok(Action::await_change()) };
    if fresh.status.as_ref().and_then(|s| s.phase) != Some(Phase::Processing) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let message = format!(
        "the warm sandbox {} is gone before a result; retrying",
        st.pod_name.as_deref().unwrap_or("?")
    );
    ctx.adopt(&key_of(&fresh));
    retry(&fresh, attempt + 1, message, ctx).await
}

/// Delete the sandbox and warm Pods of this replica's share that sit on lost nodes (their
/// kubelet is gone, so the deletion is immediate), with an Event on each Execution hit; the
/// Execution then retries its sandbox, kept off lost nodes.
pub async fn remove_from_lost_nodes(ctx: &Context) {
    let Some(cap) = &ctx.capacity else { return };
    let lost: HashMap<String, String> = cap.lost().into_iter().collect();
    if lost.is_empty() {
        return;
    }
    let mut pods = ctx.pods.state();
    if let Some(w) = &ctx.warm {
        pods.extend(w.pods.state());
    }
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
        let Some(why) = lost.get(&node) else { continue };
        let Some(owner) = pod.owner_references().iter().find(|o| o.controller == Some(true)).cloned() else {
            continue;
        };
        let ns = pod.namespace().unwrap_or_default();
        // Only what this operator serves (its selector: the stores hold nothing else), and
        // of that only this replica's share.
        let exec = match owner.kind.as_str() {
            "Execution" => match ctx.executions.get(&ObjectRef::new(&owner.name).within(&ns)) {
                Some(e) if e.uid().as_deref() == Some(owner.uid.as_str()) => Some(e),
                _ => continue,
            },
            "WarmPool" => match ctx.pools.get(&ObjectRef::new(&owner.name).within(&ns)) {
                Some(p) if p.uid().as_deref() == Some(owner.uid.as_str()) => None,
                _ => continue,
            },
            _ => continue,
        };
        if !ctx.shard.owns(&owner.uid) {
            continue;
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions { uid: pod.uid(), resource_version: None }),
            ..DeleteParams::background()
        };
        match Api::<Pod>::namespaced(ctx.client.clone(), &ns).delete(&pod.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => continue,
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), %node, error = %e, "could not delete a Pod of a lost node");
                continue;
            }
        }
        tracing::warn!(pod = %pod.name_any(), %node, %why, "deleted a sandbox Pod of a lost node");
        {
            if let Some(exec) = exec {
                let note = format!(
                    "sandbox Pod {} was on node {node}, which is lost ({why}); the Pod was deleted and the \
                     Execution is retried on another node",
                    pod.name_any()
                );
                ctx.event(&exec, EventType::Warning, "NodeLost", note).await;
                let _ = ctx.wake.send(ObjectRef::from_obj(exec.as_ref()));
            }
        }
    }
}

/// Log what the controller reports, at a level fitting each.
pub fn report<E: std::fmt::Display>(res: std::result::Result<(ObjectRef<Execution>, Action), E>) {
    match res {
        Ok((obj, _)) => tracing::trace!(execution = %obj, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "controller"),
    }
}

/// Stream adapter: the controller's results, logged.
pub async fn drain<S, E>(stream: S)
where
    S: futures::Stream<Item = std::result::Result<(ObjectRef<Execution>, Action), E>>,
    E: std::fmt::Display,
{
    stream.for_each(|r| async move { report(r) }).await;
}
