//! The Redis mirror of every Execution's status. Redis is a cache: reconciliation never
//! waits on it. Updates are queued (latest per Execution) and written by one background
//! task with short timeouts; while Redis is down they stay queued and are retried, so the
//! mirror catches up when it returns.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rce_api::redis_keys::{status_channel, status_key, StatusDocument, STATUS_TTL_SECS};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Notify;

use crate::{metrics::Metrics, names::fnv1a};

/// An Execution, by namespace and name.
type Key = (String, String);

/// Redis key of the cluster-wide capacity document, written by every replica every few
/// seconds: `{"capacity","perNamespace","running","waiting","members","at"}`.
pub const CAPACITY_KEY: &str = "rce:capacity";
/// Its lifetime: gone soon after the last operator stopped.
pub const CAPACITY_TTL_SECS: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Write this status document (JSON) and publish it.
    Set { json: String, hash: u64 },
    /// Remove the key (the Execution is gone).
    Delete,
    /// The cluster-wide capacity document (`rce:capacity`).
    Capacity { json: String },
}

#[derive(Default)]
struct State {
    /// Operations not yet carried out, latest per Execution.
    pending: HashMap<Key, Op>,
    /// Hash of the last document written per Execution, to skip unchanged ones.
    written: HashMap<Key, u64>,
}

/// Handle to the mirror; cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Mirror {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Mirror { state: Arc::default(), notify: Arc::new(Notify::new()), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain maps behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `doc` unless it is what Redis already holds.
    pub fn update(&self, doc: &StatusDocument) {
        let Ok(json) = serde_json::to_string(doc) else { return };
        let hash = fnv1a(json.as_bytes());
        let key = (doc.namespace.clone(), doc.name.clone());
        {
            let mut st = self.lock();
            if st.written.get(&key) == Some(&hash) && !st.pending.contains_key(&key) {
                return;
            }
            if matches!(st.pending.get(&key), Some(Op::Set { hash: h, .. }) if *h == hash) {
                return;
            }
            st.pending.insert(key, Op::Set { json, hash });
            self.metrics.redis_pending.set(st.pending.len() as i64);
        }
        self.notify.notify_one();
    }

    /// Queue the removal of an Execution's key.
    pub fn remove(&self, namespace: &str, name: &str) {
        {
            let mut st = self.lock();
            let key = (namespace.to_string(), name.to_string());
            st.written.remove(&key);
            st.pending.insert(key, Op::Delete);
            self.metrics.redis_pending.set(st.pending.len() as i64);
        }
        self.notify.notify_one();
    }

    /// Queue the capacity document (the key expires unless an operator rewrites it).
    pub fn capacity(&self, json: String) {
        self.lock().pending.insert((String::new(), CAPACITY_KEY.to_string()), Op::Capacity { json });
        self.notify.notify_one();
    }

    /// Number of operations waiting to be written.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// The writer task: runs forever.
    pub async fn run(self, url: String, timeout: Duration) {
        let client = match redis::Client::open(url.as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, %url, "invalid Redis URL; the status mirror is off");
                return;
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let mut conn: Option<ConnectionManager> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            let batch: Vec<(Key, Op)> = self.lock().pending.drain().collect();
            if batch.is_empty() {
                // Wake on new work, or look again now and then.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.notify.notified()).await;
                continue;
            }
            if conn.is_none() {
                match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
                    Ok(c) => conn = Some(c),
                    Err(e) => tracing::warn!(error = %e, "cannot set up the Redis connection"),
                }
            }
            let mut failed = false;
            for (key, op) in batch {
                let ok = match conn.as_mut() {
                    Some(c) if !failed => {
                        match tokio::time::timeout(timeout * 2, write(c, &key, &op)).await {
                            Ok(Ok(())) => true,
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, namespace = %key.0, name = %key.1, "Redis write failed; will retry");
                                false
                            }
                            Err(_) => {
                                tracing::warn!(namespace = %key.0, name = %key.1, "Redis write timed out; will retry");
                                false
                            }
                        }
                    }
                    _ => false,
                };
                let mut st = self.lock();
                if ok {
                    if let Op::Set { hash, .. } = &op {
                        st.written.insert(key, *hash);
                    }
                } else {
                    failed = true;
                    self.metrics.redis_errors.inc();
                    // Keep it, unless a newer operation has been queued meanwhile.
                    st.pending.entry(key).or_insert(op);
                }
            }
            let left = self.lock().pending.len();
            self.metrics.redis_pending.set(left as i64);
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                backoff = Duration::from_millis(250);
            }
        }
    }
}

async fn write(conn: &mut ConnectionManager, key: &Key, op: &Op) -> redis::RedisResult<()> {
    let (ns, name) = key;
    match op {
        Op::Set { json, .. } => {
            redis::pipe()
                .set_ex(status_key(ns, name), json, STATUS_TTL_SECS)
                .ignore()
                .publish(status_channel(ns, name), json)
                .ignore()
                .query_async::<()>(conn)
                .await
        }
        Op::Delete => redis::cmd("DEL").arg(status_key(ns, name)).query_async::<()>(conn).await,
        Op::Capacity { json } => {
            redis::cmd("SET")
                .arg(CAPACITY_KEY)
                .arg(json)
                .arg("EX")
                .arg(CAPACITY_TTL_SECS)
                .query_async::<()>(conn)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::{ExecutionStatus, Phase};

    fn doc(phase: Phase) -> StatusDocument {
        StatusDocument {
            namespace: "ns".into(),
            name: "e".into(),
            uid: "u".into(),
            language: "python".into(),
            status: ExecutionStatus { phase: Some(phase), ..Default::default() },
        }
    }

    #[test]
    fn updates_coalesce_and_unchanged_documents_are_skipped() {
        let m = Mirror::new(Arc::new(Metrics::default()));
        m.update(&doc(Phase::Pending));
        m.update(&doc(Phase::Pending));
        assert_eq!(m.pending(), 1);
        m.update(&doc(Phase::Processing));
        assert_eq!(m.pending(), 1, "the latest document replaces the queued one");
        // Pretend the writer wrote it.
        {
            let mut st = m.lock();
            let (k, op) = st.pending.drain().next().unwrap();
            let Op::Set { hash, .. } = op else { panic!() };
            st.written.insert(k, hash);
        }
        m.update(&doc(Phase::Processing));
        assert_eq!(m.pending(), 0, "already in Redis");
        m.remove("ns", "e");
        assert_eq!(m.pending(), 1);
        m.update(&doc(Phase::Processing));
        assert_eq!(m.pending(), 1);
    }
}
