//! What the shim needs from the outside world, as two small traits: the cluster (create and
//! read Executions, the Runtime catalog, the pending count) and the status store (the Redis
//! mirror: read a document, subscribe to its changes). Real implementations live in
//! `kube_backend` and `redis_store`; in-memory ones in `testing` (feature `test-util`).
//!
//! On top of them: [`lookup`] (Redis first, then the Execution's own status), [`watch`] and
//! [`wait_terminal`] (subscribe first, then read, then follow until the terminal status).
//! They take the cluster and the status store, not the application state.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use rce_api::{
    queue::{self, Entry, Key, Limits, Slot},
    redis_keys::StatusDocument,
    Execution, ExecutionSpec, ExecutionStatus, Phase, Runtime,
};
use tokio::sync::mpsc;

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The dependency could not be reached or timed out.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The Kubernetes API refused the request.
    #[error("rejected ({code}): {message}")]
    Rejected { code: u16, reason: String, message: String },
}

pub trait Cluster: Send + Sync + 'static {
    /// Create an Execution; returns the created object (with uid and creation time).
    fn create(&self, execution: Execution) -> BoxFuture<'_, Result<Execution, BackendError>>;
    /// Read an Execution; `None` when it does not exist.
    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, Result<Option<Execution>, BackendError>>;
    /// The Runtime catalog (from a watch-backed cache, never a per-request list); `None`
    /// until the cache has listed once (an empty catalog then would be a lie: every language
    /// "unknown").
    fn runtimes(&self) -> Option<Vec<Arc<Runtime>>>;
    /// Executions waiting for capacity (phase Pending or not yet seen by the operator);
    /// `None` while the cache is not yet synced.
    fn pending(&self) -> Option<usize>;
    /// Are the caches synced?
    fn ready(&self) -> bool;
    /// The Executions of `namespace` (every namespace: `None`), from the watch cache, newest
    /// first. Small copies: metadata (name, namespace, uid, creation time, labels), the
    /// spec's `language`, and the status's phase, verdict, times, memory, exit code and
    /// signal; no source, no outputs, no annotations but the submission stamp
    /// (`rce_api::queue::SUBMITTED_ANNOTATION`; read the rest with [`Cluster::get`]).
    fn list(&self, namespace: Option<&str>) -> Vec<Arc<Execution>>;
    /// The bytes of a ConfigMap's `binaryData` entry `key` (an Execution's stored outputs,
    /// see [`crate::outputs`]); `None` when the ConfigMap or the entry does not exist.
    fn config_map_bytes(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, BackendError>>;
    /// Create a ConfigMap (an Execution's test data, owned by it).
    fn create_config_map(
        &self,
        config_map: k8s_openapi::api::core::v1::ConfigMap,
    ) -> BoxFuture<'_, Result<(), BackendError>>;
}

pub trait StatusStore: Send + Sync + 'static {
    fn get(&self, namespace: &str, name: &str)
        -> BoxFuture<'_, Result<Option<StatusDocument>, BackendError>>;
    /// Subscribe to the Execution's channel. The returned future resolves once the
    /// subscription is active, so no change published after it is missed; or, when the store
    /// is unreachable, at once with a stream that starts with [`Published::Lost`] and says
    /// [`Published::Resumed`] once it is subscribed again.
    fn subscribe(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Published>, BackendError>>;
    /// Take one token from the shared bucket `bucket` (a credential's, the same on every
    /// replica): `Ok(Ok(()))` admitted, `Ok(Err(seconds))` to wait, `Err` when the store
    /// cannot answer (the caller then uses a bucket of its own process).
    fn take_token(
        &self,
        _bucket: &str,
        _rate: crate::auth::Rate,
    ) -> BoxFuture<'_, Result<Result<(), u64>, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no shared rate limiter".into())) })
    }
    /// The operator's capacity document (`rce:capacity`), when present and readable.
    fn capacity(&self) -> BoxFuture<'_, Option<Capacity>> {
        Box::pin(async { None })
    }
    fn ping(&self) -> BoxFuture<'_, bool>;
    /// Follow the Execution's live output stream (`redis_keys::live_key`) from its start
    /// (id 0): its entries in order, ending after [`Live::End`] or when the store fails. The
    /// reader pulls (no read-ahead beyond one batch), on a connection of its own.
    fn live(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Live>, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no live streams".into())) })
    }
    /// Append to an interactive Execution's stdin stream (`redis_keys::stdin_key`).
    fn send_stdin(
        &self,
        _namespace: &str,
        _name: &str,
        _entry: StdinEntry,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no stdin streams".into())) })
    }
}

/// What an Execution's channel delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    /// A status document, as published.
    Doc(Box<StatusDocument>),
    /// The subscription is gone for now (the store is unreachable): poll.
    Lost,
    /// Subscribed again after [`Published::Lost`] (or after missing messages): re-read the
    /// document, an update may have been missed in between.
    Resumed,
}

/// The operator's capacity document, `rce:capacity` (written every ~2 s with a 10 s TTL):
/// `{"capacity":N,"perNamespace":P,"running":R,"waiting":W,"at":"<rfc3339>"}`; `capacity`
/// null when nothing bounds it. Fields it does not know are ignored.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    #[serde(default)]
    pub capacity: Option<usize>,
    /// Sandboxes at once per namespace (0 or null: no share).
    #[serde(default)]
    pub per_namespace: Option<usize>,
    #[serde(default)]
    pub running: Option<usize>,
    #[serde(default)]
    pub waiting: Option<usize>,
    #[serde(default)]
    pub at: Option<String>,
}

/// Which output stream a live chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutStream {
    Stdout,
    Stderr,
}

impl OutStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutStream::Stdout => "stdout",
            OutStream::Stderr => "stderr",
        }
    }
}

/// One entry of a live output stream, as the operator writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// `k` = `stdout`/`stderr`, `d` = the bytes as read.
    Output { stream: OutStream, data: Vec<u8> },
    /// `k` = `stage`, `d` = "compile" or "run".
    Stage(String),
    /// `k` = `end`: the run finished; the terminal status follows.
    End,
}

impl Live {
    /// An entry from its fields `k` and `d`; `None` for a kind this shim does not know.
    pub fn from_fields(k: &[u8], d: Option<Vec<u8>>) -> Option<Live> {
        match k {
            b"stdout" => Some(Live::Output { stream: OutStream::Stdout, data: d.unwrap_or_default() }),
            b"stderr" => Some(Live::Output { stream: OutStream::Stderr, data: d.unwrap_or_default() }),
            b"stage" => Some(Live::Stage(String::from_utf8_lossy(&d.unwrap_or_default()).into_owned())),
            b"end" => Some(Live::End),
            _ => None,
        }
    }
}

/// One entry for an interactive Execution's stdin stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinEntry {
    /// `k` = `data`, `d` = the bytes.
    Data(Vec<u8>),
    /// `k` = `eof`: close the program's stdin.
    Eof,
    /// `k` = `signal`, `d` = a signal name ("SIGINT").
    Signal(String),
}

impl StdinEntry {
    /// The entry's fields, `k` then (when it has one) `d`.
    pub fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        match self {
            StdinEntry::Data(d) => vec![("k", b"data".to_vec()), ("d", d.clone())],
            StdinEntry::Eof => vec![("k", b"eof".to_vec())],
            StdinEntry::Signal(s) => vec![("k", b"signal".to_vec()), ("d", s.as_bytes().to_vec())],
        }
    }
}

/// What the watch cache keeps of an Execution (see [`Cluster::list`]).
pub fn summary(ex: &Execution) -> Execution {
    let mut meta = ex.metadata.clone();
    meta.managed_fields = None;
    // Only the submission stamp: the queue's order needs it.
    meta.annotations = meta
        .annotations
        .take()
        .and_then(|a| a.get(rce_api::queue::SUBMITTED_ANNOTATION).cloned())
        .map(|v| BTreeMap::from([(rce_api::queue::SUBMITTED_ANNOTATION.to_string(), v)]));
    Execution {
        metadata: meta,
        spec: ExecutionSpec { language: ex.spec.language.clone(), ..Default::default() },
        status: ex.status.as_ref().map(|s| ExecutionStatus {
            phase: s.phase,
            verdict: s.verdict,
            exit_code: s.exit_code,
            signal: s.signal.clone(),
            time_ms: s.time_ms,
            wall_time_ms: s.wall_time_ms,
            memory_kib: s.memory_kib,
            submitted_at: s.submitted_at.clone(),
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
            ..Default::default()
        }),
    }
}

/// Whether an Execution holds a sandbox slot, as the operator's queue counts it: waiting
/// (no phase yet, or Pending), running (Processing), done (terminal, or being deleted).
pub fn slot(ex: &Execution) -> Slot {
    if ex.metadata.deletion_timestamp.is_some() {
        return Slot::Done;
    }
    match ex.status.as_ref().and_then(|s| s.phase) {
        None | Some(Phase::Pending) => Slot::Waiting,
        Some(Phase::Processing) => Slot::Running,
        Some(Phase::Completed | Phase::Failed) => Slot::Done,
    }
}

/// The queue's entry for an Execution (`rce_api::queue`): its slot and its submission key
/// (the `rce.dev/submitted-at` stamp when close enough to the creationTimestamp).
pub fn queue_entry(ex: &Execution) -> Entry {
    let created = ex.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
    let stamp = ex.metadata.annotations.as_ref().and_then(|a| a.get(queue::SUBMITTED_ANNOTATION));
    Entry {
        key: Key {
            namespace: ex.metadata.namespace.clone().unwrap_or_default(),
            name: ex.metadata.name.clone().unwrap_or_default(),
        },
        created: queue::submitted_key(created.as_deref(), stamp.map(String::as_str)),
        slot: slot(ex),
    }
}

/// Where an Execution stands in the admission order: its 1-based position (`None` when it
/// is not waiting) and how many wait in all, over `executions` (every namespace).
pub fn queue_position(
    executions: &[Arc<Execution>],
    limits: &Limits,
    namespace: &str,
    name: &str,
) -> (Option<usize>, usize) {
    let entries: Vec<Entry> = executions.iter().map(|e| queue_entry(e)).collect();
    let order = queue::waiting_order(&entries, limits);
    let position =
        order.iter().position(|(e, _)| e.key.namespace == namespace && e.key.name == name).map(|p| p + 1);
    (position, order.len())
}

/// Newest first (by creation time, then name), the order of Judge0's list.
pub fn newest_first(list: &mut [Arc<Execution>]) {
    list.sort_by(|a, b| {
        let t = |e: &Execution| e.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(b).cmp(&t(a)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// An Execution as the shim presents it, from either source.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecView {
    pub namespace: String,
    pub name: String,
    pub language: String,
    /// Creation time of the Execution (RFC 3339), if known.
    pub created_at: Option<String>,
    pub status: ExecutionStatus,
    /// The spec, when the Execution itself was read.
    pub spec: Option<ExecutionSpec>,
    pub annotations: BTreeMap<String, String>,
}

impl ExecView {
    pub fn phase(&self) -> Phase {
        self.status.phase.unwrap_or(Phase::Pending)
    }
    pub fn is_terminal(&self) -> bool {
        self.phase().is_terminal()
    }
    /// When it was submitted: the operator's `submittedAt`, else the creation time.
    pub fn submitted_at(&self) -> Option<String> {
        self.status.submitted_at.clone().or_else(|| self.created_at.clone())
    }
    pub fn from_doc(doc: StatusDocument) -> Self {
        ExecView {
            namespace: doc.namespace,
            name: doc.name,
            language: doc.language,
            created_at: None,
            status: doc.status,
            spec: None,
            annotations: BTreeMap::new(),
        }
    }
    pub fn from_execution(ex: &Execution) -> Self {
        ExecView {
            namespace: ex.metadata.namespace.clone().unwrap_or_default(),
            name: ex.metadata.name.clone().unwrap_or_default(),
            language: ex.spec.language.clone(),
            created_at: ex.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            status: ex.status.clone().unwrap_or_default(),
            spec: Some(ex.spec.clone()),
            annotations: ex.metadata.annotations.clone().unwrap_or_default(),
        }
    }
}

fn rank(p: Option<Phase>) -> u8 {
    match p {
        None => 0,
        Some(Phase::Pending) => 1,
        Some(Phase::Processing) => 2,
        Some(Phase::Completed | Phase::Failed) => 3,
    }
}

/// Read an Execution's status: the Redis document first; the Execution itself when the
/// document is missing, when Redis fails, or when the caller needs the spec (`need_spec`).
/// `Ok(None)`: no such Execution in this namespace.
pub async fn lookup(
    cluster: &dyn Cluster,
    status: &dyn StatusStore,
    namespace: &str,
    name: &str,
    need_spec: bool,
) -> Result<Option<ExecView>, ApiError> {
    let doc = match status.get(namespace, name).await {
        Ok(doc) => doc,
        Err(e) => {
            tracing::warn!(error = %e, "redis read failed; falling back to the Kubernetes API");
            None
        }
    };
    if let (Some(doc), false) = (&doc, need_spec) {
        return Ok(Some(ExecView::from_doc(doc.clone())));
    }
    match cluster.get(namespace, name).await {
        Ok(Some(ex)) => {
            let mut view = ExecView::from_execution(&ex);
            // The mirror may be ahead of the status we just read (or behind): keep the later.
            if let Some(doc) = doc {
                if rank(doc.status.phase) > rank(view.status.phase) {
                    view.status = doc.status;
                }
            }
            Ok(Some(view))
        }
        // Gone from the cluster (garbage-collected) but still mirrored: still answer.
        Ok(None) => Ok(doc.map(ExecView::from_doc)),
        Err(e) => match doc {
            Some(doc) => Ok(Some(ExecView::from_doc(doc))),
            None => {
                tracing::error!(error = %e, namespace, name, "reading Execution failed");
                Err(ApiError::unavailable())
            }
        },
    }
}

/// The start of following an Execution: subscribed to its channel (unless Redis fails) and
/// its current view read, in that order, so no change can fall between the two.
struct Start {
    first: ExecView,
    sub: Option<BoxStream<'static, Published>>,
}

async fn start(
    cluster: &dyn Cluster,
    status: &dyn StatusStore,
    namespace: &str,
    name: &str,
) -> Result<Start, ApiError> {
    let sub = match status.subscribe(namespace, name).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "redis subscribe failed; following by polling");
            None
        }
    };
    let first = lookup(cluster, status, namespace, name, false)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution {name:?}")))?;
    Ok(Start { first, sub })
}

/// Send the first view, then one view per phase change, until the terminal one, the
/// deadline, or the receiver going away. A slow poll (every `poll_interval`, ×4 while
/// subscribed) backs the subscription up and replaces it when Redis is unreachable.
#[allow(clippy::too_many_arguments)]
async fn follow(
    cluster: &dyn Cluster,
    status: &dyn StatusStore,
    poll_interval: Duration,
    namespace: &str,
    name: &str,
    deadline: tokio::time::Instant,
    Start { first, mut sub }: Start,
    tx: mpsc::Sender<ExecView>,
) {
    let mut last = first.clone();
    if tx.send(first).await.is_err() || last.is_terminal() {
        return;
    }
    let every = |subscribed: bool| if subscribed { poll_interval * 4 } else { poll_interval };
    let mut subscribed = sub.is_some();
    let mut poll =
        tokio::time::interval_at(tokio::time::Instant::now() + every(subscribed), every(subscribed));
    loop {
        let next: Option<ExecView> = tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(deadline) => return,
            msg = async { match sub.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => {
                match msg {
                    Some(Published::Doc(doc)) if doc.name == name && doc.namespace == namespace => {
                        Some(ExecView::from_doc(*doc))
                    }
                    Some(Published::Doc(_)) => None,
                    Some(Published::Lost) => {
                        // Redis is gone: poll the Kubernetes API at the full rate until it is back.
                        if subscribed {
                            subscribed = false;
                            poll = tokio::time::interval(every(false));
                        }
                        None
                    }
                    Some(Published::Resumed) => {
                        // Subscribed again: an update may have been published in between.
                        subscribed = true;
                        poll = tokio::time::interval_at(tokio::time::Instant::now() + every(true), every(true));
                        lookup(cluster, status, namespace, name, false).await.unwrap_or_default()
                    }
                    None => {
                        sub = None;
                        subscribed = false;
                        poll = tokio::time::interval(every(false));
                        None
                    }
                }
            }
            _ = poll.tick() => lookup(cluster, status, namespace, name, false).await.unwrap_or_default(),
        };
        if let Some(view) = next {
            // One event per phase change; never backwards (a late poll may read an older
            // copy than a message already seen).
            if rank(Some(view.phase())) > rank(Some(last.phase())) {
                last = view.clone();
                let terminal = view.is_terminal();
                if tx.send(view).await.is_err() || terminal {
                    return;
                }
            }
        }
    }
}

/// Follow an Execution: the current view first, then one view per phase change, ending after the
/// terminal one (or after `max`). Subscribes to the Redis channel BEFORE reading the current
/// document, so no change can fall between the two; a slow poll backs the subscription up (and
/// replaces it when Redis is unreachable).
pub async fn watch(
    cluster: Arc<dyn Cluster>,
    status: Arc<dyn StatusStore>,
    poll_interval: Duration,
    namespace: &str,
    name: &str,
    max: Duration,
) -> Result<mpsc::Receiver<ExecView>, ApiError> {
    let start = start(&*cluster, &*status, namespace, name).await?;
    let deadline = tokio::time::Instant::now() + max;
    let (tx, rx) = mpsc::channel(16);
    let (namespace, name) = (namespace.to_string(), name.to_string());
    tokio::spawn(async move {
        follow(&*cluster, &*status, poll_interval, &namespace, &name, deadline, start, tx).await;
    });
    Ok(rx)
}

/// Wait up to `max` for the terminal status; returns the last view seen either way.
pub async fn wait_terminal(
    cluster: &dyn Cluster,
    status: &dyn StatusStore,
    poll_interval: Duration,
    namespace: &str,
    name: &str,
    max: Duration,
) -> Result<ExecView, ApiError> {
    let start = start(cluster, status, namespace, name).await?;
    let deadline = tokio::time::Instant::now() + max;
    let (tx, mut rx) = mpsc::channel(16);
    let following = follow(cluster, status, poll_interval, namespace, name, deadline, start, tx);
    let last = async move {
        let mut last = None;
        while let Some(v) = rx.recv().await {
            let terminal = v.is_terminal();
            last = Some(v);
            if terminal {
                break;
            }
        }
        last
    };
    let ((), last) = tokio::join!(following, last);
    last.ok_or_else(ApiError::internal)
}

/// Map a kube client error to ours.
pub fn kube_error(e: kube::Error) -> BackendError {
    match e {
        kube::Error::Api(s) => {
            BackendError::Rejected { code: s.code, reason: s.reason.clone(), message: s.message.clone() }
        }
        other => BackendError::Unavailable(other.to_string()),
    }
}

pub fn stream_of<T: Send + 'static>(rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemoryCluster, MemoryStatus};

    fn doc(name: &str, phase: Phase) -> StatusDocument {
        StatusDocument {
            namespace: "ns".into(),
            name: name.into(),
            uid: "u".into(),
            language: "python".into(),
            status: ExecutionStatus { phase: Some(phase), ..Default::default() },
        }
    }

    fn ex(ns: &str, name: &str, created: &str, stamp: Option<&str>, phase: Option<Phase>) -> Arc<Execution> {
        let mut e = Execution::new(name, ExecutionSpec::default());
        e.metadata.namespace = Some(ns.into());
        e.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()));
        e.metadata.annotations =
            stamp.map(|s| BTreeMap::from([(queue::SUBMITTED_ANNOTATION.to_string(), s.to_string())]));
        e.status = phase.map(|p| ExecutionStatus { phase: Some(p), ..Default::default() });
        Arc::new(e)
    }

    #[tokio::test]
    async fn a_resumed_subscription_re_reads_the_missed_update() {
        let cluster = MemoryCluster::with_runtimes(vec![]);
        let status = Arc::new(MemoryStatus::default());
        status.publish(doc("x", Phase::Pending));
        let s = status.clone();
        tokio::spawn(async move {
            // Lost, the terminal status written while nobody listened, then back.
            while s.subscribers("ns", "x") == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            s.notify(Published::Lost);
            s.write_unpublished(doc("x", Phase::Completed));
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.notify(Published::Resumed);
        });
        let started = std::time::Instant::now();
        // A poll of 15 s (60 s while subscribed): only the re-read can bring the result within the test's time.
        let v =
            wait_terminal(&*cluster, &*status, Duration::from_secs(15), "ns", "x", Duration::from_secs(30))
                .await
                .unwrap();
        assert_eq!(v.phase(), Phase::Completed);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_lost_subscription_polls_at_the_full_rate() {
        let cluster = MemoryCluster::with_runtimes(vec![]);
        let status = Arc::new(MemoryStatus::default());
        status.publish(doc("y", Phase::Pending));
        let s = status.clone();
        tokio::spawn(async move {
            while s.subscribers("ns", "y") == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            s.notify(Published::Lost);
            s.write_unpublished(doc("y", Phase::Completed));
        });
        let started = std::time::Instant::now();
        // Poll interval 1 s (×4 = 4 s while subscribed): lost, it polls every second.
        let v =
            wait_terminal(&*cluster, &*status, Duration::from_secs(1), "ns", "y", Duration::from_secs(30))
                .await
                .unwrap();
        assert_eq!(v.phase(), Phase::Completed);
        assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    }

    #[test]
    fn queue_positions_follow_the_shared_admission_order() {
        let t = "2026-01-01T00:00:00Z";
        let list = vec![
            // Same second: the microsecond stamps order them, not the names.
            ex("a", "zz", t, Some("2026-01-01T00:00:00.000100Z"), None),
            ex("a", "aa", t, Some("2026-01-01T00:00:00.000200Z"), Some(Phase::Pending)),
            ex("a", "run", t, None, Some(Phase::Processing)),
            ex("b", "b1", "2026-01-01T00:00:05Z", None, Some(Phase::Pending)),
            ex("a", "done", t, None, Some(Phase::Completed)),
        ];
        let limits = Limits { capacity: 0, per_namespace: 0 };
        // b runs nothing: its first goes first; then a's in stamp order.
        assert_eq!(queue_position(&list, &limits, "b", "b1"), (Some(1), 3));
        assert_eq!(queue_position(&list, &limits, "a", "zz"), (Some(2), 3));
        assert_eq!(queue_position(&list, &limits, "a", "aa"), (Some(3), 3));
        assert_eq!(queue_position(&list, &limits, "a", "run"), (None, 3));
        assert_eq!(queue_position(&list, &limits, "a", "done"), (None, 3));
        let mut deleting = (*ex("a", "del", t, None, None)).clone();
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        assert_eq!(slot(&deleting), Slot::Done);
    }

    #[test]
    fn the_capacity_document_reads_as_the_operator_writes_it() {
        let c: Capacity = serde_json::from_str(
            r#"{"capacity":null,"perNamespace":2,"running":1,"waiting":3,"members":["a"],"at":"2026-12-02T15:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((c.capacity, c.per_namespace, c.waiting), (None, Some(2), Some(3)));
    }

    #[test]
    fn the_cache_keeps_only_the_submission_stamp_of_the_annotations() {
        let mut e = (*ex("a", "x", "2026-01-01T00:00:00Z", Some("2026-01-01T00:00:00.5Z"), None)).clone();
        e.metadata.annotations.as_mut().unwrap().insert("big".into(), "x".repeat(1000));
        let s = summary(&e);
        assert_eq!(
            s.metadata.annotations.unwrap().into_keys().collect::<Vec<_>>(),
            vec![queue::SUBMITTED_ANNOTATION.to_string()]
        );
    }
}
