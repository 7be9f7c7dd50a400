//! The real cluster: Executions (and their output ConfigMaps) through the Kubernetes API;
//! Runtimes and the pending count from watch-backed caches (reflectors), never from
//! per-request lists.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{future::BoxFuture, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{Api, PostParams},
    runtime::{reflector, watcher, WatchStreamExt},
    Client,
};
use rce_api::{Execution, Runtime};

use crate::backend::{kube_error, BackendError, Cluster};

pub struct KubeCluster {
    client: Client,
    runtimes: reflector::Store<Runtime>,
    executions: reflector::Store<Execution>,
    runtimes_ready: Arc<AtomicBool>,
    executions_ready: Arc<AtomicBool>,
    timeout: Duration,
}

/// Drive a reflector's watch stream in the background (logging its errors), and return a flag
/// that turns true once the store has listed for the first time.
fn drive<K, S>(stream: S, reader: reflector::Store<K>, what: &'static str) -> Arc<AtomicBool>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    let ready_flag = Arc::new(AtomicBool::new(false));
    let flag = ready_flag.clone();
    tokio::spawn(async move {
        let ready = reader.wait_until_ready();
        tokio::pin!(ready);
        tokio::pin!(stream);
        loop {
            tokio::select! {
                r = &mut ready, if !flag.load(Ordering::Relaxed) => {
                    if r.is_ok() { flag.store(true, Ordering::Relaxed); }
                }
                ev = stream.next() => match ev {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "{what} watch error"),
                    None => break,
                }
            }
        }
    });
    ready_flag
}

impl KubeCluster {
    /// Start the caches (background tasks) and return at once.
    pub fn start(client: Client) -> Arc<KubeCluster> {
        let (rt_reader, rt_writer) = reflector::store::<Runtime>();
        let rt_stream = watcher(Api::<Runtime>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(rt_writer)
            .touched_objects();
        let runtimes_ready = drive(rt_stream, rt_reader.clone(), "Runtime");

        let (ex_reader, ex_writer) = reflector::store::<Execution>();
        // The pending count and the lists need only small fields: drop everything large
        // (source, outputs) before caching.
        let ex_stream = watcher(Api::<Execution>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(|ex: &mut Execution| *ex = crate::backend::summary(ex))
            .reflect(ex_writer)
            .touched_objects();
        let executions_ready = drive(ex_stream, ex_reader.clone(), "Execution");

        Arc::new(KubeCluster {
            client,
            runtimes: rt_reader,
            executions: ex_reader,
            runtimes_ready,
            executions_ready,
            timeout: Duration::from_secs(10),
        })
    }

    /// Wait (bounded) until both caches have listed once.
    pub async fn wait_ready(&self, max: Duration) -> bool {
        let _ = tokio::time::timeout(max, async {
            let _ = self.runtimes.wait_until_ready().await;
            let _ = self.executions.wait_until_ready().await;
        })
        .await;
        self.ready()
    }
}

impl Cluster for KubeCluster {
    fn create(&self, execution: Execution) -> BoxFuture<'_, Result<Execution, BackendError>> {
        Box::pin(async move {
            let ns = execution.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let api: Api<Execution> = Api::namespaced(self.client.clone(), &ns);
            match tokio::time::timeout(self.timeout, api.create(&PostParams::default(), &execution)).await {
                Ok(r) => r.map_err(kube_error),
                Err(_) => Err(BackendError::Unavailable("timed out creating the Execution".into())),
            }
        })
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, Result<Option<Execution>, BackendError>> {
        let api: Api<Execution> = Api::namespaced(self.client.clone(), namespace);
        let name = name.to_string();
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, api.get_opt(&name)).await {
                Ok(r) => r.map_err(kube_error),
                Err(_) => Err(BackendError::Unavailable("timed out reading the Execution".into())),
            }
        })
    }

    fn runtimes(&self) -> Option<Vec<Arc<Runtime>>> {
        self.runtimes_ready.load(Ordering::Relaxed).then(|| self.runtimes.state())
    }

    fn pending(&self) -> Option<usize> {
        if !self.executions_ready.load(Ordering::Relaxed) {
            return None;
        }
        // Every namespace (the watch is cluster-wide): the queue the operators share, not
        // this replica's own submissions. One being deleted waits for nothing.
        Some(
            self.executions
                .state()
                .iter()
                .filter(|e| crate::backend::slot(e) == rce_api::queue::Slot::Waiting)
                .count(),
        )
    }

    fn ready(&self) -> bool {
        self.runtimes_ready.load(Ordering::Relaxed) && self.executions_ready.load(Ordering::Relaxed)
    }

    fn list(&self, namespace: Option<&str>) -> Vec<Arc<Execution>> {
        let mut list: Vec<Arc<Execution>> = self
            .executions
            .state()
            .into_iter()
            .filter(|e| namespace.is_none_or(|ns| e.metadata.namespace.as_deref() == Some(ns)))
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
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let (name, key) = (name.to_string(), key.to_string());
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, api.get_opt(&name)).await {
                Ok(Ok(cm)) => Ok(cm.and_then(|cm| cm.binary_data?.remove(&key)).map(|b| b.0)),
                Ok(Err(e)) => Err(kube_error(e)),
                Err(_) => Err(BackendError::Unavailable("timed out reading a ConfigMap".into())),
            }
        })
    }

    fn create_config_map(&self, config_map: ConfigMap) -> BoxFuture<'_, Result<(), BackendError>> {
        let ns = config_map.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, api.create(&PostParams::default(), &config_map)).await {
                Ok(r) => r.map(|_| ()).map_err(kube_error),
                Err(_) => Err(BackendError::Unavailable("timed out creating a ConfigMap".into())),
            }
        })
    }
}
