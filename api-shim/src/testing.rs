//! In-memory stand-ins for the cluster and the status store, for router tests and local
//! demos. They behave like the real ones where the shim can tell: created objects get a uid
//! and a creation time; a published document reaches the subscribers of its channel.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use rce_api::{redis_keys::StatusDocument, Execution, ExecutionStatus, Limits, Runtime, RuntimeSpec};
use tokio::sync::broadcast;

use crate::backend::{BackendError, Cluster, Live, Published, StatusStore, StdinEntry};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A ConfigMap's `binaryData`: key → bytes.
pub type BinaryData = HashMap<String, Vec<u8>>;

#[derive(Default)]
pub struct MemoryCluster {
    pub executions: Mutex<HashMap<(String, String), Execution>>,
    pub runtimes: Mutex<Vec<Arc<Runtime>>>,
    /// What `pending()` answers; `None` = not synced.
    pub pending: Mutex<Option<usize>>,
    /// When set, every call fails as if the apiserver were down.
    pub down: Mutex<bool>,
    /// When set, the Runtime cache has not listed yet (a shim just started).
    pub unsynced: Mutex<bool>,
    /// ConfigMaps' `binaryData`, by (namespace, name) then key.
    pub config_maps: Mutex<HashMap<(String, String), BinaryData>>,
}

impl MemoryCluster {
    pub fn with_runtimes(runtimes: Vec<Runtime>) -> Arc<MemoryCluster> {
        let c = MemoryCluster::default();
        *lock(&c.runtimes) = runtimes.into_iter().map(Arc::new).collect();
        *lock(&c.pending) = Some(0);
        Arc::new(c)
    }
    pub fn all(&self) -> Vec<Execution> {
        lock(&self.executions).values().cloned().collect()
    }
    pub fn set_status(&self, namespace: &str, name: &str, status: ExecutionStatus) {
        if let Some(ex) = lock(&self.executions).get_mut(&(namespace.to_string(), name.to_string())) {
            ex.status = Some(status);
        }
    }
    pub fn set_pending(&self, n: Option<usize>) {
        *lock(&self.pending) = n;
    }
    pub fn set_down(&self, down: bool) {
        *lock(&self.down) = down;
    }
    /// What the operator does for a large output: a ConfigMap with a `binaryData` entry.
    pub fn put_config_map(&self, namespace: &str, name: &str, key: &str, bytes: Vec<u8>) {
        lock(&self.config_maps)
            .entry((namespace.to_string(), name.to_string()))
            .or_default()
            .insert(key.to_string(), bytes);
    }
}

impl Cluster for MemoryCluster {
    fn create(&self, mut ex: Execution) -> BoxFuture<'_, Result<Execution, BackendError>> {
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("connection refused (10.0.0.1:6443)".into()));
            }
            let key = (
                ex.metadata.namespace.clone().unwrap_or_default(),
                ex.metadata.name.clone().unwrap_or_default(),
            );
            ex.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            ex.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
            let mut map = lock(&self.executions);
            if map.contains_key(&key) {
                return Err(BackendError::Rejected {
                    code: 409,
                    reason: "AlreadyExists".into(),
                    message: "exists".into(),
                });
            }
            map.insert(key, ex.clone());
            Ok(ex)
        })
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, Result<Option<Execution>, BackendError>> {
        let key = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("connection refused".into()));
            }
            Ok(lock(&self.executions).get(&key).cloned())
        })
    }

    fn runtimes(&self) -> Option<Vec<Arc<Runtime>>> {
        (!*lock(&self.unsynced)).then(|| lock(&self.runtimes).clone())
    }

    fn pending(&self) -> Option<usize> {
        *lock(&self.pending)
    }

    fn ready(&self) -> bool {
        lock(&self.pending).is_some()
    }

    fn list(&self, namespace: Option<&str>) -> Vec<Arc<Execution>> {
        let mut list: Vec<Arc<Execution>> = lock(&self.executions)
            .values()
            .filter(|e| namespace.is_none_or(|ns| e.metadata.namespace.as_deref() == Some(ns)))
            .map(|e| Arc::new(crate::backend::summary(e)))
            .collect();
        crate::backend::newest_first(&mut list);
        list
    }

    fn config_map_bytes(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, BackendError>> {
        let (id, key) = ((namespace.to_string(), name.to_string()), key.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("connection refused".into()));
            }
            Ok(lock(&self.config_maps).get(&id).and_then(|m| m.get(&key)).cloned())
        })
    }

    fn create_config_map(
        &self,
        cm: k8s_openapi::api::core::v1::ConfigMap,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("connection refused".into()));
            }
            let id = (
                cm.metadata.namespace.clone().unwrap_or_default(),
                cm.metadata.name.clone().unwrap_or_default(),
            );
            let mut data: BinaryData =
                cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            data.extend(cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
            lock(&self.config_maps).insert(id, data);
            Ok(())
        })
    }
}

/// The status store in memory: documents by key, one broadcast channel per Execution.
#[derive(Default)]
pub struct MemoryStatus {
    docs: Mutex<HashMap<(String, String), StatusDocument>>,
    channels: Mutex<HashMap<(String, String), broadcast::Sender<Published>>>,
    pub down: Mutex<bool>,
    live: Arc<LiveBook>,
    stdin: Mutex<HashMap<(String, String), Vec<StdinEntry>>>,
}

/// The live streams in memory: entries by Execution, and a wake-up for their readers.
#[derive(Default)]
struct LiveBook {
    entries: Mutex<HashMap<(String, String), Vec<Live>>>,
    changed: tokio::sync::Notify,
}

impl MemoryStatus {
    /// What the operator does on a status change: write the document, then publish it.
    pub fn publish(&self, doc: StatusDocument) {
        let key = (doc.namespace.clone(), doc.name.clone());
        lock(&self.docs).insert(key.clone(), doc.clone());
        if let Some(tx) = lock(&self.channels).get(&key) {
            let _ = tx.send(Published::Doc(Box::new(doc)));
        }
    }

    /// Write the document without publishing it (a message lost while the subscription was
    /// down).
    pub fn write_unpublished(&self, doc: StatusDocument) {
        lock(&self.docs).insert((doc.namespace.clone(), doc.name.clone()), doc);
    }

    /// Tell every subscriber the subscription was lost, or is back ([`Published::Lost`],
    /// [`Published::Resumed`]).
    pub fn notify(&self, what: Published) {
        for tx in lock(&self.channels).values() {
            let _ = tx.send(what.clone());
        }
    }
    /// What the operator does while a program runs: append to its live stream.
    pub fn append_live(&self, namespace: &str, name: &str, entry: Live) {
        lock(&self.live.entries).entry((namespace.to_string(), name.to_string())).or_default().push(entry);
        self.live.changed.notify_waiters();
    }

    /// What clients wrote to an Execution's stdin stream.
    pub fn stdin_of(&self, namespace: &str, name: &str) -> Vec<StdinEntry> {
        lock(&self.stdin).get(&(namespace.to_string(), name.to_string())).cloned().unwrap_or_default()
    }

    pub fn subscribers(&self, namespace: &str, name: &str) -> usize {
        lock(&self.channels).get(&(namespace.to_string(), name.to_string())).map_or(0, |t| t.receiver_count())
    }
}

impl StatusStore for MemoryStatus {
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<Option<StatusDocument>, BackendError>> {
        let key = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("redis down".into()));
            }
            Ok(lock(&self.docs).get(&key).cloned())
        })
    }

    fn subscribe(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Published>, BackendError>> {
        let key = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("redis down".into()));
            }
            let rx = lock(&self.channels).entry(key).or_insert_with(|| broadcast::channel(64).0).subscribe();
            Ok(futures::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(doc) => return Some((doc, rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .boxed())
        })
    }

    fn ping(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { !*lock(&self.down) })
    }

    fn live(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Live>, BackendError>> {
        let key = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("redis down".into()));
            }
            let book = self.live.clone();
            Ok(futures::stream::unfold(Some((book, key, 0usize)), |state| async move {
                let (book, key, at) = state?;
                loop {
                    let waker = book.clone();
                    let notified = waker.changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let next = lock(&book.entries).get(&key).and_then(|v| v.get(at).cloned());
                    if let Some(e) = next {
                        let more = (e != Live::End).then_some((book, key, at + 1));
                        return Some((e, more));
                    }
                    notified.await;
                }
            })
            .boxed())
        })
    }

    fn send_stdin(
        &self,
        namespace: &str,
        name: &str,
        entry: StdinEntry,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        let key = (namespace.to_string(), name.to_string());
        Box::pin(async move {
            if *lock(&self.down) {
                return Err(BackendError::Unavailable("redis down".into()));
            }
            lock(&self.stdin).entry(key).or_default().push(entry);
            Ok(())
        })
    }
}

/// A Runtime like the ones the chart installs.
pub fn runtime(name: &str, version: &str, aliases: &[&str], judge0_ids: &[u32]) -> Runtime {
    let mut r = Runtime::new(
        name,
        RuntimeSpec {
            display_name: match name {
                "python" => "Python".into(),
                "javascript" => "JavaScript (Node.js)".into(),
                "bash" => "Bash".into(),
                other => other.into(),
            },
            version: version.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            image: format!("rce/{name}:local"),
            source_file: match name {
                "python" => "main.py".into(),
                "javascript" => "main.js".into(),
                _ => "main.sh".into(),
            },
            run: vec![name.into(), "{file}".into()],
            default_limits: Limits { wall_time_ms: Some(5_000), memory_mib: Some(128), ..Default::default() },
            max_limits: Limits {
                wall_time_ms: Some(15_000),
                cpu_time_ms: Some(10_000),
                memory_mib: Some(512),
                processes: Some(128),
                ..Default::default()
            },
            judge0_ids: judge0_ids.to_vec(),
            ..Default::default()
        },
    );
    r.metadata.name = Some(name.into());
    r
}

/// The seed's three languages.
pub fn seed_runtimes() -> Vec<Runtime> {
    vec![
        runtime("python", "3.11.2", &["py", "python3"], &[71]),
        runtime("javascript", "18.19.0", &["js", "node", "nodejs"], &[63]),
        runtime("bash", "5.2.15", &["sh"], &[46]),
    ]
}
